"""Speed of the learning rules: one training step of fa, dfa and sign symmetry against backprop.

    python experiments/feedback_speed.py [--out DIR] [--quick] [--seed S]

A step is jmlp.feedback_grads (rule and feedback matrices from jmlp.init_feedback) followed by an
optax Adam update; ``steps`` steps run in one jitted lax.scan on a fixed batch, so the time per
step is the compiled loop's, without dispatch. Every rule is timed in the same run, in turns
(backprop, fa, dfa, sign, backprop, ...) so that a busy machine slows them alike. Each call is
timed twice: wall clock, and the CPU time of this process (all its threads), which waiting for a
core shared with other work does not inflate. The table gives the median per step of both over the
turns and each rule's ratio to backprop's (CPU time; wall clock in brackets). A rule does
the work of backprop with another matrix in the delta rule (dfa: one product per hidden layer
from delta^L instead of a chain), so the ratios should be near 1.
Writes results.json (no figure).
"""

import time

import jax
import numpy as np
import optax
from common import parse_args, save_json, table

import jmlp

CONFIG = {
    "nets": {  # name: (sizes, hidden activation)
        "digits 64-256-256-10": ((64, 256, 256, 10), "relu"),
        "deep 784-512x4-10": ((784, 512, 512, 512, 512, 10), "tanh"),
    },
    "batch": 128,
    "steps": 100,  # steps per timed call
    "turns": 7,  # timed calls per rule, interleaved
    "rules": ("backprop", "fa", "dfa", "sign"),
}
QUICK = {
    "nets": {"tiny 8-16-16-3": ((8, 16, 16, 3), "relu")},
    "batch": 16,
    "steps": 5,
    "turns": 2,
}


def make_loop(net, rule, cfg):
    """``loop(params, opt_state, feedback, x, y) -> (params, opt_state, losses)``: ``steps``
    Adam steps on the rule's updates, one compiled scan."""
    opt = optax.adam(1e-3)

    def step(carry, _, feedback, x, y):
        params, state = carry
        value, upd = jmlp.feedback_grads(net, params, x, y, rule=rule, feedback=feedback)
        upd, state = opt.update(upd, state, params)
        return (optax.apply_updates(params, upd), state), value

    def loop(params, state, feedback, x, y):
        body = lambda c, i: step(c, i, feedback, x, y)
        (params, state), losses = jax.lax.scan(body, (params, state), None, length=cfg["steps"])
        return params, state, losses

    return jax.jit(loop), opt


def time_net(name, sizes, activation, cfg):
    """Seconds per step of every rule on one net (fastest and median turn), timed in turns."""
    net = jmlp.MLP(sizes, activation, loss="cross_entropy")
    k = jax.random.split(jax.random.key(cfg["seed"]), 4)
    params = jmlp.init_params(k[0], sizes)
    x = jax.random.normal(k[1], (cfg["batch"], sizes[0]))
    y = jax.random.randint(k[2], (cfg["batch"],), 0, sizes[-1])
    runs = {}
    for rule in cfg["rules"]:
        loop, opt = make_loop(net, rule, cfg)
        feedback = jmlp.init_feedback(k[3], sizes, rule)
        args = (params, opt.init(params), feedback, x, y)
        jax.block_until_ready(loop(*args))  # compile
        runs[rule] = (loop, args)
    wall, cpu = {rule: [] for rule in runs}, {rule: [] for rule in runs}
    for _ in range(cfg["turns"]):
        for rule, (loop, args) in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(loop(*args))
            wall[rule].append((time.perf_counter() - start) / cfg["steps"])
            cpu[rule].append((time.process_time() - start_cpu) / cfg["steps"])
    wall_median = {rule: float(np.median(t)) for rule, t in wall.items()}
    cpu_median = {rule: float(np.median(t)) for rule, t in cpu.items()}
    return {
        "net": name,
        "sizes": sizes,
        "cpu_seconds_per_step": cpu_median,
        "seconds_per_step": wall_median,
        "ratio_to_backprop": {r: cpu_median[r] / cpu_median["backprop"] for r in cpu},
        "wall_ratio_to_backprop": {r: wall_median[r] / wall_median["backprop"] for r in wall},
        "all_seconds_per_step": wall,
        "all_cpu_seconds_per_step": cpu,
    }


def main(argv=None) -> dict:
    args = parse_args(__doc__, "feedback_speed", argv)
    cfg = CONFIG | (QUICK if args.quick else {}) | {"seed": args.seed}
    rows = [time_net(name, *spec, cfg) for name, spec in cfg["nets"].items()]
    print(
        f"{jax.devices()[0].platform}, batch {cfg['batch']}, Adam, {cfg['steps']} steps per "
        f"compiled call, median of {cfg['turns']} interleaved calls; ratios of CPU time (wall)"
    )
    headers = ["net", "backprop CPU ms/step", "wall ms/step"]
    headers += [f"{r} / backprop" for r in cfg["rules"][1:]]
    body = [
        [
            r["net"],
            f"{1e3 * r['cpu_seconds_per_step']['backprop']:.3f}",
            f"{1e3 * r['seconds_per_step']['backprop']:.3f}",
        ]
        + [
            f"{r['ratio_to_backprop'][rule]:.3f} ({r['wall_ratio_to_backprop'][rule]:.2f})"
            for rule in cfg["rules"][1:]
        ]
        for r in rows
    ]
    print(table(headers, body))
    results = {"config": cfg, "rows": rows, "device": str(jax.devices()[0])}
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
