"""The hand-written backward pass against autodiff: every hidden activation x every (output
activation, loss) pair x depth x dtype, mixed per-layer activations, central finite differences,
the custom_vjp wrapper, vmap, jit, and the returned pytree.

Speed: each case is a different spec, so jitting it would compile it (~0.25 s per case on a
2-core box); run eagerly, every case has the same shapes and reuses the per-primitive compile
cache (~0.05 s per case). The matrix therefore runs eagerly; jit is tested separately below.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TOL
from jax import test_util
from jax.flatten_util import ravel_pytree

import jmlp
from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY

HIDDEN = [name for name in ACTIVATIONS if name not in OUTPUT_ONLY]
PAIRS = [
    ("softmax", "cross_entropy"),  # fused
    ("sigmoid", "binary_cross_entropy"),  # fused
    ("identity", "half_sse"),  # fused
    ("identity", "mse"),
    ("identity", "mae"),
    ("identity", "huber"),
    ("tanh", "hinge"),
    ("identity", "hinge"),
    ("softmax", "mse"),
    ("softmax", "half_sse"),
    ("sigmoid", "mse"),
    ("sigmoid", "cross_entropy"),
]
N_IN, WIDTH, N_OUT, BATCH = 4, 4, 4, 5  # one layer shape (4, 4): fewer eager compiles
DEPTHS = {0: (N_IN, N_OUT), 1: (N_IN, WIDTH, N_OUT), 3: (N_IN, WIDTH, WIDTH, WIDTH, N_OUT)}
DTYPES = ["float64", "float32"]


def targets(key, loss, output, dtype, batch=BATCH):
    """Targets each loss is meant for: labels, probability rows, +-1 signs or real numbers."""
    if loss == "cross_entropy" and output == "softmax":
        return jax.random.randint(key, (batch,), 0, N_OUT)  # integer labels
    if loss in ("cross_entropy", "binary_cross_entropy"):
        return jax.random.uniform(key, (batch, N_OUT), dtype)
    if loss == "hinge":
        return jnp.where(jax.random.bernoulli(key, 0.5, (batch, N_OUT)), 1, -1).astype(dtype)
    return jax.random.normal(key, (batch, N_OUT), dtype)


@functools.cache
def _data(sizes, output, loss, dtype, seed, batch):
    """Parameters, inputs and targets; shared by every hidden activation (saves ~10 s)."""
    k = jax.random.split(jax.random.key(seed), 3)
    params = jmlp.init_params(k[0], sizes, weight_init="glorot_normal", bias_init=0.1, dtype=dtype)
    x = jax.random.normal(k[1], (batch, sizes[0]), dtype)
    return params, x, targets(k[2], loss, output, dtype, batch)


def problem(sizes, activation, output, loss, dtype, seed=0, batch=BATCH, **options):
    net = jmlp.MLP(sizes, activation, output, loss, **options)
    params, x, y = _data(sizes, output, loss, dtype, seed, batch)
    return net, [dict(layer) for layer in params], x, y  # a fresh list: tests may not share it


def rel_errors(a, b):
    """Normwise relative error ||a - b|| / ||b|| of every leaf pair."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b))
    return [float(jnp.linalg.norm(u - v) / jnp.linalg.norm(v)) for u, v in pairs]


def assert_trees_close(a, b, tol):
    """Per tensor, normwise: ||a - b|| <= rtol ||b|| + atol."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype
        u64, v64 = np.asarray(u, np.float64), np.asarray(v, np.float64)
        err, scale = np.linalg.norm(u64 - v64), np.linalg.norm(v64)
        assert err <= tol["rtol"] * scale + tol["atol"], (err, scale, tol)


def check_against_autodiff(net, params, x, y, dtype, **kwargs):
    v_bp, g_bp = jmlp.backprop(net, params, x, y, **kwargs)
    v_ad, g_ad = jmlp.autodiff(net, params, x, y, **kwargs)
    assert v_bp.dtype == jnp.dtype(dtype) and bool(jnp.isfinite(v_bp))
    np.testing.assert_allclose(v_bp, v_ad, **TOL[dtype])
    assert_trees_close(g_bp, g_ad, TOL[dtype])


MATRIX = [
    (depth, hidden, output, loss)
    for depth in DEPTHS
    for hidden in (HIDDEN if depth else ["identity"])  # depth 0: no hidden layer
    for output, loss in PAIRS
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("depth, hidden, output, loss", MATRIX)
def test_backprop_equals_autodiff(depth, hidden, output, loss, dtype):
    net, params, x, y = problem(DEPTHS[depth], hidden, output, loss, dtype)
    check_against_autodiff(net, params, x, y, dtype)


MIXED = [
    (("relu", "tanh", "gelu"), {}),
    (("sigmoid", "elu", "leaky_relu"), {"elu_alpha": 1.5, "leaky_relu_slope": 0.2}),
    (("softplus", "identity", "gelu_exact"), {}),
    (("leaky_relu", "gelu", "elu"), {"leaky_relu_slope": 0.3, "elu_alpha": 0.5}),
    (("tanh", "relu", "softplus"), {"huber_delta": 0.3}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", PAIRS)
@pytest.mark.parametrize("activations, options", MIXED)
def test_mixed_activations_equal_autodiff(activations, options, output, loss, dtype):
    net, params, x, y = problem(DEPTHS[3], activations, output, loss, dtype, seed=1, **options)
    check_against_autodiff(net, params, x, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "hidden, output, loss",
    [("tanh", "softmax", "cross_entropy"), ("relu", "identity", "huber"), ("elu", "tanh", "hinge")],
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_l2_weights_and_reduction_equal_autodiff(reduction, hidden, output, loss, dtype):
    net, params, x, y = problem(DEPTHS[1], hidden, output, loss, dtype, reduction=reduction)
    weights = jnp.array([0.5, 2.0, 0.0, 1.0, 3.0], dtype)
    check_against_autodiff(net, params, x, y, dtype, l2=0.01, weights=weights)


@pytest.mark.parametrize("output, loss", PAIRS)
def test_single_example_equals_autodiff(output, loss):
    net, params, x, y = problem(DEPTHS[1], "tanh", output, loss, "float64")
    check_against_autodiff(net, params, x[0], y[0], "float64")


# --- central finite differences ----------------------------------------------------------------
# Only C^2 activations and losses: at a kink (relu, leaky_relu at 0; mae, huber, hinge) a central
# difference straddling it measures the average of two one-sided slopes, not the derivative; and
# elu (alpha != 1) has a jump in its derivative. Smooth: truncation h^2 |f'''| / 6 ~ 1e-13 and
# rounding eps |L| / h ~ 1e-10 for h = 1e-6, so 1e-6 relative (1e-8 absolute) is generous.
FD_CASES = [
    ("tanh", "softmax", "cross_entropy"),
    ("sigmoid", "sigmoid", "binary_cross_entropy"),
    ("softplus", "identity", "half_sse"),
    ("gelu", "softmax", "mse"),
    ("gelu_exact", "sigmoid", "cross_entropy"),
    ("identity", "sigmoid", "mse"),
    (("tanh", "gelu", "softplus"), "identity", "mse"),
]


@pytest.mark.parametrize("hidden, output, loss", FD_CASES)
def test_central_finite_differences(hidden, output, loss):
    net, params, x, y = problem(DEPTHS[3], hidden, output, loss, "float64", seed=2)
    flat, unravel = ravel_pytree(params)
    _, grads = jmlp.backprop(net, params, x, y, l2=0.01)
    g = ravel_pytree(grads)[0]
    idx = np.random.default_rng(0).choice(flat.size, size=12, replace=False)
    h = 1e-6
    steps = jnp.zeros((idx.size, flat.size)).at[np.arange(idx.size), idx].set(h)
    f = jax.vmap(lambda v: jmlp.loss(net, unravel(v), x, y, l2=0.01))
    fd = (f(flat[None, :] + steps) - f(flat[None, :] - steps)) / (2 * h)
    np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-8)


# --- custom_vjp_loss ---------------------------------------------------------------------------
CUSTOM_CASES = [
    ("tanh", "softmax", "cross_entropy"),
    ("relu", "identity", "mse"),
    (("gelu", "leaky_relu", "elu"), "sigmoid", "binary_cross_entropy"),
    ("softplus", "tanh", "hinge"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden, output, loss", CUSTOM_CASES)
def test_custom_vjp_loss_grad_equals_autodiff(hidden, output, loss, dtype):
    net, params, x, y = problem(DEPTHS[3], hidden, output, loss, dtype, seed=3)
    l2 = jnp.asarray(0.1, dtype)

    def custom(p, x, l2):
        return jmlp.custom_vjp_loss(net, p, x, y, l2)

    def reference(p, x, l2):
        return jmlp.loss(net, p, x, y, l2=l2)

    argnums = (0, 1, 2)  # params, x and l2
    v_c, g_c = jax.value_and_grad(custom, argnums)(params, x, l2)
    v_a, g_a = jax.value_and_grad(reference, argnums)(params, x, l2)
    np.testing.assert_allclose(v_c, v_a, **TOL[dtype])
    assert_trees_close(g_c[:2], g_a[:2], TOL[dtype])
    sq = 0.5 * sum(float(jnp.sum(p["W"].astype(jnp.float64) ** 2)) for p in params)
    np.testing.assert_allclose(g_c[2], sq, rtol=TOL[dtype]["rtol"])  # dL/dl2 = ||W||^2 / 2


def test_custom_vjp_loss_passes_check_grads():
    net, params, x, y = problem(DEPTHS[1], "tanh", "softmax", "cross_entropy", "float64", seed=4)
    test_util.check_grads(
        lambda p, x: jmlp.custom_vjp_loss(net, p, x, y), (params, x), order=1, modes=["rev"]
    )


def test_custom_vjp_loss_single_example_x_cotangent():
    net, params, x, y = problem(DEPTHS[1], "sigmoid", "identity", "half_sse", "float64", seed=5)
    gx = jax.grad(jmlp.custom_vjp_loss, 2)(net, params, x[0], y[0])
    assert gx.shape == (N_IN,)
    np.testing.assert_allclose(gx, jax.grad(jmlp.loss, 2)(net, params, x[0], y[0]), rtol=1e-12)


def test_custom_vjp_loss_l2_keyword_and_vmap():
    net, params, x, y = problem(DEPTHS[1], "gelu", "softmax", "cross_entropy", "float64", seed=7)
    g_kw = jax.grad(lambda p: jmlp.custom_vjp_loss(net, p, x, y, l2=0.1))(params)
    g_ref = jax.grad(lambda p: jmlp.loss(net, p, x, y, l2=0.1))(params)
    assert_trees_close(g_kw, g_ref, TOL["float64"])
    # per-example gradients: vmap of jax.grad of the custom_vjp loss == vmap of backprop
    per_custom = jax.vmap(lambda xi, yi: jax.grad(jmlp.custom_vjp_loss, 1)(net, params, xi, yi))
    per_backprop = jax.vmap(lambda xi, yi: jmlp.backprop(net, params, xi, yi)[1])
    assert_trees_close(per_custom(x, y), per_backprop(x, y), TOL["float64"])


def test_custom_vjp_loss_trains_like_autodiff_under_jit():
    net, params, x, y = problem(DEPTHS[1], "relu", "softmax", "cross_entropy", "float64", seed=6)

    def sgd(loss_fn):
        step = jax.jit(lambda p: jax.tree.map(lambda a, g: a - 0.5 * g, p, jax.grad(loss_fn)(p)))
        p = params
        for _ in range(5):
            p = step(p)
        return p

    a = sgd(lambda p: jmlp.custom_vjp_loss(net, p, x, y))
    b = sgd(lambda p: jmlp.loss(net, p, x, y))
    assert_trees_close(a, b, TOL["float64"])


# --- vmap, jit, pytree -------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("output, loss", [("softmax", "cross_entropy"), ("tanh", "hinge")])
def test_vmap_over_examples_reduces_to_the_batch_gradient(output, loss, reduction):
    net, params, x, y = problem(DEPTHS[3], "gelu", output, loss, "float64", reduction=reduction)
    per_example = jax.vmap(lambda xi, yi: jmlp.backprop(net, params, xi, yi))(x, y)
    values, grads = per_example
    assert values.shape == (BATCH,)
    combine = jnp.mean if reduction == "mean" else jnp.sum
    v, g = jmlp.backprop(net, params, x, y)
    np.testing.assert_allclose(combine(values), v, rtol=1e-13)
    assert_trees_close(jax.tree.map(lambda a: combine(a, axis=0), grads), g, TOL["float64"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "hidden, output, loss", [("tanh", "softmax", "cross_entropy"), ("relu", "identity", "mae")]
)
def test_jit_equals_no_jit(hidden, output, loss, dtype):
    net, params, x, y = problem(DEPTHS[3], hidden, output, loss, dtype)
    v_j, g_j = jax.jit(jmlp.backprop, static_argnums=0)(net, params, x, y)
    v_e, g_e = jmlp.backprop(net, params, x, y)
    tol = {"float64": {"rtol": 1e-13, "atol": 1e-15}, "float32": {"rtol": 1e-6, "atol": 1e-7}}
    np.testing.assert_allclose(v_j, v_e, **tol[dtype])
    assert_trees_close(g_j, g_e, tol[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pytree_is_jax_grads(dtype):
    net, params, x, y = problem(DEPTHS[3], "elu", "sigmoid", "binary_cross_entropy", dtype)
    _, g_bp = jmlp.backprop(net, params, x, y)
    g_ad = jax.grad(jmlp.loss, argnums=1)(net, params, x, y)
    assert jax.tree.structure(g_bp) == jax.tree.structure(g_ad) == jax.tree.structure(params)
    assert isinstance(g_bp, list) and all(isinstance(layer, dict) for layer in g_bp)
    for a, b in zip(jax.tree.leaves(g_bp), jax.tree.leaves(g_ad)):
        assert a.shape == b.shape and a.dtype == b.dtype == jnp.dtype(dtype)


def test_float64_inputs_with_float32_params_give_float32_grads():
    net, params, x, y = problem(DEPTHS[1], "tanh", "identity", "mse", "float32")
    value, grads = jmlp.backprop(net, params, np.asarray(x, np.float64), np.asarray(y, np.float64))
    assert value.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(grads))
