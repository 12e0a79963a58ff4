"""jmlp.sklearn.MLPClassifier beside sklearn.neural_network.MLPClassifier: same data, same settings.

    python experiments/sklearn_comparison.py [--seeds 5] [--out DIR] [--quick]

Four of scikit-learn's bundled or generated sets (digits, breast_cancer, iris, moons of 1000 with
noise 0.2), each split 75/25 (stratified, random_state 0) and standardized by a StandardScaler
in a Pipeline. Both classifiers get the same settings (CONFIG): one hidden layer of 64 relu
units, Adam at 1e-3, batch min(200, n), alpha 1e-4, at most 100 epochs with scikit-learn's tol
rule; seeds 0..seeds-1 draw the initialisation and the batch order of each. Both draw the same
initial weights from the seed (scikit-learn's Glorot uniform scheme); what differs: the
arithmetic (float32 vs float64) and the random stream of the batch order. scikit-learn runs with one BLAS thread (on a small shared
machine, BLAS threads fighting for the cores make it many times slower). Writes results.json and
accuracy.png.
"""

import warnings

import numpy as np
from common import parse_args, save_figure, save_json, summary, table
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from jmlp.sklearn import MLPClassifier

CONFIG = {
    "settings": {
        "hidden_layer_sizes": (64,),
        "activation": "relu",
        "solver": "adam",
        "learning_rate_init": 1e-3,
        "batch_size": "auto",
        "alpha": 1e-4,
        "max_iter": 100,
    },
    "test_size": 0.25,
    "seeds": 5,
    "sets": ["digits", "breast_cancer", "iris", "moons"],
}
QUICK = {"seeds": 1, "max_iter": 5, "sets": ["iris", "breast_cancer"]}
LIBRARIES = {"jmlp": MLPClassifier, "scikit-learn": SklearnMLPClassifier}


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "moons":
        return make_moons(1000, noise=0.2, random_state=0)
    loader = {"digits": load_digits, "breast_cancer": load_breast_cancer, "iris": load_iris}
    return loader[name](return_X_y=True)


def test_accuracies(name: str, settings: dict, seeds: range) -> dict[str, list[float]]:
    """Test accuracy of each library at each seed, on one split of the set ``name``."""
    x, y = load(name)
    split = train_test_split(x, y, test_size=CONFIG["test_size"], random_state=0, stratify=y)
    x_train, x_test, y_train, y_test = split
    scores = {lib: [] for lib in LIBRARIES}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # both stop at max_iter alike
        for lib, cls in LIBRARIES.items():
            for seed in seeds:
                model = make_pipeline(StandardScaler(), cls(random_state=seed, **settings))
                scores[lib].append(model.fit(x_train, y_train).score(x_test, y_test))
    return scores


def plot(results: dict, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(results)
    for i, lib in enumerate(LIBRARIES):
        means = [results[n][lib]["mean"] for n in names]
        stds = [results[n][lib]["std"] for n in names]
        ax.errorbar(np.arange(len(names)) + 0.1 * (2 * i - 1), means, yerr=stds, fmt="o", label=lib)
    ax.set(xticks=range(len(names)), xticklabels=names, ylabel="test accuracy")
    ax.set_title("same data and settings: mean and std over seeds")
    ax.legend()
    save_figure(fig, out, "accuracy.png")


def main(argv=None) -> dict:
    extra = [(("--seeds",), {"type": int, "default": CONFIG["seeds"], "help": "seeds per set"})]
    args = parse_args(__doc__, "sklearn_comparison", argv, extra)
    settings, sets = dict(CONFIG["settings"]), CONFIG["sets"]
    seeds = range(args.seed, args.seed + (QUICK["seeds"] if args.quick else args.seeds))
    if args.quick:
        settings["max_iter"], sets = QUICK["max_iter"], QUICK["sets"]
    results, rows = {}, []
    for name in sets:
        scores = test_accuracies(name, settings, seeds)
        results[name] = {lib: {"scores": s, **summary(s)} for lib, s in scores.items()}
        jm, sk = results[name]["jmlp"], results[name]["scikit-learn"]
        rows.append([name, jm["mean"], jm["std"], sk["mean"], sk["std"], jm["mean"] - sk["mean"]])
    header = ["data", "jmlp mean", "std", "sklearn mean", "std", "difference"]
    print(table(header, rows))
    plot(results, args.out)
    results = {"config": CONFIG | {"settings": settings}, "seeds": list(seeds), "sets": results}
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
