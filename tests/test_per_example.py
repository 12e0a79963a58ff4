"""Per-example gradients and norms against jax.vmap(jax.grad(jmlp.loss)) over single examples
(an independent computation: autodiff of the forward pass, once per example)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TOL

import jmlp
from jmlp.per_example import per_example_grad_norms, per_example_grads

CASES = [  # (sizes, hidden activation, output activation, loss)
    ((3, 4), "relu", "softmax", "cross_entropy"),
    ((3, 5, 3), "tanh", "softmax", "cross_entropy"),
    ((3, 5, 3), "relu", "identity", "mse"),
    ((3, 5, 4, 2), "sigmoid", "sigmoid", "binary_cross_entropy"),
    ((3, 5, 4, 2), "gelu", "softmax", "mse"),
    ((3, 5, 2), "elu", "identity", "huber"),
    ((3, 5, 2), "leaky_relu", "tanh", "hinge"),
]
BATCH = 7


def problem(sizes, activation, output, loss, dtype="float64", batch=BATCH, seed=0):
    net = jmlp.MLP(sizes, activation, output, loss)
    k = jax.random.split(jax.random.key(seed), 3)
    params = jmlp.init_params(k[0], sizes, weight_init="glorot_normal", bias_init=0.1, dtype=dtype)
    x = jax.random.normal(k[1], (batch, sizes[0]), dtype)
    n_out = sizes[-1]
    if loss == "cross_entropy":
        y = jax.random.randint(k[2], (batch,), 0, n_out)
    elif loss == "binary_cross_entropy":
        y = jax.random.uniform(k[2], (batch, n_out), dtype)
    elif loss == "hinge":
        y = jnp.where(jax.random.bernoulli(k[2], 0.5, (batch, n_out)), 1.0, -1.0).astype(dtype)
    else:
        y = jax.random.normal(k[2], (batch, n_out), dtype)
    return net, params, x, y


@partial(jax.jit, static_argnums=0)
def reference(net, params, x, y):
    """Losses and gradients of each example alone, by autodiff (jitted: one compile per case
    beats eager vmap, which compiles every primitive)."""
    one = lambda xn, yn: jax.value_and_grad(jmlp.loss, argnums=1)(net, params, xn, yn)
    return jax.vmap(one)(x, y)


def assert_tree_close(a, b, tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        np.testing.assert_allclose(u, v, **tol)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}-{c[2]}-{c[3]}-{len(c[0])}")
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_grads_equal_vmap_grad_float64(case, chunk_size):
    net, params, x, y = problem(*case)
    losses, grads = per_example_grads(net, params, x, y, chunk_size=chunk_size)
    ref_losses, ref_grads = reference(net, params, x, y)
    np.testing.assert_allclose(losses, ref_losses, **TOL["float64"])
    assert_tree_close(grads, ref_grads, TOL["float64"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}-{c[2]}-{c[3]}-{len(c[0])}")
@pytest.mark.parametrize("chunk_size", [None, 2, 7, 100])
def test_norms_equal_explicit_norms(case, chunk_size):
    net, params, x, y = problem(*case)
    _, ref_grads = reference(net, params, x, y)
    explicit = sum(jnp.sum(g.reshape(BATCH, -1) ** 2, axis=1) for g in jax.tree.leaves(ref_grads))
    losses, sq = per_example_grad_norms(net, params, x, y, chunk_size=chunk_size)
    assert sq.shape == losses.shape == (BATCH,)
    np.testing.assert_allclose(sq, explicit, **TOL["float64"])


def test_float32_and_jit():
    net, params, x, y = problem((4, 6, 3), "relu", "softmax", "cross_entropy", "float32", 9)
    run = jax.jit(per_example_grads, static_argnums=0, static_argnames="chunk_size")
    losses, grads = run(net, params, x, y, chunk_size=4)
    ref_losses, ref_grads = reference(net, params, x, y)
    assert grads[0]["W"].dtype == jnp.float32
    np.testing.assert_allclose(losses, ref_losses, **TOL["float32"])
    assert_tree_close(grads, ref_grads, TOL["float32"])


def test_mean_of_per_example_grads_is_batch_grad():
    net, params, x, y = problem((3, 5, 3), "tanh", "softmax", "cross_entropy")
    _, grads = per_example_grads(net, params, x, y)
    _, batch_grads = jmlp.autodiff(net, params, x, y)
    assert_tree_close(jax.tree.map(lambda g: g.mean(0), grads), batch_grads, TOL["float64"])


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True])
def test_bad_chunk_size(chunk_size):
    net, params, x, y = problem((3, 5, 3), "relu", "softmax", "cross_entropy")
    with pytest.raises(ValueError, match="chunk_size"):
        per_example_grads(net, params, x, y, chunk_size=chunk_size)


def test_bad_shapes_name_the_argument():
    net, params, x, y = problem((3, 5, 3), "relu", "softmax", "cross_entropy")
    with pytest.raises(ValueError, match="x:"):
        per_example_grad_norms(net, params, x[:, :2], y)
    with pytest.raises(ValueError, match="y:"):
        per_example_grads(net, params, x, y[:3])
