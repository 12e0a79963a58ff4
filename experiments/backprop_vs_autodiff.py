"""The hand-written backward pass against jax.value_and_grad over many random architectures.

    python experiments/backprop_vs_autodiff.py [--per-pair 2] [--out DIR] [--quick]

Every (output activation, loss) pair whose loss is defined for that output (the regression losses
and hinge for any output; binary and categorical cross-entropy for sigmoid and softmax) gets
--per-pair random networks: 1 to 4 hidden layers, widths 1 to 64, each hidden layer's activation
drawn from all of jmlp's, Glorot-normal weights, N(0, 1) inputs, a batch of 64. For each:
- agreement: max over tensors of max|hand - autodiff| / max|autodiff|, in float64 and float32,
  and the float32 error of each method against the float64 autodiff gradient;
- time: the jitted hand-written gradient call over the jitted jax.value_and_grad call (both
  compiled first; float32; median over repeats of the mean of a burst of calls), also on a few
  large fixed networks where compute, not dispatch, dominates.
Writes results.json, agreement.png and time_ratio.png.
"""

import jax

jax.config.update("jax_enable_x64", True)

import time

import jax.numpy as jnp
import numpy as np
from common import parse_args, save_figure, save_json, summary, table

import jmlp

OUTPUT_ONLY = ("softmax", "exp")
HIDDEN = [a for a in jmlp.ACTIVATIONS if a not in OUTPUT_ONLY]
REGRESSION = ("mse", "half_sse", "mae", "huber", "hinge")
# the ten outputs of the recorded run (experiments/README.md); exp and poisson came later
PAIRS = [(o, loss) for o in jmlp.ACTIVATIONS if o != "exp" for loss in REGRESSION] + [
    (o, loss) for o in ("sigmoid", "softmax") for loss in ("binary_cross_entropy", "cross_entropy")
]
CONFIG = {
    "per_pair": 2,
    "depths": (1, 4),
    "widths": (1, 64),
    "batch": 64,
    "repeats": 7,
    "burst": 20,
    "large": [  # (sizes, hidden activation, output, loss, batch)
        ((784, 512, 512, 10), "relu", "softmax", "cross_entropy", 256),
        ((784, 1024, 1024, 1024, 10), "gelu", "softmax", "cross_entropy", 512),
        ((100, 256, 256, 256, 256, 1), "tanh", "identity", "mse", 1024),
    ],
}
QUICK = {"per_pair": 1, "pairs": 1, "repeats": 2, "burst": 2, "large": []}
BACKPROP = jax.jit(jmlp.backprop, static_argnums=0)
AUTODIFF = jax.jit(jmlp.autodiff, static_argnums=0)


def targets(net: jmlp.MLP, key, batch: int, dtype):
    """Targets in the loss's domain: labels, {0, 1}, {-1, +1} or N(0, 1) rows."""
    n_out = net.sizes[-1]
    if net.loss == "cross_entropy":
        return jax.random.randint(key, (batch,), 0, n_out)
    if net.loss == "binary_cross_entropy":
        return jax.random.bernoulli(key, 0.5, (batch, n_out)).astype(dtype)
    if net.loss == "hinge":
        return jnp.where(jax.random.bernoulli(key, 0.5, (batch, n_out)), 1.0, -1.0).astype(dtype)
    return jax.random.normal(key, (batch, n_out), dtype)


def random_net(rng, output: str, loss: str, c: dict) -> jmlp.MLP:
    depth = int(rng.integers(c["depths"][0], c["depths"][1] + 1))
    low = 2 if output == "softmax" else c["widths"][0]  # one softmax unit is constant
    sizes = [int(rng.integers(c["widths"][0], c["widths"][1] + 1)) for _ in range(depth + 1)]
    sizes.append(int(rng.integers(low, c["widths"][1] + 1)))
    acts = tuple(str(a) for a in rng.choice(HIDDEN, depth))
    return jmlp.MLP(tuple(sizes), acts, output, loss)


def rel_error(a, b) -> float:
    """max over tensors of max|a - b| / max|b| (absolute where b is all zero)."""
    errs = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = np.max(np.abs(y))
        errs.append(np.max(np.abs(x - y)) / (scale if scale > 0 else 1.0))
    return float(max(errs))


def seconds_per_call(fns, args, repeats: int, burst: int) -> list[float]:
    """Median over ``repeats`` of the mean time of ``burst`` calls, for each of ``fns``; the
    functions take turns within every repeat, so a slow spell of a shared machine hits both."""
    for fn in fns:
        jax.block_until_ready(fn(*args))  # compiled and warm
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            for _ in range(burst):
                out = fn(*args)
            jax.block_until_ready(out)
            record.append((time.perf_counter() - start) / burst)
    return [float(np.median(t)) for t in times]


def measure(net: jmlp.MLP, key, batch: int, c: dict, check: bool = True) -> dict:
    k_p, k_x, k_y = jax.random.split(key, 3)
    p64 = jmlp.init_params(k_p, net.sizes, weight_init="glorot_normal", dtype=jnp.float64)
    x64 = jax.random.normal(k_x, (batch, net.sizes[0]), jnp.float64)
    y64 = targets(net, k_y, batch, jnp.float64)
    p32, x32, y32 = jax.tree.map(
        lambda a: a.astype(jnp.float32) if a.dtype == jnp.float64 else a, (p64, x64, y64)
    )
    row = {
        "sizes": net.sizes,
        "activations": net.hidden_activations,
        "output": net.output_activation,
        "loss": net.loss,
        "n_params": sum(a.size for a in jax.tree.leaves(p64)),
    }
    if check:
        auto64 = AUTODIFF(net, p64, x64, y64)[1]
        hand32, auto32 = BACKPROP(net, p32, x32, y32)[1], AUTODIFF(net, p32, x32, y32)[1]
        row |= {
            "rel_f64": rel_error(BACKPROP(net, p64, x64, y64)[1], auto64),
            "rel_f32": rel_error(hand32, auto32),
            "hand_f32_vs_f64": rel_error(hand32, auto64),
            "auto_f32_vs_f64": rel_error(auto32, auto64),
        }
    args = (net, p32, x32, y32)
    row["hand_s"], row["auto_s"] = seconds_per_call(
        (BACKPROP, AUTODIFF), args, c["repeats"], c["burst"]
    )
    row["ratio"] = row["hand_s"] / row["auto_s"]
    return row


def grouped(rows: list[dict], key) -> list[list]:
    out = []
    for value in sorted({key(r) for r in rows}, key=str):
        group = [r for r in rows if key(r) == value]
        out.append(
            [
                str(value),
                str(len(group)),
                max(r["rel_f64"] for r in group),
                max(r["rel_f32"] for r in group),
                max(r["hand_f32_vs_f64"] for r in group),
                max(r["auto_f32_vs_f64"] for r in group),
                float(np.median([r["ratio"] for r in group])),
            ]
        )
    return out


def plot(rows: list[dict], large: list[dict], out: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, color in (("rel_f64", "C0"), ("rel_f32", "C1")):
        values = np.maximum([r[name] for r in rows], 1e-18)
        ax.hist(np.log10(values), bins=30, alpha=0.6, color=color, label=name)
    ax.set(
        xlabel="log10 max relative error, hand-written vs autodiff",
        ylabel="networks",
        title=f"Gradient agreement over {len(rows)} random networks (0 shown at -18)",
    )
    ax.legend()
    save_figure(fig, out, "agreement.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(
        [r["n_params"] for r in rows],
        [r["ratio"] for r in rows],
        s=10,
        label="random networks (batch 64)",
    )
    ax.scatter(
        [r["n_params"] for r in large],
        [r["ratio"] for r in large],
        s=40,
        marker="s",
        label="large networks",
    )
    ax.axhline(1, color="gray", ls="--")
    ax.set(
        xscale="log",
        xlabel="parameters",
        ylabel="time hand-written / autodiff",
        title="Jitted gradient call, float32 (median of repeats)",
    )
    ax.legend()
    save_figure(fig, out, "time_ratio.png")


def main(argv=None) -> dict:
    extra = [
        (
            ("--per-pair",),
            {
                "type": int,
                "default": CONFIG["per_pair"],
                "help": "random networks per (output, loss) pair",
            },
        )
    ]
    args = parse_args(__doc__, "backprop_vs_autodiff", argv, extra)
    c = CONFIG | {"per_pair": args.per_pair} | (QUICK if args.quick else {})
    rng, key = np.random.default_rng(args.seed), jax.random.key(args.seed)
    pairs = PAIRS[:: len(PAIRS) // c["pairs"]][: c["pairs"]] if args.quick else PAIRS
    rows = []
    for i, (output, loss) in enumerate(p for p in pairs for _ in range(c["per_pair"])):
        net = random_net(rng, output, loss, c)
        rows.append(measure(net, jax.random.fold_in(key, i), c["batch"], c))
    large = [
        measure(jmlp.MLP(s, a, o, loss), key, b, c, check=False) for s, a, o, loss, b in c["large"]
    ]
    head = [
        "",
        "nets",
        "f64 hand/auto",
        "f32 hand/auto",
        "f32 hand/f64",
        "f32 auto/f64",
        "time ratio",
    ]
    print(f"{len(rows)} random networks, max relative error (time ratio: median hand / autodiff)")
    print(table(["loss"] + head[1:], grouped(rows, lambda r: r["loss"])))
    print(table(["output"] + head[1:], grouped(rows, lambda r: r["output"])))
    print(table(["hidden layers"] + head[1:], grouped(rows, lambda r: len(r["sizes"]) - 2)))
    print(table(["all"] + head[1:], grouped(rows, lambda r: "all")))
    if large:
        print(
            table(
                ["large network", "batch", "hand ms", "autodiff ms", "ratio"],
                [
                    [
                        "-".join(map(str, r["sizes"])) + f" {r['activations'][0]}",
                        str(b),
                        r["hand_s"] * 1e3,
                        r["auto_s"] * 1e3,
                        r["ratio"],
                    ]
                    for r, (*_, b) in zip(large, c["large"])
                ],
            )
        )
    plot(rows, large, args.out)
    results = {
        "config": c,
        "networks": rows,
        "large": large,
        "max_rel_f64": max(r["rel_f64"] for r in rows),
        "max_rel_f32": max(r["rel_f32"] for r in rows),
        "time_ratio": summary([r["ratio"] for r in rows]),
    }
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
