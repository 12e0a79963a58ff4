"""The accelerator kit: what jmlp does on this machine's GPU or TPU, in one run of a few minutes.

    python experiments/accelerator.py [--out DIR] [--quick]

1. device: kind, count, platform, jax version.
2. gradients: hand-written vs autodiff, relative error on the device (784-1024-1024-10, batch
   1024), in float32 and with bfloat16 compute (float32 accumulation).
3. the benchmark's ratios (experiments/benchmark.py, parts 1, 3 and 6).
4. fit on 4096-4096-4096-4096 at batch 4096, bfloat16 compute: its FLOP rate against a
   4096^3 bfloat16 matmul timed in the same run (target >= 50%).
5. fit_many of 5-50-3 from 1 to 4096 members: time per member over one member's.
6. per-example gradients at batch 4096 (784-512-512-10) over one batch gradient.
7. fit with the batch split over all local devices (jmlp.data_mesh()) over one device's.
Writes results.json and results.md (a markdown table). --quick: tiny sizes, for a CPU in
seconds (the smoke test).
"""

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from benchmark import CONFIG as BENCHMARK
from benchmark import QUICK as BENCHMARK_QUICK
from benchmark import best_times, ensemble, fit_vs_scan, problem, step_ratio, train_flops
from common import parse_args, save_json

import jmlp

CONFIG = {
    "grad_sizes": (784, 1024, 1024, 10),
    "grad_batch": 1024,
    "big": {"sizes": (4096, 4096, 4096, 4096), "batch": 4096, "steps": 20},
    "members": (1, 64, 512, 4096),
    "per_example": {"sizes": (784, 512, 512, 10), "batch": 4096, "chunk": 512},
    "sharded": {"sizes": (784, 1024, 1024, 10), "n": 65536, "batch": 4096, "epochs": 2},
    "benchmark": BENCHMARK | {"members": (64, 512, 4096)},
}
QUICK = {
    "grad_sizes": (16, 32, 32, 4),
    "grad_batch": 64,
    "big": {"sizes": (64, 64, 64, 64), "batch": 64, "steps": 2},
    "members": (1, 8),
    "per_example": {"sizes": (16, 32, 4), "batch": 64, "chunk": 16},
    "sharded": {"sizes": (16, 32, 4), "n": 512, "batch": 64, "epochs": 2},
    "benchmark": BENCHMARK_QUICK,
}


def device() -> dict:
    d = jax.devices()[0]
    return {"kind": d.device_kind, "count": jax.device_count(),
            "platform": jax.default_backend(), "jax": jax.__version__}  # fmt: skip


def relative_error(a, b) -> float:
    leaves = [(np.asarray(u, np.float64), np.asarray(v, np.float64))
              for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]  # fmt: skip
    return max(float(np.linalg.norm(u - v) / np.linalg.norm(v)) for u, v in leaves)


def gradients(cfg) -> list[dict]:
    """Hand-written vs autodiff on the device, float32 and bf16 compute; and each against a
    float32 reference of the highest matmul precision."""
    rows = []
    for compute in (None, "bfloat16"):
        net, params, x, y = problem(cfg["grad_sizes"], cfg["grad_batch"])
        net = jmlp.MLP(net.sizes, "relu", "softmax", "cross_entropy", compute_dtype=compute)
        hand = jax.jit(jmlp.backprop, static_argnums=0)(net, params, x, y)[1]
        auto = jax.jit(jmlp.autodiff, static_argnums=0)(net, params, x, y)[1]
        rows.append(
            {"compute": compute or "float32", "hand_vs_autodiff": relative_error(hand, auto)}
        )
    return rows


def big_fit(cfg, repeats: int) -> dict:
    """fit in bf16 compute on a wide net, against a bf16 matmul of the same width."""
    c = cfg["big"]
    sizes, batch, steps = c["sizes"], c["batch"], c["steps"]
    net = jmlp.MLP(sizes, "relu", "identity", "mse", compute_dtype="bfloat16")
    params = jmlp.init_params(jax.random.key(0), sizes)
    x = jax.random.normal(jax.random.key(1), (batch * steps, sizes[0]), jnp.float32)
    y = jax.random.normal(jax.random.key(2), (batch * steps, sizes[-1]), jnp.float32)
    n = sizes[1]
    a = jax.random.normal(jax.random.key(3), (n, n), jnp.bfloat16)
    matmul = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
    kw = {"epochs": 1, "batch_size": batch, "key": jax.random.key(4)}
    runs = {
        "fit": lambda: jmlp.fit(net, params, optax.adam(1e-4), x, y, **kw).params,
        "matmul": partial(matmul, a),
    }
    times = best_times(runs, repeats)
    fit_rate = steps * train_flops(sizes, batch) / times["fit"] / 1e12
    peak = 2 * n**3 / times["matmul"] / 1e12
    return {"sizes": sizes, "batch": batch, "fit_tflops": fit_rate, "matmul_tflops": peak,
            "fraction": fit_rate / peak}  # fmt: skip


def members_scaling(cfg, repeats: int) -> list[dict]:
    net, _, x, y = problem((5, 50, 3), 400)
    kw = {"epochs": 20, "batch_size": 50, "key": jax.random.key(1)}
    opt = optax.adam(1e-3)

    def run(m):
        stack = jmlp.init_many(jax.random.split(jax.random.key(0), m), net.sizes)
        return lambda: jmlp.fit_many(net, opt, x, y, params=stack, **kw).params

    times = best_times({m: run(m) for m in cfg["members"]}, repeats)
    one = times[cfg["members"][0]]
    return [{"members": m, "seconds": s, "per_member_rel": s / m / one} for m, s in times.items()]


def per_example(cfg, repeats: int) -> dict:
    c = cfg["per_example"]
    net, params, x, y = problem(c["sizes"], c["batch"])
    chunk = c["chunk"]
    runs = {
        "batch gradient": jax.jit(lambda p: jmlp.backprop(net, p, x, y)),
        "per_example_grads": jax.jit(lambda p: jmlp.per_example_grads(net, p, x, y, chunk_size=chunk)),
        "per_example_grad_norms": jax.jit(lambda p: jmlp.per_example_grad_norms(net, p, x, y)),
    }  # fmt: skip
    times = best_times({k: partial(f, params) for k, f in runs.items()}, repeats)
    base = times["batch gradient"]
    return {"batch": c["batch"], **{k: t / base for k, t in times.items()}}


def sharded(cfg, repeats: int) -> dict:
    """fit over every local device (data parallel) against fit on one device."""
    c = cfg["sharded"]
    net, params, x, y = problem(c["sizes"], c["n"])
    kw = {"epochs": c["epochs"], "batch_size": c["batch"], "key": jax.random.key(1)}
    mesh = jmlp.data_mesh(jax.local_devices())
    runs = {
        "one device": lambda: jmlp.fit(net, params, optax.adam(1e-3), x, y, **kw).params,
        "all local devices": lambda: jmlp.fit(net, params, optax.adam(1e-3), x, y, mesh=mesh, **kw).params,
    }  # fmt: skip
    times = best_times(runs, repeats)
    one = jmlp.fit(net, params, optax.adam(1e-3), x, y, **kw).params
    split = jmlp.fit(net, params, optax.adam(1e-3), x, y, mesh=mesh, **kw).params
    return {"devices": mesh.size, **times, "speedup": times["one device"] / times["all local devices"],
            "params_rel_difference": relative_error(split, one)}  # fmt: skip


def markdown(results: dict) -> str:
    d, b = results["device"], results["big_fit"]
    lines = [f"Device: {d['kind']} x{d['count']} ({d['platform']}), jax {d['jax']}", "",
             "| measurement | result |", "| --- | --- |"]  # fmt: skip
    for r in results["gradients"]:
        lines.append(
            f"| hand-written vs autodiff, {r['compute']} compute | relative error {r['hand_vs_autodiff']:.2g} |"
        )
    for r in results["benchmark"]["step_ratio"]:
        lines.append(f"| hand-written / autodiff step time, {r['net']} | {r['ratio']:.3g} |")
    for r in results["benchmark"]["fit_vs_scan"]:
        lines.append(f"| fit / whole-run scan samples/s, {r['net']} | {r['ratio']:.3g} |")
    lines.append(f"| fit, {'-'.join(map(str, b['sizes']))} batch {b['batch']}, bf16 | "
                 f"{b['fit_tflops']:.3g} TFLOP/s = {b['fraction']:.0%} of a bf16 matmul's "
                 f"{b['matmul_tflops']:.3g} |")  # fmt: skip
    for r in results["members"]:
        lines.append(
            f"| fit_many, {r['members']} members | {r['seconds']:.3g} s, per member {r['per_member_rel']:.3g} of one |"
        )
    p = results["per_example"]
    lines.append(
        f"| per-example gradients, batch {p['batch']} | {p['per_example_grads']:.3g}x a batch gradient (norms {p['per_example_grad_norms']:.3g}x) |"
    )
    s = results["sharded"]
    lines.append(
        f"| fit over {s['devices']} local devices / one | speedup {s['speedup']:.3g} (params differ by {s['params_rel_difference']:.2g}) |"
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(__doc__.split("\n")[0], "accelerator", argv)
    cfg, repeats = (QUICK, 1) if args.quick else (CONFIG, 3)
    started = time.perf_counter()
    results = {"config": cfg, "device": device(), "gradients": gradients(cfg)}
    bench = cfg["benchmark"]
    results["benchmark"] = {"step_ratio": step_ratio(bench, repeats),
                            "fit_vs_scan": fit_vs_scan(bench, repeats),
                            "ensemble": ensemble(bench, repeats)}  # fmt: skip
    results["big_fit"] = big_fit(cfg, repeats)
    results["members"] = members_scaling(cfg, repeats)
    results["per_example"] = per_example(cfg, repeats)
    results["sharded"] = sharded(cfg, repeats)
    results["seconds"] = time.perf_counter() - started
    text = markdown(results)
    print(text)
    (save_json(args.out, results).parent / "results.md").write_text(text)
    return results


if __name__ == "__main__":
    main()
