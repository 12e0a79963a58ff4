"""The loss table: values against numpy, hand gradients against jax.grad (ties included), the fused
(output activation, loss) pairs, and the numerics of extreme logits and saturated probabilities."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmlp
from jmlp.activations import get_activation
from jmlp.losses import FUSED, LOSSES, get_loss

RNG = np.random.default_rng(0)
B, N = 6, 4
Y_REAL = RNG.normal(size=(B, N)) * 2
T_REAL = RNG.normal(size=(B, N))
Y_PROB = RNG.uniform(0.02, 0.98, size=(B, N))
T_BINARY = RNG.integers(0, 2, size=(B, N)).astype(float)
T_SOFT = RNG.uniform(0, 1, size=(B, N))
T_ONEHOT = np.eye(N)[RNG.integers(0, N, size=B)]
T_SIGN = 2 * T_BINARY - 1


def _huber(r, d):
    return np.where(np.abs(r) <= d, r**2 / 2, d * (np.abs(r) - d / 2))


# (case id, loss name, huber delta, y, t, the documented per-example formula in numpy)
CASES = [
    ("mse", "mse", None, Y_REAL, T_REAL, lambda y, t: np.mean((y - t) ** 2, -1)),
    ("half_sse", "half_sse", None, Y_REAL, T_REAL, lambda y, t: 0.5 * np.sum((y - t) ** 2, -1)),
    ("mae", "mae", None, Y_REAL, T_REAL, lambda y, t: np.mean(np.abs(y - t), -1)),
    ("huber", "huber", None, Y_REAL, T_REAL, lambda y, t: np.mean(_huber(y - t, 1.0), -1)),
    ("huber_0.3", "huber", 0.3, Y_REAL, T_REAL, lambda y, t: np.mean(_huber(y - t, 0.3), -1)),
    ("huber_4", "huber", 4.0, Y_REAL, T_REAL, lambda y, t: np.mean(_huber(y - t, 4.0), -1)),
    *[
        (
            f"bce_{tname}",
            "binary_cross_entropy",
            None,
            Y_PROB,
            t,
            lambda y, t: -np.sum(t * np.log(y) + (1 - t) * np.log(1 - y), -1),
        )
        for tname, t in [("binary", T_BINARY), ("soft", T_SOFT)]
    ],
    *[
        ("ce_" + tname, "cross_entropy", None, Y_PROB, t, lambda y, t: -np.sum(t * np.log(y), -1))
        for tname, t in [("onehot", T_ONEHOT), ("soft", T_SOFT)]
    ],
    ("hinge", "hinge", None, Y_REAL, T_SIGN, lambda y, t: np.sum(np.maximum(0, 1 - t * y), -1)),
]
CASE_IDS = [c[0] for c in CASES]


def autodiff_grad(record, y, t):
    """dl_n/dy by jax.grad of the summed value (examples are independent)."""
    return jax.grad(lambda y: jnp.sum(record.value(y, t)))(y)


def test_the_table_holds_the_documented_names():
    documented = {"mse", "half_sse", "mae", "huber", "binary_cross_entropy", "cross_entropy"}
    assert documented | {"hinge"} <= set(LOSSES)
    assert {c[1] for c in CASES} == set(LOSSES), "a new loss needs a row in CASES"


@pytest.mark.parametrize("case, name, delta, y, t, formula", CASES, ids=CASE_IDS)
def test_value_matches_numpy(case, name, delta, y, t, formula):
    value = get_loss(name, delta).value(jnp.asarray(y), jnp.asarray(t))
    assert value.shape == (B,)
    np.testing.assert_allclose(value, formula(y, t), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case, name, delta, y, t, formula", CASES, ids=CASE_IDS)
def test_grad_equals_autodiff_float64(case, name, delta, y, t, formula):
    record = get_loss(name, delta)
    y, t = jnp.asarray(y), jnp.asarray(t)
    np.testing.assert_allclose(
        record.grad(y, t), autodiff_grad(record, y, t), rtol=1e-12, atol=1e-12
    )


# --- ties: the subgradient chosen at a kink is jax.grad's ---------------------------------------
TIES = [
    # mae at r = 0: sign(0)/n = 0
    ("mae", None, [[0.5, -1.0, 2.0]], [[0.5, -1.0, 2.0]], [[0.0, 0.0, 0.0]]),
    # huber at |r| = delta exactly (r = +-0.5, delta 0.5): r / n (both branches agree)
    ("huber", 0.5, [[0.75, -0.25, 1.0]], [[0.25, 0.25, 0.5]], [[0.5 / 3, -0.5 / 3, 0.5 / 3]]),
    ("huber", 1.0, [[1.0, -2.0]], [[0.0, -1.0]], [[0.5, -0.5]]),
    # hinge at margin t*y == 1 exactly: the flat side, 0
    ("hinge", None, [[1.0, -1.0, 0.5]], [[1.0, -1.0, -1.0]], [[0.0, 0.0, 1.0]]),
]


@pytest.mark.parametrize("name, delta, y, t, expected", TIES)
def test_grad_at_ties_is_autodiffs(name, delta, y, t, expected):
    record = get_loss(name, delta)
    y, t = jnp.asarray(y), jnp.asarray(t)
    hand = record.grad(y, t)
    np.testing.assert_array_equal(hand, autodiff_grad(record, y, t))
    np.testing.assert_allclose(hand, expected, rtol=1e-15)


# --- second derivatives: the diagonal of autodiff's Hessian, at ties too -------------------------
@functools.partial(jax.jit, static_argnums=0)  # one compile beats eager dispatch of hessian
def autodiff_hessian(record, y, t):
    """d^2 l_n / dy_n^2, (B, N, N), by jax.hessian of one example's value."""
    one = lambda yn, tn: record.value(yn[None], tn[None])[0]
    return jax.vmap(jax.hessian(one))(y, t)


@pytest.mark.parametrize("case, name, delta, y, t, formula", CASES, ids=CASE_IDS)
def test_hess_is_the_diagonal_of_autodiffs_hessian(case, name, delta, y, t, formula):
    record = get_loss(name, delta)
    y, t = jnp.asarray(y), jnp.asarray(t)
    full = autodiff_hessian(record, y, t)
    diagonal = jnp.diagonal(full, axis1=1, axis2=2)
    np.testing.assert_allclose(record.hess(y, t), diagonal, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(full - jax.vmap(jnp.diag)(diagonal), 0.0)  # separable


@pytest.mark.parametrize("name, delta, y, t, expected", TIES)
def test_hess_at_ties_is_autodiffs(name, delta, y, t, expected):
    record = get_loss(name, delta)
    y, t = jnp.asarray(y), jnp.asarray(t)
    diagonal = jnp.diagonal(autodiff_hessian(record, y, t), axis1=1, axis2=2)
    np.testing.assert_array_equal(record.hess(y, t), diagonal)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "cross_entropy"])
def test_hess_is_zero_where_the_clip_is_active(name):
    record = LOSSES[name]
    y, t = jnp.array([[0.0, 1.0, 0.5]]), jnp.array([[1.0, 0.0, 1.0]])
    hand = record.hess(y, t)
    np.testing.assert_array_equal(hand[:, :2], 0.0)
    np.testing.assert_array_equal(
        hand, jnp.diagonal(autodiff_hessian(record, y, t), axis1=1, axis2=2)
    )


def test_huber_delta_is_honoured():
    y, t = jnp.array([[3.0]]), jnp.array([[0.0]])
    np.testing.assert_allclose(get_loss("huber", 0.5).value(y, t), [0.5 * (3 - 0.25)], rtol=1e-15)
    np.testing.assert_allclose(get_loss("huber", 5.0).value(y, t), [4.5], rtol=1e-15)
    np.testing.assert_allclose(get_loss("huber").value(y, t), [2.5], rtol=1e-15)  # default 1


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(ValueError, match="loss") as info:
        get_loss("log_cosh")
    assert "'log_cosh'" in str(info.value) and all(n in str(info.value) for n in LOSSES)


# --- fused pairs -------------------------------------------------------------------------------
Z = RNG.normal(size=(B, N)) * 3  # moderate logits
DIRICHLET = RNG.dirichlet(np.ones(N), size=B)
FUSED_TARGETS = {
    ("softmax", "cross_entropy"): [DIRICHLET, T_ONEHOT, T_SOFT],  # T_SOFT rows do not sum to 1
    ("sigmoid", "binary_cross_entropy"): [T_BINARY, T_SOFT],
    ("identity", "half_sse"): [T_REAL],
}
FUSED_CASES = [
    (pair, i, t) for pair, targets in FUSED_TARGETS.items() for i, t in enumerate(targets)
]
FUSED_IDS = [f"{out}-{loss}-t{i}" for (out, loss), i, _ in FUSED_CASES]


def test_every_fused_pair_is_tested():
    assert set(FUSED_TARGETS) == set(FUSED)


@pytest.mark.parametrize("pair, i, t", FUSED_CASES, ids=FUSED_IDS)
def test_fused_value_equals_unfused(pair, i, t):
    out, loss = pair
    z, t = jnp.asarray(Z), jnp.asarray(t)
    unfused = LOSSES[loss].value(get_activation(out).fn(z), t)
    np.testing.assert_allclose(FUSED[pair].value(z, t), unfused, rtol=1e-12)


@pytest.mark.parametrize("pair, i, t", FUSED_CASES, ids=FUSED_IDS)
def test_fused_delta_equals_autodiff_wrt_z(pair, i, t):
    out, loss = pair
    z, t = jnp.asarray(Z), jnp.asarray(t)
    h = get_activation(out).fn(z)
    delta = FUSED[pair].delta(z, h, t)
    fused_grad = jax.grad(lambda z: jnp.sum(FUSED[pair].value(z, t)))(z)
    unfused_grad = jax.grad(lambda z: jnp.sum(LOSSES[loss].value(get_activation(out).fn(z), t)))(z)
    np.testing.assert_allclose(delta, fused_grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(delta, unfused_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pair, i, t", FUSED_CASES, ids=FUSED_IDS)
def test_fused_hvp_equals_autodiff_wrt_z(pair, i, t):
    out, loss = pair
    z, t = jnp.asarray(Z), jnp.asarray(t)
    v = jnp.asarray(RNG.normal(size=Z.shape))
    h = get_activation(out).fn(z)
    hand = FUSED[pair].hvp(z, h, t, v)

    def hvp_of(value):
        return jax.jvp(jax.grad(lambda z: jnp.sum(value(z))), (z,), (v,))[1]

    fused = hvp_of(lambda z: FUSED[pair].value(z, t))
    unfused = hvp_of(lambda z: LOSSES[loss].value(get_activation(out).fn(z), t))
    np.testing.assert_allclose(hand, fused, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hand, unfused, rtol=1e-10, atol=1e-12)


# --- extreme logits, float32, through the public API -------------------------------------------
def _f32(a):
    return jnp.asarray(a, dtype=jnp.float32)


def _extreme_case(out, loss, w, y):
    net = jmlp.MLP((1, len(w)), "identity", out, loss)
    params = [{"W": _f32([w]), "b": _f32(np.zeros(len(w)))}]
    return net, params, _f32([[1.0]]), y


EXTREME = [
    # z = (1e4, -1e4, 0), label 1: L = logsumexp(z) - z_1 = 2e4, delta = softmax(z) - e_1
    ("softmax", "cross_entropy", [1e4, -1e4, 0.0], jnp.array([1]), 2e4, [1.0, -1.0, 0.0]),
    ("softmax", "cross_entropy", [1e4, -1e4, 0.0], jnp.array([0]), 0.0, [0.0, 0.0, 0.0]),
    # z = (1e4, -1e4), t = (0, 1): L = log(1 + e^z) - t z summed = 1e4 + 1e4, delta = s(z) - t
    ("sigmoid", "binary_cross_entropy", [1e4, -1e4], _f32([[0.0, 1.0]]), 2e4, [1.0, -1.0]),
    ("sigmoid", "binary_cross_entropy", [1e4, -1e4], _f32([[1.0, 0.0]]), 0.0, [0.0, 0.0]),
]


@pytest.mark.parametrize("out, loss, w, y, value, delta", EXTREME)
def test_extreme_logits_float32_give_finite_exact_results(out, loss, w, y, value, delta):
    net, params, x, y = _extreme_case(out, loss, w, y)
    np.testing.assert_allclose(jmlp.loss(net, params, x, y), value, rtol=1e-6)
    for fn in (jmlp.backprop, jmlp.autodiff):
        v, grads = fn(net, params, x, y)
        assert v.dtype == jnp.float32
        np.testing.assert_allclose(v, value, rtol=1e-6)
        # x = 1 so dL/dW = dL/db = delta^L
        np.testing.assert_allclose(grads[0]["W"], [delta], rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(grads[0]["b"], delta, rtol=1e-6, atol=1e-30)


# --- probabilities of exactly 0 and 1 in the non-fused forms: documented clip -------------------
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize(
    "name, y, t",
    [
        ("binary_cross_entropy", [[0.0, 1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0, 0.0]]),
        ("cross_entropy", [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]),
        ("cross_entropy", [[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]]),
    ],
)
def test_saturated_probabilities_are_clipped(dtype, name, y, t):
    record = LOSSES[name]
    eps = float(jnp.finfo(dtype).eps)
    # documented: y is clipped to [eps, 1 - eps]; a confidently wrong unit costs -log(eps)
    p, tn = np.clip(np.asarray(y), eps, 1 - eps), np.asarray(t)
    terms = tn * np.log(p) + ((1 - tn) * np.log(1 - p) if name == "binary_cross_entropy" else 0)
    expected = -np.sum(terms)
    y, t = jnp.asarray(y, dtype), jnp.asarray(t, dtype)
    value = record.value(y, t)
    np.testing.assert_allclose(value, [expected], rtol=1e-5 if dtype == jnp.float32 else 1e-12)
    grad = record.grad(y, t)
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_array_equal(grad, 0.0)  # the clip is active everywhere: derivative 0
    np.testing.assert_array_equal(grad, autodiff_grad(record, y, t))


@pytest.mark.parametrize(
    "out, loss, y",
    [
        ("sigmoid", "cross_entropy", _f32([[0.0, 1.0]])),
        ("sigmoid", "mse", _f32([[0.0, 1.0]])),
        ("softmax", "binary_cross_entropy", _f32([[0.0, 1.0, 1.0]])),
        ("softmax", "mse", _f32([[0.0, 1.0, 0.0]])),
    ],
)
def test_non_fused_pairs_at_saturated_outputs_are_finite_float32(out, loss, y):
    w = [1e4, -1e4] if y.shape[-1] == 2 else [1e4, -1e4, 0.0]
    net, params, x, y = _extreme_case(out, loss, w, y)
    assert net.fused is None
    v_bp, g_bp = jmlp.backprop(net, params, x, y)
    v_ad, g_ad = jmlp.autodiff(net, params, x, y)
    assert bool(jnp.isfinite(v_bp)) and float(v_bp) > 0
    np.testing.assert_allclose(v_bp, v_ad, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_bp), jax.tree.leaves(g_ad)):
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-30)
