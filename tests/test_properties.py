"""Property tests (hypothesis): over random widths, depths, activations, (output, loss) pairs,
dtypes and batch sizes, backprop equals autodiff and one example equals a batch of one.

Every example has new shapes, so eager dispatch would compile each primitive anew; one jitted
call per example (both properties together) is cheaper. derandomize=True: CI sees the same
examples every run.
"""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import TOL
from hypothesis import given, settings
from hypothesis import strategies as st

import jmlp
from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY

HIDDEN = [name for name in ACTIVATIONS if name not in OUTPUT_ONLY]
PAIRS = [
    ("softmax", "cross_entropy"),
    ("sigmoid", "binary_cross_entropy"),
    ("identity", "half_sse"),
    ("identity", "mse"),
    ("identity", "mae"),
    ("identity", "huber"),
    ("tanh", "hinge"),
    ("softmax", "mse"),
    ("sigmoid", "mse"),
    ("sigmoid", "cross_entropy"),
]
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None)


@st.composite
def problems(draw):
    n_hidden = draw(st.integers(1, 3))
    sizes = tuple(draw(st.integers(1, 6)) for _ in range(n_hidden + 2))
    if draw(st.booleans()):
        activation = draw(st.sampled_from(HIDDEN))
    else:
        activation = tuple(draw(st.sampled_from(HIDDEN)) for _ in range(n_hidden))
    output, loss = draw(st.sampled_from(PAIRS))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    batch = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    net = jmlp.MLP(sizes, activation, output, loss)
    k = jax.random.split(jax.random.key(seed), 3)
    params = jmlp.init_params(k[0], sizes, weight_init="glorot_uniform", bias_init=0.1, dtype=dtype)
    x = jax.random.normal(k[1], (batch, sizes[0]), dtype)
    n_out = sizes[-1]
    if loss == "cross_entropy" and output == "softmax":
        y = jax.random.randint(k[2], (batch,), 0, n_out)
    elif loss in ("cross_entropy", "binary_cross_entropy"):
        y = jax.random.uniform(k[2], (batch, n_out), dtype)
    elif loss == "hinge":
        y = jnp.where(jax.random.bernoulli(k[2], 0.5, (batch, n_out)), 1, -1).astype(dtype)
    else:
        y = jax.random.normal(k[2], (batch, n_out), dtype)
    return net, params, x, y, dtype


def _everything(net, params, x, y):
    """Both gradients, and forward / loss of one example and of a batch of one (one compile)."""
    forwards = jmlp.forward(net, params, x[0]), jmlp.forward(net, params, x[:1])
    losses = jmlp.loss(net, params, x[0], y[0]), jmlp.loss(net, params, x[:1], y[:1])
    return (jmlp.backprop(net, params, x, y), jmlp.autodiff(net, params, x, y)), forwards, losses


_everything_jit = jax.jit(_everything, static_argnums=0)


# Both properties in one test: each example costs one compile (~0.5 s), so one test keeps the
# file near 20 s on a shared 2-core box.
@SETTINGS
@given(problems())
def test_backprop_equals_autodiff_and_one_example_equals_a_batch_of_one(problem):
    net, params, x, y, dtype = problem
    ((v_bp, g_bp), (v_ad, g_ad)), (single, batch), (loss_1, loss_b) = _everything_jit(
        net, params, x, y
    )
    # backprop == autodiff, normwise per tensor, tolerance by dtype
    tol = TOL[dtype]
    assert bool(jnp.isfinite(v_bp))
    np.testing.assert_allclose(v_bp, v_ad, **tol)
    assert jax.tree.structure(g_bp) == jax.tree.structure(g_ad)
    for a, b in zip(jax.tree.leaves(g_bp), jax.tree.leaves(g_ad)):
        assert a.dtype == b.dtype == jnp.dtype(dtype)
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.linalg.norm(a64 - b64) <= tol["rtol"] * np.linalg.norm(b64) + tol["atol"]
    # forward of one example == forward of a batch of one (shapes (n_out,) and (1, n_out))
    assert single.shape == (net.sizes[-1],) and single.dtype == jnp.dtype(dtype)
    assert batch.shape == (1, net.sizes[-1]) and loss_1.shape == loss_b.shape == ()
    np.testing.assert_array_equal(single, batch[0])
    np.testing.assert_array_equal(loss_1, loss_b)
