"""Speed of jmlp against its targets (issue 5), measured in one run on this machine.

    python experiments/benchmark.py [--quick] [--out DIR] [--repeats 5]

1. step_ratio: one Adam step by the hand-written gradient over one by jax.value_and_grad, both
   inside the same jitted lax.scan epoch (784-512-512-10 batch 128; 5-50-3 batch 50). Target <= 1.
2. fit_rate: samples/s and GFLOP/s of jmlp.fit on 784-512-512-10 (batch 128), against the rate
   of the same matmuls alone (forward, delta and dW shapes, timed in a scan). Target >= 80%.
3. fit_vs_plain: jmlp.fit against the obvious loop (Python loop over mini-batches, one jitted
   jax.value_and_grad + optax step each, numpy shuffling). Target: fit not slower.
4. ensemble: fit_many with 1, 8, 64, 512 members of 5-50-3 (400 samples, batch 50, 100 epochs,
   Adam), cost per model over one jmlp.fit; also a plain jax.vmap of the training run and the
   block sizes. Target: 512 members at <= 1/16 of one model's cost each.
5. per_example: per-example gradients (hand-written, and their norms) and jax.vmap(jax.grad),
   each over one batch gradient, batch 128 on 784-512-512-10.
Times are the minimum over --repeats runs after a compiling run; the runs compared with each
other are interleaved (one of each per round), so that they see the same load. Prints tables;
writes results.json (with the device and jax version) to --out.
"""

import itertools
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import parse_args, save_json, table

import jmlp
from jmlp import fit_many, init_many
from jmlp.per_example import per_example_grad_norms, per_example_grads

CONFIG = {
    "big": {"sizes": (784, 512, 512, 10), "n": 4096, "batch": 128, "epochs": 2},
    "small": {"sizes": (5, 50, 3), "n": 400, "batch": 50, "epochs": 100},
    "members": (1, 8, 64, 512),
    "blocks": (64, 128, 256, 512),
    "per_example_batch": 128,
    "lr": 1e-3,
    "ratio_nets": ("big", "small"),
    "variants": True,  # fit_many with autodiff / N data orders
}
QUICK = {
    "big": {"sizes": (64, 32, 32, 10), "n": 512, "batch": 64, "epochs": 2},
    "small": {"sizes": (5, 50, 3), "n": 400, "batch": 50, "epochs": 5},
    "members": (1, 8),
    "blocks": (),
    "per_example_batch": 32,
    "lr": 1e-3,
    "ratio_nets": ("small",),
    "variants": False,
}


def best_times(fns: dict, repeats: int) -> dict:
    """Seconds of each ``fns[name]()`` (blocked until ready): the minimum over ``repeats`` runs
    after one (compiling) run each. The runs are interleaved (one of each per round), so that
    the times compared in a ratio see the same load on a shared machine."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def problem(sizes, n, seed=0):
    """x ~ N(0, 1) (float32), labels from a random linear map, He-normal params."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, sizes[0])).astype(np.float32)
    labels = np.argmax(x @ rng.normal(size=(sizes[0], sizes[-1])), axis=1).astype(np.int32)
    net = jmlp.MLP(sizes, "relu", "softmax", "cross_entropy")
    return net, jmlp.init_params(jax.random.key(seed), sizes), x, labels


def train_flops(sizes, batch: int) -> int:
    """Matmul FLOPs of one training step: forward z = h W, backward delta W^T (not for the
    input layer) and dW = h^T delta, 2 B n_in n_out each."""
    pairs = list(itertools.pairwise(sizes))
    return 2 * batch * (3 * sum(i * o for i, o in pairs) - sizes[0] * sizes[1])


def fit_params(*args, **kwargs):
    return jmlp.fit(*args, **kwargs).params


# ----------------------------------------------------------------------------- 1. step ratio


def scan_epoch(net, opt, gradient, x, t, batch):
    """A jitted epoch: lax.scan of Adam steps over fixed mini-batches (no shuffle)."""
    grad_fn = jmlp.backprop if gradient == "backprop" else jmlp.autodiff
    steps = x.shape[0] // batch
    xs, ts = (
        x[: steps * batch].reshape(steps, batch, -1),
        t[: steps * batch].reshape(steps, batch, -1),
    )

    @jax.jit
    def run(params, state):
        def step(carry, xt):
            p, s = carry
            _, g = grad_fn(net, p, *xt)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, state), (xs, ts))[0]

    return run, steps


def step_ratio(cfg, repeats):
    rows = []
    for name in cfg["ratio_nets"]:
        c = cfg[name]
        net, params, x, y = problem(c["sizes"], c["n"])
        t, opt = jax.nn.one_hot(y, c["sizes"][-1], dtype=jnp.float32), optax.adam(cfg["lr"])
        runs, state = {}, opt.init(params)
        for gradient in ("backprop", "autodiff"):
            run, steps = scan_epoch(net, opt, gradient, jnp.asarray(x), t, c["batch"])
            runs[gradient] = partial(run, params, state)
        times = {k: v / steps for k, v in best_times(runs, repeats).items()}
        ratio = times["backprop"] / times["autodiff"]
        rows.append(
            {"net": "-".join(map(str, c["sizes"])), "batch": c["batch"], **times, "ratio": ratio}
        )
    return rows


# ----------------------------------------------------------------------------- 2. fit rate


def matmul_rounds(sizes, batch, rounds: int):
    """A function running the step's matmuls alone (same shapes), ``rounds`` times in a jitted
    scan."""
    k = jax.random.split(jax.random.key(0), 3 * len(sizes))
    pairs = list(itertools.pairwise(sizes))
    hs = [jax.random.normal(k[i], (batch, i_), jnp.float32) for i, (i_, _) in enumerate(pairs)]
    ds = [jax.random.normal(k[-1 - i], (batch, o), jnp.float32) for i, (_, o) in enumerate(pairs)]
    ws = [jax.random.normal(k[len(sizes) + i], p, jnp.float32) for i, p in enumerate(pairs)]

    @jax.jit
    def run(hs, ds, ws):
        def body(c, _):
            total = c
            for layer, (h, d, w) in enumerate(zip(hs, ds, ws)):
                # c (zero) ties each round to the last (no hoisting); added to the batch-sized
                # operand, never to W, so the reference does as little besides matmuls as it can
                total = total + jnp.sum((h + c) @ w)  # forward
                total = total + jnp.sum(h.T @ (d + c))  # dW
                if layer:
                    total = total + jnp.sum((d + c) @ w.T)  # delta
            return total * 1e-30, None

        return jax.lax.scan(body, jnp.float32(0), None, length=rounds)[0]

    return partial(run, hs, ds, ws)


def fit_rate(cfg, repeats):
    c = cfg["big"]
    net, params, x, y = problem(c["sizes"], c["n"])
    kw = {"epochs": c["epochs"], "batch_size": c["batch"], "key": jax.random.key(1)}
    opt, steps = optax.adam(cfg["lr"]), c["epochs"] * -(-c["n"] // c["batch"])
    runs = {
        "fit": partial(fit_params, net, params, opt, x, y, **kw),
        "matmuls": matmul_rounds(c["sizes"], c["batch"], steps),
    }
    times = best_times(runs, repeats)
    gflops = steps * train_flops(c["sizes"], c["batch"]) / times["fit"] / 1e9
    peak = steps * train_flops(c["sizes"], c["batch"]) / times["matmuls"] / 1e9
    return {
        "net": "-".join(map(str, c["sizes"])),
        "samples_per_s": c["epochs"] * c["n"] / times["fit"],
        "fit_gflops": gflops,
        "matmul_gflops": peak,
        "fraction": gflops / peak,
    }


# ----------------------------------------------------------------------------- 3. fit vs plain


def plain_loop(net, opt, x, y, batch, epochs):
    """The obvious way: numpy shuffle, slice, one jitted value_and_grad + optax step per batch."""

    @jax.jit
    def step(params, state, xb, yb):
        value, grads = jax.value_and_grad(jmlp.loss, argnums=1)(net, params, xb, yb)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    def run(params):
        state, rng = opt.init(params), np.random.default_rng(0)
        for _ in range(epochs):
            perm, losses = rng.permutation(len(x)), []
            for i in range(0, len(x), batch):
                idx = perm[i : i + batch]
                params, state, value = step(params, state, x[idx], y[idx])
                losses.append(value)
            float(np.mean(jax.device_get(losses)))  # the epoch's loss on the host
        return params

    return run


def fit_vs_plain(cfg, repeats):
    rows = []
    for name in cfg["ratio_nets"]:
        c = cfg[name]
        net, params, x, y = problem(c["sizes"], c["n"])
        opt, epochs = optax.adam(cfg["lr"]), min(c["epochs"], 20)
        kw = {"epochs": epochs, "batch_size": c["batch"], "key": jax.random.key(1)}
        runs = {
            "fit": partial(fit_params, net, params, opt, x, y, **kw),
            "plain": partial(plain_loop(net, opt, x, y, c["batch"], epochs), params),
        }
        times = best_times(runs, repeats)
        fit_s, plain_s = times["fit"], times["plain"]
        rows.append(
            {
                "net": "-".join(map(str, c["sizes"])),
                "epochs": epochs,
                "fit_s": fit_s,
                "plain_s": plain_s,
                "speedup": plain_s / fit_s,
            }
        )
    return rows


# ----------------------------------------------------------------------------- 4. ensembles


def plain_vmap_run(net, opt, x, t, batch, epochs):
    """Baseline: jax.vmap over members of the whole training run (shared mini-batches)."""
    n = x.shape[0]

    def train_one(params, key):
        def epoch(carry, e):
            idx = jax.random.permutation(jax.random.fold_in(key, e), n)[: n // batch * batch]

            def step(c, i):
                p, s = c
                _, g = jmlp.backprop(net, p, x[i], t[i])
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            return jax.lax.scan(step, carry, idx.reshape(-1, batch))[0], None

        return jax.lax.scan(epoch, (params, opt.init(params)), jnp.arange(epochs))[0][0]

    return jax.jit(jax.vmap(train_one, in_axes=(0, None)))


def ensemble(cfg, repeats):
    c = cfg["small"]
    net, params, x, y = problem(c["sizes"], c["n"])
    opt, key = optax.adam(cfg["lr"]), jax.random.key(1)
    kw = {"epochs": c["epochs"], "batch_size": c["batch"], "key": key}

    def many(stack, **options):
        return fit_many(net, opt, x, y, params=stack, **(kw | options)).params

    def stack_of(m):
        return init_many(jax.random.split(jax.random.key(0), m), c["sizes"])

    # (method, members, block) -> run; all interleaved, so every ratio sees the same load
    runs = {("jmlp.fit, one model", 1, 1): partial(fit_params, net, params, opt, x, y, **kw)}
    for m in cfg["members"]:
        runs["fit_many", m, min(m, 128)] = partial(many, stack_of(m))
    m = cfg["members"][-1]
    for block in cfg["blocks"]:
        if block != 128:
            runs["fit_many", m, block] = partial(many, stack_of(m), block_size=block)
    if cfg["variants"]:
        runs["fit_many autodiff", m, 128] = partial(many, stack_of(m), gradient="autodiff")
        keys = jax.random.split(key, m)
        runs["fit_many, N data orders", m, 128] = partial(many, stack_of(m), key=keys)
    t = jax.nn.one_hot(y, c["sizes"][-1], dtype=jnp.float32)
    vmapped = plain_vmap_run(net, opt, jnp.asarray(x), t, c["batch"], c["epochs"])
    runs["plain jax.vmap of the run", m, m] = partial(vmapped, stack_of(m), key)
    times = best_times(runs, repeats)
    one = times["jmlp.fit, one model", 1, 1]
    return [
        {
            "method": method,
            "members": members,
            "block": block,
            "seconds": seconds,
            "per_model_rel": seconds / members / one,
        }
        for (method, members, block), seconds in times.items()
    ]


# ----------------------------------------------------------------------------- 5. per-example


def per_example_methods(net, x, y) -> dict:
    """The jitted functions of params timed in part 5."""

    def one(params, xn, yn):
        return jax.grad(jmlp.loss, argnums=1)(net, params, xn, yn)

    def copies(a):  # the memory traffic any per-example gradient must pay: B x P floats
        return jnp.broadcast_to(a, (x.shape[0],) + a.shape) * 2

    return {
        "batch gradient (backprop)": jax.jit(lambda p: jmlp.backprop(net, p, x, y)),
        "per_example_grads": jax.jit(lambda p: per_example_grads(net, p, x, y)),
        "per_example_grad_norms": jax.jit(lambda p: per_example_grad_norms(net, p, x, y)),
        "jax.vmap(jax.grad)": jax.jit(lambda p: jax.vmap(partial(one, p))(x, y)),
        "floor: write B copies of params": jax.jit(lambda p: jax.tree.map(copies, p)),
    }


def per_example(cfg, repeats):
    rows, b = [], cfg["per_example_batch"]
    for name in ("small", "big"):
        net, params, x, y = problem(cfg[name]["sizes"], b)
        methods = per_example_methods(net, x, y)
        times = best_times({k: partial(f, params) for k, f in methods.items()}, repeats)
        base, label = times["batch gradient (backprop)"], "-".join(map(str, net.sizes))
        rows += [
            {"net": label, "method": k, "batch": b, "seconds": s, "relative": s / base}
            for k, s in times.items()
        ]
    return rows


def main():
    extra = [(("--repeats",), {"type": int, "default": 5, "help": "timed runs (default 5)"})]
    args = parse_args(__doc__.split("\n")[0], "benchmark", extra=extra)
    cfg, repeats = (QUICK, 1) if args.quick else (CONFIG, args.repeats)
    device = f"{jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()})"
    results = {"config": cfg, "device": device, "jax": jax.__version__}
    print(f"device: {device}, jax {jax.__version__}")

    results["step_ratio"] = rows = step_ratio(cfg, repeats)
    print("\n1. step time, hand-written / autodiff (same scan epoch, Adam); target <= 1")
    print(
        table(
            ["net", "batch", "backprop s", "autodiff s", "ratio"],
            [[r["net"], str(r["batch"]), r["backprop"], r["autodiff"], r["ratio"]] for r in rows],
        )
    )

    results["fit_rate"] = r = fit_rate(cfg, repeats)
    print("\n2. jmlp.fit throughput vs the same matmuls alone; target >= 0.8")
    print(
        table(
            ["net", "samples/s", "fit GFLOP/s", "matmul GFLOP/s", "fraction"],
            [[r["net"], r["samples_per_s"], r["fit_gflops"], r["matmul_gflops"], r["fraction"]]],
        )
    )

    results["fit_vs_plain"] = rows = fit_vs_plain(cfg, repeats)
    print("\n3. jmlp.fit vs a plain jax.grad + optax Python loop; target speedup >= 1")
    print(
        table(
            ["net", "epochs", "fit s", "plain s", "speedup"],
            [[r["net"], str(r["epochs"]), r["fit_s"], r["plain_s"], r["speedup"]] for r in rows],
        )
    )

    results["ensemble"] = rows = ensemble(cfg, repeats)
    print("\n4. ensembles of 5-50-3: cost per model / one jmlp.fit; target <= 1/16 = 0.0625 at 512")
    print(
        table(
            ["method", "members", "block", "seconds", "per model rel."],
            [
                [r["method"], str(r["members"]), str(r["block"]), r["seconds"], r["per_model_rel"]]
                for r in rows
            ],
        )
    )

    results["per_example"] = rows = per_example(cfg, repeats)
    print("\n5. per-example gradients over one batch gradient")
    print(
        table(
            ["net", "method", "batch", "seconds", "relative"],
            [[r["net"], r["method"], str(r["batch"]), r["seconds"], r["relative"]] for r in rows],
        )
    )
    print(f"\nwrote {save_json(args.out, results)}")


if __name__ == "__main__":
    main()
