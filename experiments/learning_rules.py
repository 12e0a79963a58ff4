"""Backprop, feedback alignment, direct feedback alignment and sign symmetry on the 8x8 digits.

    python experiments/learning_rules.py [--out DIR] [--quick] [--seed S]

scikit-learn's 8x8 digits (1797 images, 64 standardized pixels, 10 classes; a stratified 80/20
split), a 64-128-128-10 tanh network with a softmax output and cross-entropy, trained by each
rule of jmlp.feedback_grads with Adam on minibatches: every rule from the same initial weights
per seed (Glorot-normal; seed s draws the weights, the feedback matrices and the minibatch
order), the seeds as one vmapped, jitted lax.scan per rule. Every few steps the alignment on a
fixed batch of training rows is recorded: per hidden layer, the angle between the rule's weight
update and the true gradient (jmlp.alignment). Lillicrap et al. (2016) and Nokland (2016) find
that FA and DFA train such networks to within a few points of backprop's test error, and that the
angle falls well below 90 degrees as the forward weights come to align with the feedback.
Writes results.json and angles.png.
"""

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from common import parse_args, save_figure, save_json, summary, table

import jmlp

CONFIG = {
    "data": "digits",
    "hidden": (128, 128),
    "activation": "tanh",
    "rules": ("backprop", "fa", "dfa", "sign"),
    "seeds": 5,
    "steps": 2000,
    "batch": 32,
    "lr": 1e-3,
    "every": 100,  # steps between alignment measurements
    "probe": 256,  # training rows the angles are measured on
}
QUICK = {"seeds": 2, "steps": 40, "every": 20, "probe": 32}


def make_train(net, rule, x, y, cfg):
    """``train(params, feedback, key) -> (params, angles (steps // every, L))``, vmapped over
    seeds: Adam steps on the rule's updates, the angles after every ``every`` steps."""
    opt = optax.adam(cfg["lr"])
    probe_x, probe_y = x[: cfg["probe"]], y[: cfg["probe"]]

    def train(params, feedback, key):
        def step(carry, key):
            params, state = carry
            rows = jax.random.randint(key, (cfg["batch"],), 0, x.shape[0])
            _, upd = jmlp.feedback_grads(
                net, params, x[rows], y[rows], rule=rule, feedback=feedback
            )
            upd, state = opt.update(upd, state, params)
            return (optax.apply_updates(params, upd), state), None

        def segment(carry, keys):
            carry, _ = jax.lax.scan(step, carry, keys)
            angles = jmlp.alignment(net, carry[0], probe_x, probe_y, rule=rule, feedback=feedback)
            return carry, angles["update"]

        keys = jax.random.split(key, cfg["steps"]).reshape(-1, cfg["every"])
        (params, _), angles = jax.lax.scan(segment, (params, opt.init(params)), keys)
        return params, angles

    return jax.jit(jax.vmap(train))


def run_rule(net, rule, data, cfg):
    """Trained params and angles of every seed, and the seconds it took (compile included)."""
    keys = jax.random.split(jax.random.key(cfg["seed"]), cfg["seeds"])
    split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    params = jmlp.init_many(split[:, 0], net.sizes, weight_init="glorot_normal")
    feedback = jax.vmap(lambda k: jmlp.init_feedback(k, net.sizes, rule))(split[:, 1])
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    start = time.perf_counter()
    params, angles = jax.block_until_ready(
        make_train(net, rule, x, y, cfg)(params, feedback, split[:, 2])
    )
    return params, np.asarray(angles), time.perf_counter() - start


def test_errors(net, params, data) -> np.ndarray:
    """Test error of every seed (stacked params)."""
    x, y = jnp.asarray(data.x_test), np.asarray(data.y_test)
    out = jax.vmap(lambda p: jmlp.forward(net, p, x))(params)
    return np.mean(np.argmax(np.asarray(out), axis=-1) != y[None], axis=1)


def plot(results, cfg, out):
    hidden = len(cfg["hidden"])
    fig, axes = plt.subplots(1, hidden, figsize=(5 * hidden, 3.6), squeeze=False)
    steps = cfg["every"] * np.arange(1, cfg["steps"] // cfg["every"] + 1)
    for l, ax in enumerate(axes[0]):
        for rule, r in results.items():
            if rule == "backprop":
                continue
            a = np.asarray(r["angles"])[:, :, l]  # (seeds, measurements)
            ax.plot(steps, np.nanmean(a, 0), label=rule)
            ax.fill_between(steps, np.nanmin(a, 0), np.nanmax(a, 0), alpha=0.2)
        ax.axhline(90, color="gray", lw=0.8, ls="--")
        ax.set(
            xlabel="step", ylabel="angle to the gradient (degrees)", title=f"dW of layer {l + 1}"
        )
        ax.legend()
    return save_figure(fig, out, "angles.png")


def main(argv=None) -> dict:
    args = parse_args(__doc__, "learning_rules", argv)
    cfg = CONFIG | (QUICK if args.quick else {}) | {"seed": args.seed}
    data = jmlp.data.load(cfg["data"], seed=cfg["seed"])
    sizes = (data.x_train.shape[1], *cfg["hidden"], int(data.n_classes))
    net = jmlp.MLP(sizes, cfg["activation"], loss="cross_entropy")
    results = {}
    for rule in cfg["rules"]:
        params, angles, seconds = run_rule(net, rule, data, cfg)
        errors = test_errors(net, params, data)
        results[rule] = {"test_error": errors, "angles": angles, "seconds": seconds}
    print(
        f"{cfg['data']} {sizes} {cfg['activation']}, Adam lr {cfg['lr']}, {cfg['steps']} steps "
        f"of {cfg['batch']}, {cfg['seeds']} seeds; angles of dW^l to the gradient at the end "
        f"(mean over seeds, on {cfg['probe']} training rows)"
    )
    headers = ["rule", "test error mean", "std", "min", "max"]
    headers += [f"angle layer {l + 1}" for l in range(len(cfg["hidden"]))] + ["seconds"]
    body = []
    for rule, r in results.items():
        s = summary(r["test_error"])
        angles = r["angles"][:, -1, :-1].mean(0)  # the output layer's is 0 for every rule
        body.append([rule, s["mean"], s["std"], s["min"], s["max"], *angles, r["seconds"]])
        r["summary"] = s
    print(table(headers, body))
    plot(results, cfg, args.out)
    save_json(args.out, {"config": cfg, "sizes": sizes, "results": results})
    return results


if __name__ == "__main__":
    main()
