"""jmlp.train: fit against hand-written loops, stopping rules, determinism, checkpoints, NaN
handling, input checks, and document 001's and 003's experiments."""

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compiled
from sklearn.datasets import make_classification
from sklearn.metrics import r2_score as sk_r2_score
from sklearn.model_selection import train_test_split

import jmlp
from jmlp.train import NonFiniteLossError, fit

F64 = {"rtol": 1e-12, "atol": 1e-14}  # two float64 computations of the same sums, reordered
# Reference steps, jitted: eager dispatch compiles every primitive and is much slower here.
backprop = jax.jit(jmlp.backprop, static_argnums=0)
autodiff = jax.jit(jmlp.autodiff, static_argnums=0)


def assert_trees(a, b, **tol):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **tol), a, b)


def assert_bitwise(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


def blobs(n=40, seed=0, n_in=3, n_classes=3):
    """Gaussian blobs around well-separated centres: (x (n, n_in) float64, labels (n,))."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = 3.0 * np.eye(n_classes, n_in)
    return centres[labels] + rng.normal(size=(n, n_in)), labels


CLS = jmlp.MLP((3, 8, 3), "tanh", "softmax", "cross_entropy")
REG = jmlp.MLP((3, 8, 2), "tanh", "identity", "mse")
# Shared data and optimizer objects: fit's compiled epochs are cached per (net, optimizer,
# gradient, nan_policy) and shapes, so tests that share them compile once (keeps this file fast).
X, Y = blobs(20)
VAL = blobs(10, seed=2)
SGD, ADAM = optax.sgd(0.1), optax.adam(0.05)
MINI = {"batch_size": 6, "key": jax.random.key(4)}  # 4 steps, the last with 2 of 6 examples


def np_params(sizes, seed=0, dtype=np.float64):
    """W ~ N(0, 1 / n_in), b ~ N(0, 0.01) drawn with numpy (no threefry to compile)."""
    rng = np.random.default_rng(seed)
    return [
        {
            "W": jnp.asarray(rng.normal(size=(i, o)) / i**0.5, dtype),
            "b": jnp.asarray(0.1 * rng.normal(size=o), dtype),
        }
        for i, o in itertools.pairwise(sizes)
    ]


def cls_params(seed=0):
    return np_params(CLS.sizes, seed)


# --- document 001: 2-2-1 linear network, full-batch GD until E <= 1e-6 -----------------------


def doc001_by_hand(lr=0.05, tol=1e-6):
    """The note's chain rule in scalars: returns (iterations, w1..w6) when E <= tol."""
    w1, w2, w3, w4, w5, w6 = 0.11, 0.12, 0.21, 0.08, 0.14, 0.15
    x1, x2, t = 2.0, 3.0, 1.0
    for it in range(1, 10_000):
        h1, h2 = x1 * w1 + x2 * w3, x1 * w2 + x2 * w4
        d = h1 * w5 + h2 * w6 - t
        grads = (d * w5 * x1, d * w6 * x1, d * w5 * x2, d * w6 * x2, d * h1, d * h2)
        w1, w2, w3, w4, w5, w6 = (w - lr * g for w, g in zip((w1, w2, w3, w4, w5, w6), grads))
        if 0.5 * d * d <= tol:  # E of the weights this step started from (as fit's history)
            return it, (w1, w2, w3, w4, w5, w6)
    raise AssertionError("no convergence")


def test_001_full_batch_gd_reaches_error_tol():
    # The note's network has no biases: zero biases, frozen by optax.set_to_zero.
    net = jmlp.MLP((2, 2, 1), "identity", "identity", "half_sse")
    params = [
        {"W": jnp.array([[0.11, 0.12], [0.21, 0.08]]), "b": jnp.zeros(2)},
        {"W": jnp.array([[0.14], [0.15]]), "b": jnp.zeros(1)},
    ]
    labels = lambda p: [{"W": "w", "b": "b"} for _ in p]
    opt = optax.multi_transform({"w": optax.sgd(0.05), "b": optax.set_to_zero()}, labels)
    result = fit(net, params, opt, [[2.0, 3.0]], [[1.0]], epochs=1000, tol=1e-6)
    iterations, (w1, w2, w3, w4, w5, w6) = doc001_by_hand()
    assert result.stopped.startswith("tol") and result.epochs_run == iterations
    assert result.history["loss"][-1] <= 1e-6 < result.history["loss"][-2]
    np.testing.assert_allclose(result.history["loss"][0], 0.5 * (0.191 - 1) ** 2, rtol=1e-14)
    assert_trees(result.params[0]["W"], [[w1, w2], [w3, w4]], **F64)
    assert_trees(result.params[1]["W"], [[w5], [w6]], **F64)
    assert_bitwise(result.params[0]["b"], np.zeros(2))


# --- the epoch against a hand-written loop ------------------------------------------------------


@pytest.mark.parametrize("net", [CLS, dataclasses.replace(CLS, reduction="sum")])
def test_partial_last_batch_matches_python_loop(net):
    """N = 20, B = 6: steps on perm[0:6], perm[6:12], perm[12:18], perm[18:20] (unpadded)."""
    result = fit(net, cls_params(), ADAM, X, Y, epochs=2, l2=0.01, **MINI)
    p, state, adam_update = cls_params(), ADAM.init(cls_params()), jax.jit(ADAM.update)
    for epoch in range(2):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(MINI["key"], epoch), 20))
        values = []
        for idx in np.split(perm, [6, 12, 18]):
            value, grads = backprop(net, p, X[idx], Y[idx], l2=0.01)
            updates, state = adam_update(grads, state, p)
            p, values = optax.apply_updates(p, updates), values + [float(value)]
        expected = np.dot([6, 6, 6, 2], values) / 20 if net.reduction == "mean" else sum(values)
        np.testing.assert_allclose(result.history["loss"][epoch], expected, **F64)
    assert_trees(result.params, p, **F64)
    assert_trees(result.opt_state, state, **F64)


def test_full_batch_needs_no_key_and_matches_gd():
    result = fit(CLS, cls_params(), SGD, X, Y, epochs=3)
    p = cls_params()
    for _ in range(3):
        p = jax.tree.map(lambda a, g: a - 0.1 * g, p, autodiff(CLS, p, X, Y)[1])
    assert_trees(result.params, p, **F64)
    assert result.key is None and result.stopped == "max epochs (3)"


def test_backprop_and_autodiff_trajectories_agree():
    # float64 rtol 1e-10 after 20 epochs (4 steps each, the last partial).
    a = fit(CLS, cls_params(), ADAM, X, Y, epochs=20, gradient="backprop", **MINI)
    b = fit(CLS, cls_params(), ADAM, X, Y, epochs=20, gradient="autodiff", **MINI)
    assert_trees(a.params, b.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-10)


def np_softmax_probs(params, x):
    """CLS's forward pass in numpy: softmax(tanh(x W1 + b1) W2 + b2)."""
    (w1, b1), (w2, b2) = [(np.asarray(p["W"]), np.asarray(p["b"])) for p in params]
    z = np.tanh(x @ w1 + b1) @ w2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_loss_decreases_and_classifies():
    xv, yv = VAL
    result = fit(CLS, cls_params(), ADAM, X, Y, epochs=30, validation=VAL, **MINI)
    history = result.history
    assert set(history) == {"loss", "val_loss", "val_accuracy", "val_error"}
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    # the in-jit validation metrics, against numpy at the returned params
    probs = np_softmax_probs(result.params, xv)
    accuracy = np.mean(np.argmax(probs, axis=1) == yv)
    assert history["val_accuracy"][-1] == accuracy >= 0.9
    np.testing.assert_allclose(history["val_error"][-1], 1 - accuracy, rtol=1e-14)
    val_loss = -np.mean(np.log(probs[np.arange(len(yv)), yv]))
    np.testing.assert_allclose(history["val_loss"][-1], val_loss, rtol=1e-12)


# --- early stopping, determinism, recompiles, checkpoints ---------------------------------------


def test_early_stopping_restores_best_params():
    # Train on y = 2x from W = 0, validate on y = x: the output sweeps 0 -> 2x, passing the
    # validation optimum (output x) on the way, so val_loss falls and then rises.
    net = jmlp.MLP((1, 2, 1), "identity", "identity", "mse")
    params = [
        {"W": jnp.full((1, 2), 0.5), "b": jnp.zeros(2)},
        {"W": jnp.zeros((2, 1)), "b": jnp.zeros(1)},
    ]
    x = np.linspace(-1, 1, 9)[:, None]
    snapshots = {}
    callback = lambda epoch, p, history: snapshots.__setitem__(epoch, p)
    result = fit(
        net, params, optax.sgd(0.2), x, 2 * x, epochs=200, validation=(x, x), patience=3,
        callback=callback,
    )  # fmt: skip
    val = result.history["val_loss"]
    best = int(np.argmin(val)) + 1
    assert 1 < best < len(val) and val[-1] > val[best - 1]  # it did fall and rise
    assert result.epochs_run == best + 3 == len(val)
    assert "early stopping" in result.stopped and f"best epoch {best}" in result.stopped
    assert_bitwise(result.params, snapshots[best])
    # a regressor's history has val_r2: check it at the best epoch, in numpy and scikit-learn
    assert set(result.history) == {"loss", "val_loss", "val_r2"}
    (w1, b1), (w2, b2) = [(np.asarray(p["W"]), np.asarray(p["b"])) for p in snapshots[best]]
    r2 = sk_r2_score(x, (x @ w1 + b1) @ w2 + b2, multioutput="variance_weighted")
    np.testing.assert_allclose(result.history["val_r2"][best - 1], r2, rtol=1e-12)


def fitted_line():
    """A 1-1 linear net already at y = 2x on whole numbers: the training loss is exactly 0 and
    its gradient exactly 0, so every epoch leaves the params as they are."""
    net = jmlp.MLP((1, 1), "identity", "identity", "mse")
    params = [{"W": jnp.full((1, 1), 2.0), "b": jnp.zeros(1)}]
    x = np.arange(1.0, 6.0)[:, None]
    return net, params, x, 2 * x


def test_tol_stops_when_the_loss_equals_it():
    """tol: stop once the epoch's loss is <= tol; a loss of exactly 0 meets tol = 0."""
    net, params, x, y = fitted_line()
    result = fit(net, params, optax.sgd(0.1), x, y, epochs=10, tol=0.0)
    assert list(result.history["loss"]) == [0.0]
    assert result.epochs_run == 1 and result.stopped.startswith("tol")


def test_a_val_loss_equal_to_the_best_is_no_improvement():
    """The val_loss stays the same every epoch (the params never move): its first epoch is the
    best, and patience 2 stops the run two epochs later."""
    net, params, x, y = fitted_line()
    result = fit(net, params, optax.sgd(0.1), x, y, epochs=10, validation=(x, 3 * x), patience=2)
    val = result.history["val_loss"]
    np.testing.assert_array_equal(val, [np.mean(x**2)] * 3)  # (3x - 2x)^2, averaged
    assert result.epochs_run == 3
    assert "early stopping" in result.stopped and "best epoch 1" in result.stopped


def epochs_without_improvement(losses: list[float], min_delta: float) -> int:
    """The rule written plainly: epochs since the loss last fell below its least minus min_delta."""
    best, count = math.inf, 0
    for value in losses:
        count = 0 if value < best - min_delta else count + 1
        best = min(best, value)
    return count


def test_patience_without_validation_watches_the_training_loss():
    kw = {"epochs": 400, **MINI}
    result = fit(CLS, cls_params(), ADAM, X, Y, patience=4, min_delta=1e-3, **kw)
    losses, done = result.history["loss"], result.epochs_run
    assert done < 400 and result.stopped.startswith("early stopping")
    waits = [epochs_without_improvement(losses[:e], 1e-3) for e in range(1, done + 1)]
    assert waits[-1] == 4 and max(waits[:-1]) < 4  # stops at the first epoch the rule says
    plain = fit(CLS, cls_params(), ADAM, X, Y, **(kw | {"epochs": done}))
    assert_bitwise(result.params, plain.params)  # the last epoch's params, not the best's


def test_same_key_same_params_different_key_different():
    runs = [
        fit(CLS, cls_params(), ADAM, X, Y, epochs=3, batch_size=6, key=jax.random.key(k))
        for k in (5, 5, 6)
    ]
    assert_bitwise(runs[0].params, runs[1].params)
    assert runs[0].history == runs[1].history
    assert not np.array_equal(runs[0].params[0]["W"], runs[2].params[0]["W"])


def test_a_legacy_key_orders_the_data_as_the_typed_key_of_its_words():
    """``jax.random.PRNGKey(s)`` (raw uint32 words) and the threefry key wrapping those words."""
    run = lambda key: fit(CLS, cls_params(), ADAM, X, Y, epochs=3, batch_size=6, key=key).params
    raw = jax.random.PRNGKey(5)
    assert_bitwise(run(raw), run(jax.random.wrap_key_data(raw)))


def traces(fn) -> int:
    """Training loops compiled while ``fn()`` runs."""
    with compiled() as names:
        fn()
    return names.count("jit(run_chunk)")


def test_second_fit_with_same_shapes_does_not_recompile():
    x2, labels2 = blobs(20, seed=3)
    opt = optax.sgd(0.1234)  # settings no other test uses: its first fit traces exactly once
    kw = {"epochs": 2, "batch_size": 6}
    assert traces(lambda: fit(CLS, cls_params(0), opt, X, Y, key=jax.random.key(0), **kw)) == 1
    again = lambda: fit(CLS, cls_params(1), opt, x2, labels2, key=jax.random.key(1), l2=0.1, **kw)
    assert traces(again) == 0


@pytest.mark.parametrize(
    "make",
    [lambda lr: optax.adam(lr, b1=0.99), lambda lr: jmlp.optim.adam(lr, b1=0.99),
     lambda lr: optax.chain(jmlp.optim.add_l2(1e-3), optax.sgd(lr, momentum=0.9))],
    ids=["optax", "jmlp.optim", "chain"],
)  # fmt: skip
def test_a_fresh_equal_optimizer_does_not_recompile_another_does(make):
    kw = {"epochs": 2, "batch_size": 6, "key": jax.random.key(0)}
    first = traces(lambda: fit(CLS, cls_params(), make(0.0123), X, Y, **kw))
    assert first <= 1  # 0 if an earlier parametrization built the same transformation
    assert traces(lambda: fit(CLS, cls_params(), make(0.0123), X, Y, **kw)) == 0
    assert traces(lambda: fit(CLS, cls_params(), make(0.0321), X, Y, **kw)) == 1


def test_optimizers_differing_only_in_an_array_rate_train_each_at_its_own_rate():
    """optax.sgd(jnp.float32(r)) for two r: each fit equals plain gradient descent at that r,
    so the second does not reuse the first one's compiled loop."""

    @jax.jit
    def gd(p, rate):
        grads = jax.grad(lambda q: jmlp.loss(CLS, q, X, Y))(p)
        return jax.tree.map(lambda a, g: a - rate * g, p, grads)

    for rate in (0.1, 0.5):
        result = fit(CLS, cls_params(), optax.sgd(jnp.float32(rate)), X, Y, epochs=3)
        p = cls_params()
        for _ in range(3):
            p = gd(p, float(np.float32(rate)))  # the float32 rate, exactly, in float64
        assert_trees(result.params, p, **F64)


def seed_keys(seeds):
    """``jax.random.key(s)`` for each seed, stacked ``(N,)``: key data ``[0, s]``, so the keys
    differ only in their second word."""
    return jnp.stack([jax.random.key(s) for s in seeds])


@pytest.mark.parametrize(
    ("seeds", "period"), [((0, 1, 2, 0, 1, 2), 3), ((0, 1, 2, 3), 4), ((5, 5, 5), 1), ((7,), 1)]
)
def test_key_period_of_keys_from_seeds(seeds, period):
    from jmlp.train.setup import key_period as _key_period  # members keys[m % period] share

    assert _key_period(seed_keys(seeds)) == period


@pytest.mark.parametrize("seeds", [(0, 1, 2, 0, 1, 2), (0, 1, 2, 3)])
def test_fit_many_members_keyed_by_seed_train_as_fit_with_their_own_key(seeds):
    """Keys that differ only in their second word give each member its own data order."""
    params = [cls_params(m) for m in range(len(seeds))]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
    many = jmlp.fit_many(
        CLS, ADAM, X, Y, params=stacked, key=seed_keys(seeds), epochs=2, batch_size=6
    )
    for m, seed in enumerate(seeds):
        ref = fit(CLS, params[m], ADAM, X, Y, key=jax.random.key(seed), epochs=2, batch_size=6)
        assert_trees(jax.tree.map(lambda a, m=m: a[m], many.params), ref.params, **F64)
        np.testing.assert_allclose(many.history["loss"][m], ref.history["loss"], **F64)


def test_hyper_parameters_as_data_compile_once():
    """A Python loop over learning rates and l2, each fit equal to the one with constants."""
    kw = {"epochs": 2, "batch_size": 6, "key": jax.random.key(0)}
    runs = {}
    count = traces(lambda: runs.update({
        lr: fit(CLS, cls_params(), optax.adam, X, Y, hparams={"learning_rate": lr}, l2=lr, **kw)
        for lr in (0.011, 0.022, 0.033)
    }))  # fmt: skip
    assert count <= 1
    for lr, result in runs.items():
        ref = fit(CLS, cls_params(), optax.adam(lr), X, Y, l2=lr, **kw)
        assert_trees(result.params, ref.params, **F64)


def test_input_params_are_not_donated():
    params = cls_params()
    fit(CLS, params, SGD, X, Y, epochs=1)
    assert not params[0]["W"].is_deleted()
    assert_bitwise(params, cls_params())


@pytest.mark.parametrize("validation", [False, True])
def test_checkpoint_resume_equals_uninterrupted_run(tmp_path, validation):
    kw = MINI | ({"validation": VAL} if validation else {})
    whole = fit(CLS, cls_params(), ADAM, X, Y, epochs=6, **kw)
    path = tmp_path / "run.npz"
    first = fit(CLS, cls_params(), ADAM, X, Y, epochs=4, checkpoint_path=path, **kw)
    assert jmlp.load_checkpoint(path, like_params=cls_params()).epoch == 4
    assert first.epochs_run == 4
    resumed = fit(
        CLS, cls_params(), ADAM, X, Y, epochs=6, checkpoint_path=path, checkpoint_every=1,
        resume=True, **kw,
    )  # fmt: skip
    assert resumed.epochs_run == 6 and resumed.history == whole.history
    assert_bitwise(resumed.params, whole.params)
    assert_bitwise(resumed.opt_state, whole.opt_state)
    assert jmlp.load_checkpoint(path, like_params=cls_params()).epoch == 6


@pytest.mark.parametrize("first, then", [(False, True), (True, False)])
def test_resume_with_other_validation_is_refused(tmp_path, first, then):
    path = tmp_path / "c.npz"
    kw = {"batch_size": 6, "key": jax.random.key(0), "checkpoint_path": path}
    fit(CLS, cls_params(), SGD, X, Y, epochs=2, validation=(X, Y) if first else None, **kw)
    with pytest.raises(ValueError, match=r"validation / evaluate: .*val_loss"):
        fit(CLS, cls_params(), SGD, X, Y, epochs=4, validation=(X, Y) if then else None,
            resume=True, **kw)  # fmt: skip


def test_resume_with_another_key_is_refused(tmp_path):
    path = tmp_path / "run.npz"
    kw = {"epochs": 2, "batch_size": 6, "checkpoint_path": path}
    fit(CLS, cls_params(), ADAM, X, Y, key=jax.random.key(0), **kw)
    with pytest.raises(ValueError, match="key: differs"):
        fit(CLS, cls_params(), ADAM, X, Y, key=jax.random.key(1), resume=True, **kw)


# --- non-finite losses ---------------------------------------------------------------------------


DIVERGE = optax.sgd(10.0)


def diverging_problem():
    """Full-batch GD with lr 10 on a 2-4-1 linear net: the loss grows by orders of magnitude per
    epoch and overflows float32 (max 3.4e38) within a few epochs."""
    net = jmlp.MLP((2, 4, 1), "identity", "identity", "mse")
    params = np_params(net.sizes, dtype=np.float32)
    x = np.asarray(np.random.default_rng(0).normal(size=(8, 2)), np.float32)
    return net, params, x, x[:, :1] * 3


def test_non_finite_loss_stops_naming_the_epoch_with_last_finite_state():
    net, params, x, y = diverging_problem()
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, step 1") as info:
        fit(net, params, DIVERGE, x, y, epochs=500)
    err = info.value
    last = err.result
    assert last.epochs_run == err.epoch - 1 == len(last.history["loss"]) > 1
    assert f"epoch {err.epoch}," in str(err) and isinstance(err, FloatingPointError)
    assert all(math.isfinite(v) for v in last.history["loss"])
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(last.params))
    # the step from the returned params is the non-finite one
    value, grads = backprop(net, last.params, x, y)
    new = jax.tree.map(lambda p, g: p - 10.0 * g, last.params, grads)
    finite = [bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves((value, new))]
    assert not all(finite)


def test_skip_policy_skips_non_finite_steps_and_counts_them():
    net, params, x, y = diverging_problem()
    with pytest.raises(NonFiniteLossError) as info:
        fit(net, params, DIVERGE, x, y, epochs=500)
    stop_epoch = info.value.epoch
    result = fit(net, params, DIVERGE, x, y, epochs=stop_epoch + 2, nan_policy="skip")
    skipped = result.history["skipped"]
    assert skipped == [0.0] * (stop_epoch - 1) + [1.0] * 3  # the same full batch fails again
    assert math.isnan(result.history["loss"][-1])  # no step taken in that epoch
    assert_bitwise(result.params, info.value.result.params)


# --- input checks --------------------------------------------------------------------------------

X_OK, Y_OK = X, Y


def bad_input_cases():
    lbl = Y_OK.copy()
    lbl[3] = 3
    nan_x = X_OK.copy()
    nan_x[2, 1] = np.nan
    return [  # (overrides, error, message)
        ({"x": X_OK[:, :2]}, ValueError, r"x: expected shape \(batch, 3\)"),
        ({"x": X_OK[0]}, ValueError, r"x: expected shape \(N, 3\)"),
        ({"y": Y_OK[:9]}, ValueError, r"y: expected integer labels of shape \(20,\)"),
        ({"y": lbl}, ValueError, r"y: integer labels .* must be in \[0, 3\)"),
        ({"y": -np.eye(3)[Y_OK]}, ValueError, r"y: targets .* must be in \[0, 1\]"),
        ({"x": nan_x}, ValueError, "x: contains 1 NaN/inf"),
        ({"batch_size": 0}, ValueError, r"batch_size: expected an int in \[1, 20\], got 0"),
        ({"batch_size": 21}, ValueError, r"batch_size: .* got 21"),
        ({"batch_size": 2.5}, ValueError, "batch_size: expected an int"),
        ({"batch_size": 4, "key": None}, TypeError, "key: mini-batch"),
        ({"batch_size": 4, "key": "seed"}, TypeError, "key: expected a jax.random.key"),
        ({"epochs": 0}, ValueError, r"epochs: expected an int >= 1, got 0"),
        ({"gradient": "numeric"}, ValueError, "gradient: expected one of"),
        ({"nan_policy": "ignore"}, ValueError, "nan_policy: expected one of"),
        ({"optimizer": 0.1}, TypeError, "optimizer: expected an optax.GradientTransformation"),
        ({"validation": X_OK}, TypeError, "validation: expected a pair"),
        ({"validation": (X_OK, lbl)}, ValueError, r"validation\[1\] \(y_val\): integer labels"),
        ({"validation": (X_OK[:, :2], Y_OK)}, ValueError, r"validation\[0\] \(x_val\): expected"),
        ({"patience": 0}, ValueError, "patience: expected an int >= 1"),
        ({"patience": 2, "min_delta": -0.1}, ValueError, "min_delta: expected a number >= 0"),
        ({"l2": -1.0}, ValueError, "l2: expected a number >= 0"),
        ({"tol": "small"}, ValueError, "tol: expected a number"),
        ({"callback": 3}, TypeError, "callback: expected a callable"),
        ({"resume": True}, ValueError, "checkpoint_path: needed"),
        ({"checkpoint_path": "/no/such/dir/c.npz"}, ValueError, "checkpoint_path: directory"),
        ({"net": "mlp"}, TypeError, "net: expected a jmlp.MLP"),
    ]


@pytest.mark.parametrize(("overrides", "error", "message"), bad_input_cases())
def test_bad_input_names_the_argument(overrides, error, message):
    args = {"net": CLS, "params": cls_params(), "optimizer": SGD, "x": X_OK}
    args |= {"y": Y_OK, "key": jax.random.key(0)} | overrides
    with compiled() as names, pytest.raises(error, match=message):
        fit(**args)
    assert "jit(run_chunk)" not in names  # rejected before compiling


@pytest.mark.parametrize(
    ("loss", "n_out", "labels", "allowed"),
    [
        ("binary_cross_entropy", 1, [0, 1, 2, 1], r"\{0, 1\}"),
        ("hinge", 1, [1, -1, 0, 1], r"\{-1, \+1\}"),
        ("hinge", 1, [[1.0], [0.0], [1.0], [-1.0]], r"\{-1, \+1\}"),
    ],
)
def test_label_values_checked_per_loss(loss, n_out, labels, allowed):
    net = jmlp.MLP((2, 3, n_out), "tanh", "sigmoid" if loss != "hinge" else "identity", loss)
    params = np_params(net.sizes)
    with pytest.raises(ValueError, match=f"y: .* must be in {allowed}"):
        fit(net, params, optax.sgd(0.1), np.zeros((4, 2)), np.asarray(labels), epochs=1)


# --- callback, progress, predictions ------------------------------------------------------------


def test_callback_gets_each_epoch_and_can_stop():
    seen = []

    def callback(epoch, params, history):
        seen.append((epoch, len(history["loss"])))
        return epoch == 3

    result = fit(CLS, cls_params(), SGD, X, Y, epochs=10, callback=callback)
    assert seen == [(1, 1), (2, 2), (3, 3)] and result.epochs_run == 3
    assert result.stopped == "callback returned True at epoch 3"


def test_progress_line_shows_the_epochs_and_loss(capsys):
    result = fit(CLS, cls_params(), SGD, X, Y, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert f"epoch 2/2  loss {result.history['loss'][-1]:.4g}" in err


# --- document 003's experiment -------------------------------------------------------------------


def test_003_experiment_mean_test_error_over_ten_seeds():
    """make_classification(500, 5 features, 3 classes, seed 7), 80/20 split; 5-50-3 relu/softmax,
    summed cross-entropy, W ~ randn/sqrt(fan_in), b = 0; Adam lr 1e-4, b1 0.99, b2 0.999 with
    eps 1e-8 inside the square root (003's m_hat / sqrt(v_hat + eps) is optax's eps_root with
    eps = 0); batch 50, 500 epochs. 003 reports a test error of 0.18 (one run, unshuffled
    batches); over 10 seeds of init and shuffling the mean must be <= 0.21."""
    x, labels = make_classification(
        n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3, random_state=7
    )
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=0.2, random_state=7)
    net = jmlp.MLP((5, 50, 3), "relu", "softmax", "cross_entropy", reduction="sum")
    opt = optax.adam(1e-4, b1=0.99, b2=0.999, eps=0.0, eps_root=1e-8)
    errors = []
    for seed in range(10):
        params = np_params(net.sizes, seed)  # 003's W = randn / sqrt(fan_in) ...
        params = [{"W": p["W"], "b": jnp.zeros_like(p["b"])} for p in params]  # ... and b = 0
        key = jax.random.key(seed)
        result = fit(net, params, opt, x_train, y_train, epochs=500, batch_size=50, key=key)
        (w1, b1), (w2, b2) = [(np.asarray(p["W"]), np.asarray(p["b"])) for p in result.params]
        z = np.maximum(x_test @ w1 + b1, 0) @ w2 + b2  # argmax of softmax(z) = argmax of z
        errors.append(np.mean(np.argmax(z, axis=1) != y_test))  # 003's error_rate
    assert np.mean(errors) <= 0.21, errors
