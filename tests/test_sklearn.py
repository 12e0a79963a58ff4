"""jmlp.sklearn: scikit-learn's own estimator checks, its tools (Pipeline, GridSearchCV,
cross_val_score), the inputs it accepts, partial_fit / warm_start, and accuracy beside
sklearn.neural_network.MLPClassifier on the same data and settings."""

import joblib
import numpy as np
import pytest
from conftest import compiled
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from jmlp.sklearn import MLPClassifier, MLPRegressor

# float32 matmuls on XLA:CPU round differently with the number and position of the rows in a
# batch (measured: up to 1e-6 relative, a few float32 ulps), and these checks want a row's
# prediction equal to atol 1e-7 whatever batch it comes in. Since predictions pad their rows to
# a few sizes they pass on the machine this was written on; not strict, as the rounding depends
# on the CPU's matmul kernels.
BATCH_ROUNDING = (
    "float32 predictions depend on the batch's rows to a few ulps (XLA:CPU matmul blocking); "
    "the check asks for 1e-7"
)
# Integer weights and the rows repeated that many times are the same sums in another order:
# in float32 the predictions agree to a few ulps (measured: 1.2e-7 absolute, 6e-7 relative), and
# these checks want 1e-7 relative.
WEIGHT_ROUNDING = (
    "float32: a weighted fit and the fit on repeated rows round differently (a few ulps); the "
    "check asks for 1e-7"
)
SAMPLE_WEIGHT_EQUIVALENCE = {
    "check_sample_weight_equivalence_on_dense_data": WEIGHT_ROUNDING,
    "check_sample_weight_equivalence_on_sparse_data": WEIGHT_ROUNDING,
}
EXPECTED_FAILURES = {  # as seen; the classifier's probabilities happen to survive reordering
    "MLPClassifier": {"check_methods_subset_invariance": BATCH_ROUNDING}
    | SAMPLE_WEIGHT_EQUIVALENCE,
    "MLPRegressor": {
        "check_methods_subset_invariance": BATCH_ROUNDING,
        "check_methods_sample_order_invariance": BATCH_ROUNDING,
    }
    | SAMPLE_WEIGHT_EQUIVALENCE,
}
# Short runs that stop at max_iter warn as scikit-learn's do; one test checks the warning.
pytestmark = [  # scikit-learn's estimator checks and fits: the slow set
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


def stalled(losses, tol: float, n_iter_no_change: int) -> bool:
    """scikit-learn's rule written plainly: more than ``n_iter_no_change`` epochs in a row whose
    loss is not below the least earlier loss minus ``tol``."""
    best, count = np.inf, 0
    for value in losses:
        count = count + 1 if value > best - tol else 0
        best = min(best, value)
    return count > n_iter_no_change


# One net and optimizer for the iris tests: jmlp.fit then compiles its epoch once per data shape.
IRIS = {"hidden_layer_sizes": (16,), "learning_rate_init": 1e-2, "random_state": 0}


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(x), y


# ----------------------------------------------------------------------------- estimator checks


@parametrize_with_checks(
    [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)],  # scikit-learn's own MLP settings
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES[type(estimator).__name__],
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------- scikit-learn tools


def test_pipeline_grid_search_and_cross_val_score(iris):
    x, y = iris
    model = make_pipeline(StandardScaler(), MLPClassifier(max_iter=100, **IRIS))
    grid = GridSearchCV(model, {"mlpclassifier__alpha": [1e-4, 300.0]}, cv=3)
    grid.fit(x, y)
    # alpha = 300 over 100 examples: a penalty 1.5 sum W^2 that keeps the weights near 0
    assert grid.best_params_ == {"mlpclassifier__alpha": 1e-4}
    assert grid.best_score_ > 0.85
    scores = cross_val_score(grid.best_estimator_, x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_a_grid_search_in_threads_equals_the_serial_one(iris):
    x, y = iris
    model = make_pipeline(StandardScaler(), MLPClassifier(max_iter=20, **IRIS))
    grid = {"mlpclassifier__alpha": [1e-4, 1e-1], "mlpclassifier__learning_rate_init": [1e-3, 1e-2]}
    serial = GridSearchCV(model, grid, cv=3).fit(x, y)
    with joblib.parallel_config(backend="threading"):
        threads = GridSearchCV(model, grid, cv=3, n_jobs=2).fit(x, y)
    for name in ("mean_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_array_equal(threads.cv_results_[name], serial.cv_results_[name])


# ----------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"]),
        np.array([0.0, 1.0, 2.0]),
        np.array([-3, 7, 10]),
    ],
)
def test_any_class_labels_come_back_as_given(iris, labels):
    x, codes = iris
    y = labels[codes]
    model = MLPClassifier(max_iter=100, **IRIS).fit(x, y)  # scikit-learn's: 0.967 after 100
    np.testing.assert_array_equal(model.classes_, labels)
    predicted = model.predict(x)
    assert predicted.dtype == y.dtype and set(predicted) <= set(labels)
    assert np.mean(predicted == y) > 0.9
    proba = model.predict_proba(x)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)  # float32 softmax, summed
    np.testing.assert_array_equal(labels[np.argmax(proba, axis=1)], predicted)


def test_two_classes_use_one_sigmoid_output(iris):
    x, codes = iris
    y = np.where(codes == 0, "setosa", "other")
    model = MLPClassifier(max_iter=100, **IRIS).fit(x, y)
    assert model.net_.sizes[-1] == 1 and model.net_.output_activation == "sigmoid"
    proba = model.predict_proba(x)
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-12)
    assert model.score(x, y) == 1.0  # setosa is linearly separable


def test_pandas_frames_give_feature_names(iris):
    pd = pytest.importorskip("pandas")
    x, codes = iris
    frame = pd.DataFrame(x, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    model = MLPClassifier(max_iter=5, **IRIS).fit(frame, pd.Series(codes))
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    plain = MLPClassifier(max_iter=5, **IRIS).fit(x, codes)
    np.testing.assert_array_equal(model.predict_proba(frame), plain.predict_proba(x))


@pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.DataConversionWarning"
)  # (80, 1), as sklearn
@pytest.mark.parametrize("shape", [(80,), (80, 1), (80, 3)])
def test_regressor_predicts_the_shape_of_y(shape):
    x, y = make_regression(80, 5, n_targets=int(np.prod(shape[1:])), noise=1.0, random_state=0)
    y = (y / y.std()).reshape(shape)
    settings = {"learning_rate_init": 1e-2, "max_iter": 100, "random_state": 0}
    model = MLPRegressor("squared_error", (16,), **settings).fit(x, y)
    assert model.predict(x).shape == (shape if shape[1:] != (1,) else shape[:1])  # as sklearn's
    assert model.predict(x).dtype == np.float64
    assert model.score(x, y) > 0.9  # a linear target


# ----------------------------------------------------------------------------- training rules


def test_alpha_is_scikit_learns_penalty(iris):
    """Full batch, a step too small to move float32 weights: the first loss is the objective at
    the final weights, ``CE + alpha / (2 n) sum ||W||^2``, computed here in float64 numpy."""
    x, y = iris
    alpha = 3.0
    model = MLPClassifier((5,), solver="sgd", momentum=0, learning_rate_init=1e-30, alpha=alpha)
    model.set_params(max_iter=1, random_state=0).fit(x, y)
    h = x
    for W, b in zip(model.coefs_[:-1], model.intercepts_[:-1]):
        h = np.maximum(h @ W.astype(np.float64) + b, 0)
    z = h @ model.coefs_[-1].astype(np.float64) + model.intercepts_[-1]
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    penalty = alpha / (2 * len(x)) * sum(np.sum(W.astype(np.float64) ** 2) for W in model.coefs_)
    expected = -np.mean(log_p[np.arange(len(y)), y]) + penalty
    np.testing.assert_allclose(model.loss_curve_[0], expected, rtol=1e-6)  # float32 sums


@pytest.mark.parametrize(
    "losses, stop",
    [
        ([5, 4, 3, 2, 1], False),
        ([1, 1, 1], True),  # best 1, then two epochs not below 1 - tol: 2 > 1
        ([1, 1], False),  # one epoch without improvement is allowed
        ([1, 0.99995, 0.9999], True),  # improvements smaller than tol = 1e-4 do not count
        ([1, 1, 0.5], False),  # a real improvement resets the count
    ],
)
def test_the_plain_rule_counts_as_scikit_learn_does(losses, stop):
    assert stalled(losses, tol=1e-4, n_iter_no_change=1) is stop


def test_tol_stops_training_before_max_iter(iris):
    x, y = iris
    model = MLPClassifier(max_iter=1000, tol=1e-3, **IRIS).fit(x, y)
    assert model.n_iter_ < 1000 and len(model.loss_curve_) == model.n_iter_
    assert stalled(model.loss_curve_, 1e-3, model.n_iter_no_change)
    assert not stalled(model.loss_curve_[:-1], 1e-3, model.n_iter_no_change)


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_initial_weights_are_scikit_learns_for_the_same_random_state(iris, activation):
    # A step too small to move a float32 weight leaves the initial weights; scikit-learn's own
    # estimator is the reference.
    x, y = iris
    settings = {"hidden_layer_sizes": (7, 5), "activation": activation, "solver": "sgd",
                "learning_rate_init": 1e-12, "max_iter": 1, "random_state": 3}  # fmt: skip
    ours = MLPClassifier(**settings).fit(x, y)
    theirs = SklearnMLPClassifier(**settings).fit(x, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_max_iter_without_convergence_warns(iris):
    with pytest.warns(Warning, match=r"Maximum iterations \(3\) reached and the optimization"):
        MLPClassifier(max_iter=3, **IRIS).fit(*iris)


def test_early_stopping_keeps_validation_scores(iris):
    x, y = iris
    model = MLPClassifier(max_iter=500, early_stopping=True, n_iter_no_change=5, **IRIS)
    model.fit(x, y)
    assert model.n_iter_ < 500 and len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.best_loss_ is None


def test_partial_fit_continues_the_optimizer_state(iris):
    """Full batch (no shuffle): two partial_fit epochs equal one fit of two epochs only if
    the Adam moments and step count carry over (a fresh Adam state would step differently)."""
    x, y = iris
    whole = MLPClassifier(max_iter=2, **IRIS).fit(x, y)
    parts = MLPClassifier(**IRIS).partial_fit(x, y, classes=[0, 1, 2]).partial_fit(x, y)
    assert parts.n_iter_ == 2 and parts.loss_curve_ == whole.loss_curve_
    for a, b in zip(parts.coefs_ + parts.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_array_equal(a, b)
    restarted = MLPClassifier(**IRIS).partial_fit(x, y, classes=[0, 1, 2])
    restarted.opt_state_ = None  # what a lost optimizer state would do
    restarted.partial_fit(x, y)
    assert not np.array_equal(restarted.coefs_[0], whole.coefs_[0])


def test_warm_start_continues_from_the_weights(iris):
    x, y = iris
    model = MLPClassifier(max_iter=5, warm_start=True, **IRIS).fit(x, y)
    first = [w.copy() for w in model.coefs_]
    model.fit(x, y)
    assert model.n_iter_ == 5 and len(model.loss_curve_) == 10  # n_iter_ per fit, as sklearn's
    assert model.t_ == 10 * len(x)
    fresh = MLPClassifier(max_iter=5, **IRIS).fit(x, y)
    np.testing.assert_array_equal(fresh.coefs_[0], first[0])  # same seed, same first fit
    assert not np.array_equal(model.coefs_[0], first[0])


@pytest.mark.parametrize(
    "change", [{"hidden_layer_sizes": (6, 5)}, {"activation": "tanh"}], ids=["layers", "tanh"]
)
def test_warm_start_after_a_change_of_the_network_starts_afresh(iris, change):
    x, y = iris
    model = MLPClassifier(max_iter=3, warm_start=True, **IRIS).fit(x, y)
    model.set_params(**change).fit(x, y)
    fresh = MLPClassifier(max_iter=3, **(IRIS | change)).fit(x, y)
    assert model.net_ == fresh.net_ and model.n_iter_ == 3
    for a, b in zip(model.coefs_, fresh.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_regressor_warm_start_after_a_change_of_loss_starts_afresh():
    x, y = make_regression(40, 3, random_state=0)
    settings = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0}
    model = MLPRegressor(warm_start=True, **settings).fit(x, y)
    model.set_params(loss="mae").fit(x, y)
    fresh = MLPRegressor(loss="mae", **settings).fit(x, y)
    assert model.net_.loss == "mae" and model.loss_curve_ == fresh.loss_curve_


def test_labels_beyond_32_bits_are_kept():
    """2**32 + 1 and 1 are two classes (int32 would make them one) and come back as given."""
    x = np.array([[0.0], [1.0]] * 10)
    y = np.array([2**32 + 1, 1] * 10)
    model = MLPClassifier((4,), learning_rate_init=0.1, max_iter=200, random_state=0).fit(x, y)
    assert model.classes_.tolist() == [1, 2**32 + 1]
    assert model.predict(x).tolist() == y.tolist()


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"solver": "newton"}, "The 'solver' parameter of MLPClassifier must be a str among"),
        ({"hidden_layer_sizes": (8, 0)}, r"hidden_layer_sizes must be > 0, got \[8, 0\]"),
        ({"hidden_layer_sizes": "8"}, "hidden_layer_sizes"),
        ({"activation": "softmax"}, "The 'activation' parameter of MLPClassifier must be"),
        ({"activation": "swish"}, "The 'activation' parameter"),
        ({"batch_size": 0}, "The 'batch_size' parameter of MLPClassifier must be"),
        ({"learning_rate_init": 0.0}, "The 'learning_rate_init' parameter"),
        ({"momentum": 1.5, "solver": "sgd"}, r"'momentum' parameter .* in the range \[0.0, 1.0\]"),
        ({"beta_1": 1.0}, r"'beta_1' parameter .* in the range \[0.0, 1.0\)"),
        ({"max_iter": 0}, "The 'max_iter' parameter of MLPClassifier must be"),
        ({"learning_rate": "cyclic", "solver": "sgd"}, "The 'learning_rate' parameter"),
    ],
)
def test_bad_settings_name_the_parameter(iris, settings, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**settings).fit(*iris)


def test_partial_fit_label_errors(iris):
    x, y = iris
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(x, y)
    model = MLPClassifier(**IRIS).partial_fit(x[y < 2], y[y < 2], classes=[0, 1])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        model.partial_fit(x, y)
    with pytest.raises(ValueError, match=r"`classes=\[0, 1, 2\]` is not the same as on last"):
        model.partial_fit(x[y < 2], y[y < 2], classes=[0, 1, 2])
    model.set_params(early_stopping=True)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        model.partial_fit(x[y < 2], y[y < 2])


def test_one_class_is_refused_by_name(iris):
    with pytest.raises(ValueError, match="needs at least 2 classes, got 1 class"):
        MLPClassifier().fit(iris[0], np.zeros(150))


# ----------------------------------------------------------------------------- against sklearn


def test_accuracy_beside_scikit_learns_mlp_on_digits():
    """Same split, scaling and settings (64 relu units, Adam 1e-3, batch 200, alpha 1e-4, 100
    epochs), three seeds each. Measured (5 seeds, experiments/sklearn_comparison.py): jmlp
    0.971 +- 0.003, scikit-learn 0.977 +- 0.003; the initialisations differ (He normal vs
    Glorot uniform) and so do the arithmetic (float32 vs float64). Bound: within 0.02."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    settings = {"hidden_layer_sizes": (64,), "max_iter": 100}
    scores = {}
    with threadpool_limits(1):  # on few cores, BLAS threads fighting for them slow sklearn 20x
        for cls in (MLPClassifier, SklearnMLPClassifier):
            scores[cls] = [
                make_pipeline(StandardScaler(), cls(random_state=seed, **settings))
                .fit(x_train, y_train)
                .score(x_test, y_test)
                for seed in range(3)
            ]
    assert np.mean(scores[MLPClassifier]) > np.mean(scores[SklearnMLPClassifier]) - 0.02


def test_a_grid_search_compiles_one_training():
    # The folds (455, 456 rows) are padded with room for a refit on all 569 rows: one training
    # loop for any number of settings; the predictions on the held-out folds (113, 114 rows)
    # one program.
    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), MLPClassifier((9,), max_iter=3, random_state=0))
    grid = {
        "mlpclassifier__alpha": [1e-4, 1e-2, 1e-1],
        "mlpclassifier__learning_rate_init": [1e-3, 2e-3],
    }
    with compiled() as names:
        GridSearchCV(model, grid, cv=5).fit(x, y)
    assert sum("run_chunk" in name for name in names) == 1
    assert sum(name == "jit(forward)" for name in names) <= 2  # the folds' 128 rows, and x's
