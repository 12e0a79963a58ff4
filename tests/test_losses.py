"""The loss table: values against numpy, hand gradients against jax.grad (ties included), the fused
(output activation, loss) pairs, the numerics of extreme logits and saturated probabilities, and
the relative precision of every fused value and delta in float32 and bfloat16 against exact
(120-digit decimal) references."""

import decimal
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import xlogy

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
COUNTS = np.random.default_rng(1)  # a generator of its own: the draws above stay as they were
Y_RATE = COUNTS.uniform(0.05, 6, size=(B, N))
T_COUNT = COUNTS.poisson(2.0, size=(B, N)).astype(float)  # zeros included
T_RATE = COUNTS.uniform(0, 4, size=(B, N))


def _huber(r, d):
    return np.where(np.abs(r) <= d, r**2 / 2, d * (np.abs(r) - d / 2))


def _half_poisson_deviance(y, t):
    """scikit-learn's poisson loss per example: sum t log(t / y) - t + y (t log t = 0 at 0)."""
    return np.sum(xlogy(t, t / y) - t + y, -1)


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
    *[
        (f"poisson_{tname}", "poisson", None, Y_RATE, t, _half_poisson_deviance)
        for tname, t in [("counts", T_COUNT), ("rates", T_RATE)]
    ],
]
CASE_IDS = [c[0] for c in CASES]


def autodiff_grad(record, y, t):
    """dl_n/dy by jax.grad of the summed value (examples are independent)."""
    return jax.grad(lambda y: jnp.sum(record.value(y, t)))(y)


def test_the_table_holds_the_documented_names():
    documented = {"mse", "half_sse", "mae", "huber", "binary_cross_entropy", "cross_entropy"}
    assert documented | {"hinge", "poisson"} <= set(LOSSES)
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
    ("sigmoid", "cross_entropy"): [T_BINARY, T_SOFT],
    ("softmax", "binary_cross_entropy"): [T_BINARY, T_ONEHOT, T_SOFT],
    ("exp", "poisson"): [T_COUNT, T_RATE],
}
FUSED_CASES = [
    (pair, i, t) for pair, targets in FUSED_TARGETS.items() for i, t in enumerate(targets)
]
FUSED_IDS = [f"{out}-{loss}-t{i}" for (out, loss), i, _ in FUSED_CASES]
# the pairs without a closed-form Hessian take the chain rule in hvp (tested in test_curvature)
HVP_CASES = [case for case in FUSED_CASES if FUSED[case[0]].hvp is not None]
HVP_IDS = [f"{out}-{loss}-t{i}" for (out, loss), i, _ in HVP_CASES]


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


@pytest.mark.parametrize("pair, i, t", HVP_CASES, ids=HVP_IDS)
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
    # confidently wrong outputs of the pairs a clip of the probability would freeze (gradient 0):
    # sigmoid + cross_entropy, t = (0, 1): L = -log s(-1e4) = 1e4, delta = -t s(-z) = (0, -1)
    ("sigmoid", "cross_entropy", [1e4, -1e4], _f32([[0.0, 1.0]]), 1e4, [0.0, -1.0]),
    # softmax + binary_cross_entropy, z = (1e4, -1e4, 0), t = (0, 1, 1): s = (1, e^-2e4, e^-1e4),
    # L = -[log s_1 + log s_2 + log(1 - s_0)] = 2e4 + 1e4 + 1e4; delta_j = s_j (1 + T - 2 t_j -
    # Q_j) - t_j (1 - s_j), Q_j = sum_{k != j} (1 - t_k) s_k / (1 - s_k): Q_0 = 0, delta_0 = 3 s_0
    # = 3; delta_1 = -(1 - s_1) = -1; s_2 Q_2 = s_2 s_0 / (1 - s_0) = 1, delta_2 = -1 - 1 = -2
    ("softmax", "binary_cross_entropy", [1e4, -1e4, 0.0], _f32([[0, 1, 1]]), 4e4, [3, -1, -2]),
    # exp + poisson, z = -1e4, t = 2: L = t (e^u - 1 - u), u = z - log t, = 2 (1e4 - 1 + log 2),
    # delta = e^z - t = -2; z = 80, t = 0: L = delta = e^80 (below float32's largest, e^88.7)
    ("exp", "poisson", [-1e4], _f32([[2.0]]), 2 * (1e4 - 1 + math.log(2)), [-2.0]),
    ("exp", "poisson", [80.0], _f32([[0.0]]), math.exp(80), [math.exp(80)]),
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


def test_exp_poisson_overflows_to_inf_float32():
    # documented: nothing is clipped; e^89 is beyond float32's range, so are L and delta
    net, params, x, y = _extreme_case("exp", "poisson", [89.0], _f32([[3.0]]))
    for fn in (jmlp.backprop, jmlp.autodiff):
        value, grads = fn(net, params, x, y)
        assert float(value) == np.inf and float(grads[0]["b"][0]) == np.inf


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_poisson_rate_zero_is_clipped_to_the_smallest_normal(dtype):
    # documented: y below the smallest normal number counts as that (derivatives 0 there), so an
    # output that underflows to 0 costs t log(t / tiny) - t + tiny, never log 0
    record, tiny = LOSSES["poisson"], float(jnp.finfo(dtype).tiny)
    y, t = jnp.asarray([[0.0, 1.0]], dtype), jnp.asarray([[1.0, 0.0]], dtype)
    parts = jax.jit(lambda y, t: (*(f(y, t) for f in record), autodiff_grad(record, y, t)))
    value, grad, hess, auto = parts(y, t)  # one compile, not one per eager primitive
    expected = (-math.log(tiny) - 1 + tiny) + 1.0  # the second unit: t = 0, y = 1
    np.testing.assert_allclose(value, [expected], rtol=4 * jnp.finfo(dtype).eps)
    np.testing.assert_array_equal(grad, [[0.0, 1.0]])
    np.testing.assert_array_equal(grad, auto)
    np.testing.assert_array_equal(hess, [[0.0, 0.0]])


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
        ("sigmoid", "mse", _f32([[0.0, 1.0]])),
        ("softmax", "mse", _f32([[0.0, 1.0, 0.0]])),
        ("softmax", "half_sse", _f32([[0.0, 1.0, 0.0]])),
        ("tanh", "hinge", _f32([[-1.0, 1.0]])),
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


@pytest.mark.parametrize("out", ["sigmoid", "softmax"])
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_log_losses_on_probability_outputs_are_fused(out, loss):
    # computed from the logits, so no clip of the probability applies anywhere on these outputs
    assert (out, loss) in FUSED
    assert jmlp.MLP((2, 3), output_activation=out, loss=loss).fused is FUSED[out, loss]


# --- full relative precision of the fused values and deltas in float32 and bfloat16 ----------------
# Rows of 4 logits spread over [-100, 100] with hard targets (confidently right, confidently wrong,
# random) and soft ones, all exactly representable in bfloat16 (so also in float32). Reference:
# value and delta from the definitions (s = e^z / sum e^z or 1 / (1 + e^-z); delta the textbook
# y - t forms) in 120-digit decimal arithmetic, where nothing cancels visibly. Criterion per entry,
# u the dtype's unit roundoff:
#   |f_low - f| <= K u (|f| + sum_i |dx_i df/dx_i|),  x = (z, t) of the row,
# i.e. no worse than rounding every input by K ulps: dx_i = |x_i|, except that softmax sees
# z - max z, so its logits count as rounded relative to the row's largest |z|. That is relative
# K ulps wherever f is not near a zero of its own (for hard targets: everywhere but the balance
# points of softmax + binary_cross_entropy's off-target entries, whose delta is held to a few ulps
# of its terms instead, see _softmax_bce_terms). K = 8: 4 logits and sums of 4 terms (worst
# seen: 2.5 of that scale, softmax + binary_cross_entropy in float32).
# Entries below 2^10 x the smallest normal may be off by that much (underflow, flushed subnormals).
# exp + poisson: logits over [-80, 80] (e^z a normal number in both dtypes) with counts and rates
# as targets: 0, the rate e^z rounded to bfloat16 (a few 1e-3 from the loss's minimum, where the
# textbook sum t log t - t z - t + e^z cancels to its rounding), e^(z -+ 3), e^(z - 90) (e^z / t
# overflows), small counts.
K_ULPS = 8
LOW_DTYPES = {"float32": 2.0**-24, "bfloat16": 2.0**-8}
LOG_PAIRS = [pair for pair in FUSED if pair[0] in ("sigmoid", "softmax", "exp")]


def _exact(out: str, loss: str, z: list, t: list) -> tuple:
    """(l, [dl/dz_j]) of one row from the definitions, in the current decimal context."""
    if out == "exp":  # half the Poisson deviance of y = e^z: sum t ln(t / y) - t + y
        y = [zj.exp() for zj in z]
        value = sum((tj * (tj / yj).ln() if tj else 0) - tj + yj for tj, yj in zip(t, y))
        return value, [yj - tj for yj, tj in zip(y, t)]
    if out == "sigmoid":
        s = [1 / (1 + (-zj).exp()) for zj in z]
    else:
        e = [zj.exp() for zj in z]
        s = [ej / sum(e) for ej in e]
    value = -sum(tj * sj.ln() for tj, sj in zip(t, s))
    if loss == "binary_cross_entropy":
        value -= sum((1 - tj) * (1 - sj).ln() for tj, sj in zip(t, s))
    if out == "sigmoid":  # element-wise: d/dz of -t log s - (1 - t) log(1 - s)
        bce = loss == "binary_cross_entropy"
        return value, [sj - tj if bce else -tj * (1 - sj) for sj, tj in zip(s, t)]
    if loss == "cross_entropy":  # s_j sum(t) - t_j
        return value, [sj * sum(t) - tj for sj, tj in zip(s, t)]
    # chain rule through ds_k/dz_j = s_k (delta_kj - s_j) with q_k = s_k / (1 - s_k):
    # dl/dz_j = s_j (sum(t) - Q) - t_j + (1 - t_j) q_j, Q = sum_k (1 - t_k) q_k
    q = [sj / (1 - sj) for sj in s]
    big_q = sum((1 - tk) * qk for tk, qk in zip(t, q))
    return value, [sj * (sum(t) - big_q) - tj + (1 - tj) * qj for sj, tj, qj in zip(s, t, q)]


def _softmax_bce_terms(z: list, t: list) -> list:
    """The three terms of dl/dz_j = s_j (1 + T - 2 t_j) - s_j Q_j - t_j (1 - s_j), Q_j =
    sum_{k != j} (1 - t_k) q_k, summed in magnitude: where they cancel (an off-target class at its
    balance point, e.g. t = 0 and nearly equal logits), no formula in s is more accurate."""
    e = [zj.exp() for zj in z]
    s = [ej / sum(e) for ej in e]
    q = [(1 - tk) * sk / (1 - sk) for sk, tk in zip(s, t)]
    return [
        sj * abs(1 + sum(t) - 2 * tj) + sj * (sum(q) - qj) + tj * (1 - sj)
        for sj, tj, qj in zip(s, t, q)
    ]


def _bfloat16_values(a) -> np.ndarray:
    return np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float64))


def _rate_rows() -> tuple[np.ndarray, np.ndarray]:
    """Logits and count / rate targets for exp + poisson (the comment above)."""
    rng = np.random.default_rng(2)
    z = np.concatenate(
        [
            rng.normal(size=(4, 4)) * 0.5,
            rng.normal(size=(4, 4)) * 5,
            rng.uniform(-80, 80, (8, 4)),
            [[80, -80, 0, 40], [20, 1e-3, -1e-3, -20], [2.5, 2.5, 0.1, 7]],
        ]
    )
    z = _bfloat16_values(z)
    targets = [np.zeros_like(z), _bfloat16_values(np.exp(z))]
    targets += [_bfloat16_values(np.exp(z + shift)) for shift in (-90, -3, 3)]
    targets += [rng.integers(0, 10, z.shape) * 1.0, rng.integers(0, 65, z.shape) / 64]
    return np.tile(z, (len(targets), 1)), np.concatenate(targets)


def _precision_rows(out: str, loss: str) -> tuple[np.ndarray, np.ndarray]:
    if out == "exp":
        return _rate_rows()
    rng = np.random.default_rng(1)
    z = np.concatenate(
        [
            rng.normal(size=(4, 4)) * 0.5,
            rng.normal(size=(4, 4)) * 5,
            rng.uniform(-100, 100, (8, 4)),
            [[100, -100, 0, 50], [20, 0, 0, 0], [-20, 0, 0, 0], [0, 0, 0, 0]],
            [[30, 30, -5, 1], [-100, -100, -100, 100], [1e-3, -1e-3, 0, 0], [88, -3, 2, 87.5]],
        ]
    )
    z = np.asarray(jnp.asarray(z, jnp.bfloat16).astype(jnp.float64))  # bfloat16 values
    if out == "softmax" and loss == "cross_entropy":
        hard = [np.argmax(z, -1), np.argmin(z, -1), rng.integers(0, 4, len(z))]
        targets = [np.eye(4)[labels] for labels in hard]
    else:  # right (t = 1 where z > 0), wrong, random 0/1 per unit
        targets = [(z > 0) * 1.0, (z <= 0) * 1.0, rng.integers(0, 2, z.shape) * 1.0]
    soft = rng.integers(0, 65, z.shape) / 64  # multiples of 1/64: exact in bfloat16
    n = len(targets) + 1
    return np.tile(z, (n, 1)), np.concatenate(targets + [soft])


@functools.cache
def _precision_case(out: str, loss: str):
    """Rows, exact values and deltas, and the sensitivities sum_i |dx_i df/dx_i| of both (one-sided
    differences with step 1e-30 dx_i: exact to ~30 digits, plenty for a tolerance)."""
    z, t = _precision_rows(out, loss)
    values, deltas, value_sens, delta_sens = [], [], [], []
    with decimal.localcontext() as ctx:
        ctx.prec = 120
        step = decimal.Decimal("1e-30")
        for z_row, t_row in zip(z, t):
            x = [decimal.Decimal(float(v)) for v in np.concatenate([z_row, t_row])]
            n = len(z_row)
            value, delta = _exact(out, loss, x[:n], x[n:])
            sv, sd = decimal.Decimal(0), [decimal.Decimal(0)] * n
            # softmax sees z - max z: its logits are rounded relative to the row's largest |z|
            spread = max(abs(v) for v in x[:n]) if out == "softmax" else None
            for i in range(2 * n):
                y = list(x)
                y[i] = x[i] + step * (spread if i < n and spread is not None else abs(x[i]))
                v_i, d_i = _exact(out, loss, y[:n], y[n:])
                sv += abs(v_i - value) / step
                sd = [a + abs(b - c) / step for a, b, c in zip(sd, d_i, delta)]
            if (out, loss) == ("softmax", "binary_cross_entropy"):
                sd = [a + b for a, b in zip(sd, _softmax_bce_terms(x[:n], x[n:]))]
            values.append(float(value))
            deltas.append([float(d) for d in delta])
            value_sens.append(float(sv))
            delta_sens.append([float(d) for d in sd])
    return z, t, np.array(values), np.array(deltas), np.array(value_sens), np.array(delta_sens)


def _assert_within(got, expected, sens, dtype, what):
    u, floor = LOW_DTYPES[dtype], 2.0**10 * float(jnp.finfo(dtype).tiny)
    assert got.dtype == jnp.dtype(dtype)
    got = np.asarray(got.astype(jnp.float64))
    allowed = K_ULPS * u * (np.abs(expected) + sens) + np.where(np.abs(expected) < floor, floor, 0)
    error = np.abs(got - expected)
    worst = np.unravel_index(np.argmax(error / allowed), error.shape)
    assert np.all(error <= allowed), (
        f"{what} at {worst}: got {got[worst]!r}, expected {expected[worst]!r}, allowed "
        f"{allowed[worst]:.3g}"
    )


@pytest.mark.parametrize("dtype", LOW_DTYPES)
@pytest.mark.parametrize("pair", LOG_PAIRS, ids=["-".join(p) for p in LOG_PAIRS])
def test_fused_value_and_delta_keep_relative_precision(pair, dtype):
    z, t, values, deltas, value_sens, delta_sens = _precision_case(*pair)
    z_low, t_low = jnp.asarray(z, dtype), jnp.asarray(t, dtype)
    record = FUSED[pair]
    _assert_within(record.value(z_low, t_low), values, value_sens, dtype, "value")
    h = get_activation(pair[0]).fn(z_low)
    _assert_within(record.delta(z_low, h, t_low), deltas, delta_sens, dtype, "delta")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_saturated_sigmoid_delta_with_exact_labels_keeps_its_digits(dtype):
    # With a label t = 1 (exact) the delta is h - 1 = -sigmoid(-z): for z = 20 about -2e-9,
    # which h - t computed from a rounded h loses entirely in float32.
    z = jnp.asarray([[5.0], [20.0], [40.0], [80.0]], dtype)
    t = jnp.ones_like(z)
    delta = FUSED[("sigmoid", "binary_cross_entropy")].delta(z, jax.nn.sigmoid(z), t)
    expected = -1 / (1 + np.exp(np.asarray(z, np.float64)))
    np.testing.assert_allclose(
        np.asarray(delta, np.float64), expected, rtol=8 * jnp.finfo(dtype).eps
    )


def test_exact_reference_delta_is_the_gradient_of_its_value():
    # the decimal deltas above are textbook formulas; check them against a central difference
    # of the decimal value itself (step 1e-40: error ~1e-80)
    with decimal.localcontext() as ctx:
        ctx.prec = 120
        x = [decimal.Decimal(v) for v in ("3.5", "-1.25", "0.5", "7", "0.25", "1", "0", "0.75")]
        h = decimal.Decimal("1e-40")
        for out, loss in LOG_PAIRS:
            _, delta = _exact(out, loss, x[:4], x[4:])
            for j in range(4):
                up, down = list(x[:4]), list(x[:4])
                up[j], down[j] = x[j] + h, x[j] - h
                value_up, value_down = (
                    _exact(out, loss, up, x[4:])[0],
                    _exact(out, loss, down, x[4:])[0],
                )
                slope = (value_up - value_down) / (2 * h)
                assert abs(slope - delta[j]) < decimal.Decimal("1e-60"), (out, loss, j)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_reduce_over_any_class_axis(name):
    """value, grad and hess with the output units on axis 0 of ``(n, B)`` arrays equal the rows'
    (the ensemble layout keeps them on an inner axis)."""
    rng = np.random.default_rng(3)
    y, t = rng.uniform(0.05, 0.95, (6, 4)), rng.uniform(size=(6, 4))
    t = np.sign(t - 0.5) if name == "hinge" else t
    loss = LOSSES[name]
    for part, transpose in ((loss.value, False), (loss.grad, True), (loss.hess, True)):
        rows, columns = part(y, t), part(y.T, t.T, axis=0)
        np.testing.assert_allclose(columns.T if transpose else columns, rows, rtol=1e-14)


@pytest.mark.parametrize("pair", sorted(FUSED))
def test_fused_pairs_reduce_over_any_class_axis(pair):
    rng = np.random.default_rng(4)
    z, t = rng.normal(size=(6, 4)) * 5, rng.dirichlet(np.ones(4), 6)
    h = get_activation(pair[0]).fn(z)
    fused = FUSED[pair]
    np.testing.assert_allclose(fused.value(z.T, t.T, axis=0), fused.value(z, t), rtol=1e-13)
    np.testing.assert_allclose(
        fused.delta(z.T, h.T, t.T, axis=0).T, fused.delta(z, h, t), rtol=1e-13
    )
    if fused.hvp is not None:
        v = rng.normal(size=z.shape)
        np.testing.assert_allclose(
            fused.hvp(z.T, h.T, t.T, v.T, axis=0).T, fused.hvp(z, h, t, v), rtol=1e-13
        )
