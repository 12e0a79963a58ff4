"""Handwritten digits: document 000's recipe, a modern one, a tuned MLP and an ensemble.

    python experiments/digits.py [--mnist DIR] [--out DIR] [--quick]

000's repository trains 784-128-10 on MNIST with sigmoid units everywhere, MSE, W ~ 0.1 N(0, 1),
b = 0.05 and per-example SGD at lr 0.002. Offline default: scikit-learn's bundled 8x8 digits
(1437 train / 360 test, stratified, pixels / 16), the same recipe as 64-128-10. 0.002 was chosen
for 60000 examples per epoch; with 1437 it barely moves in a few epochs, so the learning rate is
picked from a small grid on a validation split of the training set (the test set is not used to
choose anything). Then a modern recipe (64-128-128-10 ReLU, softmax cross-entropy, Adam), a tuned
MLP (wider, AdamW with cosine decay, more epochs; fixed in advance) and an ensemble of tuned MLPs
(average of probabilities). --mnist DIR runs the same on the four MNIST IDX files in DIR
(jmlp.data.load_mnist; .gz or not) with 000's own lr 0.002.
Writes results.json, misclassified.png and lr_sweep.png.
"""

import functools
import time
from pathlib import Path

import jax
import numpy as np
import optax
from common import parse_args, save_figure, save_json, table

import jmlp

RECIPES = {
    "000: sigmoid/MSE, per-example SGD": {
        "hidden": (128,),
        "activation": "sigmoid",
        "output": "sigmoid",
        "loss": "mse",
        "init": {"weight_init": "normal", "weight_scale": 0.1, "bias_init": 0.05},
        "optimizer": "sgd",
        "lr": 0.002,
        "batch": 1,
        "epochs": 30,
        "mnist_epochs": 3,
    },
    "modern: ReLU/cross-entropy, Adam": {
        "hidden": (128, 128),
        "activation": "relu",
        "output": "softmax",
        "loss": "cross_entropy",
        "init": {"weight_init": "he_normal"},
        "optimizer": "adam",
        "lr": 1e-3,
        "batch": 32,
        "epochs": 40,
        "mnist_epochs": 10,
    },
    "tuned: 256-256, AdamW + cosine": {
        "hidden": (256, 256),
        "activation": "relu",
        "output": "softmax",
        "loss": "cross_entropy",
        "init": {"weight_init": "he_normal"},
        "optimizer": "adamw_cosine",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "batch": 32,
        "epochs": 150,
        "mnist_epochs": 20,
    },
}
CONFIG = {
    "recipes": RECIPES,
    "lr_grid_000": (0.002, 0.02, 0.2, 1.0),  # per-example SGD learning rates tried on digits
    "val_fraction": 0.2,
    "ensemble": 10,  # tuned MLPs averaged
    "mnist_ensemble": 5,
}
QUICK = {"epochs": 1, "ensemble": 2, "lr_grid_000": (0.002, 0.2), "n_train": 300}


def make_net(r: dict, n_in: int) -> jmlp.MLP:
    return jmlp.MLP((n_in, *r["hidden"], 10), r["activation"], r["output"], r["loss"])


@functools.cache  # one object per setting: fit reuses its compiled epoch (ensemble members)
def make_optimizer(kind: str, lr: float, weight_decay: float, steps: int):
    """jmlp.optim's sgd or adam, or adamw with a cosine decay over ``steps`` updates."""
    if kind == "sgd":
        return jmlp.optim.sgd(lr)
    if kind == "adam":
        return jmlp.optim.adam(lr)
    return jmlp.optim.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=weight_decay)


def train(r: dict, x, labels, seed: int):
    """Train one network of recipe ``r``; MSE nets get one-hot targets. Returns (net, params)."""
    net = make_net(r, x.shape[1])
    k_init, k_fit = jax.random.split(jax.random.key(seed))
    params = jmlp.init_params(k_init, net.sizes, **r["init"])
    y = jmlp.data.one_hot(labels, 10) if r["loss"] == "mse" else labels
    steps = r["epochs"] * -(-len(x) // r["batch"])
    opt = make_optimizer(r["optimizer"], r["lr"], r.get("weight_decay", 0.0), steps)
    res = jmlp.fit(net, params, opt, x, y, epochs=r["epochs"], batch_size=r["batch"], key=k_fit)
    return net, res.params


def accuracy(probs, labels) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == labels))


def choose_lr(r: dict, data, grid, val_fraction: float) -> tuple[float, list]:
    """The lr of ``grid`` with the best validation accuracy (split off the training set)."""
    x, y, xv, yv = jmlp.data.train_val_split(data.x_train, data.y_train, val_fraction, seed=0)
    scores = []
    for lr in grid:
        net, params = train(r | {"lr": lr}, x, y, seed=0)
        scores.append(accuracy(jmlp.forward(net, params, xv), yv))
    return float(grid[int(np.argmax(scores))]), scores


def plot_misclassified(x, labels, models: dict, out: str, shape) -> None:
    """Up to 16 misclassified test images of each model in ``models`` ({name: probs})."""
    import matplotlib.pyplot as plt

    wrong = {k: np.flatnonzero(np.argmax(p, -1) != labels) for k, p in models.items()}
    rows = [max(1, -(-min(len(w), 16) // 8)) for w in wrong.values()]
    fig = plt.figure(figsize=(10, 1.45 * sum(rows) + 0.5 * len(rows)))
    subfigs = fig.subfigures(len(models), 1, height_ratios=[r + 0.4 for r in rows])
    for sub, n_rows, (name, probs) in zip(np.atleast_1d(subfigs), rows, models.items()):
        axes = np.atleast_1d(sub.subplots(n_rows, 8)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, i in zip(axes, wrong[name][:16]):
            ax.imshow(x[i].reshape(shape), cmap="gray_r")
            ax.set_title(f"{labels[i]} -> {np.argmax(probs[i])} ({probs[i].max():.2f})", fontsize=8)
        sub.suptitle(
            f"{name}: {len(wrong[name])} of {len(labels)} test digits wrong "
            "(true -> predicted (its largest output))",
            fontsize=10,
        )
    fig.savefig(Path(out) / "misclassified.png", dpi=110)
    plt.close(fig)


def plot_lr(grid, scores, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogx(grid, scores, marker="o")
    ax.set(
        xlabel="learning rate (per-example SGD)",
        ylabel="validation accuracy",
        title="000's recipe on 8x8 digits: choosing lr",
    )
    save_figure(fig, out, "lr_sweep.png")


def load(args):
    """(data, image shape, recipes with their epochs) for digits or --mnist, cut for --quick."""
    if args.mnist:
        data, shape = jmlp.data.load_mnist(args.mnist), (28, 28)
    else:
        data, shape = jmlp.data.load("digits", standardize=False), (8, 8)
        data = data._replace(x_train=data.x_train / 16, x_test=data.x_test / 16)
    epochs = "mnist_epochs" if args.mnist else "epochs"
    recipes = {
        k: r | {"epochs": QUICK["epochs"] if args.quick else r[epochs]} for k, r in RECIPES.items()
    }
    if args.quick:
        n = QUICK["n_train"]
        data = data._replace(x_train=data.x_train[:n], y_train=data.y_train[:n])
    return data, shape, recipes


def run_recipes(recipes: dict, data, seed: int) -> tuple[list, dict]:
    """Table rows and test probabilities of one network per recipe."""
    rows, probs = [], {}
    for name, r in recipes.items():
        start = time.perf_counter()
        net, params = train(r, data.x_train, data.y_train, seed)
        probs[name] = np.asarray(jmlp.forward(net, params, data.x_test))
        sizes = "-".join(map(str, net.sizes))
        rows.append(
            [
                name,
                sizes,
                f"{r['lr']:g}",
                str(r["epochs"]),
                accuracy(probs[name], data.y_test),
                time.perf_counter() - start,
            ]
        )
    return rows, probs


def main(argv=None) -> dict:
    extra = [(("--mnist",), {"metavar": "DIR", "help": "folder with the four MNIST IDX files"})]
    args = parse_args(__doc__, "digits", argv, extra)
    cfg = CONFIG | (QUICK if args.quick else {})
    data, shape, recipes = load(args)
    results = {"config": cfg, "data": data.name, "n_train": len(data.x_train)}
    first = next(iter(recipes))
    if not args.mnist:
        lr, scores = choose_lr(recipes[first], data, cfg["lr_grid_000"], cfg["val_fraction"])
        recipes[first] = recipes[first] | {"lr": lr}
        results["lr_sweep_000"] = {"grid": cfg["lr_grid_000"], "val_accuracy": scores, "lr": lr}
        plot_lr(cfg["lr_grid_000"], scores, args.out)
    rows, probs = run_recipes(recipes, data, args.seed)
    members = cfg["mnist_ensemble" if args.mnist and not args.quick else "ensemble"]
    tuned, start = list(recipes.values())[-1], time.perf_counter()
    seeds = range(args.seed + 1, args.seed + 1 + members)
    member_probs = [
        jmlp.forward(*train(tuned, data.x_train, data.y_train, s), data.x_test) for s in seeds
    ]
    single = [accuracy(p, data.y_test) for p in member_probs]
    name = f"ensemble of {members} tuned (mean prob.)"
    probs[name] = np.mean(np.stack(member_probs), axis=0)
    rows.append(
        [name, *rows[-1][1:4], accuracy(probs[name], data.y_test), time.perf_counter() - start]
    )
    print(f"{data.name}: {len(data.x_train)} train / {len(data.x_test)} test")
    print(table(["recipe", "sizes", "lr", "epochs", "test accuracy", "seconds"], rows))
    print(
        f"ensemble members alone: mean {np.mean(single):.4f}, min {np.min(single):.4f}, "
        f"max {np.max(single):.4f}"
    )
    plot_misclassified(
        data.x_test, data.y_test, {first: probs[first], name: probs[name]}, args.out, shape
    )
    keys = ("recipe", "sizes", "lr", "epochs", "test_accuracy", "seconds_incl_compile")
    results |= {"rows": [dict(zip(keys, row)) for row in rows], "ensemble_members": single}
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
