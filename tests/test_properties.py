"""Property tests (hypothesis), float64 enabled:

1. over random widths, depths, activations, (output, loss) pairs of the tables, dtypes and batch
   sizes, backprop equals autodiff (the fixed matrix of tests/test_backprop.py, at random shapes);
2. dtypes kept: every public function returns the dtype of the params it was given (float32,
   bfloat16, float64), whatever the types of the numbers and arrays passed with them (NumPy and
   JAX float64 scalars, float16 / int / float64 arrays, ...), and the same values as a call with
   Python floats and arrays already in the params' dtype; ``fit`` and ``fit_many`` likewise.

Every example of (1) has new shapes, so eager dispatch would compile each primitive anew; one
jitted call per example is cheaper. (2) keeps one shape and runs eagerly. derandomize=True: CI
sees the same examples every run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TOL
from hypothesis import given, settings
from hypothesis import strategies as st
from test_backprop import BATCH, DEPTHS, HIDDEN, PAIRS

import jmlp
from jmlp.losses import CLASSIFICATION

pytestmark = pytest.mark.slow  # hypothesis searches over random shapes

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None)


def targets(key, net: jmlp.MLP, batch: int, dtype):
    """Labels, probability rows, +-1 signs, counts or real numbers, as the loss expects."""
    n_out = net.sizes[-1]
    if net.loss == "cross_entropy" and net.output_activation == "softmax":
        return jax.random.randint(key, (batch,), 0, n_out)
    if net.loss in ("cross_entropy", "binary_cross_entropy"):
        return jax.random.uniform(key, (batch, n_out), dtype)
    if net.loss == "hinge":
        return jnp.where(jax.random.bernoulli(key, 0.5, (batch, n_out)), 1, -1).astype(dtype)
    if net.loss == "poisson":
        return jax.random.poisson(key, 2.0, (batch, n_out)).astype(dtype)
    return jax.random.normal(key, (batch, n_out), dtype)


@st.composite
def problems(draw):
    n_hidden = draw(st.integers(1, 3))
    output, loss = draw(st.sampled_from(PAIRS))
    sizes = [draw(st.integers(1, 6)) for _ in range(n_hidden + 1)]
    sizes.append(draw(st.integers(2 if output == "softmax" else 1, 6)))  # one softmax unit is 1
    if draw(st.booleans()):
        activation = draw(st.sampled_from(HIDDEN))
    else:
        activation = tuple(draw(st.sampled_from(HIDDEN)) for _ in range(n_hidden))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    batch = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    net = jmlp.MLP(tuple(sizes), activation, output, loss)
    k = jax.random.split(jax.random.key(seed), 3)
    params = jmlp.init_params(k[0], sizes, weight_init="glorot_uniform", bias_init=0.1, dtype=dtype)
    x = jax.random.normal(k[1], (batch, sizes[0]), dtype)
    return net, params, x, targets(k[2], net, batch, dtype), dtype


def _gradients(net, params, x, y):
    return jmlp.backprop(net, params, x, y), jmlp.autodiff(net, params, x, y)


_gradients_jit = jax.jit(_gradients, static_argnums=0)


# Each example costs one compile (~0.5 s).
@SETTINGS
@given(problems())
def test_backprop_equals_autodiff(problem):
    net, params, x, y, dtype = problem
    (v_bp, g_bp), (v_ad, g_ad) = _gradients_jit(net, params, x, y)
    tol = TOL[dtype]
    assert bool(jnp.isfinite(v_bp)) and v_bp.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(v_bp, v_ad, **tol)
    assert jax.tree.structure(g_bp) == jax.tree.structure(g_ad)
    for a, b in zip(jax.tree.leaves(g_bp), jax.tree.leaves(g_ad)):
        assert a.dtype == b.dtype == jnp.dtype(dtype)
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.linalg.norm(a64 - b64) <= tol["rtol"] * np.linalg.norm(b64) + tol["atol"]


# --- dtypes kept --------------------------------------------------------------------------------
PARAM_DTYPES = ["float32", "bfloat16", "float64"]
SCALARS = {  # ways to write a number; each is turned into the params' dtype where it is used
    "float": float,
    "np.float64": np.float64,
    "np.float32": np.float32,
    "np.float16": np.float16,
    "jax float64": lambda v: jnp.asarray(v, jnp.float64),
}
SIZES = DEPTHS[1]  # the shapes of tests/test_backprop.py: its eager compiles are reused


def floating_dtypes(tree) -> set[str]:
    return {
        jnp.result_type(a).name
        for a in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(a), jnp.floating)
    }


def _public_calls(net, params, stacked, x, y, *, l2, weights):
    """Every public function of params on one problem: name -> result (a pytree)."""
    calls = {
        "forward": lambda: jmlp.forward(net, params, x),
        "forward_cache": lambda: jmlp.forward_cache(net, params, x),
        "loss": lambda: jmlp.loss(net, params, x, y, l2=l2, weights=weights),
        "backprop": lambda: jmlp.backprop(net, params, x, y, l2=l2, weights=weights),
        "autodiff": lambda: jmlp.autodiff(net, params, x, y, l2=l2, weights=weights),
        "custom_vjp_loss grad": lambda: jax.grad(jmlp.custom_vjp_loss, 1)(net, params, x, y, l2),
        "per_example_grads": lambda: jmlp.per_example_grads(net, params, x, y),
        "per_example_grad_norms": lambda: jmlp.per_example_grad_norms(net, params, x, y),
        "predict_proba": lambda: jmlp.predict_proba(net, params, x),
        "ensemble_predict_proba": lambda: jmlp.ensemble_predict_proba(net, stacked, x),
    }
    if net.loss in CLASSIFICATION:
        calls["accuracy"] = lambda: jmlp.accuracy(net, params, x, y)
    else:
        calls["r2_score"] = lambda: jmlp.r2_score(net, params, x, y)
    return {name: call() for name, call in calls.items()}


@st.composite
def dtype_problems(draw):
    """A spec, and every number of the call in a drawn type; the arrays in drawn dtypes."""
    dtype = draw(st.sampled_from(PARAM_DTYPES))
    output, loss = draw(st.sampled_from(PAIRS))
    hidden = draw(st.sampled_from(["leaky_relu", "elu", "tanh"]))
    number = {
        name: SCALARS[draw(st.sampled_from(list(SCALARS)))](value)
        for name, value in [
            ("weight_scale", 0.5),
            ("bias_init", 0.1),
            ("l2", 0.01),
            ("leaky_relu_slope", 0.2),
            ("elu_alpha", 1.5),
            ("huber_delta", 0.7),
        ]
    }
    x_dtype = draw(st.sampled_from(["float64", "float32", "float16", "int32"]))
    weights_dtype = draw(st.sampled_from([None, "float64", "float32", "int32"]))
    scale_dtype = draw(st.sampled_from(["float64", "float32"]))  # init_many's per-member scales
    return dtype, (hidden, output, loss), number, x_dtype, weights_dtype, scale_dtype


@settings(SETTINGS, max_examples=8)
@given(dtype_problems())
def test_public_functions_return_the_params_dtype(problem):
    dtype, (hidden, output, loss), number, x_dtype, weights_dtype, scale_dtype = problem
    spec = {k: number[k] for k in ("leaky_relu_slope", "elu_alpha", "huber_delta")}
    net = jmlp.MLP(SIZES, hidden, output, loss, **spec)
    clean_net = jmlp.MLP(SIZES, hidden, output, loss, **{k: float(v) for k, v in spec.items()})
    init = {"weight_init": "normal", "dtype": dtype}
    key, keys = jax.random.key(0), jax.random.split(jax.random.key(1), 3)
    params = jmlp.init_params(
        key, SIZES, weight_scale=number["weight_scale"], bias_init=number["bias_init"], **init
    )
    clean = jmlp.init_params(
        key,
        SIZES,
        weight_scale=float(number["weight_scale"]),
        bias_init=float(number["bias_init"]),
        **init,
    )
    scales = np.array([0.5, 1.0, 2.0], scale_dtype)
    stacked = jmlp.init_many(keys, SIZES, weight_scale=scales, **init)
    clean_stacked = jax.tree.map(
        lambda *a: jnp.stack(a),
        *[jmlp.init_params(k, SIZES, weight_scale=float(s), **init) for k, s in zip(keys, scales)],
    )
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(BATCH, SIZES[0])) * 3).astype(x_dtype)
    y = np.asarray(targets(jax.random.key(2), net, BATCH, jnp.float64))  # float64 rows or labels
    weights = None if weights_dtype is None else rng.integers(1, 4, BATCH).astype(weights_dtype)

    got = _public_calls(net, params, stacked, x, y, l2=number["l2"], weights=weights)
    expected = _public_calls(
        clean_net,
        clean,
        clean_stacked,
        jnp.asarray(x, dtype),
        y if y.dtype.kind == "i" else jnp.asarray(y, dtype),
        l2=float(number["l2"]),
        weights=None if weights is None else jnp.asarray(weights, dtype),
    )
    for name, tree in [("init_params", params), ("init_many", stacked), *got.items()]:
        assert floating_dtypes(tree) == {dtype}, (name, floating_dtypes(tree))
    for name, a, b in [("init_params", params, clean), ("init_many", stacked, clean_stacked)]:
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(u, v, err_msg=name)
    # the same numbers in the params' dtype: the same computation, so bitwise the same results
    for name in got:
        for u, v in zip(jax.tree.leaves(got[name]), jax.tree.leaves(expected[name])):
            np.testing.assert_array_equal(u, v, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # float64 params: nothing to narrow
def test_fit_and_fit_many_keep_the_params_dtype(dtype):
    net = jmlp.MLP(SIZES, "tanh", "softmax", "cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, SIZES[0]))  # float64 data, float64 numbers, params in dtype
    y = rng.integers(0, SIZES[-1], 8)
    params = jmlp.init_params(jax.random.key(0), SIZES, dtype=dtype)
    adam = jmlp.optim.adam(np.float64(1e-2))  # one optimizer object: one compiled epoch
    run = {"epochs": 2, "batch_size": 4, "key": jax.random.key(1)}
    result = jmlp.fit(net, params, adam, x, y, l2=np.float64(1e-3), validation=(x, y), **run)
    as_dtype = jnp.asarray(x, dtype)
    clean = jmlp.fit(net, params, adam, as_dtype, y, l2=1e-3, validation=(as_dtype, y), **run)
    for tree in (result.params, result.opt_state):
        assert floating_dtypes(tree) == {dtype}
    for u, v in zip(jax.tree.leaves(result[:2]), jax.tree.leaves(clean[:2])):
        np.testing.assert_array_equal(u, v)  # params and optimizer state
    assert result.history == clean.history

    keys = jax.random.split(jax.random.key(2), 3)
    stacked = jmlp.init_many(keys, SIZES, weight_scale=np.array([0.5, 1.0, 2.0]), dtype=dtype)
    many = jmlp.fit_many(
        net,
        lambda h: jmlp.optim.sgd(h["lr"]),
        x,
        y,
        params=stacked,
        hparams={"lr": np.array([0.1, 0.2, 0.3])},
        l2=np.float64(1e-3),
        **run,
    )
    for tree in (many.params, many.opt_state):
        assert floating_dtypes(tree) <= {dtype}
    assert floating_dtypes(many.params) == {dtype}
