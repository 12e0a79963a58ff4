"""Cost of BackPACK's quantities in jmlp: each one's time over one gradient's (jmlp.backprop),
measured in the same run, beside the targets they are held to and what BackPACK reports.

Every function is jitted and compiled first; then the functions are timed round-robin (one call
of each per round, so a slow spell of a shared machine falls on all of them alike) and each
ratio is the median time over the gradient's median time. Random inputs: timing needs no data.
"""

import time
from functools import partial

import jax
import numpy as np
from common import parse_args, save_figure, save_json, table

import jmlp

CONFIG = {
    "sizes": (784, 256, 128, 10),
    "activation": "tanh",  # sigma'' != 0: diag_hessian carries its residual rows
    "batch": 128,
    "rounds": 30,
}
QUICK = {"sizes": (16, 8, 4), "activation": "tanh", "batch": 8, "rounds": 3}
# (name, call, target ratio, kind of quantity): the targets set for an MLP with n_out outputs
QUANTITIES = [
    ("sum_grad_squared", lambda n, p, x, y, k: jmlp.sum_grad_squared(n, p, x, y), "1.5", "first"),
    ("grad_variance", lambda n, p, x, y, k: jmlp.grad_variance(n, p, x, y), "1.5", "first"),
    ("diag_ggn", lambda n, p, x, y, k: jmlp.diag_ggn(n, p, x, y), "n_out + 1", "exact"),
    (
        "diag_ggn per_example",
        lambda n, p, x, y, k: jmlp.diag_ggn(n, p, x, y, per_example=True),
        "-",
        "exact",
    ),
    (
        "kfac_factors kflr",
        lambda n, p, x, y, k: jmlp.kfac_factors(n, p, x, y),
        "n_out + 1",
        "exact",
    ),
    ("diag_ggn_mc", lambda n, p, x, y, k: jmlp.diag_ggn_mc(n, p, x, y, key=k), "2", "mc"),
    (
        "kfac_factors kfac",
        lambda n, p, x, y, k: jmlp.kfac_factors(n, p, x, y, kind="kfac", key=k),
        "2",
        "mc",
    ),
    ("diag_hessian", lambda n, p, x, y, k: jmlp.diag_hessian(n, p, x, y), "-", "exact"),
]
# BackPACK (Dangel, Kunstner & Hennig, ICLR 2020) reports its overheads in Section 3, Fig. 6:
# bar charts for the 3C3D (CIFAR-10) and All-CNN-C (CIFAR-100) convolutional nets on a GPU.
# Their values could not be retrieved for this table (the text gives none), so none is quoted.
BACKPACK = "Fig. 6: not found"


def problem(cfg, seed):
    net = jmlp.MLP(cfg["sizes"], cfg["activation"], "softmax", "cross_entropy")
    k = jax.random.split(jax.random.key(seed), 4)
    params = jmlp.init_params(k[0], net.sizes)
    x = jax.random.normal(k[1], (cfg["batch"], net.sizes[0]))
    y = jax.random.randint(k[2], (cfg["batch"],), 0, net.sizes[-1])
    return net, params, x, y, k[3]


def timed(fn, args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def measure(cfg, seed):
    """Median seconds per call of the gradient and of each quantity, timed round-robin."""
    net, params, x, y, key = problem(cfg, seed)
    calls = {"gradient": jax.jit(partial(jmlp.backprop, net))}
    for name, call, _, _ in QUANTITIES:
        calls[name] = jax.jit(partial(lambda c, *a: c(net, *a), call))
    args = {name: (params, x, y) if name == "gradient" else (params, x, y, key) for name in calls}
    for name, fn in calls.items():
        timed(fn, args[name])  # compile
    times = {name: [] for name in calls}
    for _ in range(cfg["rounds"]):
        for name, fn in calls.items():
            times[name].append(timed(fn, args[name]))
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None):
    args = parse_args(__doc__, "quantities_benchmark", argv)
    cfg = QUICK if args.quick else CONFIG
    medians = measure(cfg, args.seed)
    gradient = medians["gradient"]
    rows, results = [], {"config": cfg, "device": jax.devices()[0].device_kind, "quantities": {}}
    for name, _, target, _ in QUANTITIES:
        ratio = medians[name] / gradient
        target = str(cfg["sizes"][-1] + 1) if target == "n_out + 1" else target
        rows.append((name, f"{1e3 * medians[name]:.3f}", f"{ratio:.2f}", target, BACKPACK))
        results["quantities"][name] = {"seconds": medians[name], "ratio": ratio, "target": target}
    results["gradient_seconds"] = gradient
    print(
        f"{cfg['sizes']}, {cfg['activation']}, softmax + cross-entropy, batch {cfg['batch']}, "
        f"{jax.devices()[0].device_kind}; one gradient: {1e3 * gradient:.3f} ms (median)"
    )
    print(table(["quantity", "ms", "x gradient", "target", "BackPACK"], rows))
    save_json(args.out, results)
    figure(results, args.out)
    return results


def figure(results, out):
    import matplotlib.pyplot as plt

    names = list(results["quantities"])
    ratios = [results["quantities"][n]["ratio"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(names, ratios, color="tab:blue")
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel("time / one gradient (jmlp.backprop)")
    ax.invert_yaxis()
    save_figure(fig, out, "quantities_overhead.png")


if __name__ == "__main__":
    main()
