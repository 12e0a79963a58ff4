"""A sweep as a researcher runs one: hidden width x learning rate x seed, three ways.

    python experiments/sweep.py [--out DIR] [--quick] [--seed S]

The problem: make_classification(6000 examples, 40 features (24 informative, 8 redundant),
10 classes), split 4000 / 1000 / 1000 (train / validation / test) and standardized. Every
member: an MLP 40-w-10 (ReLU, softmax cross-entropy, He init), Adam at its learning rate,
mini-batches of 128 reshuffled every epoch by its seed. Per width, 8 learning rates x 5 seeds
= 40 members; each member's test accuracy is taken at its best validation epoch.

1. jmlp: one ``fit_many`` per width, members from ``jmlp.grid`` (the ten lines below).
2. Plain JAX + optax: the same training written by hand, the whole run of every member in one
   jitted ``vmap`` of a scan over epochs (what a JAX user writes for speed).
3. PyTorch (if installed): the usual loop, one model after another.
All three include their compilation (JAX) and data preparation. Writes results.json and
sweep.png (test accuracy at the best validation epoch against the learning rate, per width).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import parse_args, save_figure, save_json, table
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

import jmlp

CONFIG = {
    "widths": (64, 256, 512),
    "lrs": tuple(np.logspace(-4, -1.5, 8)),
    "seeds": 5,
    "epochs": 20,
    "batch": 128,
    "examples": 6000,
}
QUICK = {"widths": (16,), "lrs": (1e-3, 1e-2), "seeds": 2, "epochs": 2, "examples": 600}


def problem(c: dict, seed: int):
    x, y = make_classification(
        n_samples=c["examples"], n_features=40, n_informative=24, n_redundant=8, n_classes=10,
        n_clusters_per_class=1, random_state=seed,
    )  # fmt: skip
    x, x_rest, y, y_rest = train_test_split(x, y, test_size=1 / 3, random_state=seed)
    xv, xt, yv, yt = train_test_split(x_rest, y_rest, test_size=0.5, random_state=seed)
    x, y = x[: len(x) // c["batch"] * c["batch"]], y[: len(y) // c["batch"] * c["batch"]]
    mean, std = x.mean(0), x.std(0)  # (whole batches: the plain loop takes no partial one)
    return [(((a - mean) / std).astype(np.float32), b) for a, b in ((x, y), (xv, yv), (xt, yt))]


def with_jmlp(c: dict, data, seed: int) -> dict:
    """Test accuracy at the best validation epoch, (lrs, seeds) per width."""
    (x, y), val, test = data
    g = jmlp.grid(lr=c["lrs"], seed=range(c["seeds"]))
    out = {}
    for w in c["widths"]:
        net = jmlp.MLP((40, w, 10), "relu", "softmax", "cross_entropy")
        params = jmlp.init_many(g.keys(jax.random.key(seed), "seed"), net.sizes)
        result = jmlp.fit_many(
            net, lambda lr: optax.adam(lr), x, y, params=params, hparams=g.values("lr"),
            key=g.keys(jax.random.key(seed + 1), "seed"), epochs=c["epochs"],
            batch_size=c["batch"], validation=val, evaluate={"test": test},
        )  # fmt: skip
        out[w] = g.reshape(jmlp.at_best(result.history, "test_accuracy"))
    return out


def plain_jax_run(width: int, c: dict, x, t, val, test):
    """Every member's whole run in one jitted vmap: ``(keys, lrs) -> (val_loss, test_acc)``
    per member and epoch."""
    n, batch = x.shape[0], c["batch"]
    steps = n // batch

    def logits(p, xs):
        h = jax.nn.relu(xs @ p[0]["W"] + p[0]["b"][None])
        return h @ p[1]["W"] + p[1]["b"][None]

    def loss(p, xb, tb):
        return -jnp.mean(jnp.sum(tb * jax.nn.log_softmax(logits(p, xb)), -1))

    def accuracy(p, xs, ys):
        return jnp.mean(jnp.argmax(logits(p, xs), -1) == ys)

    def one(init_key, order_key, lr):
        k1, k2 = jax.random.split(init_key)
        params = [
            {"W": jax.random.normal(k1, (40, width)) * jnp.sqrt(2 / 40), "b": jnp.zeros(width)},
            {"W": jax.random.normal(k2, (width, 10)) * jnp.sqrt(2 / width), "b": jnp.zeros(10)},
        ]
        opt = optax.adam(lr)

        def epoch(carry, e):
            order = jax.random.permutation(jax.random.fold_in(order_key, e), n)

            def step(carry, idx):
                p, s = carry
                g = jax.grad(loss)(p, x[idx], t[idx])
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            carry, _ = jax.lax.scan(step, carry, order[: steps * batch].reshape(steps, batch))
            tv = jax.nn.one_hot(val[1], 10)
            return carry, (loss(carry[0], val[0], tv), accuracy(carry[0], *test))

        _, curves = jax.lax.scan(epoch, (params, opt.init(params)), jnp.arange(c["epochs"]))
        return curves

    return jax.jit(jax.vmap(one))


def with_plain_jax(c: dict, data, seed: int) -> dict:
    (x, y), val, test = data
    t = jax.nn.one_hot(y, 10)
    lrs = np.repeat(np.asarray(c["lrs"], np.float32), c["seeds"])
    seeds = np.tile(np.arange(c["seeds"]), len(c["lrs"]))
    init = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(seed), s))(seeds)
    order = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(seed + 1), s))(seeds)
    out = {}
    for w in c["widths"]:
        val_loss, test_acc = plain_jax_run(w, c, jnp.asarray(x), t, val, test)(init, order, lrs)
        best = np.argmin(np.asarray(val_loss), axis=1)
        at_best = np.asarray(test_acc)[np.arange(len(best)), best]
        out[w] = at_best.reshape(len(c["lrs"]), c["seeds"])
    return out


def with_torch(c: dict, data, seed: int) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    (x, y), (xv, yv), (xt, yt) = [(torch.tensor(a), torch.tensor(b)) for a, b in data]
    out = {}
    for w in c["widths"]:
        table_ = np.zeros((len(c["lrs"]), c["seeds"]))
        for i, lr in enumerate(c["lrs"]):
            for s in range(c["seeds"]):
                torch.manual_seed(seed * 1000 + s)
                model = torch.nn.Sequential(
                    torch.nn.Linear(40, w), torch.nn.ReLU(), torch.nn.Linear(w, 10)
                )
                opt = torch.optim.Adam(model.parameters(), lr=float(lr))
                best, at_best = np.inf, 0.0
                for _ in range(c["epochs"]):
                    for idx in torch.randperm(len(x)).split(c["batch"]):
                        opt.zero_grad()
                        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                        opt.step()
                    with torch.no_grad():
                        val_loss = float(torch.nn.functional.cross_entropy(model(xv), yv))
                        if val_loss < best:
                            best = val_loss
                            at_best = float((model(xt).argmax(1) == yt).float().mean())
                table_[i, s] = at_best
        out[w] = table_
    return out


def summarize_runs(c: dict, runs: dict) -> list[dict]:
    rows = []
    for name, (seconds, acc) in runs.items():
        if acc is None:
            continue
        for w in c["widths"]:
            mean = acc[w].mean(axis=1)  # over seeds, per lr
            best = int(np.argmax(mean))
            rows.append({"framework": name, "width": w, "seconds": seconds,
                         "best_lr": float(c["lrs"][best]), "test_accuracy": float(mean[best]),
                         "std_over_seeds": float(acc[w][best].std())})  # fmt: skip
    return rows


def plot(c: dict, runs: dict, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, (name, (_, acc)) in enumerate(runs.items()):
        if acc is None:
            continue
        for j, w in enumerate(c["widths"]):
            style = ("-", "--", ":")[k % 3]
            ax.plot(c["lrs"], acc[w].mean(axis=1), style, color=f"C{j}",
                    label=f"{name}, width {w}" if k == 0 or j == 0 else None)  # fmt: skip
    ax.set(xscale="log", xlabel="learning rate", ylabel="test accuracy at best validation epoch")
    ax.legend(fontsize=7)
    save_figure(fig, out, "sweep.png")


def main(argv=None) -> dict:
    args = parse_args(__doc__.split("\n")[0], "sweep", argv)
    c = CONFIG | (QUICK if args.quick else {})
    data = problem(c, args.seed)
    runs = {}
    for name, method in (("jmlp", with_jmlp), ("plain JAX + optax", with_plain_jax),
                         ("PyTorch", with_torch)):  # fmt: skip
        start = time.perf_counter()
        accuracy = method(c, data, args.seed)
        runs[name] = (time.perf_counter() - start, accuracy)
        if accuracy is None:
            print(f"{name}: not installed, skipped")
    rows = summarize_runs(c, runs)
    members = len(c["lrs"]) * c["seeds"] * len(c["widths"])
    print(f"{members} members ({len(c['widths'])} widths x {len(c['lrs'])} lrs x {c['seeds']} seeds), "
          f"{c['epochs']} epochs; test accuracy at the best validation epoch, best lr (mean over seeds)")  # fmt: skip
    print(table(["framework", "width", "seconds (all widths)", "best lr", "test accuracy", "std"],
                [[r["framework"], str(r["width"]), r["seconds"], r["best_lr"], r["test_accuracy"],
                  r["std_over_seeds"]] for r in rows]))  # fmt: skip
    plot(c, runs, args.out)
    results = {"config": c, "rows": rows,
               "seconds": {k: s for k, (s, a) in runs.items() if a is not None},
               "accuracy": {k: {str(w): a[w] for w in a} for k, (_, a) in runs.items() if a is not None}}  # fmt: skip
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
