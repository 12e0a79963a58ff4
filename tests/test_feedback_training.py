"""The learning rules in the training engine: jmlp.fit(rule=..., feedback=...) against a plain loop
of jmlp.feedback_grads steps, fit_many members against fit, and the rule's argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmlp

NET = jmlp.MLP((3, 5, 4, 3), "tanh", "softmax", "cross_entropy")
F64 = {"rtol": 1e-12, "atol": 1e-14}  # the same float64 sums, in another order
ADAM = optax.adam(0.05)
KEY = jax.random.key(3)
SLOW = pytest.mark.slow


def data(n=20):
    k1, k2 = jax.random.split(jax.random.key(0))
    return jax.random.normal(k1, (n, 3), jnp.float64), jax.random.randint(k2, (n,), 0, 3)


def params(seed=0):
    return jmlp.init_params(jax.random.key(seed), NET.sizes, dtype=jnp.float64)


def feedback(rule, seed=1):
    return jmlp.init_feedback(jax.random.key(seed), NET.sizes, rule, dtype=jnp.float64)


def loop(rule, p, fb, x, y, epochs, batch):
    """Epochs of Adam steps on perm[0:B], perm[B:2B], ... with the rule's updates."""
    state, update = ADAM.init(p), jax.jit(ADAM.update)
    n = len(x)
    for epoch in range(epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), n))
        for idx in np.split(perm, range(batch, n, batch)):
            _, grads = jmlp.feedback_grads(NET, p, x[idx], y[idx], rule=rule, feedback=fb)
            updates, state = update(grads, state, p)
            p = optax.apply_updates(p, updates)
    return p


@pytest.mark.parametrize("rule", ["fa", "dfa", "sign"])
def test_fit_with_a_rule_equals_a_loop_of_its_updates(rule):
    x, y = data()
    fb = feedback(rule) or None
    result = jmlp.fit(NET, params(), ADAM, x, y, epochs=2, batch_size=6, key=KEY, rule=rule,
                      feedback=fb)  # fmt: skip
    expected = loop(rule, params(), fb or [], x, y, 2, 6)
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, **F64)
    backprop = jmlp.fit(NET, params(), ADAM, x, y, epochs=2, batch_size=6, key=KEY)
    assert not np.allclose(result.params[0]["W"], backprop.params[0]["W"])  # the rule mattered


@pytest.mark.parametrize("shared", [True, False])
def test_fit_many_members_train_with_their_own_feedback(shared):
    x, y = data()
    n = 3
    stack = jmlp.init_many(jax.random.split(jax.random.key(0), n), NET.sizes, dtype=jnp.float64)
    sets = [feedback("fa", seed=1 if shared else 10 + m) for m in range(n)]
    given = sets[0] if shared else [jnp.stack(bs) for bs in zip(*sets, strict=True)]
    many = jmlp.fit_many(NET, stack, ADAM, x, y, epochs=2, batch_size=6, key=KEY, rule="fa",
                         feedback=given)  # fmt: skip
    for m in range(n):
        one = jmlp.fit(NET, jmlp.member(stack, m), ADAM, x, y, epochs=2, batch_size=6, key=KEY,
                       rule="fa", feedback=sets[m])  # fmt: skip
        for a, b in zip(jax.tree.leaves(jmlp.member(many.params, m)), jax.tree.leaves(one.params)):
            np.testing.assert_allclose(a, b, **F64)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"rule": "hebb"}, ValueError, "rule: expected one of"),
        ({"rule": "fa"}, ValueError, "feedback: rule 'fa' needs its fixed matrices"),
        ({"rule": "sign", "gradient": "autodiff"}, ValueError, "gradient: rule 'sign' runs"),
        ({"rule": "dfa", "feedback": feedback("fa")}, ValueError, r"feedback\[0\]: expected shape"),
        ({"rule": "sign", "feedback": feedback("fa")}, ValueError, "feedback: rule 'sign' uses no"),
        ({"rule": "fa", "feedback": 3}, ValueError, "feedback: expected a list of 2 matrices"),
    ],
)
def test_bad_rule_arguments_name_the_argument(overrides, error, message):
    x, y = data()
    with pytest.raises(error, match=message):
        jmlp.fit(NET, params(), ADAM, x, y, epochs=1, **overrides)


def test_a_resumed_run_with_a_rule_is_bitwise_the_uninterrupted_one(tmp_path):
    x, y = data()
    kw = {"batch_size": 6, "key": KEY, "rule": "dfa", "feedback": feedback("dfa")}
    whole = jmlp.fit(NET, params(), ADAM, x, y, epochs=4, **kw)
    path = tmp_path / "state.npz"
    jmlp.fit(NET, params(), ADAM, x, y, epochs=2, checkpoint_path=path, **kw)
    resumed = jmlp.fit(NET, params(), ADAM, x, y, epochs=4, checkpoint_path=path, resume=True, **kw)
    assert resumed.epochs_run == 4 and resumed.history == whole.history
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)


def angles_of(history, rule, index):
    """The alignment columns of a history at epoch ``index``, as jmlp.alignment names them."""
    update = [history[f"update_angle_{l}"][index] for l in (1, 2, 3)]
    fed = [history[f"feedback_angle_{l}"][index] for l in (2, 3)] if rule == "fa" else []
    return np.array(update), np.array(fed)


@pytest.mark.parametrize("rule", ["fa", *(pytest.param(r, marks=SLOW) for r in ("dfa", "sign"))])
def test_history_angles_are_jmlp_alignment_at_the_epoch_end_params(rule):
    x, y = data(21)  # 21 rows: the training set is padded (to 32), the padding must not count
    fb = feedback(rule) or None
    kw = {"batch_size": 6, "key": KEY, "rule": rule, "feedback": fb, "l2": 0.01}
    result = jmlp.fit(NET, params(), ADAM, x, y, epochs=2, alignment=True, **kw)
    want = jmlp.alignment(NET, result.params, x, y, rule=rule, feedback=fb, l2=0.01)
    update, fed = angles_of(result.history, rule, -1)
    np.testing.assert_allclose(update, want["update"], rtol=1e-10, atol=1e-10)
    assert update[-1] < 1e-6  # the output layer's update is the gradient
    if rule == "fa":
        np.testing.assert_allclose(fed, want["feedback"], rtol=1e-10, atol=1e-10)
    assert len(result.history) == 1 + 3 + (2 if rule == "fa" else 0)


@SLOW
def test_alignment_columns_only_when_asked_and_the_training_unchanged():
    x, y = data(21)
    kw = {"batch_size": 6, "key": KEY, "rule": "sign"}
    plain = jmlp.fit(NET, params(), ADAM, x, y, epochs=2, **kw)
    watched = jmlp.fit(NET, params(), ADAM, x, y, epochs=2, alignment=True, **kw)
    assert list(plain.history) == ["loss"]
    assert plain.history["loss"] == watched.history["loss"]
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(watched.params), strict=True):
        np.testing.assert_array_equal(a, b)


@SLOW
def test_fit_many_history_angles_are_each_members_alignment():
    x, y = data(21)
    n, l2 = 3, np.array([0.0, 0.01, 0.1])
    stack = jmlp.init_many(jax.random.split(jax.random.key(0), n), NET.sizes, dtype=jnp.float64)
    sets = [feedback("fa", seed=10 + m) for m in range(n)]
    given = [jnp.stack(bs) for bs in zip(*sets, strict=True)]
    many = jmlp.fit_many(NET, stack, ADAM, x, y, epochs=2, batch_size=6, key=KEY, rule="fa",
                         feedback=given, l2=l2, alignment=True)  # fmt: skip
    m = 1
    want = jmlp.alignment(NET, jmlp.member(many.params, m), x, y, rule="fa", feedback=sets[m],
                          l2=l2[m])  # fmt: skip
    update, fed = angles_of({k: v[m] for k, v in many.history.items()}, "fa", -1)
    np.testing.assert_allclose(update, want["update"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fed, want["feedback"], rtol=1e-10, atol=1e-10)


def test_alignment_is_refused_for_backprop_and_non_bools():
    x, y = data()
    with pytest.raises(ValueError, match="alignment: .*rule='backprop' is the gradient"):
        jmlp.fit(NET, params(), ADAM, x, y, epochs=1, alignment=True)
    with pytest.raises(TypeError, match="alignment: expected True or False, got 1"):
        jmlp.fit(NET, params(), ADAM, x, y, epochs=1, rule="sign", alignment=1)
