"""Edge of stability: under full-batch gradient descent the sharpness rises to 2/eta and stays.

    python experiments/edge_of_stability.py [--out DIR] [--quick] [--seed S]

Cohen et al. (ICLR 2021): under full-batch gradient descent with step size eta, the sharpness (the
largest eigenvalue of the training loss' Hessian) rises ("progressive sharpening") until it reaches
2/eta, the largest value at which gradient descent on a quadratic is stable, and then hovers just
above it while the loss keeps falling, non-monotonically. Here: document 003's problem (400
training examples, 5 standardized features, 3 classes; one-hot targets, 1/2 sum of squares,
identity output, mean over examples), networks 5-64-64-3 with tanh (LeCun-normal init) and ReLU
(Glorot-normal init) units, three step sizes, the same initial parameters for each (drawn from
``--seed``, default 0; the Lanczos start vectors from ``seed + 1`` to ``seed + 3``). The
sharpness is jmlp.sharpness (Lanczos on the hand-written Hessian-vector product) every few steps;
each network's three runs are one vmapped, jitted scan. A last check compares the sharpness at
the final parameters with 20 Lanczos steps against 100.
Writes results.json and sharpness.png.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from common import parse_args, save_figure, save_json, table

import jmlp

CONFIG = {
    "data": "doc003",
    "hidden": (64, 64),
    "nets": {"tanh": "lecun_normal", "relu": "glorot_normal"},  # activation: weight init
    "etas": (0.1, 0.14, 0.2),
    "steps": 6000,
    "every": 30,  # steps between sharpness measurements
    "iters": 20,  # Lanczos steps per measurement
    "check_iters": 100,
    "reached": 0.95,  # the plateau starts where the sharpness first reaches this x 2/eta
    "settle": 10,  # measurements skipped after that before the plateau statistics
}
QUICK = {"steps": 60, "every": 20, "iters": 5, "check_iters": 10, "settle": 0}


def problem(cfg):
    data = jmlp.data.load(cfg["data"], standardize=True)
    x = jnp.asarray(data.x_train)
    return x, jax.nn.one_hot(data.y_train, data.n_classes, dtype=x.dtype), data.n_classes


def make_run(net, x, t, cfg):
    """``run(params, eta) -> (losses (steps,), sharpness (steps // every,))``: full-batch
    gradient descent ``p <- p - eta dL/dp`` (the hand-written gradient), the sharpness measured
    after every ``every`` steps."""

    def descend(p, eta):
        value, grads = jmlp.backprop(net, p, x, t)
        return jax.tree.map(lambda a, g: a - eta * g, p, grads), value

    def segment(p, i, eta):
        p, losses = jax.lax.scan(lambda q, _: descend(q, eta), p, None, length=cfg["every"])
        key = jax.random.fold_in(jax.random.key(cfg["seed"] + 1), i)
        return p, (losses, jmlp.sharpness(net, p, x, t, iters=cfg["iters"], key=key))

    def run(params, eta):
        n = cfg["steps"] // cfg["every"]
        p, (losses, lam) = jax.lax.scan(lambda q, i: segment(q, i, eta), params, jnp.arange(n))
        return p, losses.reshape(-1), lam

    return jax.jit(jax.vmap(run, in_axes=(None, 0)))


def plateau(lam, eta: float, cfg) -> dict:
    """Where the sharpness first reaches ``reached x 2/eta``, and its median and 10-90% range
    after that (``settle`` measurements later)."""
    target = 2 / eta
    hits = np.flatnonzero(lam >= cfg["reached"] * target)
    if hits.size == 0:
        return {"reached_step": None, "median": None, "p10": None, "p90": None, "ratio": None}
    after = lam[hits[0] + cfg["settle"] :]
    after = after if after.size else lam[hits[0] :]
    median = float(np.median(after))
    return {
        "reached_step": int((hits[0] + 1) * cfg["every"]),
        "median": median,
        "p10": float(np.percentile(after, 10)),
        "p90": float(np.percentile(after, 90)),
        "ratio": median * eta / 2,
    }


def study(activation: str, init: str, x, t, n_classes: int, cfg) -> list[dict]:
    net = jmlp.MLP((x.shape[1], *cfg["hidden"], n_classes), activation, "identity", "half_sse")
    params = jmlp.init_params(jax.random.key(cfg["seed"]), net.sizes, weight_init=init)
    start = time.perf_counter()
    start_key = jax.random.key(cfg["seed"] + 2)
    lam0 = float(jmlp.sharpness(net, params, x, t, iters=cfg["check_iters"], key=start_key))
    final, losses, lams = make_run(net, x, t, cfg)(params, jnp.asarray(cfg["etas"]))
    losses, lams = np.asarray(losses), np.asarray(lams)
    rows = []
    for m, eta in enumerate(cfg["etas"]):
        p = jax.tree.map(lambda a, m=m: a[m], final)
        key = jax.random.key(cfg["seed"] + 3)
        short = float(jmlp.sharpness(net, p, x, t, iters=cfg["iters"], key=key))
        long = float(jmlp.sharpness(net, p, x, t, iters=cfg["check_iters"], key=key))
        rows.append(
            {
                "net": activation,
                "eta": eta,
                "two_over_eta": 2 / eta,
                "initial_sharpness": lam0,
                **plateau(lams[m], eta, cfg),
                "loss_first": float(losses[m, 0]),
                "loss_last": float(losses[m, -1]),
                "loss_rises": float(np.mean(np.diff(losses[m]) > 0)),
                "lanczos_rel_diff": abs(short - long) / abs(long),
                "losses": losses[m],
                "sharpness": lams[m],
            }
        )
    print(f"{activation}: {time.perf_counter() - start:.1f} s (three runs, compilation included)")
    return rows


def plot(rows, cfg, out: str) -> None:
    import matplotlib.pyplot as plt

    nets = list(cfg["nets"])
    fig, axes = plt.subplots(2, len(nets), figsize=(5.5 * len(nets), 7), sharex=True)
    steps = np.arange(1, cfg["steps"] + 1)
    marks = np.arange(1, cfg["steps"] // cfg["every"] + 1) * cfg["every"]
    for col, name in enumerate(nets):
        top, bottom = axes[0, col], axes[1, col]
        for r, color in zip([r for r in rows if r["net"] == name], ("C0", "C1", "C2")):
            label = f"eta = {r['eta']:g}"
            top.plot(marks, r["sharpness"], color=color, lw=1.2, label=label)
            top.axhline(r["two_over_eta"], color=color, ls="--", lw=0.9)
            bottom.semilogy(steps, r["losses"], color=color, lw=0.8, label=label)
        top.set(title=f"{name} 5-64-64-3: sharpness (dashed: 2/eta)", ylabel="largest eigenvalue")
        bottom.set(xlabel="gradient descent step", ylabel="training loss")
        top.legend(fontsize=8)
        bottom.legend(fontsize=8)
    save_figure(fig, out, "sharpness.png")


def main(argv=None) -> dict:
    args = parse_args(__doc__, "edge_of_stability", argv)
    cfg = CONFIG | (QUICK if args.quick else {}) | {"seed": args.seed}
    x, t, n_classes = problem(cfg)
    rows = [r for act, init in cfg["nets"].items() for r in study(act, init, x, t, n_classes, cfg)]

    def cell(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    print(
        f"{cfg['data']}: {x.shape[0]} training examples, full-batch gradient descent, "
        f"{cfg['steps']} steps, sharpness every {cfg['every']} ({cfg['iters']} Lanczos steps)"
    )
    headers = [
        "net",
        "eta",
        "2/eta",
        "sharpness at 0",
        "reached at step",
        "plateau median",
        "10-90%",
        "plateau x eta/2",
        "loss first",
        "loss last",
        "steps loss rose",
    ]
    body = [
        [
            r["net"],
            f"{r['eta']:g}",
            r["two_over_eta"],
            r["initial_sharpness"],
            cell(r["reached_step"], "{}"),
            cell(r["median"]),
            "-" if r["p10"] is None else f"{r['p10']:.2f}-{r['p90']:.2f}",
            cell(r["ratio"], "{:.3f}"),
            r["loss_first"],
            r["loss_last"],
            f"{100 * r['loss_rises']:.0f}%",
        ]
        for r in rows
    ]
    print(table(headers, body))
    worst = max(r["lanczos_rel_diff"] for r in rows)
    print(
        f"sharpness at the final parameters, {cfg['iters']} vs {cfg['check_iters']} Lanczos "
        f"steps: largest relative difference {worst:.1e}"
    )
    plot(rows, cfg, args.out)
    results = {"config": cfg, "n_train": int(x.shape[0]), "runs": rows, "lanczos_rel_diff": worst}
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
