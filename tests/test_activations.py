"""The activation table: every hand-written derivative and vjp against jax.grad / jax.vjp of its
own ``fn``, every ``fn`` and derivative against independent numpy/scipy formulas (float64, and the
relative precision of float32 and bfloat16 over [-100, 100]), kinks, large |z|, options."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from jmlp.activations import (
    ACTIVATIONS,
    OUTPUT_ONLY,
    SECOND_DERIVATIVES,
    get_activation,
    softmax,
    softmax_vjp,
    softmax_vjp_derivative,
)

ELEMENTWISE = [name for name in ACTIVATIONS if name != "softmax"]
UNBOUNDED = ("exp",)  # e^z overflows the dtype for large z (tested apart)
SMOOTH = ["identity", "sigmoid", "tanh", "softplus", "gelu", "gelu_exact"]  # C-infinity
GELU_C = math.sqrt(2 / math.pi)


def _elu(z, alpha=1.0):
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))


def _sech(z):
    with np.errstate(over="ignore"):  # cosh = inf for |z| > 710, where sech underflows to 0
        return 1 / np.cosh(z)


def _exp(z):
    with np.errstate(over="ignore"):  # inf beyond the dtype's range, as e^z is
        return np.exp(z)


def _gelu_u(z):
    return GELU_C * (z + 0.044715 * z**3)


def _gelu_deriv(z):
    """d/dz z/2 (1 + tanh u) = (1 + tanh u)/2 + z/2 sech^2(u) u', with 1 + tanh u = 2 expit(2u)
    and sech^2 u = 4 expit(2u) expit(-2u)."""
    du = GELU_C * (1 + 3 * 0.044715 * z * z)
    return special.expit(2 * _gelu_u(z)) * (1 + 2 * z * du * special.expit(-2 * _gelu_u(z)))


# Independent float64 references (numpy / scipy), written from the formulas, not from jmlp, in
# forms accurate to ~1e-15 relative in the tails too (1 + tanh u = 2 expit(2u)).
NUMPY_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "elu": _elu,
    "gelu": lambda z: z * special.expit(2 * _gelu_u(z)),
    "gelu_exact": lambda z: z * special.ndtr(z),  # z Phi(z), Phi the standard normal cdf
    "exp": _exp,
    "softmax": lambda z: special.softmax(z, axis=-1),
}
NUMPY_DERIVATIVES = {
    "identity": np.ones_like,
    "sigmoid": lambda z: special.expit(z) * special.expit(-z),
    "tanh": lambda z: _sech(z) ** 2,
    "relu": lambda z: np.where(z > 0, 1.0, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    "softplus": special.expit,
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))),
    "gelu": lambda z: _gelu_deriv(z),
    "gelu_exact": lambda z: special.ndtr(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
    "exp": _exp,
}

# A grid of ordinary values plus large |z| (saturation, overflow of exp) and the kink z = 0.
GRID = np.concatenate([np.linspace(-8, 8, 161), [-1e4, -300.0, -50.0, 50.0, 300.0, 1e4, 0.0]])


def autodiff_deriv(fn, z):
    return jax.vmap(jax.grad(fn))(z)


def test_the_table_holds_the_documented_names():
    expected = {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"}
    assert expected <= set(ACTIVATIONS)
    assert set(NUMPY_ACTIVATIONS) == set(ACTIVATIONS), "a new activation needs a reference here"
    assert set(NUMPY_DERIVATIVES) == set(ELEMENTWISE), "and its derivative"
    assert get_activation("softmax").deriv is None
    assert set(OUTPUT_ONLY) == {"softmax", "exp"}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_fn_matches_independent_formula(name):
    z = jnp.asarray(GRID if name != "softmax" else GRID.reshape(-1, 7))
    expected = NUMPY_ACTIVATIONS[name](np.asarray(z))
    # relative only: tails included (sigmoid(-50) = 2e-22, not 0). 1e-13 = 1e3 ulps: gelu's
    # e^(-p(z)) tail amplifies the rounding of p(z) ~ 70-fold at z = -6 (seen: 7e-15).
    np.testing.assert_allclose(get_activation(name).fn(z), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_deriv_matches_independent_formula(name):
    act = get_activation(name)
    z = jnp.asarray(GRID)
    expected = NUMPY_DERIVATIVES[name](GRID)
    np.testing.assert_allclose(act.deriv(z, act.fn(z)), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_deriv_equals_autodiff_float64(name):
    act = get_activation(name)
    z = jnp.asarray(GRID)
    # atol: autodiff's own rule for tanh (1 - h^2) cancels in the tails (|z| >= 8, derivative
    # <= 5e-7), so there the two agree to a few 1e-16 absolute; the hand-written derivative's
    # relative accuracy is tested against the independent formulas above and below.
    np.testing.assert_allclose(
        act.deriv(z, act.fn(z)), autodiff_deriv(act.fn, z), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_vjp_equals_jax_vjp_float64(name):
    act = get_activation(name)
    z = jnp.asarray(GRID)
    g = jax.random.normal(jax.random.key(0), z.shape)
    _, pullback = jax.vjp(act.fn, z)
    np.testing.assert_allclose(act.vjp(z, act.fn(z), g), pullback(g)[0], rtol=1e-12, atol=1e-12)


def test_softmax_vjp_equals_jax_vjp_and_the_jacobian():
    act = get_activation("softmax")
    z = 3 * jax.random.normal(jax.random.key(0), (6, 5))
    z = z.at[0].set(jnp.array([1e4, -1e4, 0.0, 5.0, 1e4]))  # a saturated row
    g = jax.random.normal(jax.random.key(1), z.shape)
    s = act.fn(z)
    _, pullback = jax.vjp(act.fn, z)
    np.testing.assert_allclose(act.vjp(z, s, g), pullback(g)[0], rtol=1e-12, atol=1e-12)
    # the documented form s * (g - <g, s>), row by row as g J with J = diag(s) - s s^T
    s_np, g_np = np.asarray(s), np.asarray(g)
    rows = [gn @ (np.diag(sn) - np.outer(sn, sn)) for sn, gn in zip(s_np, g_np)]
    np.testing.assert_allclose(act.vjp(z, s, g), np.stack(rows), rtol=1e-12, atol=1e-14)


# --- second derivatives ------------------------------------------------------------------------
def test_every_elementwise_activation_has_a_second_derivative():
    assert set(SECOND_DERIVATIVES) == set(ELEMENTWISE)


@pytest.mark.parametrize("name, param", [(n, None) for n in ELEMENTWISE] + [("elu", 1.5)])
def test_deriv2_equals_autodiff_float64(name, param):
    act = get_activation(name, param)
    z = jnp.asarray(GRID)
    auto = jax.vmap(jax.grad(jax.grad(act.fn)))(z)
    # atol: as for deriv; gelu's tails (|z| ~ 7) cancel to a few 1e-14 absolute on both sides
    np.testing.assert_allclose(act.deriv2(z, act.fn(z)), auto, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name, param, expected",
    [("relu", None, 0.0), ("leaky_relu", 0.2, 0.0), ("elu", None, 1.0), ("elu", 1.5, 1.5)],
)
def test_second_derivative_at_the_kink_is_autodiffs(name, param, expected):
    act = get_activation(name, param)
    z = jnp.zeros(3)
    hand = act.deriv2(z, act.fn(z))
    np.testing.assert_array_equal(hand, jax.vmap(jax.grad(jax.grad(act.fn)))(z))
    np.testing.assert_array_equal(hand, expected)


def test_softmax_second_order_term_equals_jax_jvp_of_its_vjp():
    z = 3 * jax.random.normal(jax.random.key(2), (6, 5))
    g, u = jax.random.normal(jax.random.key(3), (2, 6, 5))
    act = get_activation("softmax")
    assert act.deriv2 is None
    hand = softmax_vjp_derivative(z, act.fn(z), g, u)
    # d/dz [g J(z)] u with g fixed, by forward-over-reverse autodiff of softmax itself
    auto = jax.jvp(lambda z: jax.vjp(act.fn, z)[1](g)[0], (z,), (u,))[1]
    np.testing.assert_allclose(hand, auto, rtol=1e-12, atol=1e-14)


# --- kinks ---------------------------------------------------------------------------------------
# The hand derivative at z = 0 is exactly the one jax.grad of fn gives (documented values).
KINKS = [
    ("relu", None, 0.0),
    ("leaky_relu", None, 0.01),
    ("leaky_relu", 0.2, 0.2),
    ("elu", None, 1.0),
    ("elu", 1.5, 1.5),
]


@pytest.mark.parametrize("name, param, expected", KINKS)
def test_derivative_at_the_kink_is_autodiffs(name, param, expected):
    act = get_activation(name, param)
    z = jnp.zeros(3)
    hand = act.deriv(z, act.fn(z))
    auto = autodiff_deriv(act.fn, z)
    np.testing.assert_array_equal(hand, auto)
    np.testing.assert_array_equal(hand, expected)


# --- large |z| in float32 ----------------------------------------------------------------------
BIG32 = jnp.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype=jnp.float32)


@pytest.mark.parametrize("name", [name for name in ELEMENTWISE if name not in UNBOUNDED])
def test_finite_at_large_z_float32(name):
    act = get_activation(name)
    h = act.fn(BIG32)
    d = act.deriv(BIG32, h)
    auto = autodiff_deriv(act.fn, BIG32)
    for a in (h, d, auto):
        assert a.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(a))), (name, a)
    # float32 saturates: atol covers derivative tails below float32 resolution
    np.testing.assert_allclose(d, auto, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name, z, expected",
    [
        ("sigmoid", -1e4, 0.0),
        ("sigmoid", 1e4, 1.0),
        ("softplus", -1e4, 0.0),
        ("softplus", 1e4, 1e4),
        ("elu", -1e4, -1.0),
        ("elu", 1e4, 1e4),
        ("gelu", -1e4, 0.0),
        ("gelu_exact", -1e4, 0.0),
        ("tanh", -1e4, -1.0),
    ],
)
def test_saturated_values_float32(name, z, expected):
    h = get_activation(name).fn(jnp.array([z], dtype=jnp.float32))
    np.testing.assert_allclose(h, [expected], rtol=1e-7)


def test_exp_overflows_to_inf_beyond_the_dtypes_range():
    # float32's largest is (2 - 2^-23) 2^127, e^88.72...; float64's e^709.78...
    act = get_activation("exp")
    for dtype, below, above in ((jnp.float32, 88.5, 88.8), (jnp.float64, 709.5, 709.9)):
        z = jnp.array([-1e4, 0.0, below, above, 1e4], dtype)
        h = act.fn(z)
        assert h.dtype == dtype
        np.testing.assert_array_equal(np.asarray(h)[[0, 1, 3, 4]], [0.0, 1.0, np.inf, np.inf])
        np.testing.assert_allclose(h[2], math.exp(float(z[2])), rtol=4 * jnp.finfo(dtype).eps)
        np.testing.assert_array_equal(act.deriv(z, h), h)
        np.testing.assert_array_equal(autodiff_deriv(act.fn, z), h)


def test_sigmoid_stays_in_unit_interval_float32():
    z = jnp.linspace(-1e4, 1e4, 2001, dtype=jnp.float32)
    h = get_activation("sigmoid").fn(z)
    assert bool(jnp.all((h >= 0) & (h <= 1)))


def test_softmax_large_logits_float32():
    z = jnp.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e4, 3e4, -3e4]], dtype=jnp.float32)
    s = get_activation("softmax").fn(z)
    assert bool(jnp.all(jnp.isfinite(s)))
    np.testing.assert_allclose(s, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], rtol=1e-6)
    g = jnp.ones_like(z).at[:, 0].set(2.0)
    assert bool(jnp.all(jnp.isfinite(get_activation("softmax").vjp(z, s, g))))


# --- full relative precision in float32 and bfloat16 --------------------------------------------
# Every function and derivative, at points spread over [-100, 100] (a uniform grid and +-10^k down
# to 1e-30), against the float64 references above (~1e-15 relative: ~1e8 times finer than float32).
# Criterion, per point, u the dtype's unit roundoff:
#   |f_low(z) - f(z)| <= K u (|f(z)| + kappa(z)),  kappa(z) = |z f'(z)| (0 for EXACT_TAILS).
# kappa is how far rounding z by one ulp moves f: a value e^(-p(z)) with p a polynomial (the
# GELUs' tails, p ~ 2 z^2 c (1 + 3a z^2) or z^2 / 2) cannot be computed more accurately in the
# same dtype, since p(z) itself is rounded there. The other functions keep a few ulps outright.
# K = 8: the worst seen is 4.1 ulps (float32 elu at -0.4, expm1's error) and 3.8 (XLA's tanh), and
# 4.6 of the kappa scale (float32 gelu_exact's derivative, erfc's tail);
# the cancelling textbook forms miss by 1e6 ulps or more (sigmoid(-17) = 0 instead of 4e-8).
# Normal numbers only, and 2^10 above the underflow threshold: an intermediate of a tail (sigma(2u)
# inside gelu', e^(-2|z|) inside tanh') underflows first, and XLA on CPU flushes subnormals to 0.
K_ULPS = 8
EXACT_TAILS = {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "exp"}
WIDE = np.concatenate(
    [np.linspace(-100, 100, 2001), np.geomspace(1e-30, 100, 121), -np.geomspace(1e-30, 100, 121)]
)
LOW_DTYPES = {"float32": 2.0**-24, "bfloat16": 2.0**-8}  # unit roundoff


def sensitivity(reference, z, step=1e-7):
    """|z f'(z)| by a central difference of the float64 reference, relative step (no kink is
    straddled: z (1 +- step) has the sign of z)."""
    return np.abs(reference(z * (1 + step)) - reference(z * (1 - step))) / (2 * step)


def assert_relative_precision(got, expected, z, dtype, kappa=0.0):
    u, floor = LOW_DTYPES[dtype], 2.0**10 * float(jnp.finfo(dtype).tiny)
    assert got.dtype == jnp.dtype(dtype)
    got = np.asarray(got.astype(jnp.float64))
    allowed = K_ULPS * u * (np.abs(expected) + kappa) + np.where(np.abs(expected) < floor, floor, 0)
    error = np.abs(got - expected)
    worst = np.argmax(error / allowed)
    assert np.all(error <= allowed), (
        f"z = {z[worst]!r}: got {got[worst]!r}, expected {expected[worst]!r} "
        f"({error[worst] / (u * abs(expected[worst])):.3g} ulps)"
    )


@pytest.mark.parametrize("dtype", LOW_DTYPES)
@pytest.mark.parametrize("part", ["fn", "deriv"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_full_relative_precision_over_the_range(name, part, dtype):
    act = get_activation(name)
    z_low = jnp.asarray(WIDE, dtype)
    z = np.asarray(z_low.astype(jnp.float64))  # the points as the dtype holds them
    reference = (NUMPY_ACTIVATIONS if part == "fn" else NUMPY_DERIVATIVES)[name]
    got = act.fn(z_low) if part == "fn" else act.deriv(z_low, act.fn(z_low))
    held = np.abs(reference(z)) <= float(jnp.finfo(dtype).max)  # exp overflows beyond: inf
    np.testing.assert_array_equal(got[~held], np.inf)
    z, got = z[held], got[held]
    kappa = 0.0 if name in EXACT_TAILS else sensitivity(reference, z)
    assert_relative_precision(got, reference(z), z, dtype, kappa)


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_softmax_relative_precision(dtype):
    # rows of 5 logits spread over [-100, 100]; kappa_k = sum_j |z_j ds_k/dz_j|, ds_k/dz_j =
    # s_k (delta_kj - s_j), = s_k (|z_k| (1 - 2 s_k) + sum_j |z_j| s_j): e^(z_k - max z) cannot be
    # more accurate than the rounded difference.
    rng = np.random.default_rng(0)
    z_low = jnp.asarray(rng.uniform(-100, 100, (400, 5)) * rng.uniform(0, 1, (400, 1)), dtype)
    z = np.asarray(z_low.astype(jnp.float64))
    s = special.softmax(z, axis=-1)
    a = np.abs(z)
    kappa = s * (a * (1 - 2 * s) + np.sum(a * s, axis=-1, keepdims=True))
    got = get_activation("softmax").fn(z_low)
    assert_relative_precision(got.ravel(), s.ravel(), z.ravel(), dtype, kappa.ravel())


# --- GELU against independent formulas -----------------------------------------------------------
def test_gelu_exact_against_math_erfc():
    z = np.linspace(-6, 6, 49)
    # Phi(z) = erfc(-z / sqrt 2) / 2 (1 + erf(z / sqrt 2) would cancel for z << 0)
    expected = [0.5 * v * math.erfc(-v / math.sqrt(2)) for v in z]
    gelu_exact = get_activation("gelu_exact").fn(jnp.asarray(z))
    np.testing.assert_allclose(gelu_exact, expected, rtol=1e-13, atol=0)
    # derivative: Phi(z) + z phi(z); the two terms cancel near its zero (z = -0.75): there the
    # accuracy is absolute, of the terms' size
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    act = get_activation("gelu_exact")
    zj = jnp.asarray(z)
    np.testing.assert_allclose(
        act.deriv(zj, act.fn(zj)), special.ndtr(z) + z * phi, rtol=1e-12, atol=1e-15
    )


def test_gelu_tanh_form_against_its_formula_and_jax_nn():
    z = np.linspace(-6, 6, 49)
    u = GELU_C * (z + 0.044715 * z**3)
    expected = [0.5 * v * (1 + math.tanh(a)) for v, a in zip(z, u)]
    out = get_activation("gelu").fn(jnp.asarray(z))
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-14)  # atol: as above
    np.testing.assert_allclose(
        out, jax.nn.gelu(jnp.asarray(z), approximate=True), rtol=1e-12, atol=1e-14
    )
    # the two GELUs are different functions: the tanh form is within ~1e-3 of the exact one
    exact = get_activation("gelu_exact").fn(jnp.asarray(z))
    assert 1e-5 < float(jnp.max(jnp.abs(out - exact))) < 1e-3


# --- options and names -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, param, z, h, dh",
    [
        ("leaky_relu", None, -2.0, -0.02, 0.01),
        ("leaky_relu", 0.2, -2.0, -0.4, 0.2),
        ("leaky_relu", 0.2, 3.0, 3.0, 1.0),
        ("elu", None, -1.0, math.expm1(-1.0), math.exp(-1.0)),
        ("elu", 1.5, -1.0, 1.5 * math.expm1(-1.0), 1.5 * math.exp(-1.0)),
        ("elu", 1.5, 2.0, 2.0, 1.0),
    ],
)
def test_activation_option_is_honoured(name, param, z, h, dh):
    act = get_activation(name, param)
    zj = jnp.array([z])
    np.testing.assert_allclose(act.fn(zj), [h], rtol=1e-15)
    np.testing.assert_allclose(act.deriv(zj, act.fn(zj)), [dh], rtol=1e-15)
    np.testing.assert_allclose(autodiff_deriv(act.fn, zj), [dh], rtol=1e-15)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="activation") as info:
        get_activation("swish")
    message = str(info.value)
    assert "'swish'" in message
    assert all(name in message for name in ACTIVATIONS)


def test_softmax_and_its_products_along_any_class_axis():
    """softmax, its vjp and second-order term with the classes on axis 0 of ``(n, B)`` arrays."""
    rng = np.random.default_rng(5)
    z, g, u = (rng.normal(size=(6, 4)) for _ in range(3))
    h = softmax(z)
    np.testing.assert_allclose(softmax(z.T, axis=0).T, h, rtol=1e-14)
    np.testing.assert_allclose(
        softmax_vjp(z.T, h.T, g.T, axis=0).T, softmax_vjp(z, h, g), rtol=1e-14
    )
    turned = softmax_vjp_derivative(z.T, h.T, g.T, u.T, axis=0).T
    np.testing.assert_allclose(turned, softmax_vjp_derivative(z, h, g, u), rtol=1e-13)
