"""Throughput of jmlp.fit (one compiled lax.scan per epoch) against the obvious training loop
(a Python loop over mini-batches, each step one jitted jax.value_and_grad + optax update, host
shuffling and slicing), measured in the same run on the same data and optimizer.

    python experiments/bench_fit.py [--quick] [--out DIR]    (default out: runs/bench_fit)

Problems: document 003 (5-50-3 relu/softmax, 400 examples, batch 50, Adam) and a
784-512-512-10 relu MLP on 10k synthetic examples (batch 128, Adam), float32. Times exclude
compilation (one warm-up run each); each is the best of 5 interleaved runs. Prints a table
and writes results.json to --out.
"""

import time

import jax
import numpy as np
import optax
from common import parse_args, save_json, table

import jmlp
from jmlp.train import fit

CONFIG = {
    "doc003": {"sizes": (5, 50, 3), "n": 400, "batch": 50, "epochs": 200, "lr": 1e-4},
    "mnist_like": {
        "sizes": (784, 512, 512, 10),
        "n": 10_000,
        "batch": 128,
        "epochs": 3,
        "lr": 1e-3,
    },
}


def problem(sizes, n, seed=0):
    """Synthetic classification data: x ~ N(0, 1), labels from a random linear map."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, sizes[0])).astype(np.float32)
    labels = np.argmax(x @ rng.normal(size=(sizes[0], sizes[-1])), axis=1).astype(np.int32)
    return x, labels


def fit_runner(net, params, opt, x, y, batch, epochs, gradient):
    kw = {"batch_size": batch, "key": jax.random.key(0), "gradient": gradient}
    return lambda: fit(net, params, opt, x, y, epochs=epochs, **kw).params


def plain_loop_runner(net, params, opt, x, y, batch, epochs):
    """The obvious way: numpy shuffle, slice, one jitted step per mini-batch."""

    @jax.jit
    def step(params, state, xb, yb):
        value, grads = jax.value_and_grad(jmlp.loss, argnums=1)(net, params, xb, yb)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    def run():
        p, state, rng = params, opt.init(params), np.random.default_rng(0)
        for _ in range(epochs):
            perm, losses = rng.permutation(len(x)), []
            for i in range(0, len(x), batch):
                idx = perm[i : i + batch]
                p, state, value = step(p, state, x[idx], y[idx])
                losses.append(value)
            float(np.mean(jax.device_get(losses)))  # the epoch's loss on the host
        return p

    return run


def best_times(runners: dict, repeats: int) -> dict:
    """Least wall time of each runner over ``repeats`` interleaved rounds, after one warm-up
    (compile) call each; interleaving spreads a shared machine's load over all methods."""
    for run in runners.values():
        jax.block_until_ready(run())
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def main():
    args = parse_args(__doc__.split("\n")[0], "bench_fit")
    rows = []
    for name, c in CONFIG.items():
        epochs, repeats = (2, 1) if args.quick else (c["epochs"], 5)
        net = jmlp.MLP(c["sizes"], "relu", "softmax", "cross_entropy")
        params = jmlp.init_params(jax.random.key(args.seed), c["sizes"], weight_init="lecun_normal")
        x, y = problem(c["sizes"], c["n"], args.seed)
        problem_args = (net, params, optax.adam(c["lr"]), x, y, c["batch"], epochs)
        runners = {
            "fit backprop": fit_runner(*problem_args, "backprop"),
            "fit autodiff": fit_runner(*problem_args, "autodiff"),
            "plain jax.grad loop": plain_loop_runner(*problem_args),
        }
        for method, seconds in best_times(runners, repeats).items():
            rate = {"epochs_per_s": epochs / seconds, "samples_per_s": epochs * c["n"] / seconds}
            rows.append({"problem": name, "method": method, "seconds": seconds, **rate})
    device = str(jax.devices()[0])
    print(f"device: {device}")
    cells = [[r["problem"], r["method"], r["epochs_per_s"], r["samples_per_s"]] for r in rows]
    print(table(["problem", "method", "epochs/s", "samples/s"], cells))
    config = {name: dict(c, epochs=2 if args.quick else c["epochs"]) for name, c in CONFIG.items()}
    save_json(args.out, {"config": config, "device": device, "rows": rows})


if __name__ == "__main__":
    main()
