"""Backprop, feedback alignment, direct feedback alignment and sign symmetry on the 8x8 digits, on
MNIST-1D, and in a deep narrow network.

    python experiments/learning_rules.py [--out DIR] [--quick] [--seed S]

Three studies, each trained by every rule with ``jmlp.fit_many(rule=..., alignment=True)``: the
seeds are the members (seed s draws the initial weights, the same for every rule, the feedback
matrices and the minibatch order), Adam on minibatches, softmax output and cross-entropy:

- ``digits``: scikit-learn's 8x8 digits (1797 x 64, stratified 80/20), 64-128-128-10 tanh;
- ``mnist1d``: MNIST-1D (Greydanus 2020; 5000 x 40, its 4000/1000 split), 40-128-128-10 tanh;
- ``deep``: the digits again through ten tanh layers of 32 units.

After every epoch the history holds, per layer, the angle between the rule's weight update and
the true gradient on the whole training set (and FA's angle between W and B). Lillicrap et al.
(2016) and Nokland (2016) find that FA and DFA come within a few points of backprop's test error
and that the angle falls well below 90 degrees; Nokland reports DFA training very deep tanh
networks, the error reaching every layer in one step rather than through the whole chain.
Prints a markdown table; writes results.json and angles.png.
"""

import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax
from common import parse_args, save_figure, save_json, summary

import jmlp

RULES = ("backprop", "fa", "dfa", "sign")
CONFIG = {
    "seeds": 5,
    "batch": 32,
    "lr": 1e-3,
    "studies": {
        "digits": {"data": "digits", "hidden": (128, 128), "epochs": 45},
        "mnist1d": {"data": "mnist1d", "hidden": (128, 128), "epochs": 30},
        "deep": {"data": "digits", "hidden": (32,) * 10, "epochs": 45},
    },
}
QUICK = {  # the deep study alone, small: one compiled program per rule
    "seeds": 2,
    "studies": {"deep": {"data": "digits", "hidden": (8,) * 3, "epochs": 2}},
}


def train_rule(net, rule, data, cfg, seed):
    """``fit_many`` of ``rule`` over the seeds: the result and its seconds (compile included)."""
    keys = jax.vmap(lambda k: jax.random.split(k, 3))(
        jax.random.split(jax.random.key(seed), cfg["seeds"])
    )
    params = jmlp.init_many(keys[:, 0], net.sizes, weight_init="glorot_normal")
    feedback = jax.vmap(lambda k: jmlp.init_feedback(k, net.sizes, rule))(keys[:, 1]) or None
    start = time.perf_counter()
    result = jmlp.fit_many(
        net, params, optax.adam(cfg["lr"]), data.x_train, data.y_train,
        epochs=cfg["epochs"], batch_size=cfg["batch"], key=keys[:, 2], rule=rule,
        feedback=feedback, alignment=rule != "backprop",
    )  # fmt: skip
    jax.block_until_ready(result.params)
    return result, time.perf_counter() - start


def angles(history, depth, name="update_angle", first=1) -> np.ndarray:
    """``(seeds, epochs, layers)``: the history's angle columns ``name_l``, l = first..depth."""
    columns = [history.get(f"{name}_{l}") for l in range(first, depth + 1)]
    if any(c is None for c in columns):
        return np.zeros((0, 0, 0))
    return np.stack(columns, axis=-1)


def run_study(study, cfg, seed) -> dict:
    data = jmlp.data.load(study["data"], seed=seed)
    sizes = (data.x_train.shape[1], *study["hidden"], int(data.n_classes))
    net = jmlp.MLP(sizes, "tanh", loss="cross_entropy")
    cfg = cfg | study
    results = {}
    for rule in RULES:
        result, seconds = train_rule(net, rule, data, cfg, seed)
        errors = np.asarray(jmlp.error_rate(net, result.params, data.x_test, data.y_test))
        depth = len(sizes) - 1
        results[rule] = {
            "test_error": errors,
            "train_loss": result.history["loss"][:, -1],
            "angles": angles(result.history, depth),
            "feedback_angles": angles(result.history, depth, "feedback_angle", 2),
            "seconds": seconds,
            "summary": summary(errors),
        }
    return {"sizes": sizes, "rules": results}


def markdown(headers, rows) -> str:
    """A markdown table; floats with 3 significant digits."""
    cell = lambda c: c if isinstance(c, str) else f"{c:.3g}"
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def report(studies: dict, cfg) -> str:
    """One row per study and rule: test error over the seeds, the final training loss, the
    angles of the first and last hidden layers' updates at the last epoch (mean over seeds)."""
    headers = ["study", "net", "rule", "test error mean", "std", "min", "max", "train loss",
               "angle first hidden", "angle last hidden", "seconds"]  # fmt: skip
    rows = []
    for name, study in studies.items():
        net = "-".join(map(str, study["sizes"]))
        for rule, r in study["rules"].items():
            s, a = r["summary"], np.asarray(r["angles"])
            first, last = (a[:, -1, 0].mean(), a[:, -1, -2].mean()) if a.size else (0.0, 0.0)
            rows.append([name, net, rule, f"{100 * s['mean']:.2f}%", f"{100 * s['std']:.2f}",
                         f"{100 * s['min']:.2f}%", f"{100 * s['max']:.2f}%",
                         float(np.mean(r["train_loss"])), first, last, r["seconds"]])  # fmt: skip
    return markdown(headers, rows)


def plot(studies: dict, out):
    """Per study: the first and last hidden layers' update angles over the epochs (mean over
    seeds, band min to max); for the deepest net also every hidden layer's at the last epoch."""
    rows = -(-(len(studies) + 1) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.8 * rows), squeeze=False)
    axes = axes.ravel()[: len(studies) + 1]
    colors = {"fa": "C0", "dfa": "C1", "sign": "C2"}
    for ax, (name, study) in zip(axes, studies.items()):
        for rule, r in study["rules"].items():
            a = np.asarray(r["angles"])
            if rule == "backprop" or not a.size:
                continue
            epochs = np.arange(1, a.shape[1] + 1)
            for layer, style in ((0, "-"), (a.shape[2] - 2, "--")):
                ax.plot(epochs, a[:, :, layer].mean(0), style, color=colors[rule],
                        label=f"{rule} layer {layer + 1}")  # fmt: skip
                ax.fill_between(epochs, a[:, :, layer].min(0), a[:, :, layer].max(0),
                                color=colors[rule], alpha=0.15)  # fmt: skip
        ax.axhline(90, color="gray", lw=0.8, ls="--")
        ax.set(xlabel="epoch", ylabel="angle of dW to the gradient (degrees)", title=name)
        ax.legend(fontsize=7)
    deep = max(studies.values(), key=lambda study: len(study["sizes"]))["rules"]
    for rule in ("fa", "dfa", "sign"):
        a = np.asarray(deep[rule]["angles"])[:, -1, :-1]  # the hidden layers at the last epoch
        layers = np.arange(1, a.shape[1] + 1)
        axes[-1].errorbar(layers, a.mean(0), yerr=a.std(0), marker="o", color=colors[rule],
                          label=rule, capsize=2)  # fmt: skip
    axes[-1].axhline(90, color="gray", lw=0.8, ls="--")
    axes[-1].set(xlabel="hidden layer", ylabel="angle at the last epoch (degrees)",
                 title="deepest net: angle by layer")  # fmt: skip
    axes[-1].legend(fontsize=7)
    return save_figure(fig, out, "angles.png")


def main(argv=None) -> dict:
    args = parse_args(__doc__, "learning_rules", argv)
    cfg = CONFIG | (QUICK if args.quick else {})
    studies = {}
    for name, study in cfg["studies"].items():
        studies[name] = run_study(study, {k: v for k, v in cfg.items() if k != "studies"},
                                  args.seed)  # fmt: skip
    print(
        f"tanh networks, softmax + cross-entropy, Adam lr {cfg['lr']}, minibatches of "
        f"{cfg['batch']}, {cfg['seeds']} seeds (members of one fit_many per rule); angles at the "
        "last epoch on the training set, mean over seeds\n"
    )
    print(report(studies, cfg))
    plot(studies, args.out)
    save_json(args.out, {"config": cfg, "studies": studies})
    return studies


if __name__ == "__main__":
    main()
