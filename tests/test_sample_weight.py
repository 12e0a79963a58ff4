"""Per-example weights in training: jmlp.fit / fit_many's sample_weight against plain loops of
optax steps on jax.grad of jmlp.loss(..., weights=w), its limits (ones, zeros, bad input, no
recompilation, resume), and the scikit-learn estimators' sample_weight beside scikit-learn's."""

import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compiled
from sklearn import neural_network
from sklearn.datasets import load_iris, make_regression
from sklearn.preprocessing import StandardScaler

import jmlp
import jmlp.sklearn

NET = jmlp.MLP((3, 6, 3), "tanh", "softmax", "cross_entropy")
SUM = jmlp.MLP((3, 6, 3), "tanh", "softmax", "cross_entropy", reduction="sum")
F64 = {"rtol": 1e-12, "atol": 1e-14}  # the same float64 sums, in another order
ADAM = optax.adam(0.05)
L2 = 0.01
KEY = jax.random.key(4)
N, B = 20, 6  # 4 steps an epoch: perm[0:6], perm[6:12], perm[12:18], perm[18:20]


def data(n=N, seed=0):
    """``x (n, 3)`` float64, labels ``(n,)`` and weights ``w (n,)`` in [0, 2), drawn by numpy."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.integers(0, 3, n), rng.uniform(0.0, 2.0, n)


def params(seed=0):
    rng = np.random.default_rng(seed + 10)
    return [
        {
            "W": jnp.asarray(rng.normal(size=(i, o)) / i**0.5),
            "b": jnp.asarray(0.1 * rng.normal(size=o)),
        }
        for i, o in itertools.pairwise(NET.sizes)
    ]


X, Y, W = data()


@jax.jit
def _weighted_step(p, state, x, y, w):
    """One Adam step on ``jax.grad`` of ``jmlp.loss(..., weights=w, l2=L2)`` (autodiff of the
    forward pass, not the engine's delta rule)."""
    value, grads = jax.value_and_grad(lambda q: jmlp.loss(NET, q, x, y, weights=w, l2=L2))(p)
    updates, state = ADAM.update(grads, state, p)
    return optax.apply_updates(p, updates), state, value


def loop(p, epochs, w, batch=None):
    """Epochs of Adam steps on the rows perm[0:B], perm[B:2B], ... (the engine's order,
    ``permutation(fold_in(KEY, epoch), N)``), a step left out where its weights are all 0.
    Returns the params, the state and each epoch's loss ``sum_I (sum_I w) L_I / sum w``."""
    state, losses = ADAM.init(p), []
    for epoch in range(epochs):
        if batch is None:
            parts = [np.arange(N)]
        else:
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), N))
            parts = np.split(perm, range(batch, N, batch))
        total = 0.0
        for idx in parts:
            if w[idx].sum() == 0:
                continue
            p, state, value = _weighted_step(p, state, X[idx], Y[idx], w[idx])
            total += float(value) * w[idx].sum()
        losses.append(total / w.sum())
    return p, state, losses


def assert_trees(a, b, **tol):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **tol), a, b)


def assert_bitwise(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


# ----------------------------------------------------------------------------- jmlp.fit


def test_full_batch_fit_equals_steps_on_the_weighted_loss():
    result = jmlp.fit(NET, params(), ADAM, X, Y, epochs=3, l2=L2, sample_weight=W)
    p, state, losses = loop(params(), 3, W)
    np.testing.assert_allclose(result.history["loss"], losses, **F64)
    assert_trees(result.params, p, **F64)
    assert_trees(result.opt_state, state, **F64)


def test_mini_batch_fit_equals_the_loop_and_skips_a_batch_of_zero_weight():
    """Epoch 0's last batch (perm[18:20]) weighs 0: no step; epoch 1 spreads those rows."""
    w = W.copy()
    w[np.asarray(jax.random.permutation(jax.random.fold_in(KEY, 0), N))[18:]] = 0.0
    result = jmlp.fit(NET, params(), ADAM, X, Y, epochs=2, l2=L2, sample_weight=w,
                      batch_size=B, key=KEY)  # fmt: skip
    p, state, losses = loop(params(), 2, w, batch=B)
    np.testing.assert_allclose(result.history["loss"], losses, **F64)
    assert_trees(result.params, p, **F64)
    assert_trees(result.opt_state, state, **F64)  # Adam's count: 3 steps, then 4


@pytest.mark.slow
def test_sum_reduction_weighs_each_loss_by_w_and_sums_the_steps():
    """``L_I = sum_{n in I} w_n l_n + l2/2 ||W||^2``; the epoch's loss is the sum over steps."""
    result = jmlp.fit(SUM, params(), optax.sgd(0.01), X, Y, epochs=2, l2=L2, sample_weight=W,
                      batch_size=B, key=KEY)  # fmt: skip
    p, expected = params(), []
    grad = jax.jit(jax.value_and_grad(lambda q, x, y, w: jmlp.loss(SUM, q, x, y, weights=w, l2=L2)))
    for epoch in range(2):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), N))
        total = 0.0
        for idx in np.split(perm, range(B, N, B)):
            value, g = grad(p, X[idx], Y[idx], W[idx])
            p, total = jax.tree.map(lambda a, d: a - 0.01 * d, p, g), total + float(value)
        expected.append(total)
    np.testing.assert_allclose(result.history["loss"], expected, **F64)
    assert_trees(result.params, p, **F64)


def test_weights_all_one_are_no_weights():
    kw = {"epochs": 2, "l2": L2, "batch_size": B, "key": KEY}
    ones = jmlp.fit(NET, params(), ADAM, X, Y, sample_weight=np.ones(N), **kw)
    none = jmlp.fit(NET, params(), ADAM, X, Y, **kw)
    # the same sums, fused differently: a few float64 roundings of values of order 1
    np.testing.assert_allclose(ones.history["loss"], none.history["loss"], rtol=0, atol=1e-15)
    assert_trees(ones.params, none.params, rtol=0, atol=1e-15)


def test_integer_weights_are_rows_removed_or_repeated_full_batch():
    """Weights 0 and 2: the rows left out or given twice (the same mean, full batch)."""
    w = np.ones(N)
    w[[3, 11]], w[[5, 7]] = 0.0, 2.0
    rows = np.repeat(np.arange(N), w.astype(int))
    weighted = jmlp.fit(NET, params(), ADAM, X, Y, epochs=3, l2=L2, sample_weight=w)
    repeated = jmlp.fit(NET, params(), ADAM, X[rows], Y[rows], epochs=3, l2=L2)
    np.testing.assert_allclose(weighted.history["loss"], repeated.history["loss"], **F64)
    assert_trees(weighted.params, repeated.params, **F64)


def test_new_weights_do_not_recompile():
    kw = {"epochs": 2, "l2": L2, "batch_size": B, "key": KEY}
    first = jmlp.fit(NET, params(), ADAM, X, Y, sample_weight=W, **kw)
    with compiled() as names:
        second = jmlp.fit(NET, params(), ADAM, X, Y, sample_weight=2.0 * W[::-1], **kw)
    assert "jit(run_chunk)" not in names, names
    assert second.history["loss"] != first.history["loss"]


def test_a_resumed_weighted_run_is_bitwise_the_uninterrupted_one(tmp_path):
    kw = {"l2": L2, "batch_size": B, "key": KEY, "sample_weight": W}
    whole = jmlp.fit(NET, params(), ADAM, X, Y, epochs=4, **kw)
    path = tmp_path / "run.npz"
    jmlp.fit(NET, params(), ADAM, X, Y, epochs=2, checkpoint_path=path, **kw)
    resumed = jmlp.fit(NET, params(), ADAM, X, Y, epochs=4, checkpoint_path=path, resume=True,
                       **kw)  # fmt: skip
    assert resumed.history == whole.history
    assert_bitwise(resumed.params, whole.params)


@pytest.mark.parametrize(
    "weights, error, message",
    [
        (W[:-1], ValueError, r"sample_weight: expected shape \(20,\).*got shape \(19,\)"),
        (W[:, None], ValueError, r"sample_weight: expected shape \(20,\).*got shape \(20, 1\)"),
        (1.0, ValueError, r"sample_weight: expected shape \(20,\).*got shape \(\)"),
        (
            np.where(np.arange(N) == 5, -1.0, W),
            ValueError,
            r"sample_weight: .*>= 0, got -1.0 \(row 5\)",
        ),
        (
            np.where(np.arange(N) == 7, np.nan, W),
            ValueError,
            r"sample_weight: expected finite.*row 7",
        ),
        (
            np.where(np.arange(N) == 0, np.inf, W),
            ValueError,
            r"sample_weight: expected finite.*row 0",
        ),
        (np.zeros(N), ValueError, r"sample_weight: expected at least one weight > 0"),
        (np.ones(N, bool), TypeError, r"sample_weight: expected real numbers, got dtype bool"),
        (np.array(["1"] * N), TypeError, r"sample_weight: expected real numbers"),
    ],
    ids=["length", "2-D", "scalar", "negative", "nan", "inf", "all-zero", "bool", "str"],
)
def test_bad_weights_name_the_argument(weights, error, message):
    with pytest.raises(error, match=message):
        jmlp.fit(NET, params(), ADAM, X, Y, epochs=1, sample_weight=weights)


# ----------------------------------------------------------------------------- jmlp.fit_many


@pytest.mark.slow
@pytest.mark.parametrize("keys", ["shared", "each"])
def test_fit_many_members_are_fit_with_the_same_weights(keys):
    """One data order (the "columns" pass) or one per member (per-member weight rows)."""
    key = KEY if keys == "shared" else jax.random.split(KEY, 2)
    stack = jax.tree.map(lambda a, b: jnp.stack([a, b]), params(0), params(1))
    kw = {"epochs": 2, "l2": L2, "batch_size": B, "sample_weight": W}
    many = jmlp.fit_many(NET, stack, ADAM, X, Y, key=key, **kw)
    for m, seed in enumerate((0, 1)):
        one = jmlp.fit(NET, params(seed), ADAM, X, Y, key=KEY if keys == "shared" else key[m], **kw)
        np.testing.assert_allclose(many.history["loss"][m], one.history["loss"], **F64)
        assert_trees(jax.tree.map(lambda a, m=m: a[m], many.params), one.params, **F64)


def test_fit_many_takes_one_shared_set_of_weights():
    stack = jax.tree.map(lambda a, b: jnp.stack([a, b]), params(0), params(1))
    with pytest.raises(ValueError, match=r"sample_weight: expected shape \(20,\)"):
        jmlp.fit_many(NET, stack, ADAM, X, Y, epochs=1, sample_weight=np.stack([W, W]))


# ----------------------------------------------------------------------------- scikit-learn


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(x), y, np.random.default_rng(1).uniform(0, 2, len(y))


@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_fit_methods_take_scikit_learns_arguments_in_its_order(name, method):
    ours = inspect.signature(getattr(getattr(jmlp.sklearn, name), method)).parameters
    theirs = inspect.signature(getattr(getattr(neural_network, name), method)).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]


def test_partial_fit_with_weights_follows_scikit_learns(iris):
    """One full-batch epoch from scikit-learn's initial weights: float32 vs float64."""
    x, y, w = iris
    both = {"hidden_layer_sizes": (8,), "random_state": 0, "batch_size": 150, "shuffle": False,
            "alpha": 0.1, "learning_rate_init": 1e-2}  # fmt: skip
    ours = jmlp.sklearn.MLPClassifier(**both)
    theirs = neural_network.MLPClassifier(**both)
    for _ in range(2):
        ours.partial_fit(x, y, w, classes=[0, 1, 2])
        theirs.partial_fit(x, y, w, classes=[0, 1, 2])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-5)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "weights, message",
    [
        (lambda w: -w, r"Negative values in data passed to `sample_weight`"),
        (lambda w: w[:10], r"sample_weight.shape == \(10,\), expected \(150,\)!"),
        (lambda w: np.zeros_like(w), r"Sample weights must contain at least one non-zero number"),
        (lambda w: np.full_like(w, np.nan), r"Input sample_weight contains NaN"),
    ],
    ids=["negative", "length", "all-zero", "nan"],
)
def test_estimators_check_weights_with_scikit_learns_messages(iris, weights, message):
    x, y, w = iris
    with pytest.raises(ValueError, match=message):
        jmlp.sklearn.MLPClassifier((4,), max_iter=1).fit(x, y, sample_weight=weights(w))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "settings",
    [
        {"solver": "adam", "learning_rate_init": 1e-2},
        {"solver": "sgd", "learning_rate_init": 0.05},
    ],
    ids=["adam", "sgd"],
)
def test_full_batch_weighted_fits_follow_scikit_learns(settings):
    x, y = make_regression(120, 5, noise=1.0, random_state=0)
    w = np.random.default_rng(0).uniform(0, 3, 120)
    both = {"batch_size": 120, "shuffle": False, "random_state": 0, "hidden_layer_sizes": (8,),
            "max_iter": 8, "alpha": 0.1} | settings  # fmt: skip
    ours = jmlp.sklearn.MLPRegressor(**both).fit(x, y / y.std(), sample_weight=w)
    theirs = neural_network.MLPRegressor(**both).fit(x, y / y.std(), sample_weight=w)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-5)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_weighted_lbfgs_follows_scikit_learns(iris):
    x, y, w = iris
    both = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "max_iter": 3, "random_state": 0,
            "alpha": 0.1}  # fmt: skip
    ours = jmlp.sklearn.MLPClassifier(**both).fit(x, y, sample_weight=w)
    theirs = neural_network.MLPClassifier(**both).fit(x, y, sample_weight=w)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=2e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_holds_out_the_weights_and_scores_with_them(iris):
    x, y, w = iris
    both = {"hidden_layer_sizes": (8,), "max_iter": 5, "random_state": 0, "batch_size": 135,
            "shuffle": False, "early_stopping": True}  # fmt: skip
    ours = jmlp.sklearn.MLPClassifier(**both).fit(x, y, sample_weight=w)
    theirs = neural_network.MLPClassifier(**both).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-6)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sample_weight_none_is_the_unweighted_fit(iris):
    x, y, _ = iris
    both = {"hidden_layer_sizes": (8,), "max_iter": 3, "random_state": 0, "batch_size": 50}
    a = jmlp.sklearn.MLPClassifier(**both).fit(x, y)
    b = jmlp.sklearn.MLPClassifier(**both).fit(x, y, sample_weight=None)
    assert a.loss_curve_ == b.loss_curve_
    assert_bitwise(a.params_, b.params_)
