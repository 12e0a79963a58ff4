"""BackPACK's quantities by the hand-written pass against autodiff written differently, float64:
diagonals of jax.hessian, J^T H J from jax.jacrev and a per-example loss Hessian, per-example
jax.grad; every (output activation, loss) pair the tables accept at depths 0-3 (hidden
activations rotated with the pair, as tests/test_curvature.py does), reductions and weights
alternating over the cases. Then: the GGN equals the Hessian on its diagonal for linear nets with
a loss convex in z^L, kron(A, G) is the GGN block for one example, the Monte Carlo estimates
converge to the exact ones within a bound from the sample count, float32, jit and vmap.

Speed: every case runs eagerly on one layer shape (3 x 3), so the per-primitive compile cache
serves all cases after the first few.
"""

import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TOL
from jax.flatten_util import ravel_pytree
from test_curvature import HIDDEN, PAIRS, accepted, assert_close, flat, targets

import jmlp
from jmlp.losses import FUSED
from jmlp.quantities import FACTORS

pytestmark = pytest.mark.slow  # minutes of eager autodiff references: the slow set

WIDTH, BATCH = 3, 4
# reduction and batch weights, cycled over the cases (a zero and a negative weight included)
OPTIONS = [
    ("mean", None),
    ("sum", None),
    ("mean", (0.5, 2.0, 0.0, 1.0)),
    ("sum", (1.0, -0.5, 2.0, 0.25)),
]


def hidden_for(depth, i):
    """``depth`` hidden activations, rotated with the pair index so each sits everywhere."""
    return tuple(HIDDEN[(depth * i + j) % len(HIDDEN)] for j in range(depth))


ALL_CASES = []  # every pair at every depth: the full product (slow)
for i, (output, loss) in enumerate(PAIRS):
    for depth in range(4):
        hidden = hidden_for(depth, i) or "relu"  # depth 0 has no hidden layer
        if accepted((WIDTH,) * (depth + 2), hidden, output, loss):
            ALL_CASES.append(
                (depth, hidden, output, loss, *OPTIONS[(i + 2 * depth) % len(OPTIONS)])
            )
# the default run: each pair at one depth, depths and options rotating with the pair
CASES = [case for j, case in enumerate(ALL_CASES) if case[0] == (j // 4) % 4]
SLOW_CASES = [
    pytest.param(*case, marks=pytest.mark.slow) for case in ALL_CASES if case not in CASES
]
# the exact diagonals' references (jax.hessian, J^T H J) cost seconds a case: by default every
# third pair (all depths, options and hidden activations still met), the rest with the slow set
DIAGONAL_DEFAULT = CASES[1::3]
DIAGONAL_CASES = DIAGONAL_DEFAULT + [
    pytest.param(*c, marks=pytest.mark.slow) for c in CASES if c not in DIAGONAL_DEFAULT
]


def setup(depth, hidden, output, loss, reduction="mean", weights=None, seed=0, batch=BATCH):
    sizes = (WIDTH,) * (depth + 2)
    net = jmlp.MLP(sizes, hidden, output, loss, reduction=reduction, huber_delta=0.7)
    k = jax.random.split(jax.random.key(seed), 3)
    params = jmlp.init_params(
        k[0], sizes, weight_init="glorot_normal", bias_init=0.1, dtype=jnp.float64
    )
    x = jax.random.normal(k[1], (batch, WIDTH), jnp.float64)
    y = targets(k[2], loss, output, batch, WIDTH)
    w = None if weights is None else jnp.asarray(weights, jnp.float64)
    return net, params, x, y, w


# --- references: autodiff, written from the definitions -----------------------------------------
def scales(net, batch, weights):
    """``s_n``: 1/B or 1, or the weights (normalised for a mean)."""
    if weights is None:
        return jnp.full(batch, 1 / batch if net.reduction == "mean" else 1.0)
    return weights / jnp.sum(weights) if net.reduction == "mean" else weights


def rows_of(net, y):
    return jax.nn.one_hot(y, net.sizes[-1]) if y.ndim == 1 else y


def example_losses(net, params, x, y, weights):
    """``theta -> (s_n l_n)_n``, ``(B,)``: each example's term of jmlp.loss."""
    _, unravel = ravel_pytree(params)
    s = scales(net, x.shape[0], weights)

    def terms(theta):
        one = lambda xn, yn: jmlp.loss(net, unravel(theta), xn[None], yn[None])
        return s * jax.vmap(one)(x, y)

    return terms


def reference_hessians(net, params, x, y, weights):
    """Per-example Hessians ``(B, P, P)`` of ``s_n l_n`` by jax.hessian."""
    theta = ravel_pytree(params)[0]
    terms = example_losses(net, params, x, y, weights)
    return jax.vmap(lambda n: jax.hessian(lambda f: terms(f)[n])(theta))(jnp.arange(x.shape[0]))


def reference_ggns(net, params, x, y, weights):
    """Per-example ``J_n^T H_n J_n`` ``(B, P, P)``: ``J`` by jax.jacrev of the output (``z^L`` for
    the fused pairs, ``h^L`` otherwise), ``H_n = s_n d^2 l / d out^2`` by jax.hessian."""
    theta, unravel = ravel_pytree(params)
    fused = net.fused is not None
    logits = dataclasses.replace(net, output_activation="identity", loss="mse")
    out_net = logits if fused else net
    value = net.fused.value if fused else net.loss_fn.value
    s, t = scales(net, x.shape[0], weights), rows_of(net, y)

    def one(xn, tn, sn):
        jac = jax.jacrev(lambda f: jmlp.forward(out_net, unravel(f), xn))(theta)
        out = jmlp.forward(out_net, params, xn)
        hess = jax.hessian(lambda o: value(o[None], tn[None])[0])(out)
        return sn * jac.T @ hess @ jac

    return jax.vmap(one)(x, t, s)


def per_example_flat(tree):
    return jax.vmap(lambda t: ravel_pytree(t)[0])(tree)


def diagonals(matrices):
    return jnp.diagonal(matrices, axis1=-2, axis2=-1)


# --- the matrix -----------------------------------------------------------------------------------
def test_the_cases_cover_the_tables():
    assert len(ALL_CASES) == 4 * len(PAIRS)
    assert {(o, loss) for _, _, o, loss, _, _ in CASES} == set(PAIRS)
    assert {d for d, *_ in CASES} == {0, 1, 2, 3}
    used = {a for _, hidden, *_ in CASES for a in (hidden if isinstance(hidden, tuple) else ())}
    assert used == set(HIDDEN)
    assert {(r, w) for *_, r, w in CASES} == set(OPTIONS)
    default = DIAGONAL_DEFAULT
    assert {d for d, *_ in default} == {0, 1, 2, 3}
    assert {(r, w) for *_, r, w in default} == set(OPTIONS)
    assert {a for _, h, *_ in default for a in (h if isinstance(h, tuple) else ())} == set(HIDDEN)


@pytest.mark.parametrize(
    "depth, hidden, output, loss, reduction, weights", DIAGONAL_CASES + SLOW_CASES
)
def test_diagonals_equal_autodiff(depth, hidden, output, loss, reduction, weights):
    net, params, x, y, w = setup(depth, hidden, output, loss, reduction, weights)
    hessians = reference_hessians(net, params, x, y, w)
    ggns = reference_ggns(net, params, x, y, w)
    assert_close(flat(jmlp.diag_hessian(net, params, x, y, weights=w)), diagonals(hessians.sum(0)))
    assert_close(flat(jmlp.diag_ggn(net, params, x, y, weights=w)), diagonals(ggns.sum(0)))
    per_ex = jmlp.diag_hessian(net, params, x, y, weights=w, per_example=True)
    assert_close(per_example_flat(per_ex), diagonals(hessians))
    per_ex = jmlp.diag_ggn(net, params, x, y, weights=w, per_example=True)
    assert_close(per_example_flat(per_ex), diagonals(ggns))


@pytest.mark.parametrize("depth, hidden, output, loss, reduction, weights", CASES + SLOW_CASES)
def test_first_order_quantities_equal_per_example_grads(
    depth, hidden, output, loss, reduction, weights
):
    net, params, x, y, w = setup(depth, hidden, output, loss, reduction, weights)
    terms = example_losses(net, params, x, y, w)
    g = jax.jacrev(terms)(ravel_pytree(params)[0])  # (B, P): rows sum to the gradient
    assert_close(g.sum(0), flat(jmlp.backprop(net, params, x, y, weights=w)[1]))
    assert_close(flat(jmlp.sum_grad_squared(net, params, x, y, weights=w)), jnp.sum(g * g, 0))
    variance = jnp.mean((g - g.mean(0, keepdims=True)) ** 2, axis=0)
    assert_close(flat(jmlp.grad_variance(net, params, x, y, weights=w)), variance)


def test_l2_adds_to_the_weights_diagonal():
    net, params, x, y, _ = setup(1, ("tanh",), "softmax", "cross_entropy")
    for quantity in (jmlp.diag_hessian, jmlp.diag_ggn):
        plain, with_l2 = quantity(net, params, x, y), quantity(net, params, x, y, l2=0.3)
        ones_on_w = flat(
            [{"W": jnp.ones_like(p["W"]), "b": jnp.zeros_like(p["b"])} for p in params]
        )
        assert_close(flat(with_l2), flat(plain) + 0.3 * ones_on_w)  # d^2/dW^2 of l2/2 ||W||^2


# --- output-Hessian factors ---------------------------------------------------------------------
@pytest.mark.parametrize("pair", sorted(FACTORS))
def test_factor_rows_give_the_fused_hessian(pair):
    net, _, x, y, _ = setup(0, "relu", *pair, batch=6)
    t = rows_of(net, y)
    z = x * 3  # a wider range of logits
    h = net.activations[-1].fn(z) if pair[0] != "softmax" else jax.nn.softmax(z)
    rows = FACTORS[pair](z, h, t)
    one = lambda zn, tn: jax.hessian(lambda v: FUSED[pair].value(v[None], tn[None])[0])(zn)
    assert_close(jnp.einsum("bci,bcj->bij", rows, rows), jax.vmap(one)(z, t))


# --- identities ---------------------------------------------------------------------------------
LINEAR = [(d, out, loss) for d in range(4) for out, loss in PAIRS if out == "identity"] + [
    (d, out, loss)
    for d in range(4)
    for out, loss in (("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"))
]


@pytest.mark.parametrize("depth, output, loss", LINEAR)
def test_ggn_diagonal_is_the_hessians_for_linear_nets_and_convex_losses(depth, output, loss):
    """z^L is linear in each W^l of an identity network: its second derivatives along one
    parameter vanish, so only the loss's curvature in z^L (convex: PSD) is left on the diagonal."""
    net, params, x, y, w = setup(depth, "identity", output, loss, "sum", OPTIONS[2][1])
    ggn, hess = (
        jmlp.diag_ggn(net, params, x, y, weights=w),
        jmlp.diag_hessian(net, params, x, y, weights=w),
    )
    assert_close(flat(ggn), flat(hess))
    assert float(jnp.min(flat(ggn))) >= 0


def ggn_blocks(net, params, x, y):
    """Per layer, the block of the summed reference GGN over ``[W; b]`` (ravel_pytree's order:
    ``W`` row-major, then ``b``: ``concatenate([W, b[None]]).ravel()``)."""
    ggn = reference_ggns(net, params, x, y, None).sum(0)
    sizes = [p["W"].size + p["b"].size for p in params]
    starts = np.cumsum([0] + sizes)
    return [ggn[a:b, a:b] for a, b in itertools.pairwise(starts)]


@pytest.mark.parametrize(
    "hidden, output, loss",
    [
        (("tanh", "sigmoid"), "softmax", "cross_entropy"),  # closed-form rows
        (("gelu", "tanh"), "softmax", "binary_cross_entropy"),  # signed rows
        (("softplus", "elu"), "sigmoid", "huber"),  # rows of J_sigma
    ],
)
def test_kronecker_factors_are_the_ggn_block_for_one_example(hidden, output, loss):
    net, params, x, y, _ = setup(2, hidden, output, loss, batch=1)
    factors = jmlp.kfac_factors(net, params, x, y)
    diagonal = jmlp.diag_ggn(net, params, x, y)
    for f, block, d, p in zip(factors, ggn_blocks(net, params, x, y), diagonal, params):
        n_in, n_out = p["W"].shape
        assert f["A"].shape == (n_in + 1, n_in + 1) and f["G"].shape == (n_out, n_out)
        kron = jnp.kron(f["A"], f["G"])
        assert_close(kron, block)
        assert_close(jnp.diag(kron), jnp.concatenate([d["W"], d["b"][None]]).ravel())


def test_kronecker_factors_of_a_batch():
    """``A``: the mean of ``[h, 1][h, 1]^T``; ``G``: the bias block of the GGN (``dz/db = I``)."""
    net, params, x, y, _ = setup(2, ("tanh", "elu"), "softmax", "cross_entropy", "sum")
    factors = jmlp.kfac_factors(net, params, x, y)
    h = [x, jnp.tanh(x @ params[0]["W"] + params[0]["b"][None])]
    h.append(jax.nn.elu(h[1] @ params[1]["W"] + params[1]["b"][None]))
    for f, block, hl, p in zip(factors, ggn_blocks(net, params, x, y), h, params):
        a = jnp.concatenate([hl, jnp.ones((BATCH, 1))], axis=1)
        assert_close(f["A"], a.T @ a / BATCH)
        assert_close(f["G"], block[p["W"].size :, p["W"].size :])


# --- Monte Carlo: converges to the exact values within a bound from the sample count -------------
def within_standard_errors(draws, exact, k=5.0):
    """Per entry, ``|mean - exact| <= k * std / sqrt(N)`` (+ rounding), ``draws (N, P)``: the
    error of a mean of N i.i.d. draws is ~ normal with that standard error, so each entry fails
    with probability ~6e-7 at k = 5, and a fixed seed makes the result reproducible."""
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    return bool(jnp.all(jnp.abs(mean - exact) <= k * se + 1e-12 * (1 + jnp.abs(exact))))


MC_PAIRS = [
    ("softmax", "cross_entropy"),  # categorical targets
    ("sigmoid", "binary_cross_entropy"),  # Bernoulli targets
    ("identity", "mse"),  # Gaussian targets
    ("exp", "poisson"),  # Poisson targets
    ("softmax", "binary_cross_entropy"),  # indefinite output Hessian: signed parts
]


@pytest.mark.parametrize("pair", MC_PAIRS)
def test_monte_carlo_diagonal_converges_to_the_exact_one(pair):
    net, params, x, y, w = setup(1, ("tanh",), *pair, "mean", OPTIONS[2][1])
    exact = flat(jmlp.diag_ggn(net, params, x, y, weights=w))
    keys = jax.random.split(jax.random.key(7), 4000)
    one = lambda k: flat(jmlp.diag_ggn_mc(net, params, x, y, key=k, weights=w))
    draws = jax.jit(jax.vmap(one))(keys)
    assert within_standard_errors(draws, exact)
    assert not within_standard_errors(draws, 1.1 * exact)  # the bound sees a 10% bias
    # samples=S averages S draws: the same mean, a standard error sqrt(S) smaller
    many = jax.vmap(
        lambda k: flat(jmlp.diag_ggn_mc(net, params, x, y, key=k, samples=16, weights=w))
    )
    assert within_standard_errors(jax.jit(many)(keys[:250]), exact)


def test_sampled_kronecker_factor_converges_to_the_exact_one():
    net, params, x, y, _ = setup(1, ("sigmoid",), "softmax", "cross_entropy")
    exact = jnp.concatenate([f["G"].ravel() for f in jmlp.kfac_factors(net, params, x, y)])

    def one(k):
        factors = jmlp.kfac_factors(net, params, x, y, kind="kfac", key=k)
        return jnp.concatenate([f["G"].ravel() for f in factors])

    draws = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), 4000))
    assert within_standard_errors(draws, exact)


# --- dtypes, jit, vmap, errors ------------------------------------------------------------------
QUANTITIES = {
    "diag_ggn": lambda net, p, x, y: jmlp.diag_ggn(net, p, x, y),
    "diag_ggn_per_example": lambda net, p, x, y: jmlp.diag_ggn(net, p, x, y, per_example=True),
    "diag_hessian": lambda net, p, x, y: jmlp.diag_hessian(net, p, x, y),
    "diag_ggn_mc": lambda net, p, x, y: jmlp.diag_ggn_mc(net, p, x, y, key=jax.random.key(1)),
    "kfac_factors": lambda net, p, x, y: jmlp.kfac_factors(net, p, x, y),
    "kfac_sampled": lambda net, p, x, y: jmlp.kfac_factors(
        net, p, x, y, kind="kfac", key=jax.random.key(1), samples=3
    ),
    "sum_grad_squared": lambda net, p, x, y: jmlp.sum_grad_squared(net, p, x, y),
    "grad_variance": lambda net, p, x, y: jmlp.grad_variance(net, p, x, y),
}


@pytest.mark.parametrize("name", QUANTITIES)
def test_float32_jit_and_vmap(name):
    """float32 within float32 precision of float64; jit of vmap over two stacked members equals
    the eager values of each (one compile per quantity)."""
    quantity = QUANTITIES[name]
    net, params, x, y, _ = setup(1, ("tanh",), "softmax", "cross_entropy")
    reference = quantity(net, params, x, y)
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    single = quantity(net, p32, x.astype(jnp.float32), y)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(single))
    if "mc" not in name and "sampled" not in name:  # draws differ between dtypes
        as64 = jax.tree.map(lambda a: a.astype(jnp.float64), single)
        assert_close(as64, reference, TOL["float32"])
    doubled = jax.tree.map(lambda a: 2 * a, params)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, doubled)
    both = jax.jit(jax.vmap(quantity, (None, 0, None, None)), static_argnums=0)(net, stacked, x, y)
    assert_close(jax.tree.map(lambda a: a[0], both), reference)
    assert_close(jax.tree.map(lambda a: a[1], both), quantity(net, doubled, x, y))


def test_one_example_and_integer_labels():
    net, params, x, y, _ = setup(1, ("tanh",), "softmax", "cross_entropy")
    assert y.ndim == 1  # integer labels
    one = jmlp.diag_hessian(net, params, x[0], y[0])
    assert_close(one, jmlp.diag_hessian(net, params, x[:1], y[:1]))


def test_bad_arguments_are_named():
    net, params, x, y, _ = setup(1, ("tanh",), "softmax", "cross_entropy")
    with pytest.raises(ValueError, match="kind"):
        jmlp.kfac_factors(net, params, x, y, kind="kfc")
    with pytest.raises(ValueError, match="key"):
        jmlp.kfac_factors(net, params, x, y, kind="kfac")
    with pytest.raises(ValueError, match="samples"):
        jmlp.diag_ggn_mc(net, params, x, y, key=jax.random.key(0), samples=0)
    with pytest.raises(TypeError, match="per_example"):
        jmlp.diag_ggn(net, params, x, y, per_example="yes")
    with pytest.raises(ValueError, match="l2"):
        jmlp.diag_hessian(net, params, x, y, per_example=True, l2=0.1)
    with pytest.raises(ValueError, match="weights"):
        jmlp.diag_ggn(net, params, x, y, weights=jnp.ones(3))
    with pytest.raises(ValueError, match="x"):
        jmlp.sum_grad_squared(net, params, x[:, :2], y)


@pytest.mark.slow
def test_benchmark_script_runs(tmp_path):
    """experiments/quantities_benchmark.py --quick: a ratio per quantity, the figure."""
    root = Path(__file__).resolve().parents[1]
    script = root / "experiments" / "quantities_benchmark.py"
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"JAX_PLATFORMS": "cpu", "JAX_NUMPY_RANK_PROMOTION": "raise"}
    env["PYTHONPATH"] = path  # this checkout's jmlp
    cmd = [sys.executable, str(script), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["quantities"]) >= {"diag_ggn", "diag_hessian", "kfac_factors kflr"}
    assert all(q["ratio"] > 0 for q in results["quantities"].values())
    assert (tmp_path / "quantities_overhead.png").is_file()
