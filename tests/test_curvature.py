"""Second order by hand against autodiff in float64: Hessian-vector products (every hidden
activation x every (output activation, loss) pair jmlp.MLP accepts x depths 0, 1, 3; the pairs
of conftest.SLOW_PAIRS in the slow set), full Hessians, Gauss-Newton products, the empirical
NTK, symmetry (hypothesis), sharpness.

Speed: every case is a different spec, so jitting would compile each (~0.2 s on a 2-core box).
Run eagerly, all cases share one layer shape (3 x 3), so the per-primitive compile cache is warm
after the first few cases and a case costs its dispatches: ~2 ms for the hand-written hvp, ~20 ms
for autodiff's jvp-of-grad. Depth 3 uses mixed per-layer activations (three nets per pair hold
the nine hidden activations, rotated so each sits in each position), depth 1 every activation.
"""

import functools
import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SLOW_PAIRS, TOL
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import jmlp
from jmlp.activations import ACTIVATIONS
from jmlp.checks import as_targets
from jmlp.curvature import lanczos_max
from jmlp.forward import forward_cache
from jmlp.losses import FUSED, LOSSES

WIDTH, BATCH = 3, 4  # every layer (3, 3): one shape for the eager compile cache
DEPTHS = {0: (WIDTH, WIDTH), 1: (WIDTH,) * 3, 3: (WIDTH,) * 5}


def accepted(sizes, activation, output="identity", loss="mse"):
    """The spec, or None where jmlp.MLP refuses the combination (the tables decide)."""
    try:
        return jmlp.MLP(sizes, activation, output, loss)
    except (ValueError, TypeError):
        return None


HIDDEN = [name for name in ACTIVATIONS if accepted(DEPTHS[1], name)]
PAIRS = [
    (out, loss)
    for out in ACTIVATIONS
    for loss in LOSSES
    if accepted(DEPTHS[0], "identity", out, loss)
]


def hidden_for(depth, pair_index):
    """Depth 0: none; depth 1: each activation; depth 3: triples of them, rotated per pair."""
    if depth == 0:
        return ["identity"]
    if depth == 1:
        return HIDDEN
    n = len(HIDDEN)
    triples = [[HIDDEN[(3 * j + i) % n] for i in range(3)] for j in range(math.ceil(n / 3))]
    r = pair_index % 3
    return [tuple(t[r:] + t[:r]) for t in triples]


MATRIX = [
    (depth, hidden, out, loss)
    for depth in DEPTHS
    for i, (out, loss) in enumerate(PAIRS)
    for hidden in hidden_for(depth, i)
    if accepted(DEPTHS[depth], hidden, out, loss)
]


def with_slow_pairs(cases):
    """``(depth, hidden, output, loss, ...)`` cases, those of a pair in SLOW_PAIRS marked slow."""
    slow = [pytest.mark.slow]
    return [pytest.param(*c, marks=slow if tuple(c[2:4]) in SLOW_PAIRS else []) for c in cases]


def targets(key, loss, output, batch=BATCH, n_out=WIDTH):
    """Targets each loss is meant for: labels, probability rows, +-1 signs, counts or reals."""
    if loss == "cross_entropy" and output == "softmax":
        return jax.random.randint(key, (batch,), 0, n_out)  # integer labels
    if loss in ("cross_entropy", "binary_cross_entropy"):
        return jax.random.uniform(key, (batch, n_out), jnp.float64)
    if loss == "hinge":
        return jnp.where(jax.random.bernoulli(key, 0.5, (batch, n_out)), 1.0, -1.0)
    if loss == "poisson":
        return jax.random.poisson(key, 2.0, (batch, n_out)).astype(jnp.float64)  # counts
    return jax.random.normal(key, (batch, n_out), jnp.float64)


@functools.cache
def _data(sizes, output, loss, seed, batch):
    """Parameters, inputs, targets and a direction; shared by every hidden activation."""
    k = jax.random.split(jax.random.key(seed), 4)
    params = jmlp.init_params(
        k[0], sizes, weight_init="glorot_normal", bias_init=0.1, dtype=jnp.float64
    )
    x = jax.random.normal(k[1], (batch, sizes[0]), jnp.float64)
    y = targets(k[2], loss, output, batch, sizes[-1])
    v = jax.tree.map(lambda a: jax.random.normal(k[3], a.shape, a.dtype), params)
    return params, x, y, v


def problem(sizes, hidden, output, loss, seed=0, batch=BATCH, **options):
    net = jmlp.MLP(sizes, hidden, output, loss, **options)
    params, x, y, v = _data(sizes, output, loss, seed, batch)
    return net, [dict(layer) for layer in params], x, y, v  # a fresh list: tests may not share it


def flat(tree):
    return ravel_pytree(tree)[0]


def assert_close(hand, reference, tol=TOL["float64"]):
    """Normwise over the whole pytree: ||hand - ref|| <= rtol ||ref|| + atol."""
    assert jax.tree.structure(hand) == jax.tree.structure(reference)
    a, b = flat(hand), flat(reference)
    assert a.dtype == b.dtype
    err, scale = float(jnp.linalg.norm(a - b)), float(jnp.linalg.norm(b))
    assert err <= tol["rtol"] * scale + tol["atol"], (err, scale)


def autodiff_hvp(net, params, x, y, v, **kwargs):
    """Forward-over-reverse: jax.jvp of jax.grad of jmlp.loss."""
    grad = jax.grad(lambda p: jmlp.loss(net, p, x, y, **kwargs))
    return jax.jvp(grad, (params,), (v,))[1]


def hand_hessian(net, params, x, y, **kwargs):
    """The full Hessian, column by column: jmlp.hvp vmapped over the basis vectors."""
    theta, unravel = ravel_pytree(params)
    column = lambda e: flat(jmlp.hvp(net, params, x, y, unravel(e), **kwargs))
    return jax.vmap(column)(jnp.eye(theta.size, dtype=theta.dtype))


def autodiff_hessian(net, params, x, y, **kwargs):
    theta, unravel = ravel_pytree(params)
    return jax.hessian(lambda f: jmlp.loss(net, unravel(f), x, y, **kwargs))(theta)


# --- the matrix --------------------------------------------------------------------------------
def test_the_matrix_follows_the_tables():
    assert "softmax" not in HIDDEN and {"tanh", "relu"} <= set(HIDDEN)
    assert ("softmax", "cross_entropy") in PAIRS and ("identity", "mse") in PAIRS
    for depth in (1, 3):  # every accepted (hidden activation, pair) at depth 1 and at depth 3
        used = {
            (a, out, loss) for d, h, out, loss in MATRIX if d == depth for a in np.atleast_1d(h)
        }
        assert used == {(a, out, loss) for a in HIDDEN for out, loss in PAIRS}


@pytest.mark.parametrize("depth, hidden, output, loss", with_slow_pairs(MATRIX))
def test_hvp_equals_autodiff(depth, hidden, output, loss):
    net, params, x, y, v = problem(DEPTHS[depth], hidden, output, loss)
    hv = jmlp.hvp(net, params, x, y, v)
    assert jax.tree.structure(hv) == jax.tree.structure(params)
    assert_close(hv, autodiff_hvp(net, params, x, y, v))


# The full Hessian for every pair at depth 1, the hidden activations taken in turn.
HESSIAN_CASES = [(1, HIDDEN[i % len(HIDDEN)], *pair) for i, pair in enumerate(PAIRS)]


@pytest.mark.parametrize("depth, hidden, output, loss", with_slow_pairs(HESSIAN_CASES))
def test_hessian_equals_jax_hessian(depth, hidden, output, loss):
    net, params, x, y, _ = problem(DEPTHS[depth], hidden, output, loss, seed=1)
    hand = hand_hessian(net, params, x, y)
    reference = autodiff_hessian(net, params, x, y)
    err = float(jnp.linalg.norm(hand - reference))
    assert err <= 1e-10 * float(jnp.linalg.norm(reference)) + 1e-12, err
    np.testing.assert_allclose(hand, hand.T, rtol=0, atol=1e-12)  # symmetric to rounding


# --- kinks: the second derivative autodiff gives for the same jnp.where form --------------------
# Zero hidden weights and biases put every hidden z exactly on the kink (z = 0); the output bias
# c puts the loss on its own: mae at r = 0, huber at |r| = delta, hinge at t y = 1.
KINKS = [
    (("elu", "leaky_relu", "relu"), "identity", "huber", 0.75, 0.25),  # r = 0.5 = huber_delta
    ("relu", "identity", "mae", 0.5, 0.5),
    ("elu", "relu", "hinge", 0.0, 1.0),  # output kink too: z^L = 0
]


@pytest.mark.parametrize("hidden, output, loss, c, t", KINKS)
def test_hvp_at_kinks_is_autodiffs(hidden, output, loss, c, t):
    sizes = DEPTHS[3] if isinstance(hidden, tuple) else DEPTHS[1]
    options = {"huber_delta": 0.5, "elu_alpha": 1.5, "leaky_relu_slope": 0.2}
    net, _, x, y, v = problem(sizes, hidden, output, loss, **options)
    params = [{"W": jnp.zeros((a, b)), "b": jnp.zeros(b)} for a, b in itertools.pairwise(sizes)]
    params[-1]["b"] = jnp.full(sizes[-1], c)
    y = y if t is None else jnp.full((BATCH, sizes[-1]), t)
    assert_close(jmlp.hvp(net, params, x, y, v), autodiff_hvp(net, params, x, y, v))


# A fused pair without its own hvp falls back to the chain rule through the activation and loss
# tables (H_out is then still the Hessian with respect to z^L, for gnvp too).
@pytest.mark.parametrize(
    "pair", [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")]
)
def test_fused_pair_without_hvp_uses_the_chain_rule(pair, monkeypatch):
    monkeypatch.setitem(FUSED, pair, FUSED[pair]._replace(hvp=None))
    net, params, x, y, v = problem(DEPTHS[1], "tanh", *pair)
    assert net.fused is not None and net.fused.hvp is None
    assert_close(jmlp.hvp(net, params, x, y, v), autodiff_hvp(net, params, x, y, v))
    assert_close(jmlp.gnvp(net, params, x, y, v), autodiff_gnvp(net, params, x, y, v))


# --- options: reduction, weights, l2, one example, jit, float32 --------------------------------
OPTION_CASES = [
    ("tanh", "softmax", "cross_entropy"),
    (("gelu", "elu", "softplus"), "sigmoid", "binary_cross_entropy"),
    ("sigmoid", "identity", "huber"),
    ("gelu_exact", "softmax", "mse"),
]


@pytest.mark.parametrize(
    "hidden, output, loss, reduction",
    [(*OPTION_CASES[1], "mean"), (*OPTION_CASES[3], "sum")],
)
def test_l2_weights_and_reduction(hidden, output, loss, reduction):
    sizes = DEPTHS[3] if isinstance(hidden, tuple) else DEPTHS[1]
    net, params, x, y, v = problem(sizes, hidden, output, loss, reduction=reduction)
    kwargs = {"l2": 0.3, "weights": jnp.array([0.5, 2.0, 0.0, 1.0])}
    assert_close(
        jmlp.hvp(net, params, x, y, v, **kwargs), autodiff_hvp(net, params, x, y, v, **kwargs)
    )
    assert_close(
        jmlp.gnvp(net, params, x, y, v, **kwargs), autodiff_gnvp(net, params, x, y, v, **kwargs)
    )


def test_one_example_and_jit():
    net, params, x, y, v = problem(DEPTHS[1], "tanh", "softmax", "cross_entropy")
    assert_close(jmlp.hvp(net, params, x[0], y[0], v), autodiff_hvp(net, params, x[0], y[0], v))
    jitted = jax.jit(jmlp.hvp, static_argnums=0)(net, params, x, y, v)
    assert_close(jitted, jmlp.hvp(net, params, x, y, v), {"rtol": 1e-13, "atol": 1e-15})


def test_float32_is_within_float32_precision():
    net, params, x, y, v = problem(DEPTHS[3], "tanh", "softmax", "cross_entropy")
    f32 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float32), tree)
    hv = jmlp.hvp(net, f32(params), f32(x), y, f32(v))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(hv))
    reference = jax.tree.map(lambda a: a.astype(jnp.float32), autodiff_hvp(net, params, x, y, v))
    assert_close(hv, reference, TOL["float32"])


def test_bad_direction_and_iters_are_named():
    net, params, x, y, v = problem(DEPTHS[1], "tanh", "identity", "mse")
    with pytest.raises(ValueError, match="v: expected a pytree shaped like params"):
        jmlp.hvp(net, params, x, y, v[:1])
    bad = [dict(layer) for layer in v]
    bad[0]["W"] = bad[0]["W"].T[:2]
    with pytest.raises(ValueError, match="v: "):
        jmlp.gnvp(net, params, x, y, bad)
    with pytest.raises(
        ValueError, match=r"x2: expected shape \(batch, 3\) or \(3,\), got \(4, 2\)"
    ):
        jmlp.ntk(net, params, x, x[:, :2])
    for iters in (0, 2.5, True):
        with pytest.raises(ValueError, match="iters: expected an int >= 1"):
            jmlp.sharpness(net, params, x, y, iters=iters, key=jax.random.key(0))


# --- Gauss-Newton ------------------------------------------------------------------------------
def autodiff_gnvp(net, params, x, y, v, *, l2=0.0, weights=None):
    """vjp(H_out jvp(v)) + l2 V by autodiff: out = z^L for fused pairs, h^L otherwise, and H_out
    the Hessian of sum_n s_n l_n with respect to out (jvp of grad of the table's value)."""
    xb = jnp.atleast_2d(x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    s = jnp.full(xb.shape[0], 1 / xb.shape[0] if net.reduction == "mean" else 1.0)
    if weights is not None:
        s = weights / jnp.sum(weights) if net.reduction == "mean" else weights
    value = net.loss_fn.value if net.fused is None else net.fused.value

    def out(p):
        cache = forward_cache(net, p, xb)
        return cache.h[-1] if net.fused is None else cache.z[-1]

    o, jv = jax.jvp(out, (params,), (v,))
    h_jv = jax.jvp(jax.grad(lambda o: jnp.sum(s * value(o, t))), (o,), (jv,))[1]
    gv = jax.vjp(out, params)[1](h_jv)[0]
    return [{"W": g["W"] + l2 * dv["W"], "b": g["b"]} for g, dv in zip(gv, v)]


GN_CASES = [(1, HIDDEN[i % len(HIDDEN)], *pair) for i, pair in enumerate(PAIRS)] + [
    (0, "identity", "softmax", "cross_entropy"),
    (3, ("relu", "gelu", "sigmoid"), "tanh", "mse"),
]


@pytest.mark.parametrize("depth, hidden, output, loss", with_slow_pairs(GN_CASES))
def test_gnvp_equals_autodiff_composition(depth, hidden, output, loss):
    net, params, x, y, v = problem(DEPTHS[depth], hidden, output, loss)
    assert_close(jmlp.gnvp(net, params, x, y, v), autodiff_gnvp(net, params, x, y, v))


@pytest.mark.parametrize(
    "hidden, output, loss", [("tanh", "softmax", "cross_entropy"), ("gelu", "sigmoid", "mse")]
)
def test_gauss_newton_is_positive_semidefinite_and_not_the_hessian(hidden, output, loss):
    net, params, x, y, _ = problem(DEPTHS[1], hidden, output, loss, seed=2)
    theta, unravel = ravel_pytree(params)
    column = lambda e: flat(jmlp.gnvp(net, params, x, y, unravel(e)))
    g = jax.vmap(column)(jnp.eye(theta.size))
    eig = np.linalg.eigvalsh(np.asarray(g))
    assert eig[0] >= -1e-12 * eig[-1], eig[:3]
    np.testing.assert_allclose(g, g.T, rtol=0, atol=1e-12)
    h = hand_hessian(net, params, x, y)
    assert float(jnp.linalg.norm(h - g)) > 1e-3 * float(jnp.linalg.norm(h))  # curvature of sigma


# --- the empirical NTK -------------------------------------------------------------------------
def jacobian(net, params, x):
    """(B, n_out, P): d h^L_{n,a} / d params by jax.jacrev, one example at a time."""
    theta, unravel = ravel_pytree(params)
    one = lambda xn: jax.jacrev(lambda f: jmlp.forward(net, unravel(f), xn))(theta)
    return jax.vmap(one)(x)


NTK_CASES = [
    (0, "identity", "softmax"),
    (1, "gelu", "sigmoid"),
    (1, "elu", "identity"),
    (3, ("tanh", "relu", "gelu_exact"), "softmax"),
]


@pytest.mark.parametrize("depth, hidden, output", NTK_CASES)
def test_ntk_equals_jacobian_products(depth, hidden, output):
    net, params, x1, _, _ = problem(DEPTHS[depth], hidden, output, "mse")
    x2 = 2 * x1[::-1] + 0.5  # other inputs, same shape (one set of eager compiles)
    j1, j2 = jacobian(net, params, x1), jacobian(net, params, x2)
    full = jnp.einsum("iap,jbp->ijab", j1, j2)
    k_full = jmlp.ntk(net, params, x1, x2, trace=False)
    assert k_full.shape == (BATCH, BATCH, WIDTH, WIDTH)
    np.testing.assert_allclose(k_full, full, rtol=1e-12, atol=1e-13)
    k = jmlp.ntk(net, params, x1, x2)
    assert k.shape == (BATCH, BATCH)
    np.testing.assert_allclose(k, jnp.einsum("ijaa->ij", full), rtol=1e-12, atol=1e-13)


def test_ntk_of_one_set_and_single_examples():
    net, params, x, _, _ = problem(DEPTHS[1], "tanh", "softmax", "mse")
    k = jmlp.ntk(net, params, x, x)
    np.testing.assert_allclose(k, k.T, rtol=1e-13)
    assert float(jnp.min(jnp.linalg.eigvalsh(k))) > -1e-12 * float(jnp.max(k))  # a Gram matrix
    np.testing.assert_allclose(jmlp.ntk(net, params, x, x + 0), k, rtol=1e-13)  # x2 is not x1
    assert jmlp.ntk(net, params, x[0], x).shape == (BATCH,)
    assert jmlp.ntk(net, params, x, x[1], trace=False).shape == (BATCH, WIDTH, WIDTH)
    np.testing.assert_allclose(jmlp.ntk(net, params, x[0], x[1]), k[0, 1], rtol=1e-13)


# --- symmetry, a property over random nets ------------------------------------------------------
@st.composite
def symmetric_problems(draw):
    n_hidden = draw(st.integers(0, 3))
    output, loss = draw(st.sampled_from(PAIRS))
    sizes = tuple(draw(st.integers(1, 5)) for _ in range(n_hidden + 1))
    sizes += (draw(st.integers(2 if output == "softmax" else 1, 5)),)  # one softmax unit is 1
    if n_hidden and draw(st.booleans()):
        hidden = tuple(draw(st.sampled_from(HIDDEN)) for _ in range(n_hidden))
    else:
        hidden = draw(st.sampled_from(HIDDEN))
    batch, seed = draw(st.integers(1, 4)), draw(st.integers(0, 2**16))
    net, params, x, y, u = problem(sizes, hidden, output, loss, seed=seed, batch=batch)
    theta, unravel = ravel_pytree(params)
    v = unravel(jax.random.normal(jax.random.key(seed + 1), theta.shape))
    return net, params, x, y, u, v


@jax.jit
def _vdot(a, b):
    return jnp.vdot(flat(a), flat(b))


# One compile per example (new shapes every time); XLA's optimization level 0 compiles about
# twice as fast and changes nothing but the rounding.
@partial(jax.jit, static_argnums=0, compiler_options={"xla_backend_optimization_level": 0})
def _both_products(net, params, x, y, u, v):
    return jmlp.hvp(net, params, x, y, u), jmlp.hvp(net, params, x, y, v)


@pytest.mark.slow  # a hypothesis search
@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(symmetric_problems())
def test_hessian_is_symmetric(problem_):
    net, params, x, y, u, v = problem_
    hu, hv = _both_products(net, params, x, y, u, v)
    norm = lambda a: float(jnp.linalg.norm(flat(a)))
    # two dot products of P terms in float64: rounding ~ P eps ||u|| ||Hv||; 1e-10 is loose
    scale = norm(u) * norm(hv) + norm(v) * norm(hu)
    assert abs(float(_vdot(u, hv) - _vdot(v, hu))) <= 1e-10 * scale + 1e-300


# --- sharpness ---------------------------------------------------------------------------------
def chebyshev(k, x):
    return math.cosh(k * math.acosh(x))


# iters >= the number of parameters (24): the whole spectrum, exact to rounding
# (relu units dead for every example give repeated zero eigenvalues: Lanczos restarts)
def test_sharpness_equals_the_top_eigenvalue():
    net, params, x, y, _ = problem(DEPTHS[1], "relu", "softmax", "cross_entropy", seed=3)
    kwargs = {"l2": 0.5, "weights": jnp.array([1.0, 2.0, 0.5, 0.0])}
    eig = np.linalg.eigvalsh(np.asarray(autodiff_hessian(net, params, x, y, **kwargs)))
    lam = jmlp.sharpness(net, params, x, y, iters=eig.size + 5, key=jax.random.key(0), **kwargs)
    assert lam.dtype == jnp.float64
    assert abs(float(lam) - eig[-1]) <= 1e-10 * np.max(np.abs(eig))


def test_sharpness_with_few_iterations_is_within_the_kaniel_paige_bound():
    net, params, x, y, _ = problem(DEPTHS[3], "tanh", "sigmoid", "mse", seed=4)
    hessian = np.asarray(autodiff_hessian(net, params, x, y))
    eig, vec = np.linalg.eigh(hessian)
    key, k = jax.random.key(1), 10  # 10 Lanczos steps, 48 parameters
    theta = float(jmlp.sharpness(net, params, x, y, iters=k, key=key))
    # start vector: jax.random.normal(key, (P,)); the bound (Saad, Thm 6.4):
    # lambda_1 - theta <= (lambda_1 - lambda_n) (tan phi / T_{k-1}(1 + 2 gamma))^2
    v0 = np.asarray(jax.random.normal(key, (eig.size,), jnp.float64))
    cos = abs(v0 @ vec[:, -1]) / np.linalg.norm(v0)
    tan = math.sqrt(1 - cos**2) / cos
    gamma = (eig[-1] - eig[-2]) / (eig[-2] - eig[0])
    bound = (eig[-1] - eig[0]) * (tan / chebyshev(k - 1, 1 + 2 * gamma)) ** 2
    rounding = 1e-12 * np.max(np.abs(eig))
    assert -rounding <= eig[-1] - theta <= bound + rounding, (eig[-1], theta, bound)


def test_lanczos_finds_the_largest_eigenvalue_not_the_largest_magnitude():
    spectra = {  # spectrum: largest eigenvalue
        (-10.0, 3.0, 3.0, 3.0, 0.0, 0.0, 1.0): 3.0,  # power iteration would give -10
        (0.0,) * 7: 0.0,  # breakdown at once: a restart every step
        (1.0,) * 6 + (2.0,): 2.0,
        (-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0): -1.0,
    }
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(7, 7)))
    mats = jnp.asarray(np.stack([q @ np.diag(d) @ q.T for d in spectra]))
    top = jax.vmap(lambda a: lanczos_max(lambda w: a @ w, 7, 7, jax.random.key(0), a.dtype))(mats)
    np.testing.assert_allclose(top, list(spectra.values()), rtol=0, atol=1e-12)


def lanczos_top_ritz(hessian, v0, k):
    """The largest Ritz value of k Lanczos steps on ``hessian`` from ``v0``, in plain numpy
    (float64, every new vector orthogonalized against all earlier ones, twice)."""
    basis = [v0 / np.linalg.norm(v0)]
    alphas, betas = [], []
    for j in range(k):
        w = hessian @ basis[j]
        alphas.append(basis[j] @ w)
        q = np.array(basis)
        for _ in range(2):
            w = w - q.T @ (q @ w)
        if j < k - 1:
            betas.append(np.linalg.norm(w))
            basis.append(w / betas[-1])
    tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    return np.linalg.eigvalsh(tridiagonal)[-1]


def sharpness_problem():
    """A 3-3-3 tanh net (24 parameters), its Hessian by jax.hessian, a key and its start vector."""
    net, params, x, y, _ = problem(DEPTHS[1], "tanh", "sigmoid", "mse", seed=5)
    hessian = np.asarray(autodiff_hessian(net, params, x, y, l2=0.1))
    key = jax.random.key(7)
    v0 = np.asarray(jax.random.normal(key, (hessian.shape[0],), jnp.float64))  # the docstring's
    return net, params, x, y, hessian, key, v0


def test_sharpness_of_one_step_is_the_rayleigh_quotient():
    net, params, x, y, hessian, key, v0 = sharpness_problem()
    theta = float(jmlp.sharpness(net, params, x, y, iters=1, key=key, l2=0.1))
    expected = v0 @ hessian @ v0 / (v0 @ v0)
    assert abs(theta - expected) <= 1e-10 * np.max(np.abs(np.linalg.eigvalsh(hessian)))


@pytest.mark.parametrize("k", [2, 3, 5])  # below the 24 parameters: not yet the whole spectrum
def test_sharpness_of_few_steps_is_the_top_ritz_value(k):
    net, params, x, y, hessian, key, v0 = sharpness_problem()
    theta = float(jmlp.sharpness(net, params, x, y, iters=k, key=key, l2=0.1))
    eig = np.linalg.eigvalsh(hessian)
    expected = lanczos_top_ritz(hessian, v0, k)
    assert abs(theta - expected) <= 1e-10 * np.max(np.abs(eig))
    # k + 1 steps give a different (larger) value: the count of steps is seen
    assert lanczos_top_ritz(hessian, v0, k + 1) - expected > 1e-6 * np.max(np.abs(eig))
