"""Document 002's two networks: a 4-3-3 classifier on iris and a regressor on diabetes.

    python experiments/doc002_iris_diabetes.py [--seeds 10] [--out DIR] [--quick]

Classifier (002, section 2): 4-3-3, sigmoid hidden, softmax output, cross-entropy (output delta
y - t), trained by plain gradient descent on scikit-learn's iris (120 train / 30 test, stratified,
standardized). Regressor (section 3): sigmoid hidden, identity output, MSE (output error
2 (y - t)), on scikit-learn's diabetes (354 / 88, standardized); its test R^2 is set beside
ordinary least squares on the same split. Seed s draws both the train/test split and the
initialisation, so the mean, std, min and max over --seeds runs include the split's variation
(30 iris test examples: one example is 0.033 of accuracy). The hand-written gradients of both networks are compared with autodiff and central
differences in float64 (jmlp.gradcheck) and the reports printed.
Writes results.json and curves.png.
"""

import jax
import numpy as np
from common import parse_args, save_figure, save_json, summary, table

import jmlp

CONFIG = {
    "iris": {"sizes": (4, 3, 3), "lr": 0.5, "batch": 10, "epochs": 300},
    "diabetes": {"sizes": (10, 16, 1), "lr": 0.01, "batch": 32, "epochs": 300},
    "init": "glorot_normal",  # 002 does not say; Glorot suits sigmoid units
    "seeds": 10,
}
QUICK = {"epochs": 3, "seeds": 1}


def train(net, name: str, c: dict, seeds: int, seed: int, score) -> dict:
    """Plain gradient descent (002's update rule); seed s: split and initialisation."""
    opt = jmlp.optim.sgd(c["lr"])  # one optimizer object: fit compiles its epoch once
    runs = []
    for s in range(seed, seed + seeds):
        data = jmlp.data.load(name, seed=s)
        k_init, k_fit = jax.random.split(jax.random.key(s))
        params = jmlp.init_params(k_init, net.sizes, weight_init=CONFIG["init"])
        res = jmlp.fit(
            net,
            params,
            opt,
            data.x_train,
            data.y_train,
            epochs=c["epochs"],
            batch_size=c["batch"],
            key=k_fit,
            validation=(data.x_test, data.y_test),
        )
        runs.append((float(score(net, res.params, data.x_test, data.y_test)), res, data))
    scores = [r[0] for r in runs]
    return {
        "scores": scores,
        "summary": summary(scores),
        "history": runs[0][1].history,
        "first": runs[0],
        "data": [r[2] for r in runs],
    }


def least_squares_r2(data) -> float:
    """Test R^2 of ordinary least squares with an intercept (numpy lstsq)."""
    a = np.c_[data.x_train, np.ones(len(data.x_train))]
    coef = np.linalg.lstsq(a, data.y_train, rcond=None)[0]
    pred = np.c_[data.x_test, np.ones(len(data.x_test))] @ coef
    y = data.y_test
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def plot(iris: dict, diabetes: dict, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, run, metric, name in (
        (axes[0], iris, "val_accuracy", "iris 4-3-3: test accuracy"),
        (axes[1], diabetes, "val_r2", "diabetes: test R^2"),
    ):
        ax.plot(run["history"]["loss"], label="training loss")
        ax.plot(run["history"][metric], label=name)
        ax.set(xlabel="epoch", title=name + " (seed 0)")
        ax.legend()
    save_figure(fig, out, "curves.png")


def main(argv=None) -> dict:
    extra = [(("--seeds",), {"type": int, "default": CONFIG["seeds"], "help": "initialisations"})]
    args = parse_args(__doc__, "doc002_iris_diabetes", argv, extra)
    seeds = QUICK["seeds"] if args.quick else args.seeds
    cfg = {
        k: CONFIG[k] | ({"epochs": QUICK["epochs"]} if args.quick else {})
        for k in ("iris", "diabetes")
    }
    classifier = jmlp.MLP(cfg["iris"]["sizes"], "sigmoid", "softmax", "cross_entropy")
    regressor = jmlp.MLP(cfg["diabetes"]["sizes"], "sigmoid", "identity", "mse")
    iris = train(classifier, "iris", cfg["iris"], seeds, args.seed, jmlp.accuracy)
    diabetes = train(regressor, "diabetes", cfg["diabetes"], seeds, args.seed, jmlp.r2_score)
    ols = summary([least_squares_r2(d) for d in diabetes["data"]])
    rows = [
        [name, *(r["summary"][k] for k in ("mean", "std", "min", "max"))]
        for name, r in (
            ("iris test accuracy", iris),
            ("diabetes test R^2", diabetes),
            ("diabetes R^2, least squares", {"summary": ols}),
        )
    ]
    print(table([f"metric over {seeds} seeds", "mean", "std", "min", "max"], rows))
    checks = {}
    for name, net, run in (("iris", classifier, iris), ("diabetes", regressor, diabetes)):
        _, result, data = run["first"]
        report = jmlp.gradcheck(net, result.params, data.x_train, data.y_train)
        print(
            f"\n{name}: hand-written gradient vs autodiff and finite differences, trained "
            f"params\n{report}"
        )
        checks[name] = {
            "max_rel_autodiff": report.max_rel_autodiff,
            "max_rel_fd": report.max_rel_fd,
            "table": str(report),
        }
    plot(iris, diabetes, args.out)
    results = {"config": CONFIG | cfg, "seeds": seeds, "least_squares_r2": ols, "gradcheck": checks}
    for name, run in (("iris", iris), ("diabetes", diabetes)):
        results[name] = {
            "scores": run["scores"],
            "summary": run["summary"],
            "history": run["history"],
        }
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
