"""Document 004's figures, recomputed with jmlp: activations, losses under outliers, optimizers.

    python experiments/doc004_figures.py [--out DIR] [--quick]

1. activations.png: every activation of jmlp.ACTIVATIONS with its hand-written derivative; each
   panel's title gives max |sigma'(z) - jax.grad(sigma)(z)| over the plotted grid (float64);
   softmax's hand-written vector-Jacobian product is checked against jax.vjp.
2. losses_outliers.png: MSE, MAE and Huber (004, section 3) as functions of the residual, and a
   line y = theta_0 + theta_1 x fitted under each (a 1-1 jmlp network, full-batch Adam) to data
   with 10% outliers: MSE is pulled toward the outliers, MAE and Huber much less.
3. optimizer_paths.png, optimizer_losses.png: batch, stochastic and mini-batch gradient descent,
   momentum (004's form v = gamma v + eta g), RMSprop and Adam (jmlp.optim) on the contour of
   004's linear-regression loss L(theta_0, theta_1) = 1/n sum (y_i - theta_0 - theta_1 x_i)^2,
   starting from theta = (0, 0) as 004 says. 004 gives no data; these are y = 4 + 3 x + N(0, 1)
   for x ~ U(0, 2), n = 100.
Writes results.json and the four PNG files.
"""

import jax

jax.config.update("jax_enable_x64", True)  # derivative checks in float64

import jax.numpy as jnp
import numpy as np
import optax
from common import parse_args, save_figure, save_json, table

import jmlp

CONFIG = {
    "z_grid": (-5.0, 5.0, 2001),
    "outliers": {
        "n": 50,
        "n_outliers": 5,
        "intercept": 1.0,
        "slope": 0.5,
        "noise": 0.5,
        "shift": 15.0,
        "huber_delta": 1.0,
        "lr": 0.1,
        "epochs": 3000,
    },
    "paths": {"n": 100, "intercept": 4.0, "slope": 3.0, "steps": 100},
    "optimizers": {  # name: (jmlp.optim factory, its arguments, batch size; None = all)
        "batch GD": ("sgd", {"learning_rate": 0.2}, None),
        "stochastic GD": ("sgd", {"learning_rate": 0.05}, 1),
        "mini-batch GD": ("sgd", {"learning_rate": 0.2}, 10),
        "momentum": ("momentum", {"learning_rate": 0.05, "gamma": 0.9}, None),
        "RMSprop": ("rmsprop", {"learning_rate": 0.1, "decay": 0.9}, None),
        "Adam": ("adam", {"learning_rate": 0.3}, None),
    },
}
QUICK = {"epochs": 20, "steps": 10}


# ----------------------------------------------------------------------------- activations


def activation_checks(grid) -> dict:
    """max |hand-written derivative - jax.grad| over ``grid`` for every element-wise activation,
    and max |hand-written softmax vjp - jax.vjp| on random rows."""
    z = jnp.linspace(*grid)
    checks = {}
    for name, (fn, deriv) in jmlp.ACTIVATIONS.items():
        if deriv is None:
            continue
        h = fn(z)
        auto = jax.vmap(jax.grad(fn))(z)
        checks[name] = {
            "z": z,
            "h": h,
            "deriv": deriv(z, h),
            "max_abs_diff": float(jnp.max(jnp.abs(deriv(z, h) - auto))),
        }
    zs, g = jax.random.normal(jax.random.key(0), (2, 64, 10), jnp.float64)
    record = jmlp.MLP((10, 10), output_activation="softmax").activations[-1]
    hand = record.vjp(zs, record.fn(zs), g)  # s * (g - <g, s>), 000's erratum
    auto = jax.vmap(lambda zi, gi: jax.vjp(record.fn, zi)[1](gi)[0])(zs, g)
    checks["softmax (vjp)"] = {"max_abs_diff": float(jnp.max(jnp.abs(hand - auto)))}
    return checks


def plot_activations(checks: dict, out: str) -> None:
    import matplotlib.pyplot as plt

    names = [n for n in checks if "z" in checks[n]]
    cols = 3
    fig, axes = plt.subplots(-(-len(names) // cols), cols, figsize=(12, 3 * -(-len(names) // 3)))
    for ax, name in zip(axes.ravel(), names):
        c = checks[name]
        ax.plot(c["z"], c["h"], label="sigma(z)")
        ax.plot(c["z"], c["deriv"], label="sigma'(z), hand-written")
        ax.set_title(f"{name}: max|sigma' - jax.grad| = {c['max_abs_diff']:.1e}", fontsize=9)
        ax.axhline(0, color="gray", lw=0.5)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"Activations and derivatives (float64). softmax: max|s (g - <g, s>) - jax.vjp|"
        f" = {checks['softmax (vjp)']['max_abs_diff']:.1e}",
        fontsize=10,
    )
    save_figure(fig, out, "activations.png")


# ----------------------------------------------------------------------------- losses


def outlier_data(c: dict, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, c["n"])
    y = c["intercept"] + c["slope"] * x + rng.normal(0, c["noise"], c["n"])
    idx = np.argsort(x)[-2 * c["n_outliers"] :][::2]  # outliers among the largest x
    y[idx] += c["shift"]
    return x[:, None], y[:, None], idx


def fit_line(loss: str, x, y, c: dict) -> tuple[float, float]:
    """(theta_0, theta_1) minimising the mean ``loss`` over (x, y): a 1-1 identity network."""
    net = jmlp.MLP((1, 1), output_activation="identity", loss=loss, huber_delta=c["huber_delta"])
    params = [{"W": jnp.zeros((1, 1)), "b": jnp.zeros(1)}]
    opt = jmlp.optim.adam(optax.cosine_decay_schedule(c["lr"], c["epochs"]))
    res = jmlp.fit(net, params, opt, x, y, epochs=c["epochs"])
    return float(res.params[0]["b"][0]), float(res.params[0]["W"][0, 0])


def plot_losses(x, y, idx, lines: dict, c: dict, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    r = jnp.linspace(-3, 3, 301)[:, None]
    for name in ("mse", "mae", "huber"):
        value = jmlp.LOSSES[name].value(r, jnp.zeros_like(r))
        if name == "huber" and c["huber_delta"] != 1.0:
            raise ValueError("the plot uses the table's Huber with delta = 1")
        ax0.plot(r[:, 0], value, label=name)
    ax0.set(xlabel="residual y - t", ylabel="loss", title="Per-example losses (Huber delta 1)")
    ax0.legend()
    ax1.scatter(x, y, s=12, color="gray", label="data")
    ax1.scatter(x[idx], y[idx], s=30, color="red", label="outliers")
    grid = np.linspace(0, 10, 2)
    for name, (b, w) in lines.items():
        ax1.plot(grid, b + w * grid, label=f"{name}: {b:.2f} + {w:.3f} x")
    ax1.set(xlabel="x", ylabel="y", title="A line fitted under each loss")
    ax1.legend(fontsize=8)
    save_figure(fig, out, "losses_outliers.png")


# ----------------------------------------------------------------------------- optimizers


def regression_data(c: dict, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, c["n"])
    y = c["intercept"] + c["slope"] * x + rng.normal(0, 1, c["n"])
    return jnp.asarray(x[:, None]), jnp.asarray(y[:, None])


def path(opt, batch, x, y, steps: int, key) -> np.ndarray:
    """theta = (theta_0, theta_1) after each of ``steps`` updates from (0, 0): ``(steps + 1, 2)``.
    Each step's batch is drawn afresh (``batch`` examples without replacement; None = all)."""
    net = jmlp.MLP((1, 1), output_activation="identity", loss="mse")
    params = [{"W": jnp.zeros((1, 1)), "b": jnp.zeros(1)}]
    n = x.shape[0]

    def step(carry, k):
        params, state = carry
        idx = jnp.arange(n) if batch is None else jax.random.choice(k, n, (batch,), replace=False)
        _, grads = jmlp.backprop(net, params, x[idx], y[idx])
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), jnp.stack([params[0]["b"][0], params[0]["W"][0, 0]])

    _, thetas = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
    return np.vstack([np.zeros((1, 2)), np.asarray(thetas)])


def mse_surface(x, y, t0, t1):
    """004's L(theta_0, theta_1) evaluated in numpy on a grid (independent of jmlp)."""
    x, y = np.asarray(x)[:, 0], np.asarray(y)[:, 0]
    r = y[None, None, :] - t0[..., None] - t1[..., None] * x[None, None, :]
    return np.mean(r**2, axis=-1)


def plot_paths(x, y, paths: dict, optimum, out: str) -> None:
    import matplotlib.pyplot as plt

    t0, t1 = np.meshgrid(np.linspace(-1, 7, 200), np.linspace(-1, 6, 200))
    surface = mse_surface(x, y, t0, t1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    names = list(paths)
    for ax, group in zip(axes, (names[:3], names[3:])):
        ax.contour(
            t0,
            t1,
            surface,
            levels=np.geomspace(surface.min() * 1.01, surface.max(), 25),
            cmap="viridis",
            linewidths=0.7,
        )
        for name in group:
            p = paths[name]
            ax.plot(p[:, 0], p[:, 1], marker=".", ms=3, lw=1, label=name)
        ax.plot(*optimum, "k*", ms=12, label="least squares")
        ax.set(xlabel="theta_0", ylabel="theta_1", xlim=(-1, 7), ylim=(-1, 6))
        ax.legend()
    axes[0].set_title("Gradient descent: batch, stochastic, mini-batch")
    axes[1].set_title("Momentum, RMSprop, Adam (full batch)")
    save_figure(fig, out, "optimizer_paths.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, p in paths.items():
        ax.semilogy(
            mse_surface(x, y, p[:, :1], p[:, 1:2])[:, 0] - surface.min() + 1e-12, label=name
        )
    ax.set(
        xlabel="step",
        ylabel="L(theta) - min over the plotted grid",
        title="004's linear-regression loss",
    )
    ax.legend(fontsize=8)
    save_figure(fig, out, "optimizer_losses.png")


def activations_part(cfg: dict, out: str) -> dict:
    checks = activation_checks(cfg["z_grid"])
    rows = [[k, v["max_abs_diff"]] for k, v in checks.items()]
    print(table(["activation", "max |hand - autodiff|"], rows))
    plot_activations(checks, out)
    return {"activation_max_abs_diff": {k: v["max_abs_diff"] for k, v in checks.items()}}


def losses_part(cfg: dict, seed: int, out: str) -> dict:
    c = cfg["outliers"]
    x, y, idx = outlier_data(c, seed)
    clean = np.setdiff1d(np.arange(len(x)), idx)
    lines = {name: fit_line(name, x, y, c) for name in ("mse", "mae", "huber")}
    lines["mse, outliers removed"] = fit_line("mse", x[clean], y[clean], c)
    lstsq = np.polyfit(x[:, 0], y[:, 0], 1)[::-1]  # the MSE line in closed form (numpy)
    truth = (c["intercept"], c["slope"])
    rows = [[k, b, w, float(np.hypot(b - truth[0], w - truth[1]))] for k, (b, w) in lines.items()]
    print("\n" + table(["loss", "theta_0", "theta_1", "|theta - truth|"], rows))
    gap = float(np.max(np.abs(np.array(lines["mse"]) - lstsq)))
    print(f"mse line vs numpy least squares: max |difference| = {gap:.2e}")
    plot_losses(x, y, idx, lines, c, out)
    return {
        "lines": {k: {"theta_0": b, "theta_1": w} for k, (b, w) in lines.items()},
        "truth": truth,
        "mse_vs_lstsq": gap,
    }


def paths_part(cfg: dict, seed: int, out: str) -> dict:
    x, y = regression_data(cfg["paths"], seed)
    optimum = np.linalg.lstsq(np.c_[np.ones(len(x)), x], y, rcond=None)[0][:, 0]
    paths, key = {}, jax.random.key(seed)
    for name, (factory, kw, batch) in cfg["optimizers"].items():
        opt = getattr(jmlp.optim, factory)(**kw)
        paths[name] = path(opt, batch, x, y, cfg["paths"]["steps"], key)
    final = {
        name: {
            "theta": p[-1],
            "distance": float(np.hypot(*(p[-1] - optimum))),
            "loss": float(mse_surface(x, y, p[-1:, :1], p[-1:, 1:])[0, 0]),
        }
        for name, p in paths.items()
    }
    print(
        f"\nleast squares optimum theta = {np.round(optimum, 4).tolist()}; "
        f"{cfg['paths']['steps']} steps from (0, 0):"
    )
    rows = [[k, *v["theta"], v["distance"], v["loss"]] for k, v in final.items()]
    print(table(["optimizer", "theta_0", "theta_1", "|theta - optimum|", "loss"], rows))
    plot_paths(x, y, paths, optimum, out)
    return {"optimum": optimum, "paths": paths, "final": final}


def main(argv=None) -> dict:
    args = parse_args(__doc__, "doc004_figures", argv)
    cfg = CONFIG
    if args.quick:
        cfg = CONFIG | {
            "outliers": CONFIG["outliers"] | {"epochs": QUICK["epochs"]},
            "paths": CONFIG["paths"] | {"steps": QUICK["steps"]},
        }
    results = {"config": cfg} | activations_part(cfg, args.out)
    results |= losses_part(cfg, args.seed, args.out) | paths_part(cfg, args.seed, args.out)
    save_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
