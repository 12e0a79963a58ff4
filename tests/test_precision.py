"""Mixed precision: bfloat16 / float16 matmul inputs with float32 parameters, optimizer state and
accumulation, compared with float32; the matmul precision setting reaching every dot.

Tolerance. bfloat16 keeps 8 significant bits, so rounding an input costs a relative error of at
most u = 2^-8 = 3.9e-3 (float16: 11 bits, u = 2^-11 = 4.9e-4). A product of two rounded matrices
accumulated in float32 is off by ~ 2u relative to its norm (the roundings are independent, the
float32 sum adds nothing of that order). Comparisons are therefore norm-wise (element-wise ones
fail on entries that cancel to near zero): ``||a - b|| <= k u ||b||`` with k = 8 for one pass
through a network of two or three layers (forward and backward each chain a few such products),
and k = 16 after a few training steps, which compound them.
"""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmlp
from jmlp.backprop import backprop_many
from jmlp.ensemble import init_many

UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
SIZES = (8, 32, 32, 4)


def problem(compute_dtype=None, precision=None, sizes=SIZES, batch=64, seed=0):
    net = jmlp.MLP(
        sizes, "tanh", "softmax", "cross_entropy", compute_dtype=compute_dtype, precision=precision
    )
    k = jax.random.split(jax.random.key(seed), 3)
    params = jmlp.init_params(k[0], sizes, weight_init="glorot_normal", bias_init=0.1)
    x = jax.random.normal(k[1], (batch, sizes[0]), jnp.float32)
    y = jax.random.randint(k[2], (batch,), 0, sizes[-1])
    return net, params, x, y


def rel_error(a, b) -> float:
    """``||a - b|| / ||b||`` over all leaves of two pytrees (float64 arithmetic)."""
    a, b = (
        np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(t)])
        for t in (a, b)
    )
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def leaf_dtypes(tree) -> set:
    return {
        jnp.result_type(v).name
        for v in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(v), jnp.floating)
    }


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_forward_and_gradients_within_roundoff(dtype):
    net16, params, x, y = problem(dtype)
    net32 = problem()[0]
    u = UNIT_ROUNDOFF[dtype]
    out16, out32 = jmlp.forward(net16, params, x), jmlp.forward(net32, params, x)
    assert out16.dtype == jnp.float32
    assert rel_error(out16, out32) <= 8 * u
    value16, grads16 = jmlp.backprop(net16, params, x, y)
    value32, grads32 = jmlp.backprop(net32, params, x, y)
    assert leaf_dtypes(grads16) == {"float32"}
    assert abs(float(value16) - float(value32)) <= 8 * u * abs(float(value32))
    assert rel_error(grads16, grads32) <= 8 * u
    # and the reduced precision is really used: the gradients differ by more than float32 noise
    assert rel_error(grads16, grads32) > 1e-6


def test_autodiff_of_the_bf16_forward_matches_backprop():
    net, params, x, y = problem("bfloat16")
    _, hand = jmlp.backprop(net, params, x, y)
    _, auto = jmlp.autodiff(net, params, x, y)
    assert rel_error(hand, auto) <= 8 * UNIT_ROUNDOFF["bfloat16"]


def test_bf16_training_keeps_float32_state_and_tracks_float32():
    net16, params, x, y = problem("bfloat16")
    net32 = problem()[0]
    kw = {"epochs": 5, "batch_size": 16, "key": jax.random.key(3)}
    r16 = jmlp.fit(net16, params, optax.adam(1e-2), x, y, **kw)
    r32 = jmlp.fit(net32, params, optax.adam(1e-2), x, y, **kw)
    assert leaf_dtypes(r16.params) == {"float32"}
    assert leaf_dtypes(r16.opt_state) == {"float32"}
    u = UNIT_ROUNDOFF["bfloat16"]
    np.testing.assert_allclose(r16.history["loss"], r32.history["loss"], rtol=16 * u)
    # Adam normalises each step (~lr per weight), so compare the distance travelled
    moved16 = jax.tree.map(lambda a, b: a - b, r16.params, params)
    moved32 = jax.tree.map(lambda a, b: a - b, r32.params, params)
    assert rel_error(moved16, moved32) <= 16 * u * 4  # 20 Adam steps: sign flips of tiny grads


def test_ensemble_pass_in_bf16_within_roundoff():
    net16, _, x, y = problem("bfloat16")
    net32 = problem()[0]
    params = init_many(jax.random.split(jax.random.key(1), 3), SIZES, weight_init="glorot_normal")
    v16, g16 = backprop_many(net16, params, x, y)
    v32, g32 = backprop_many(net32, params, x, y)
    assert leaf_dtypes(g16) == {"float32"}
    assert rel_error(v16, v32) <= 8 * UNIT_ROUNDOFF["bfloat16"]
    assert rel_error(g16, g32) <= 8 * UNIT_ROUNDOFF["bfloat16"]


def dot_precisions(fn, *args) -> set:
    """The ``precision`` of every dot_general in ``fn``'s jaxpr (nested jaxprs included)."""
    found = set()

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.add(str(eqn.params["precision"]))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("precision", ["highest", "high", "default"])
def test_precision_reaches_every_matmul(precision):
    net, params, x, y = problem(precision=precision)
    expected = {"HIGHEST": "HIGHEST", "HIGH": "HIGH", "DEFAULT": "DEFAULT"}[precision.upper()]
    for fn in (lambda p: jmlp.backprop(net, p, x, y), lambda p: jmlp.autodiff(net, p, x, y)):
        found = dot_precisions(fn, params)
        assert found and all(expected in f for f in found), found
    stacked = init_many(jax.random.split(jax.random.key(0), 2), SIZES)
    found = dot_precisions(lambda p: backprop_many(net, p, x, y), stacked)
    assert found and all(expected in f for f in found), found


def test_highest_precision_float32_matches_float64():
    net, params, x, y = problem(precision="highest")
    params64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    _, g32 = jmlp.backprop(net, params, x, y)
    _, g64 = jmlp.backprop(net, params64, x.astype(jnp.float64), y)
    assert rel_error(g32, g64) <= 1e-5  # float32: u = 6e-8, a few hundred roundings
