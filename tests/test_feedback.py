"""Learning rules beyond backprop (jmlp.feedback) against the rules as the papers state them.

The reference below is written apart from jmlp's backward pass: a plain loop over layers in
float64 numpy, the forward pass from the activation table's functions, sigma'(z) by forward-mode
autodiff of those functions, and the output delta dL/dz^L by jax.grad of jmlp.loss (the spec) as a
function of z^L. It is held to 1e-12 over every (output activation, loss) pair jmlp.MLP accepts x
depths 0-3, each depth with one of four settings (mean or sum, batch weights or none, L2 or none)
and hidden activations in turn. By default every pair runs at one depth (all depths and settings
are met across pairs); the slow mark runs every pair at every depth (-m slow, ~1.5 min on 2
cores). Eager, one test per pair (tests/test_backprop.py says why).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_backprop import HIDDEN, PAIR_IDS, PAIRS, targets

import jmlp
from jmlp.feedback import RULES, angle, feedback_shapes, rule_gradient

pytestmark = pytest.mark.slow  # minutes of eager autodiff references: the slow set

N_IN, N_OUT, BATCH = 3, 4, 6  # N_OUT: test_backprop's targets
DEPTHS = {0: (N_IN, N_OUT), 1: (N_IN, 5, N_OUT), 2: (N_IN, 5, 6, N_OUT), 3: (N_IN, 5, 6, 5, N_OUT)}
SETTINGS = [  # (reduction, weighted, l2): every pair meets each at one of its four depths
    ("mean", False, 0.0),
    ("sum", False, 0.3),
    ("mean", True, 0.3),
    ("sum", True, 0.0),
]
OPTIONS = {"leaky_relu_slope": 0.2, "elu_alpha": 1.5, "huber_delta": 0.3}
F64 = jnp.float64


def hidden_of(i: int, depth: int) -> tuple[str, ...]:
    """Hidden activations of case (pair i, depth): each pair walks on through the table."""
    return tuple(HIDDEN[(3 * i + depth + k) % len(HIDDEN)] for k in range(depth))


def case(i: int, depth: int, seed: int = 0):
    """net, params, feedback of each rule, x, y, weights, l2 of pair ``i`` at ``depth``."""
    output, loss = PAIRS[i]
    reduction, weighted, l2 = SETTINGS[(i // 4 + depth) % len(SETTINGS)]
    sizes = DEPTHS[depth]
    net = jmlp.MLP(sizes, hidden_of(i, depth), output, loss, reduction=reduction, **OPTIONS)
    k = jax.random.split(jax.random.key(seed), 5)
    params = jmlp.init_params(k[0], sizes, weight_init="glorot_normal", bias_init=0.1, dtype=F64)
    feedback = {rule: jmlp.init_feedback(k[1], sizes, rule, dtype=F64) for rule in RULES}
    x = jax.random.normal(k[2], (BATCH, N_IN), F64)
    y = targets(k[3], loss, output, F64, BATCH)
    weights = jax.random.uniform(k[4], (BATCH,), F64, 0.2, 2.0) if weighted else None
    return net, params, feedback, x, y, weights, l2


def output_delta_reference(net, zL, y, weights):
    """``dL/dz^L (B, n_L)``: jax.grad of jmlp.loss of a one-layer net whose layer is the identity
    (``z = z^L I + 0``), same output activation, loss, reduction and options."""
    n = net.sizes[-1]
    head = jmlp.MLP(
        (n, n), output_activation=net.output_activation, loss=net.loss,
        reduction=net.reduction, leaky_relu_slope=net.leaky_relu_slope,
        elu_alpha=net.elu_alpha, huber_delta=net.huber_delta,
    )  # fmt: skip
    eye = [{"W": jnp.eye(n, dtype=F64), "b": jnp.zeros(n, F64)}]
    return np.asarray(jax.grad(lambda z: jmlp.loss(head, eye, z, y, weights=weights))(zL))


def reference(net, params, x, y, feedback, l2, weights) -> dict:
    """The papers' rules, float64, one layer at a time (0-based layer k = the documents' k+1):

    backprop: delta^{l-1} = (delta^l W^l^T) * f'(z^{l-1})      (Rumelhart et al.)
    fa:       delta^{l-1} = (delta^l B^l^T) * f'(z^{l-1})      (Lillicrap et al. 2016)
    sign:     delta^{l-1} = (delta^l sign(W^l)^T) * f'(z^{l-1}) (Liao et al. 2016)
    dfa:      delta^l     = (delta^L B^l) * f'(z^l)            (Nokland 2016)
    dW^l = h^{l-1}^T delta^l + l2 W^l, db^l = sum_n delta^l_n. Returns {rule: updates}.
    """
    W = [np.asarray(p["W"]) for p in params]
    b = [np.asarray(p["b"]) for p in params]
    fns = [a.fn for a in net.activations]
    h, z = [np.asarray(x)], []
    for k in range(len(W)):
        z.append(h[k] @ W[k] + b[k])
        h.append(np.asarray(fns[k](jnp.asarray(z[k]))))
    slope = [
        np.asarray(jax.jvp(f, (jnp.asarray(v),), (jnp.ones_like(v),))[1])
        for f, v in zip(fns[:-1], z)
    ]
    top = output_delta_reference(net, jnp.asarray(z[-1]), y, weights)
    back = {"backprop": W, "sign": [np.sign(w) for w in W], "fa": [None, *feedback["fa"]]}
    out = {}
    for rule in RULES:
        delta = [None] * (len(W) - 1) + [top]
        for k in range(len(W) - 1, 0, -1):
            if rule == "dfa":
                delta[k - 1] = (top @ np.asarray(feedback["dfa"][k - 1])) * slope[k - 1]
            else:
                delta[k - 1] = (delta[k] @ np.asarray(back[rule][k]).T) * slope[k - 1]
        out[rule] = [
            {"W": h[k].T @ delta[k] + l2 * W[k], "b": delta[k].sum(0)} for k in range(len(W))
        ]
    return out


def assert_close(a, b, rtol=1e-12, atol=1e-15):
    """Per tensor, normwise: ||a - b|| <= rtol ||b|| + atol."""
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        u, v = np.asarray(u), np.asarray(v)
        assert u.shape == v.shape
        err = np.linalg.norm(u - v)
        assert err <= rtol * np.linalg.norm(v) + atol, (err, np.linalg.norm(v))


def assert_equal(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)


def check_case(i: int, depth: int) -> None:
    """Every rule's value and updates against the reference; the output layer's against
    jmlp.backprop's gradient, bit for bit."""
    net, params, feedback, x, y, weights, l2 = case(i, depth)
    value_ref = jmlp.loss(net, params, x, y, l2=l2, weights=weights)
    _, true = jmlp.backprop(net, params, x, y, l2=l2, weights=weights)
    expected = reference(net, params, x, y, feedback, l2, weights)
    for rule in RULES:
        value, updates = jmlp.feedback_grads(
            net, params, x, y, rule=rule, feedback=feedback[rule], l2=l2, weights=weights
        )
        try:
            np.testing.assert_allclose(value, value_ref, rtol=1e-13)
            assert_close(updates, expected[rule])
            assert_equal(updates[-1], true[-1])
        except AssertionError as error:
            where = f"depth {depth}, rule {rule}, hidden {net.activation}, {net.reduction}"
            raise AssertionError(where) from error


def test_default_matrix_covers_every_depth_setting_and_activation():
    cases = [(i % 4, (i // 4 + i % 4) % len(SETTINGS)) for i in range(len(PAIRS))]
    assert set(cases) == {(d, s) for d in DEPTHS for s in range(len(SETTINGS))}
    assert {a for i in range(len(PAIRS)) for a in hidden_of(i, i % 4)} == set(HIDDEN)


@pytest.mark.parametrize("i", range(len(PAIRS)), ids=PAIR_IDS)
def test_rules_equal_the_papers_rules(i):
    """Every pair at one depth, i % 4 (together: every depth x setting, every activation)."""
    check_case(i, i % 4)


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(PAIRS)), ids=PAIR_IDS)
def test_rules_equal_the_papers_rules_at_every_depth(i):
    """The whole matrix: every pair at depths 0-3, each depth with its own setting."""
    for depth in DEPTHS:
        if depth != i % 4:
            check_case(i, depth)


@pytest.mark.parametrize("i", range(0, len(PAIRS), 5), ids=PAIR_IDS[::5])
def test_backprop_rule_and_fa_with_b_equal_w_are_backprop(i):
    for depth in DEPTHS:
        net, params, _, x, y, weights, l2 = case(i, depth)
        true = jmlp.backprop(net, params, x, y, l2=l2, weights=weights)
        same = [p["W"] for p in params[1:]]
        fa = jmlp.feedback_grads(
            net, params, x, y, rule="fa", feedback=same, l2=l2, weights=weights
        )
        bp = jmlp.feedback_grads(net, params, x, y, rule="backprop", l2=l2, weights=weights)
        assert_equal(fa, true)
        assert_equal(bp, true)


def test_sign_with_signed_weights_is_backprop():
    """sign(W) = W when every weight is +-1: sign symmetry is then backprop."""
    net, params, _, x, y, weights, l2 = case(3, 3)
    params = [{"W": jnp.where(p["W"] >= 0, 1.0, -1.0), "b": p["b"]} for p in params]
    sign = jmlp.feedback_grads(net, params, x, y, rule="sign", l2=l2, weights=weights)
    assert_equal(sign, jmlp.backprop(net, params, x, y, l2=l2, weights=weights))


def test_single_example_and_float32():
    net, params, feedback, x, y, _, _ = case(0, 1)
    v1, g1 = jmlp.feedback_grads(net, params, x[0], y[0], rule="dfa", feedback=feedback["dfa"])
    v2, g2 = jmlp.feedback_grads(net, params, x[:1], y[:1], rule="dfa", feedback=feedback["dfa"])
    assert_equal((v1, g1), (v2, g2))
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    fb32 = jmlp.init_feedback(jax.random.key(1), net.sizes, "fa")
    value, updates = jmlp.feedback_grads(net, p32, x, y, rule="fa", feedback=fb32)
    assert value.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(updates))
    fb64 = [B.astype(F64) for B in fb32]
    _, exact = jmlp.feedback_grads(net, params, x, y, rule="fa", feedback=fb64)
    assert_close(updates, exact, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- member axis

N_MEMBERS = 3


def take(m: int, tree):
    """Member ``m`` of stacked arrays."""
    return jax.tree.map(lambda a: a[m], tree)


@pytest.mark.parametrize("rule", RULES)
def test_vmap_over_members_equals_the_loop(rule):
    net = jmlp.MLP(DEPTHS[2], "tanh", "softmax", "cross_entropy")
    keys = jax.random.split(jax.random.key(5), N_MEMBERS)
    params = jax.vmap(lambda k: jmlp.init_params(k, net.sizes, dtype=F64))(keys)
    feedback = jax.vmap(lambda k: jmlp.init_feedback(k, net.sizes, rule, dtype=F64))(keys)
    x = jax.random.normal(jax.random.key(6), (BATCH, N_IN), F64)
    y = jnp.arange(BATCH) % N_OUT

    def one(p, fb):
        return jmlp.feedback_grads(net, p, x, y, rule=rule, feedback=fb)

    stacked = jax.jit(jax.vmap(one))(params, feedback)
    for m in range(N_MEMBERS):
        member = take(m, (params, feedback))
        assert_close(take(m, stacked), one(*member), rtol=1e-14)
        if rule != "backprop":  # each member's own matrices make a different update
            other = take((m + 1) % N_MEMBERS, feedback)
            changed = one(member[0], other)[1][0]["W"]
            assert rule == "sign" or not np.allclose(changed, stacked[1][0]["W"][m])


def test_rule_gradient_is_the_engine_hook():
    """``(params, feedback, x, t, s, l2) -> (L, updates)`` vmapped over members with their own
    l2, equal to feedback_grads member by member."""
    net = jmlp.MLP(DEPTHS[2], "relu", loss="mse", reduction="sum")
    keys = jax.random.split(jax.random.key(7), N_MEMBERS)
    params = jax.vmap(lambda k: jmlp.init_params(k, net.sizes, dtype=F64))(keys)
    feedback = jax.vmap(lambda k: jmlp.init_feedback(k, net.sizes, "dfa", dtype=F64))(keys)
    x = jax.random.normal(jax.random.key(8), (BATCH, N_IN), F64)
    t = jax.random.normal(jax.random.key(9), (BATCH, N_OUT), F64)
    w = jnp.linspace(0.5, 1.5, BATCH, dtype=F64)
    l2 = jnp.array([0.0, 0.1, 0.2], F64)
    hook = jax.jit(jax.vmap(rule_gradient(net, "dfa"), in_axes=(0, 0, None, None, None, 0)))
    values, updates = hook(params, feedback, x, t, w, l2)
    for m in range(N_MEMBERS):
        p, fb = take(m, (params, feedback))
        expected = jmlp.feedback_grads(net, p, x, t, rule="dfa", feedback=fb, l2=l2[m], weights=w)
        assert_close((values[m], take(m, updates)), expected, rtol=1e-14)


# ----------------------------------------------------------------------------- init_feedback


def test_init_feedback_shapes_and_determinism():
    sizes = DEPTHS[2]  # (3, 5, 6, 4)
    assert feedback_shapes(sizes, "fa") == [(5, 6), (6, 4)]  # like W^2, W^3
    assert feedback_shapes(sizes, "dfa") == [(4, 5), (4, 6)]  # (n_L, n_l), hidden l
    key = jax.random.key(0)
    for rule in RULES:
        fb = jmlp.init_feedback(key, sizes, rule)
        assert [B.shape for B in fb] == feedback_shapes(sizes, rule)
        assert all(B.dtype == jnp.float32 for B in fb)
        assert_equal(fb, jmlp.init_feedback(key, sizes, rule))
    assert jmlp.init_feedback(key, sizes, "sign") == [] == jmlp.init_feedback(key, (2, 3), "fa")
    fa = jmlp.init_feedback(key, sizes, "fa")
    assert not np.allclose(fa[0][:3, :3], fa[1][:3, :3])
    assert jmlp.init_feedback(key, sizes, "dfa", dtype=F64)[0].dtype == F64


@pytest.mark.parametrize(
    "rule, shape, bound",
    [("fa", (300, 200), 1 / 200**0.5), ("dfa", (40, 1500), 1 / 40**0.5)],
)
def test_init_feedback_draws_uniform_within_the_bound(rule, shape, bound):
    """U(-a, a): every entry in [-a, a], mean 0, variance a^2 / 3 (60000 draws: the sample
    variance is off by ~0.4% relative, so 3% is ~8 standard errors)."""
    sizes = (2, shape[0], shape[1]) if rule == "fa" else (2, shape[1], shape[0])
    B = np.asarray(jmlp.init_feedback(jax.random.key(3), sizes, rule, dtype=F64)[0])
    assert B.shape == shape
    assert np.abs(B).max() <= bound and np.abs(B).max() > 0.99 * bound
    assert abs(B.mean()) < 0.02 * bound
    np.testing.assert_allclose(B.var(), bound**2 / 3, rtol=0.03)
    scaled = np.asarray(jmlp.init_feedback(jax.random.key(3), sizes, rule, scale=0.5, dtype=F64)[0])
    np.testing.assert_allclose(scaled, B * (0.5 / bound), rtol=1e-12)


def test_init_feedback_refuses_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="rule: unknown name 'FA'; known: \\['backprop'"):
        jmlp.init_feedback(key, (3, 4, 2), "FA")
    for scale in (0.0, -1, "0.1", True, [0.1, 0.2]):
        with pytest.raises(ValueError, match="scale: expected a positive number"):
            jmlp.init_feedback(key, (3, 4, 2), "fa", scale=scale)
    with pytest.raises(TypeError, match="dtype: expected a floating dtype"):
        jmlp.init_feedback(key, (3, 4, 2), "fa", dtype=jnp.int32)
    with pytest.raises(TypeError, match="key: expected one jax.random key"):
        jmlp.init_feedback(3, (3, 4, 2), "fa")
    with pytest.raises(ValueError, match="sizes"):
        jmlp.init_feedback(key, (3,), "fa")


def test_feedback_grads_refuses_bad_feedback():
    net, params, feedback, x, y, _, _ = case(0, 2)
    grads = lambda rule, fb: jmlp.feedback_grads(net, params, x, y, rule=rule, feedback=fb)
    with pytest.raises(ValueError, match=r"feedback: rule 'fa' needs its fixed matrices"):
        grads("fa", None)
    with pytest.raises(ValueError, match=r"feedback: expected a list of 2 matrices.*got 1"):
        grads("fa", feedback["fa"][:1])
    with pytest.raises(ValueError, match=r"feedback\[0\]: expected shape \(4, 5\).*got \(5, 4\)"):
        grads("dfa", [feedback["dfa"][0].T, feedback["dfa"][1]])
    with pytest.raises(TypeError, match=r"feedback\[1\]: expected the params' dtype float64"):
        grads("fa", [feedback["fa"][0], feedback["fa"][1].astype(jnp.float32)])
    with pytest.raises(ValueError, match="feedback: rule 'sign' uses no feedback matrices"):
        grads("sign", feedback["fa"])
    with pytest.raises(ValueError, match="rule: unknown name 'dfa2'"):
        grads("dfa2", feedback["dfa"])


# ----------------------------------------------------------------------------- alignment


def test_angle_is_the_angle_between_vectors():
    a = jnp.array([[1.0, 0.0]], F64)
    for b, degrees in [
        ([[2.0, 0.0]], 0),
        ([[0.0, 3.0]], 90),
        ([[1.0, 1.0]], 45),
        ([[-1, 0.0]], 180),
    ]:
        np.testing.assert_allclose(angle(a, jnp.array(b, F64)), degrees, atol=1e-12)
    u, v = np.random.default_rng(0).normal(size=(2, 4, 5))
    cos = np.sum(u * v) / np.sqrt(np.sum(u * u) * np.sum(v * v))
    np.testing.assert_allclose(
        angle(jnp.asarray(u), jnp.asarray(v)), np.degrees(np.arccos(cos)), rtol=1e-12
    )
    assert np.isnan(angle(jnp.zeros(3), jnp.ones(3)))


def test_alignment_measures():
    i = PAIRS.index(("softmax", "cross_entropy"))
    net, params, feedback, x, y, weights, _ = case(i, 3)
    bp = jmlp.alignment(net, params, x, y, rule="backprop")
    np.testing.assert_allclose(bp["update"], 0, atol=1e-6)
    assert set(bp) == {"update"} and bp["update"].shape == (4,)
    fa = jmlp.alignment(net, params, x, y, rule="fa", feedback=feedback["fa"], weights=weights)
    _, upd = jmlp.feedback_grads(
        net, params, x, y, rule="fa", feedback=feedback["fa"], weights=weights
    )
    _, true = jmlp.backprop(net, params, x, y, weights=weights)
    expected = [angle(u["W"], g["W"]) for u, g in zip(upd, true)]
    np.testing.assert_allclose(fa["update"], expected, rtol=1e-12)
    assert fa["update"][-1] < 1e-6 and np.all(fa["update"][:-1] > 1)  # random B: not aligned
    expected = [angle(p["W"], B) for p, B in zip(params[1:], feedback["fa"])]
    np.testing.assert_allclose(fa["feedback"], expected, rtol=1e-12)
    np.testing.assert_allclose(
        jmlp.feedback_angles(params, [p["W"] for p in params[1:]]), 0, atol=1e-6
    )
    flipped = [-p["W"] for p in params[1:]]
    np.testing.assert_allclose(jmlp.feedback_angles(params, flipped), 180, atol=1e-6)
    assert jmlp.feedback_angles(params[:1], []).shape == (0,)


# ----------------------------------------------------------------------------- experiments


@pytest.mark.slow
def test_experiment_scripts_run(tmp_path):
    """experiments/learning_rules.py and feedback_speed.py with --quick: every rule trains (no
    angles for backprop; the others' hidden angles finite and in (0, 180), the output layer's 0)
    and is timed."""
    from test_experiments import run

    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    studies = run("learning_rules", tmp_path / "rules", env=env)["studies"]
    assert (tmp_path / "rules" / "angles.png").stat().st_size > 1000
    for study in studies.values():
        rules = study["rules"]
        assert set(rules) == set(RULES) and np.size(rules["backprop"]["angles"]) == 0
        for rule in ("fa", "dfa", "sign"):
            angles = np.asarray(rules[rule]["angles"])  # (seeds, epochs, layers)
            assert angles.shape[2] == len(study["sizes"]) - 1
            assert np.all((angles[:, :, :-1] > 0) & (angles[:, :, :-1] < 180))
            np.testing.assert_allclose(angles[:, :, -1], 0, atol=1e-3)
        assert np.asarray(rules["fa"]["feedback_angles"]).shape[2] == len(study["sizes"]) - 2
    speed = run("feedback_speed", tmp_path / "speed", env=env)["rows"]
    assert all(set(row["ratio_to_backprop"]) == set(RULES) for row in speed)
