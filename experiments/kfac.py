"""K-FAC against Adam and SGD with momentum, each at its best learning rate of a small grid.

    python experiments/kfac.py [--out DIR] [--quick] [--seed S]

Two problems, in the spirit of the K-FAC paper's (Martens & Grosse, 2015) deep autoencoders:

- ``digits_autoencoder``: the 8x8 digits (1437 training images, pixels / 16 in [0, 1]) through
  64-128-64-16-64-128-64 (tanh, a linear 16-unit code, sigmoid output), binary cross-entropy
  summed over the 64 pixels, mean over the batch.
- ``mnist1d``: MNIST-1D (4000 training sequences of 40), 40-100-100-10 ReLU, softmax
  cross-entropy.

Methods: ``sgd`` (optax.sgd(lr, momentum=0.9)), ``adam`` (optax.adam(lr)) and ``kfac`` (the same
SGD with momentum after ``jmlp.kfac`` preconditioning). Each method trains its grid of learning
rates x seeds in one ``fit_many`` (one compiled program; a first call of one epoch compiles it, the
timed call runs the epochs). Its best learning rate has the least mean final training loss. Then:
epochs to reach the problem's fixed training loss (per seed; the median), and seconds to reach it,
at the grid's measured seconds per member-epoch (the members run vectorized, so this is a share of
the whole grid's time). Writes results.json, curves.png (loss vs epochs and vs seconds) and prints
the table.
"""

import time

import jax
import numpy as np
import optax
from common import parse_args, save_figure, save_json, table

import jmlp

CONFIG = {
    "problems": {
        "digits_autoencoder": {"epochs": 20, "batch": 128, "target": 17.0, "examples": None},
        "mnist1d": {"epochs": 20, "batch": 128, "target": 0.15, "examples": None},
    },
    "lrs": {
        "sgd": (0.01, 0.03, 0.1, 0.3),
        "adam": (1e-3, 3e-3, 1e-2, 3e-2),
        "kfac": (0.03, 0.1, 0.3, 1.0),
    },
    "seeds": 2,
    "kfac": {"damping": 1.0, "decay": 0.95, "every": 10},
}
QUICK = {
    "problems": {
        "digits_autoencoder": {"epochs": 3, "batch": 64, "target": 40.0, "examples": 256},
        "mnist1d": {"epochs": 3, "batch": 64, "target": 2.0, "examples": 256},
    },
    "lrs": {"sgd": (0.1,), "adam": (1e-2,), "kfac": (0.03,)},
    "seeds": 2,
    "quick": True,  # the timed call compiles too
}
OPTIMIZERS = {
    "sgd": lambda learning_rate: optax.sgd(learning_rate, momentum=0.9),
    "adam": lambda learning_rate: optax.adam(learning_rate),
    "kfac": lambda learning_rate: optax.sgd(learning_rate, momentum=0.9),
}


def problem(name: str, c: dict, seed: int):
    """``(net, x, y)`` of a problem (the first ``examples`` rows with --quick)."""
    if name == "digits_autoencoder":
        ds = jmlp.data.load("digits", standardize=False, seed=seed)
        x = (ds.x_train / 16).astype(np.float32)
        net = jmlp.MLP((64, 128, 64, 16, 64, 128, 64), ("tanh", "tanh", "identity", "tanh", "tanh"),
                       "sigmoid", "binary_cross_entropy")  # fmt: skip
        y = x
    else:
        ds = jmlp.data.load("mnist1d", seed=seed)
        x, y = ds.x_train.astype(np.float32), ds.y_train
        net = jmlp.MLP((40, 100, 100, 10), "relu", "softmax", "cross_entropy")
    n = c["examples"] or len(x)
    return net, x[:n], y[:n]


def train(method: str, net, x, y, c: dict, cfg: dict, seed: int) -> dict:
    """One method's grid (lr x seed) in one fit_many: losses (lrs, seeds, epochs), seconds."""
    g = jmlp.grid(lr=cfg["lrs"][method], seed=range(cfg["seeds"]))
    kfac = CONFIG["kfac"]
    kw = {
        "params": jmlp.init_many(g.keys(jax.random.key(seed), "seed"), net.sizes),
        "hparams": {"learning_rate": g.values("lr")["lr"]},
        "batch_size": c["batch"],
        "key": g.keys(jax.random.key(seed + 1), "seed"),
        "preconditioner": jmlp.kfac(kfac["damping"], decay=kfac["decay"], every=kfac["every"])
        if method == "kfac"
        else None,
    }
    if not cfg.get("quick"):  # compiles the program, so that the timed call only runs
        jmlp.fit_many(net, OPTIMIZERS[method], x, y, epochs=1, **kw)
    began = time.perf_counter()
    result = jmlp.fit_many(net, OPTIMIZERS[method], x, y, epochs=c["epochs"], **kw)
    seconds = time.perf_counter() - began
    return {
        "loss": g.reshape(result.history["loss"]),
        "seconds_per_member_epoch": seconds / (c["epochs"] * g.size),
    }


def epochs_to(curve: np.ndarray, target: float) -> float:
    """The first epoch (1-based) whose training loss is <= target; NaN if none."""
    reached = np.flatnonzero(np.nan_to_num(curve, nan=np.inf) <= target)
    return float(reached[0] + 1) if reached.size else float("nan")


def summarize(method: str, run: dict, c: dict, cfg: dict) -> dict:
    final = np.nanmean(run["loss"][:, :, -1], axis=1)
    best = int(np.nanargmin(np.where(np.isfinite(final), final, np.inf)))
    curves = run["loss"][best]
    epochs = [epochs_to(curve, c["target"]) for curve in curves]
    per_epoch = run["seconds_per_member_epoch"]
    return {
        "method": method,
        "best_lr": float(cfg["lrs"][method][best]),
        "final_loss_by_lr": final.tolist(),
        "final_loss": float(np.mean(curves[:, -1])),
        "epochs_to_target": epochs,
        "median_epochs": float(np.median(epochs)) if not np.isnan(epochs).any() else float("nan"),
        "median_seconds": float(np.median(epochs)) * per_epoch,
        "seconds_per_member_epoch": per_epoch,
        "curves": curves,
    }


def plot(results: dict, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.6 * len(results)), squeeze=False)
    for row, (name, entry) in zip(axes, results.items()):
        for s in entry["methods"]:
            mean = np.mean(s["curves"], axis=0)
            epochs = np.arange(1, len(mean) + 1)
            label = f"{s['method']} (lr {s['best_lr']:g})"
            row[0].plot(epochs, mean, label=label)
            row[1].plot(epochs * s["seconds_per_member_epoch"], mean, label=label)
        for ax, xlabel in zip(row, ("epoch", "seconds (one member's share)")):
            ax.axhline(entry["target"], color="gray", lw=0.8, ls="--")
            ax.set(xlabel=xlabel, ylabel="training loss", title=name, yscale="log")
            ax.legend(fontsize=8)
    save_figure(fig, out, "curves.png")


def main(argv=None) -> dict:
    args = parse_args(__doc__, "kfac", argv)
    cfg = CONFIG | QUICK if args.quick else CONFIG
    results, rows = {}, []
    for name, c in cfg["problems"].items():
        net, x, y = problem(name, c, args.seed)
        summaries = []
        for method in OPTIMIZERS:
            s = summarize(method, train(method, net, x, y, c, cfg, args.seed), c, cfg)
            summaries.append(s)
            rows.append([name, method, f"{s['best_lr']:g}", s["final_loss"], s["median_epochs"],
                         s["median_seconds"], s["seconds_per_member_epoch"] * 1e3])  # fmt: skip
        sgd = summaries[0]["seconds_per_member_epoch"]
        for s in summaries:
            s["cost_vs_sgd"] = s["seconds_per_member_epoch"] / sgd
        results[name] = {"target": c["target"], "sizes": net.sizes, "methods": summaries}
    headers = ["problem", "method", "lr", "final loss", "epochs to target", "s to target",
               "ms / member-epoch"]  # fmt: skip
    print(table(headers, rows))
    config = {k: v for k, v in cfg.items()} | {"quick": args.quick, "seed": args.seed}
    save_json(args.out, {"config": config, "results": results})
    plot(results, args.out)
    return results


if __name__ == "__main__":
    main()
