"""Speed of jmlp against references measured in the same run, on this machine.

    python experiments/benchmark.py [--quick] [--out DIR] [--repeats 5]

1. step_ratio: one Adam step by the hand-written gradient over one by jax.value_and_grad, both
   inside the same jitted lax.scan epoch (784-512-512-10 batch 128; 5-50-3 batch 50). Target <= 1.
2. fit_rate: samples/s and GFLOP/s of jmlp.fit on 784-512-512-10 (batch 128), against the rate
   of the same matmuls alone (forward, delta and dW shapes, timed in a scan). Target >= 0.8.
3. fit_vs_scan: jmlp.fit's samples/s over a plain JAX program that puts the whole run (every
   epoch, shuffled as fit shuffles) in one jitted scan. Targets 0.8 (5-50-3, 400 examples, batch
   50, 300 epochs) and 0.95 (784-512-512-10, batch 128).
4. recompile: a loop of fit calls that builds a fresh but equal optimizer each time, over the
   same loop reusing one optimizer object (optax.adam and jmlp.optim.adam). Target <= 1.3.
5. sweep: a 64-member learning-rate sweep as a Python loop of fit with the rate as data
   (hparams), over one fit_many call (and over fit_many with its members split over the devices,
   where there are several). Target <= 3.
6. ensemble: fit_many with 8, 64, 512 members of 5-50-3 (400 examples, batch 50, 100 epochs,
   Adam): time per member over the one-member run of the same engine (jmlp.fit). Target 512:
   <= 1/10; on one device, and with the members split over the devices. Also the ensemble's FLOP
   rate over a 1024^3 matmul's. On a CPU the script makes one jax device per core (XLA_FLAGS,
   set before jax is imported), which leaves the single-device runs as they are.
7. doc003: document 003's run (5-50-3, 500 epochs of 8 fixed batches, Adam eps inside the root)
   for 100 seeds in one fit_many call, time per seed over the document's own numpy algorithm
   per seed (a transcription of its code). Target <= 1/20.
8. per_example: per-example gradients (hand-written, and their norms) and jax.vmap(jax.grad),
   each over one batch gradient, batch 128 on 784-512-512-10.
9. curvature: jmlp.hvp over jax.jvp(jax.grad(jmlp.loss)), as power-iteration steps v <- Hv/|Hv|
   in a jitted scan (784-512-512-10 batch 128; 5-50-3 batch 50), target <= 1; jmlp.ntk on 256 x
   256 examples over the Jacobian-product route (per-example jax.jacrev, contracted), target <= 0.5.
Times are the minimum over --repeats runs after a first (compiling) run; the runs compared with
each other are interleaved (one of each per round), so that they see the same load. Prints
tables; writes results.json (with the device and jax version) to --out.
"""

import itertools
import os
import time
from functools import partial

# On a CPU, one jax device per core (before jax is imported): fit_many can then split its members
# over the cores (mesh=jmlp.data_mesh()); single-device runs are unchanged by it.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    cores = f"--xla_force_host_platform_device_count={os.cpu_count()}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {cores}".strip()

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import parse_args, save_json, table

import jmlp
from jmlp.per_example import per_example_grad_norms, per_example_grads

CONFIG = {
    "big": {"sizes": (784, 512, 512, 10), "n": 4096, "batch": 128, "epochs": 2},
    "small": {"sizes": (5, 50, 3), "n": 400, "batch": 50, "epochs": 100},
    "scan_epochs": {"small": 300, "big": 2},
    "loop_fits": 5,
    "sweep_members": 64,
    "members": (8, 64, 512),
    "matmul": 1024,
    "doc003": {"seeds": 100, "epochs": 500},
    "per_example_batch": 128,
    "lr": 1e-3,
    "ratio_nets": ("big", "small"),
    "hvp_nets": {"big": 10, "small": 500},  # net: power-iteration steps per timed run
    "ntk_batch": 256,
    "ntk_sizes": ((5, 50, 3), (64, 256, 256, 10)),
}
QUICK = {
    "big": {"sizes": (64, 32, 32, 10), "n": 512, "batch": 64, "epochs": 2},
    "small": {"sizes": (5, 50, 3), "n": 400, "batch": 50, "epochs": 5},
    "scan_epochs": {"small": 5, "big": 2},
    "loop_fits": 2,
    "sweep_members": 4,
    "members": (8,),
    "matmul": 128,
    "doc003": {"seeds": 4, "epochs": 5},
    "per_example_batch": 32,
    "lr": 1e-3,
    "ratio_nets": ("small",),
    "hvp_nets": {"small": 20},
    "ntk_batch": 32,
    "ntk_sizes": ((5, 50, 3),),
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


# ----------------------------------------------------------------------------- 3. fit vs scan


def scan_run(net, opt, n, batch, epochs):
    """The plain JAX reference: every epoch in one jitted scan, each epoch shuffled by
    ``permutation(fold_in(key, e), n)`` (fit's order; B divides n here), one Adam step per batch
    by jax.value_and_grad, the epoch's mean loss kept."""

    @jax.jit
    def run(params, key, x, t):
        def epoch(carry, e):
            idx = jax.random.permutation(jax.random.fold_in(key, e), n).reshape(-1, batch)

            def step(c, i):
                p, s = c
                value, g = jax.value_and_grad(jmlp.loss, argnums=1)(net, p, x[i], t[i])
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), value

            carry, values = jax.lax.scan(step, carry, idx)
            return carry, jnp.mean(values)

        carry, losses = jax.lax.scan(epoch, (params, opt.init(params)), jnp.arange(epochs))
        return carry[0], losses

    return run


def fit_vs_scan(cfg, repeats):
    rows = []
    for name in cfg["ratio_nets"]:
        c, epochs = cfg[name], cfg["scan_epochs"][name]
        net, params, x, y = problem(c["sizes"], c["n"])
        opt, key = optax.adam(cfg["lr"]), jax.random.key(1)
        t = jax.nn.one_hot(y, c["sizes"][-1], dtype=jnp.float32)
        run = scan_run(net, opt, c["n"], c["batch"], epochs)
        kw = {"epochs": epochs, "batch_size": c["batch"], "key": key}
        runs = {
            "fit": partial(fit_params, net, params, opt, x, y, **kw),
            "scan": partial(run, params, key, jnp.asarray(x), t),
        }
        times = best_times(runs, repeats)
        samples = epochs * c["n"]
        rows.append(
            {
                "net": "-".join(map(str, c["sizes"])),
                "epochs": epochs,
                "fit_samples_per_s": samples / times["fit"],
                "scan_samples_per_s": samples / times["scan"],
                "ratio": times["scan"] / times["fit"],
            }
        )
    return rows


# ----------------------------------------------------------------------------- 4. recompile


def recompile(cfg, repeats):
    """Loops of ``loop_fits`` fits of document 003's model: a fresh, equal optimizer per fit
    against one optimizer object reused."""
    c = cfg["small"]
    net, params, x, y = problem(c["sizes"], c["n"])
    kw = {"epochs": c["epochs"], "batch_size": c["batch"], "key": jax.random.key(1)}
    makers = {
        "optax.adam": lambda: optax.adam(1e-4, b1=0.99),
        "jmlp.optim.adam": lambda: jmlp.optim.adam(1e-4, b1=0.99),
    }

    def loop(make, fresh: bool):
        reused = make()
        return [
            fit_params(net, params, make() if fresh else reused, x, y, **kw)
            for _ in range(cfg["loop_fits"])
        ]

    rows = []
    for name, make in makers.items():
        runs = {"fresh": partial(loop, make, True), "reused": partial(loop, make, False)}
        times = best_times(runs, repeats)
        rows.append({"optimizer": name, **times, "ratio": times["fresh"] / times["reused"]})
    return rows


# ----------------------------------------------------------------------------- 5. sweep


def sweep(cfg, repeats):
    """A learning-rate sweep: a Python loop of fit with the rate as data, against fit_many."""
    c, m = cfg["small"], cfg["sweep_members"]
    net, _, x, y = problem(c["sizes"], c["n"])
    stack = jmlp.init_many(jax.random.split(jax.random.key(0), m), c["sizes"])
    rates = np.logspace(-4, -1, m)
    kw = {"epochs": c["epochs"], "batch_size": c["batch"], "key": jax.random.key(1)}

    def loop():
        return [
            fit_params(
                net, jmlp.member(stack, i), optax.adam, x, y, hparams={"learning_rate": rate}, **kw
            )
            for i, rate in enumerate(rates)
        ]

    def many(mesh=None):
        return jmlp.fit_many(
            net, optax.adam, x, y, params=stack, hparams={"learning_rate": rates}, mesh=mesh, **kw
        ).params

    runs = {"loop of fit": loop, "fit_many": many} | _over_devices(many)
    times = best_times(runs, repeats)
    ratios = {
        f"ratio, {k}": times["loop of fit"] / t for k, t in times.items() if k != "loop of fit"
    }
    return {"members": m, "devices": jax.device_count(), **times, **ratios}


def _over_devices(run) -> dict:
    """``{"fit_many over D devices": run(mesh=...)}`` when there are several devices, else {}."""
    if jax.device_count() == 1:
        return {}
    return {f"fit_many over {jax.device_count()} devices": partial(run, mesh=jmlp.data_mesh())}


# ----------------------------------------------------------------------------- 6. ensembles


def matmul_gflops(size: int, repeats: int) -> float:
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    run = jax.jit(lambda a, b: a @ b)
    seconds = best_times({"matmul": partial(run, a, a)}, repeats)["matmul"]
    return 2 * size**3 / seconds / 1e9


def ensemble(cfg, repeats):
    """fit_many of M members against one fit (the one-member case of the same engine); the
    FLOP rate of the largest ensemble against a large matmul's."""
    c = cfg["small"]
    net, params, x, y = problem(c["sizes"], c["n"])
    opt = optax.adam(cfg["lr"])
    kw = {"epochs": c["epochs"], "batch_size": c["batch"], "key": jax.random.key(1)}

    def many(stack, mesh=None):
        return jmlp.fit_many(net, opt, x, y, params=stack, mesh=mesh, **kw).params

    def stack_of(m):
        return jmlp.init_many(jax.random.split(jax.random.key(0), m), c["sizes"])

    runs = {(1, 1): partial(fit_params, net, params, opt, x, y, **kw)}
    runs |= {(m, 1): partial(many, stack_of(m)) for m in cfg["members"]}
    if jax.device_count() > 1:
        mesh = jmlp.data_mesh()
        runs |= {(m, mesh.size): partial(many, stack_of(m), mesh) for m in cfg["members"]}
    times = best_times(runs, repeats)
    steps = c["epochs"] * -(-c["n"] // c["batch"])
    flops = steps * train_flops(c["sizes"], c["batch"])
    peak = matmul_gflops(cfg["matmul"], repeats)
    rows = [
        {
            "members": m,
            "devices": d,
            "seconds": s,
            "per_member_rel": s / m / times[1, 1],
            "gflops": m * flops / s / 1e9,
            "fraction_of_matmul": m * flops / s / 1e9 / peak,
        }
        for (m, d), s in times.items()
    ]
    return {"rows": rows, "matmul_gflops": peak, "matmul_size": cfg["matmul"]}


# ----------------------------------------------------------------------------- 7. document 003


def numpy_doc003(x, labels, params, epochs: int, batch: int = 50):
    """Document 003's training algorithm as its numpy code writes it (5-50-3 ReLU / softmax,
    summed cross-entropy, batches in a fixed order, Adam with eps inside the root, lr 1e-4,
    b1 0.99, b2 0.999), from jmlp-style ``params``: our transcription, the reference of part 7.
    Returns ``[W1, b1, W2, b2]``."""
    params = [np.array(p[k]) for p in params for k in ("W", "b")]
    k = params[-1].shape[0]
    t_all = np.eye(k)[labels]
    mom = [np.zeros_like(p) for p in params]
    vel = [np.zeros_like(p) for p in params]
    lr, b1, b2, eps, step = 1e-4, 0.99, 0.999, 1e-8, 1
    for _ in range(epochs):
        for j in range(len(x) // batch):
            xb, tb = x[j * batch : (j + 1) * batch], t_all[j * batch : (j + 1) * batch]
            w1, c1, w2, c2 = params
            z = xb.dot(w1) + c1
            z[z < 0] = 0
            a = np.exp(z.dot(w2) + c2)
            p = a / a.sum(axis=1, keepdims=True)
            delta = p - tb
            back = delta.dot(w2.T) * (z > 0)
            grads = [xb.T.dot(back), back.sum(axis=0), z.T.dot(delta), delta.sum(axis=0)]
            for i, g in enumerate(grads):
                mom[i] = b1 * mom[i] + (1 - b1) * g
                vel[i] = b2 * vel[i] + (1 - b2) * g * g
                m_hat, v_hat = mom[i] / (1 - b1**step), vel[i] / (1 - b2**step)
                params[i] = params[i] - lr * m_hat / np.sqrt(v_hat + eps)
            step += 1
    return params


def doc003(cfg, repeats):
    c = cfg["doc003"]
    data = jmlp.data.load("doc003")
    x, y = data.x_train.astype(np.float32), data.y_train
    net = jmlp.MLP((5, 50, 3), "relu", "softmax", "cross_entropy", reduction="sum")
    opt = jmlp.optim.adam(1e-4, b1=0.99, eps_inside_sqrt=True)
    keys = jax.random.split(jax.random.key(0), c["seeds"])
    stack = jmlp.init_many(keys, net.sizes, weight_init="lecun_normal")

    def many(mesh=None):
        return jmlp.fit_many(
            net, opt, x, y, params=stack, epochs=c["epochs"], batch_size=50, shuffle=False,
            mesh=mesh,
        ).params  # fmt: skip

    first = jax.tree.map(np.asarray, jmlp.member(stack, 0))
    runs = {"fit_many": many, "numpy, one seed": partial(numpy_doc003, x, y, first, c["epochs"])}
    times = best_times(runs | _over_devices(many), repeats)
    numpy = times.pop("numpy, one seed")
    rows = [{"run": k, "seconds": t, "per_seed": t / c["seeds"], "ratio": t / c["seeds"] / numpy}
            for k, t in times.items()]  # fmt: skip
    return {"seeds": c["seeds"], "numpy, one seed": numpy, "rows": rows}


# ----------------------------------------------------------------------------- 8. per-example


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


# ----------------------------------------------------------------------------- 9. second order


def power_steps(product, steps: int):
    """A jitted scan of ``steps`` power-iteration steps ``v <- A v / |A v|`` with
    ``product(params, v) = A v``: what jmlp.sharpness spends its time on."""

    @jax.jit
    def run(params, v):
        def step(v, _):
            av = product(params, v)
            norm = jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree.leaves(av)))
            return jax.tree.map(lambda a: a / norm, av), None

        return jax.lax.scan(step, v, None, length=steps)[0]

    return run


def jacobian_ntk(net, params, x1, x2):
    """The Jacobian-product route: per-example Jacobians ``(B, n_out, P)`` of the output by
    ``jax.vmap(jax.jacrev)``, contracted over the parameters and summed over the outputs."""

    def jacobian(x):
        one = jax.vmap(lambda xn: jax.jacrev(lambda p: jmlp.forward(net, p, xn))(params))(x)
        return jnp.concatenate([j.reshape(j.shape[:2] + (-1,)) for j in jax.tree.leaves(one)], -1)

    return jnp.einsum("iap,jap->ij", jacobian(x1), jacobian(x2))


def hand_hvp(net, x, y, params, v):
    return jmlp.hvp(net, params, x, y, v)


def autodiff_hvp(net, x, y, params, v):
    return jax.jvp(jax.grad(lambda p: jmlp.loss(net, p, x, y)), (params,), (v,))[1]


def curvature_row(what, net, batch, times):
    return {
        "what": what,
        "net": "-".join(map(str, net.sizes)),
        "batch": batch,
        **times,
        "ratio": times["hand"] / times["reference"],
    }


def curvature(cfg, repeats):
    rows = []
    for name, steps in cfg["hvp_nets"].items():
        c = cfg[name]
        net, params, x, y = problem(c["sizes"], c["batch"])
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        v = tree.unflatten([jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)])
        runs = {
            k: partial(power_steps(partial(fn, net, x, y), steps), params, v)
            for k, fn in (("hand", hand_hvp), ("reference", autodiff_hvp))
        }
        times = {k: t / steps for k, t in best_times(runs, repeats).items()}
        rows.append(curvature_row("hvp / jax.jvp(jax.grad)", net, c["batch"], times))
    b = cfg["ntk_batch"]
    for sizes in cfg["ntk_sizes"]:
        net, params, x, _ = problem(sizes, 2 * b)
        runs = {
            k: partial(jax.jit(fn, static_argnums=0), net, params, x[:b], x[b:])
            for k, fn in (("hand", jmlp.ntk), ("reference", jacobian_ntk))
        }
        rows.append(
            curvature_row(f"ntk {b} x {b} / Jacobian products", net, b, best_times(runs, repeats))
        )
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

    results["fit_vs_scan"] = rows = fit_vs_scan(cfg, repeats)
    print(
        "\n3. jmlp.fit samples/s over a plain whole-run JAX scan; targets 0.8 (5-50-3), 0.95 (784)"
    )
    print(
        table(
            ["net", "epochs", "fit samples/s", "scan samples/s", "ratio"],
            [
                [
                    r["net"],
                    str(r["epochs"]),
                    r["fit_samples_per_s"],
                    r["scan_samples_per_s"],
                    r["ratio"],
                ]
                for r in rows
            ],
        )
    )

    results["recompile"] = rows = recompile(cfg, repeats)
    print(f"\n4. {cfg['loop_fits']} fits with a fresh equal optimizer / reusing one; target <= 1.3")
    print(
        table(
            ["optimizer", "fresh s", "reused s", "ratio"],
            [[r["optimizer"], r["fresh"], r["reused"], r["ratio"]] for r in rows],
        )
    )

    results["sweep"] = r = sweep(cfg, repeats)
    print(
        f"\n5. {r['members']}-member learning-rate sweep: loop of fit (rate as data) / fit_many; target <= 3"
    )
    ratios = [k for k in r if k.startswith("ratio, ")]
    print(table(["loop of fit s", *[k.removeprefix("ratio, ") + " s" for k in ratios], *ratios],
                [[r["loop of fit"], *[r[k.removeprefix("ratio, ")] for k in ratios], *[r[k] for k in ratios]]]))  # fmt: skip

    results["ensemble"] = e = ensemble(cfg, repeats)
    print(
        f"\n6. ensembles of 5-50-3: time per member / one jmlp.fit; target <= 1/10 at 512; "
        f"FLOP rate / a {e['matmul_size']}^3 matmul ({e['matmul_gflops']:.4g} GFLOP/s)"
    )
    print(
        table(
            ["members", "devices", "seconds", "per member rel.", "GFLOP/s", "fraction of matmul"],
            [[str(r["members"]), str(r["devices"]), r["seconds"], r["per_member_rel"], r["gflops"],
              r["fraction_of_matmul"]] for r in e["rows"]],
        )
    )  # fmt: skip

    results["doc003"] = r = doc003(cfg, repeats)
    print(f"\n7. document 003, {r['seeds']} seeds in one fit_many: time per seed / its numpy code "
          f"({r['numpy, one seed']:.4g} s per seed); target <= 1/20")  # fmt: skip
    print(
        table(
            ["run", "seconds", "per seed s", "ratio"],
            [[x["run"], x["seconds"], x["per_seed"], x["ratio"]] for x in r["rows"]],
        )
    )

    results["per_example"] = rows = per_example(cfg, repeats)
    print("\n8. per-example gradients over one batch gradient")
    print(
        table(
            ["net", "method", "batch", "seconds", "relative"],
            [[r["net"], r["method"], str(r["batch"]), r["seconds"], r["relative"]] for r in rows],
        )
    )
    results["curvature"] = rows = curvature(cfg, repeats)
    print("\n9. second order, hand-written / autodiff; targets: hvp <= 1, ntk <= 0.5")
    print(
        table(
            ["measurement", "net", "batch", "hand s", "reference s", "ratio"],
            [
                [r["what"], r["net"], str(r["batch"]), r["hand"], r["reference"], r["ratio"]]
                for r in rows
            ],
        )
    )
    print(f"\nwrote {save_json(args.out, results)}")


if __name__ == "__main__":
    main()
