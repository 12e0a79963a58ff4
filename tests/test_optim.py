"""jmlp.optim: each hand-written optimizer against its optax twin, and against hand arithmetic."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmlp import optim

DTYPES = [jnp.float32, jnp.float64]

# Trajectory tolerances (100 steps, ours vs optax). Both compute the same formula in the same
# precision; they differ only in the order of a few roundings per step (e.g. g / d vs g * (1/d)).
# float32: eps = 1.2e-7, parameters are O(1), so a few ulps is ~2.4e-7 absolute, inside
# rtol 1e-6; atol 1e-7 (about one ulp at 1) covers the entries that pass near 0, whose rounding
# error comes from the O(1) terms they are computed from, not from their own size.
# float64: the same argument with eps = 2.2e-16.
TOL = {jnp.float32: {"rtol": 1e-6, "atol": 1e-7}, jnp.float64: {"rtol": 1e-12, "atol": 1e-15}}


# --- A small MLP, written here in pure jax (3-8-2, tanh hidden, identity output, MSE) ----------


def mlp_loss(params, x, y):
    h = jnp.tanh(x @ params[0]["W"] + params[0]["b"][None, :])
    y_hat = h @ params[1]["W"] + params[1]["b"][None, :]
    return jnp.mean((y_hat - y) ** 2)


def problem(dtype):
    """Parameters and a fixed batch of 16 examples, drawn in float64 and cast to ``dtype``."""
    k = jax.random.split(jax.random.key(0), 6)
    normal = lambda key, shape, scale: (scale * jax.random.normal(key, shape)).astype(dtype)
    params = [
        {"W": normal(k[0], (3, 8), 3**-0.5), "b": normal(k[1], (8,), 0.1)},
        {"W": normal(k[2], (8, 2), 8**-0.5), "b": normal(k[3], (2,), 0.1)},
    ]
    return params, (normal(k[4], (16, 3), 1.0), normal(k[5], (16, 2), 1.0))


def trajectory(opt, params, data, steps):
    """Params after ``steps`` full-batch steps of ``opt`` (one lax.scan)."""

    def step(carry, _):
        p, state = carry
        updates, state = opt.update(jax.grad(mlp_loss)(p, *data), state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), length=steps)
    return params


def w_only(params):
    """Mask for optax.add_decayed_weights: True on every layer's W, False on its b."""
    return [{"W": True, "b": False} for _ in params]


# name: (base learning rate, lr -> (jmlp optimizer, optax twin)). The adaptive methods use
# lr 1e-3: at 1e-2 RMSprop's near-sign steps start to oscillate within 100 steps, and an
# oscillating RMSprop amplifies a one-ulp difference to 1e-3 (measured), which would test the
# chaos, not the formula.
TWINS = {
    "sgd": (0.1, lambda lr: (optim.sgd(lr), optax.sgd(lr))),
    "momentum_004": (
        0.1,
        lambda lr: (
            optim.momentum(lr, gamma=0.9),
            optax.chain(optax.scale_by_learning_rate(lr), optax.trace(decay=0.9)),
        ),
    ),
    "ema_momentum_003": (
        0.1,
        lambda lr: (
            optim.ema_momentum(lr, beta=0.9),
            optax.chain(optax.ema(0.9, debias=False), optax.scale_by_learning_rate(lr)),
        ),
    ),
    "nesterov": (
        0.1,
        lambda lr: (optim.nesterov(lr, gamma=0.9), optax.sgd(lr, momentum=0.9, nesterov=True)),
    ),
    "rmsprop": (
        1e-3,
        lambda lr: (
            optim.rmsprop(lr, decay=0.9, eps=1e-8),
            optax.rmsprop(lr, decay=0.9, eps=1e-8, eps_in_sqrt=False),
        ),
    ),
    "rmsprop_eps_inside": (
        1e-3,
        lambda lr: (
            optim.rmsprop(lr, decay=0.9, eps=1e-8, eps_inside_sqrt=True),
            optax.rmsprop(lr, decay=0.9, eps=1e-8, eps_in_sqrt=True),
        ),
    ),
    "adam": (
        1e-3,
        lambda lr: (optim.adam(lr), optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)),
    ),
    "adam_003": (  # document 003's code: b1 0.99, m_hat / sqrt(v_hat + eps)
        1e-3,
        lambda lr: (
            optim.adam(lr, b1=0.99, b2=0.999, eps=1e-8, eps_inside_sqrt=True),
            optax.adam(lr, b1=0.99, b2=0.999, eps=0.0, eps_root=1e-8),
        ),
    ),
    "adamw": (
        1e-3,
        lambda lr: (optim.adamw(lr, weight_decay=0.1), optax.adamw(lr, weight_decay=0.1)),
    ),
    "l2_sgd": (
        0.1,
        lambda lr: (
            optax.chain(optim.add_l2(0.01), optim.sgd(lr)),
            optax.chain(optax.add_decayed_weights(0.01, mask=w_only), optax.sgd(lr)),
        ),
    ),
    "l2_adam": (
        1e-3,
        lambda lr: (
            optax.chain(optim.add_l2(0.01), optim.adam(lr)),
            optax.chain(optax.add_decayed_weights(0.01, mask=w_only), optax.adam(lr)),
        ),
    ),
}


def assert_trees_close(actual, expected, rtol, atol):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def assert_twin_trajectories_equal(name, dtype, schedule):
    base, make = TWINS[name]
    lr = optax.linear_schedule(base, base / 10, transition_steps=50) if schedule else base
    ours, twin = make(lr)
    params, data = problem(dtype)
    run = jax.jit(lambda p: (trajectory(ours, p, data, 100), trajectory(twin, p, data, 100)))
    ours_params, twin_params = run(params)
    assert_trees_close(ours_params, twin_params, **TOL[dtype])
    # The steps moved the parameters (a no-op optimizer would pass the check above with a no-op
    # twin, never with these).
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), ours_params, params)
    assert max(jax.tree.leaves(moved)) > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TWINS)
def test_100_steps_equal_optax_twin(name, dtype):
    assert_twin_trajectories_equal(name, dtype, schedule=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TWINS)
def test_schedule_gives_twin_trajectory(name, dtype):
    # optax.linear_schedule from base to base / 10 over 50 steps, the same object for both.
    assert_twin_trajectories_equal(name, dtype, schedule=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_momentum_004_equals_optax_sgd_momentum_for_constant_lr(dtype):
    # v_004 = eta * trace_optax, so the steps agree; they round differently (eta inside vs
    # outside the sum) and momentum accumulates the difference over ~1 / (1 - gamma) = 10 steps:
    # measured 3e-6 (float32) and 1e-15 (float64) after 100 steps at lr 0.1.
    params, data = problem(dtype)
    run = jax.jit(lambda opt, p: trajectory(opt, p, data, 100), static_argnums=0)
    ours = run(optim.momentum(0.1, gamma=0.9), params)
    twin = run(optax.sgd(0.1, momentum=0.9), params)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == jnp.float32 else {"rtol": 1e-12, "atol": 1e-14}
    assert_trees_close(ours, twin, **tol)


# --- State and compilation ---------------------------------------------------------------------


def one_gradient(dtype):
    params, data = problem(dtype)
    return params, jax.grad(mlp_loss)(params, *data)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TWINS)
def test_state_structure_and_dtypes_preserved(name, dtype):
    base, make = TWINS[name]
    opt = make(base)[0]
    params, grads = one_gradient(dtype)
    state0 = opt.init(params)
    updates, state1 = opt.update(grads, state0, params)
    assert jax.tree.structure(state1) == jax.tree.structure(state0)
    for a, b in zip(jax.tree.leaves(state1), jax.tree.leaves(state0)):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
        assert (u.dtype, u.shape) == (p.dtype, p.shape)
    # Every moment / velocity leaf has the parameter dtype (count is int32).
    floats = [leaf.dtype for leaf in jax.tree.leaves(state1) if leaf.dtype != jnp.int32]
    assert all(d == dtype for d in floats)


@pytest.mark.parametrize("name", TWINS)
def test_no_recompile_on_second_jitted_step(name):
    base, make = TWINS[name]
    opt = make(base)[0]
    params, grads = one_gradient(jnp.float32)
    traces = []

    def step(params, state):
        traces.append(1)  # runs only while tracing
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jitted = jax.jit(step)
    state = opt.init(params)
    for _ in range(3):
        params, state = jitted(params, state)
    assert len(traces) == 1
    assert jitted._cache_size() == 1


# --- One step against numbers worked by hand ---------------------------------------------------

THETA = [1.0, -2.0]
G1 = [0.5, -1.0]
G2 = [-1.0, 2.0]

# (id, optimizer, params, gradients of successive steps, expected update of the last step)
HAND = [
    # update = -eta g = -0.1 (0.5, -1)
    ("sgd", optim.sgd(0.1), THETA, [G1], [-0.05, 0.1]),
    # 004: v1 = 0.1 g = (0.05, -0.1); v2 = 0.9 v1 + 0.1 g = 0.19 g = (0.095, -0.19); update = -v2
    ("momentum_004", optim.momentum(0.1, gamma=0.9), THETA, [G1, G1], [-0.095, 0.19]),
    # 003: m1 = 0.1 g; m2 = 0.9 m1 + 0.1 g = 0.19 g = (0.095, -0.19); update = -0.1 m2
    ("ema_momentum_003", optim.ema_momentum(0.1, beta=0.9), THETA, [G1, G1], [-0.0095, 0.019]),
    # v1 = g; v2 = 0.9 g + g = 1.9 g; update = -0.1 (g + 0.9 * 1.9 g) = -0.271 g
    ("nesterov", optim.nesterov(0.1, gamma=0.9), THETA, [G1, G1], [-0.1355, 0.271]),
    # s = 0.1 g^2 = (0.025, 0.1); update = -0.01 g / (sqrt(s) + 1e-8)
    (
        "rmsprop",
        optim.rmsprop(0.01, decay=0.9, eps=1e-8),
        THETA,
        [G1],
        [-0.005 / (math.sqrt(0.025) + 1e-8), 0.01 / (math.sqrt(0.1) + 1e-8)],
    ),
    # same s; update = -0.01 g / sqrt(s + 1e-8)
    (
        "rmsprop_eps_inside",
        optim.rmsprop(0.01, decay=0.9, eps=1e-8, eps_inside_sqrt=True),
        THETA,
        [G1],
        [-0.005 / math.sqrt(0.025 + 1e-8), 0.01 / math.sqrt(0.1 + 1e-8)],
    ),
    # Adam step 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2,
    # update = -0.01 g / (|g| + 1e-8) = (-0.005 / (0.5 + 1e-8), 0.01 / (1 + 1e-8))
    ("adam_step1", optim.adam(0.01), THETA, [G1], [-0.005 / (0.5 + 1e-8), 0.01 / (1 + 1e-8)]),
    # 003's Adam (b1 0.99, eps inside): m = 0.01 g, m_hat = g, v_hat = g^2,
    # update = -0.01 g / sqrt(g^2 + 1e-8)
    (
        "adam_003_step1",
        optim.adam(0.01, b1=0.99, b2=0.999, eps=1e-8, eps_inside_sqrt=True),
        THETA,
        [G1],
        [-0.005 / math.sqrt(0.25 + 1e-8), 0.01 / math.sqrt(1 + 1e-8)],
    ),
    # Adam step 2 (g2 = (-1, 2)): m2 = 0.9 * 0.1 g1 + 0.1 g2 = (0.045 - 0.1, -0.09 + 0.2)
    # = (-0.055, 0.11); v2 = 0.999 * 0.001 g1^2 + 0.001 g2^2 = (0.00024975 + 0.001,
    # 0.000999 + 0.004) = (0.00124975, 0.004999); m_hat = m2 / (1 - 0.9^2) = m2 / 0.19,
    # v_hat = v2 / (1 - 0.999^2) = v2 / 0.001999; update = -0.01 m_hat / (sqrt(v_hat) + 1e-8)
    (
        "adam_step2",
        optim.adam(0.01),
        THETA,
        [G1, G2],
        [
            -0.01 * (-0.055 / 0.19) / (math.sqrt(0.00124975 / 0.001999) + 1e-8),
            -0.01 * (0.11 / 0.19) / (math.sqrt(0.004999 / 0.001999) + 1e-8),
        ],
    ),
    # AdamW step 1: direction g / (|g| + eps) as Adam's; update = -0.01 (direction + 0.1 theta)
    (
        "adamw_step1",
        optim.adamw(0.01, weight_decay=0.1),
        THETA,
        [G1],
        [-0.01 * (0.5 / (0.5 + 1e-8) + 0.1), -0.01 * (-1 / (1 + 1e-8) - 0.2)],
    ),
    # L2 on W only: g_W = (0.5 + 0.1 * 1, -1 + 0.1 * -2) = (0.6, -1.2); g_b unchanged
    (
        "add_l2",
        optim.add_l2(0.1),
        {"W": THETA, "b": [3.0, -4.0]},
        [{"W": G1, "b": G1}],
        {"W": [0.6, -1.2], "b": [0.5, -1.0]},
    ),
    # then sgd 0.1: (-0.06, 0.12) on W, (-0.05, 0.1) on b
    (
        "add_l2_then_sgd",
        optax.chain(optim.add_l2(0.1), optim.sgd(0.1)),
        {"W": THETA, "b": [3.0, -4.0]},
        [{"W": G1, "b": G1}],
        {"W": [-0.06, 0.12], "b": [-0.05, 0.1]},
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("opt", "params", "grads", "expected"), [h[1:] for h in HAND], ids=[h[0] for h in HAND]
)
def test_steps_match_hand_arithmetic(opt, params, grads, expected, dtype):
    # Each Python list is one array leaf, so {"W": [1.0, -2.0]} is one leaf under the key "W".
    def as_arrays(tree):
        is_list = lambda x: isinstance(x, list) and not isinstance(x[0], dict)
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=dtype), tree, is_leaf=is_list)

    params = as_arrays(params)
    state = opt.init(params)
    for g in grads:  # params held fixed: only the optimizer's arithmetic is under test
        updates, state = opt.update(as_arrays(g), state, params)
    expected = as_arrays(expected)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-12
    assert_trees_close(updates, expected, rtol=rtol, atol=0)


# --- vmap over hyper-parameters ------------------------------------------------------------------


def two_steps(opt, params, grads):
    """Params, state and last updates after two steps with the same gradient (no lax.scan)."""
    state = opt.init(params)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)  # casts back to the params dtype
    return params, state, updates


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TWINS)
def test_vmap_over_learning_rates(name, dtype):
    base, make = TWINS[name]
    params, grads = one_gradient(dtype)
    factors = [0.5, 1.0, 2.0]
    # The learning rates are a float64 array even for float32 params: updates and state must not
    # be promoted (the dtype check in assert_trees_close would see it).
    lrs = jnp.asarray([f * base for f in factors], dtype=jnp.float64)
    batched = jax.jit(jax.vmap(lambda lr: two_steps(make(lr)[0], params, grads)))(lrs)
    for i, f in enumerate(factors):
        single = two_steps(make(f * base)[0], params, grads)  # Python float lr, not jitted
        assert_trees_close(jax.tree.map(lambda b, i=i: b[i], batched), single, **TOL[dtype])


ARRAY_HYPER = [
    (optim.momentum, {"gamma": 0.9}),
    (optim.ema_momentum, {"beta": 0.9}),
    (optim.nesterov, {"gamma": 0.9}),
    (optim.rmsprop, {"decay": 0.9, "eps": 1e-8}),
    (optim.adam, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    (optim.adamw, {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.1}),
    (lambda lr, reg: optax.chain(optim.add_l2(reg), optim.sgd(lr)), {"reg": 0.1}),
]


@pytest.mark.parametrize(
    ("make", "hyper"),
    ARRAY_HYPER,
    ids=["momentum", "ema", "nesterov", "rmsprop", "adam", "adamw", "l2"],
)
def test_float64_array_hyper_parameters_keep_float32_params(make, hyper):
    # Every hyper-parameter given as a float64 array, params in float32: the steps equal those
    # with Python floats, in float32 (1 - 0.999 must be formed before the cast to float32).
    params, grads = one_gradient(jnp.float32)
    as_arrays = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in hyper.items()}
    with_arrays = two_steps(make(jnp.asarray(1e-3, dtype=jnp.float64), **as_arrays), params, grads)
    with_floats = two_steps(make(1e-3, **hyper), params, grads)
    assert_trees_close(with_arrays, with_floats, **TOL[jnp.float32])


# --- Bad input -----------------------------------------------------------------------------------

CONSTRUCTORS = [
    optim.sgd,
    optim.momentum,
    optim.ema_momentum,
    optim.nesterov,
    optim.rmsprop,
    optim.adam,
    optim.adamw,
]


@pytest.mark.parametrize("learning_rate", [0.0, -0.1, math.nan, math.inf, -1])
@pytest.mark.parametrize("make", CONSTRUCTORS)
def test_bad_learning_rate_raises_value_error(make, learning_rate):
    with pytest.raises(ValueError, match="learning_rate"):
        make(learning_rate)


@pytest.mark.parametrize("make", CONSTRUCTORS)
def test_learning_rate_of_wrong_type_raises_type_error(make):
    with pytest.raises(TypeError, match="learning_rate"):
        make("0.1")


@pytest.mark.parametrize("value", [1.0, -0.1, 1.5, math.nan])
@pytest.mark.parametrize("name", ["b1", "b2"])
@pytest.mark.parametrize("make", [optim.adam, optim.adamw])
def test_adam_betas_outside_unit_interval_raise(make, name, value):
    with pytest.raises(ValueError, match=name):
        make(1e-3, **{name: value})


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "name"),
    [
        (optim.momentum, {"gamma": 1.0}, ValueError, "gamma"),
        (optim.nesterov, {"gamma": -0.5}, ValueError, "gamma"),
        (optim.ema_momentum, {"beta": 1.0}, ValueError, "beta"),
        (optim.rmsprop, {"decay": 1.2}, ValueError, "decay"),
        (optim.rmsprop, {"eps": -1e-8}, ValueError, "eps"),
        (optim.adam, {"eps": math.nan}, ValueError, "eps"),
        (optim.adam, {"eps_inside_sqrt": "yes"}, TypeError, "eps_inside_sqrt"),
        (optim.adamw, {"weight_decay": -0.1}, ValueError, "weight_decay"),
    ],
)
def test_bad_hyper_parameters_raise(make, kwargs, error, name):
    with pytest.raises(error, match=name):
        make(0.1, **kwargs)


def test_bad_reg_raises():
    with pytest.raises(ValueError, match="reg"):
        optim.add_l2(-0.1)


@pytest.mark.parametrize("opt", [optim.add_l2(0.1), optim.adamw(0.1)], ids=["add_l2", "adamw"])
def test_update_without_params_raises(opt):
    params = {"W": jnp.ones((2, 2), dtype=jnp.float32)}
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params))


@pytest.mark.parametrize("make", [optim.adam, optim.adamw, optim.rmsprop])
def test_eps_that_float16_rounds_to_zero_is_refused(make):
    """1e-8 is 0 in float16 (its smallest subnormal is 2^-24 = 6e-8): a zero gradient then gives
    0 / (sqrt(0) + 0) = NaN at the first step. init names eps and the dtype."""
    params = {"W": jnp.ones((2, 2), jnp.float16)}
    assert float(jnp.float16(1e-8)) == 0.0  # the premise
    with pytest.raises(ValueError, match=r"eps: 1e-08 rounds to 0 in float16"):
        make(1e-3).init(params)
    # an eps float16 holds takes a finite step from a zero gradient
    opt = make(1e-3, eps=1e-4)
    updates, _ = opt.update(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)
    assert bool(jnp.all(jnp.isfinite(updates["W"])))
    make(1e-3).init({"W": jnp.ones((2, 2), jnp.bfloat16)})  # bfloat16 holds 1e-8


# --- scikit-learn's SGD: identical updates from the same gradients -----------------------------


def sklearn_sgd_steps(params, grads, schedule, momentum, nesterov, epochs, steps, samples):
    """scikit-learn's own SGDOptimizer driven with ``grads[e][s]``: its updates, in float64."""
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    flat = [np.array(a, np.float64) for layer in params for a in (layer["W"], layer["b"])]
    sgd = SGDOptimizer(flat, 0.1, schedule, momentum, nesterov, power_t=0.4)
    t, out = 0, []
    for e in range(epochs):
        for s in range(steps):
            before = [a.copy() for a in flat]
            sgd.update_params(flat, [np.asarray(g, np.float64) for g in grads[e][s]])
            out.append([a - b for a, b in zip(flat, before)])
        t += samples
        sgd.iteration_ends(t)
    return out


@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, True), (0.9, False), (0.9, True)])
def test_velocity_sgd_takes_scikit_learns_steps(schedule, momentum, nesterov):
    params, _ = problem(jnp.float64)
    epochs, steps, samples = 3, 4, 30  # 4 batches of <= 8 rows
    rng = np.random.default_rng(0)
    grads = [[[rng.normal(size=np.shape(a)) for layer in params for a in (layer["W"], layer["b"])]
              for _ in range(steps)] for _ in range(epochs)]  # fmt: skip
    expected = sklearn_sgd_steps(
        params, grads, schedule, momentum, nesterov, epochs, steps, samples
    )
    power = 0.4 if schedule == "invscaling" else 0.0
    eta = optim.inverse_scaling_by_epoch(0.1, power, steps, samples)
    opt = optim.velocity_sgd(eta, momentum, nesterov)
    state = opt.init(params)
    update = jax.jit(opt.update)
    for k, step in enumerate(expected):
        g = grads[k // steps][k % steps]
        g = [{"W": jnp.asarray(g[2 * i]), "b": jnp.asarray(g[2 * i + 1])} for i in range(2)]
        updates, state = update(g, state)
        ours = [a for layer in updates for a in (layer["W"], layer["b"])]
        for a, b in zip(ours, step, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_inverse_scaling_by_epoch_continues_a_run():
    """Epoch 0 at (samples_first + 1)^-p, epoch e at (samples_before + e n + 1)^-p."""
    eta = optim.inverse_scaling_by_epoch(0.5, 0.5, 3, 10, samples_first=24, samples_before=24)
    got = [float(eta(jnp.asarray(c))) for c in (0, 2, 3, 5, 6)]
    want = [0.5 / 5, 0.5 / 5, 0.5 / 35**0.5, 0.5 / 35**0.5, 0.5 / 45**0.5]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    fresh = optim.inverse_scaling_by_epoch(0.5, 0.5, 3, 10, samples_before=24)
    assert float(fresh(jnp.asarray(0))) == 0.5


def test_velocity_sgd_checks_its_settings():
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\], got 1.5"):
        optim.velocity_sgd(0.1, 1.5)
    with pytest.raises(TypeError, match="nesterov: expected a bool"):
        optim.velocity_sgd(0.1, 0.9, nesterov=1)
