"""The hand-written backward pass against autodiff: the matrix of every (output activation, loss)
pair jmlp.MLP accepts x every hidden activation x depths 0, 1, 3 (mixed per-layer activations at
depth 3) x float64 / float32, L2, weights and reductions, a single example, central finite
differences, the custom_vjp wrapper, vmap, jit, and the returned pytree.

The matrix is generated from the tables (jmlp.ACTIVATIONS, jmlp.LOSSES): a new row, or a pair the
spec starts to refuse, changes it without an edit here (the pairs of conftest.SLOW_PAIRS run in
the slow set). Speed: every case is a different spec, so
jitting it would compile it (~0.25 s per case on a 2-core box); run eagerly, every case has the
same shapes and reuses the per-primitive compile cache (~0.02 s per case). The matrix therefore
runs eagerly, one test per (pair, dtype) over its 13 cases; jit is tested separately below.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SLOW_PAIRS, TOL
from jax import test_util
from jax.flatten_util import ravel_pytree

import jmlp
from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY
from jmlp.losses import LOSSES

HIDDEN = [name for name in ACTIVATIONS if name not in OUTPUT_ONLY]
N_IN, WIDTH, N_OUT, BATCH = 4, 4, 4, 5  # one layer shape (4, 4): fewer eager compiles
DEPTHS = {0: (N_IN, N_OUT), 1: (N_IN, WIDTH, N_OUT), 3: (N_IN, WIDTH, WIDTH, WIDTH, N_OUT)}
DTYPES = ["float64", "float32"]


def accepted_pairs() -> list[tuple[str, str]]:
    """Every (output activation, loss) of the tables that ``jmlp.MLP`` accepts for these sizes."""
    pairs = []
    for output in ACTIVATIONS:
        for loss in LOSSES:
            try:
                jmlp.MLP(DEPTHS[1], "tanh", output, loss)
            except (ValueError, TypeError):
                continue
            pairs.append((output, loss))
    return pairs


PAIRS = accepted_pairs()
PAIR_IDS = [f"{output}-{loss}" for output, loss in PAIRS]
PAIR_CASES = [  # the pairs' indices, those of SLOW_PAIRS in the slow set
    pytest.param(i, id=name, marks=[pytest.mark.slow] if pair in SLOW_PAIRS else [])
    for i, (pair, name) in enumerate(zip(PAIRS, PAIR_IDS))
]
# Depth 3: three mixed triples per pair that together hold every hidden activation, rotated with
# the pair so that each activation also sits next to the output layer; non-default options.
N_TRIPLES = math.ceil(len(HIDDEN) / 3)
DEEP_OPTIONS = {"leaky_relu_slope": 0.2, "elu_alpha": 1.5, "huber_delta": 0.3}


def matrix_cases(i: int) -> list[tuple[int, str | tuple[str, ...], dict]]:
    """(depth, hidden activation(s), options) of pair number ``i``."""
    n = len(HIDDEN)
    triples = [tuple(HIDDEN[(3 * k + j + i) % n] for j in range(3)) for k in range(N_TRIPLES)]
    return (
        [(0, "identity", {})]
        + [(1, hidden, {}) for hidden in HIDDEN]
        + [(3, triple, DEEP_OPTIONS) for triple in triples]
    )


MATRIX_SIZE = len(PAIRS) * len(matrix_cases(0)) * len(DTYPES)


def targets(key, loss, output, dtype, batch=BATCH):
    """Targets each loss is meant for: labels, probability rows, +-1 signs, counts or reals."""
    if loss == "cross_entropy" and output == "softmax":
        return jax.random.randint(key, (batch,), 0, N_OUT)  # integer labels
    if loss in ("cross_entropy", "binary_cross_entropy"):
        return jax.random.uniform(key, (batch, N_OUT), dtype)
    if loss == "hinge":
        return jnp.where(jax.random.bernoulli(key, 0.5, (batch, N_OUT)), 1, -1).astype(dtype)
    if loss == "poisson":
        return jax.random.poisson(key, 2.0, (batch, N_OUT)).astype(dtype)  # counts, 0 included
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


def check_against_autodiff(net, params, x, y, dtype, tol=None, **kwargs):
    tol = tol or TOL[dtype]
    v_bp, g_bp = jmlp.backprop(net, params, x, y, **kwargs)
    v_ad, g_ad = jmlp.autodiff(net, params, x, y, **kwargs)
    assert v_bp.dtype == jnp.dtype(dtype) and bool(jnp.isfinite(v_bp))
    np.testing.assert_allclose(v_bp, v_ad, **tol)
    assert_trees_close(g_bp, g_ad, tol)


def test_matrix_is_generated_from_the_tables():
    assert len(PAIRS) >= 2 * len(LOSSES)  # today 61: log losses only on sigmoid / softmax / exp
    assert {("softmax", "cross_entropy"), ("relu", "mse"), ("gelu", "hinge")} <= set(PAIRS)
    assert {("exp", "poisson"), ("softplus", "poisson")} | SLOW_PAIRS <= set(PAIRS)
    for i in range(len(PAIRS)):
        deep = [a for depth, act, _ in matrix_cases(i) if depth == 3 for a in act]
        assert set(deep) == set(HIDDEN)
    assert {matrix_cases(i)[-1][1][-1] for i in range(len(PAIRS))} == set(HIDDEN)
    assert MATRIX_SIZE == 1586  # the size docs/tests.md states (61 pairs x 13 cases x 2 dtypes)


# float64: TOL's 1e-10 (worst seen over the matrix: 6.4e-15). float32: both sides round every
# operation to 2^-24 = 6e-8 relative through up to four layers of 4-wide sums and nonlinearities,
# compared normwise per tensor; worst seen 6.9e-7 (tanh + mae, depth 1), so 1e-5 is a margin of
# ~15 (atol for gradients that are exactly 0 on both sides, e.g. dead relu outputs).
MATRIX_TOL = {"float64": TOL["float64"], "float32": {"rtol": 1e-5, "atol": 1e-7}}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i", PAIR_CASES)
def test_backprop_equals_autodiff(i, dtype):
    output, loss = PAIRS[i]
    for depth, hidden, options in matrix_cases(i):
        net, params, x, y = problem(DEPTHS[depth], hidden, output, loss, dtype, **options)
        try:
            check_against_autodiff(net, params, x, y, dtype, tol=MATRIX_TOL[dtype])
        except AssertionError as error:
            raise AssertionError(f"depth {depth}, hidden {hidden}, options {options}") from error


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


@pytest.mark.parametrize("i", PAIR_CASES)
def test_single_example_gradient(i):
    """One example ``(n_in,)`` (a scalar label for softmax + cross_entropy) against autodiff of
    it, a batch of one, and the whole batch with only that example weighted (the batched pass:
    a different path through the same rules). The example changes with the pair."""
    output, loss = PAIRS[i]
    net, params, x, y = problem(DEPTHS[1], "tanh", output, loss, "float64")
    n = i % BATCH
    v_one, g_one = jmlp.backprop(net, params, x[n], y[n])
    assert v_one.shape == () and jax.tree.structure(g_one) == jax.tree.structure(params)
    v_ad, g_ad = jmlp.autodiff(net, params, x[n], y[n])
    v_b1, g_b1 = jmlp.backprop(net, params, x[n : n + 1], y[n : n + 1])
    alone = jnp.zeros(BATCH).at[n].set(1.0)  # the weighted mean is this example's loss
    v_w, g_w = jmlp.backprop(net, params, x, y, weights=alone)
    for v, g in ((v_ad, g_ad), (v_b1, g_b1), (v_w, g_w)):
        np.testing.assert_allclose(v_one, v, **TOL["float64"])
        assert_trees_close(g_one, g, TOL["float64"])


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
    ("tanh", "exp", "poisson"),
    ("sigmoid", "softplus", "poisson"),
    ("gelu", "exp", "mse"),
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


def test_custom_vjp_loss_l2_cotangent_is_half_the_squared_weights():
    net = jmlp.MLP((3, 5, 2), "tanh", "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (6, 3), jnp.float64)
    y = jnp.arange(6) % 2
    d_l2 = jax.grad(lambda l2: jmlp.custom_vjp_loss(net, params, x, y, l2))(0.3)
    half_squares = 0.5 * sum(float(jnp.sum(p["W"] ** 2)) for p in params)  # d/dl2 of l2/2 ||W||^2
    assert float(d_l2) == pytest.approx(half_squares, rel=1e-14)
    assert float(d_l2) == pytest.approx(
        float(jax.grad(lambda l2: jmlp.loss(net, params, x, y, l2=l2))(0.3)), rel=1e-12
    )


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
