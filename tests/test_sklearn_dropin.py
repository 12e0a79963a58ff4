"""jmlp.sklearn as a drop-in for scikit-learn 1.9's MLP: the same signature, the same numbers
where the arithmetic allows (same initial weights, full batch, no shuffle: float32 vs float64),
the same printed lines, warnings and errors, and sparse, multilabel and multi-output inputs."""

import inspect
import re

import numpy as np
import pytest
import scipy.sparse
from sklearn import neural_network
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from jmlp.sklearn import MLPClassifier, MLPRegressor

pytestmark = [  # fits beside scikit-learn's: the slow set
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(x), y


@pytest.fixture(scope="module")
def regression():
    x, y = make_regression(120, 5, n_targets=2, noise=1.0, random_state=0)
    return x, y / y.std()


@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_parameters_are_scikit_learns_in_order_with_its_defaults(name):
    ours = inspect.signature(globals()[name]).parameters
    theirs = inspect.signature(getattr(neural_network, name)).parameters
    assert list(ours) == [*theirs, "gradient"]  # jmlp's one extra, last
    for key, parameter in theirs.items():
        assert ours[key].default == parameter.default, key
        assert ours[key].kind == parameter.kind, key


FULL_BATCH = {"batch_size": 120, "shuffle": False, "random_state": 0, "hidden_layer_sizes": (8,)}


@pytest.mark.parametrize(
    "settings",
    [
        {"solver": "adam", "learning_rate_init": 1e-2},
        {"solver": "sgd", "learning_rate": "constant", "learning_rate_init": 0.05},
        {
            "solver": "sgd",
            "learning_rate": "invscaling",
            "learning_rate_init": 0.2,
            "power_t": 0.3,
            "nesterovs_momentum": False,
        },
        {
            "solver": "sgd",
            "learning_rate": "adaptive",
            "learning_rate_init": 0.05,
            "momentum": 0.0,
            "n_iter_no_change": 1,
            "tol": 0.5,
        },
    ],
    ids=["adam", "constant", "invscaling", "adaptive"],
)
def test_full_batch_fits_follow_scikit_learns(regression, settings):
    """Same initial weights, same full-batch steps: the loss curves (scikit-learn's squared
    error, 1/2 the mean square, with its penalty) and the weights agree to float32 rounding."""
    x, y = regression
    both = FULL_BATCH | settings | {"max_iter": 8}
    ours = MLPRegressor(**both).fit(x, y)
    theirs = neural_network.MLPRegressor(**both).fit(x, y)
    one = [
        MLPRegressor(**both).fit(x, y[:, 0]),
        neural_network.MLPRegressor(**both).fit(x, y[:, 0]),
    ]
    np.testing.assert_allclose(one[0].loss_curve_, one[1].loss_curve_, rtol=2e-5)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    if settings.get("learning_rate") == "adaptive":  # tol 0.5 stalls at once: 0.05 / 5^k
        assert ours._rate == theirs._optimizer.learning_rate < 0.05


def test_warm_start_counts_n_iter_per_fit_and_t_in_all(regression):
    x, y = regression
    both = FULL_BATCH | {"max_iter": 3, "warm_start": True, "learning_rate_init": 1e-2}
    ours, theirs = MLPRegressor(**both), neural_network.MLPRegressor(**both)
    for _ in range(2):
        ours.fit(x, y), theirs.fit(x, y)
        assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-4, atol=1e-5)


def test_n_iter_no_change_inf_runs_max_iter(iris):
    x, y = iris
    model = MLPClassifier((4,), tol=10.0, n_iter_no_change=np.inf, max_iter=15, random_state=0)
    assert model.fit(x, y).n_iter_ == 15


def test_verbose_prints_scikit_learns_lines(iris, capsys):
    x, y = iris
    both = {"hidden_layer_sizes": (4,), "max_iter": 4, "random_state": 0, "verbose": True,
            "early_stopping": True, "batch_size": 135, "shuffle": False}  # fmt: skip
    MLPClassifier(**both).fit(x, y)
    ours = capsys.readouterr().out.splitlines()
    neural_network.MLPClassifier(**both).fit(x, y)
    theirs = capsys.readouterr().out.splitlines()
    assert len(ours) == len(theirs) == 8
    for a, b in zip(ours, theirs):
        assert re.sub(r"[\d.]+", "#", a) == re.sub(r"[\d.]+", "#", b)


def test_messages_are_scikit_learns(iris):
    x, y = iris
    with pytest.warns(ConvergenceWarning, match=r"Stochastic Optimizer: Maximum iterations \(2\)"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="The validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.1).fit(x[:10], y[:10])
    model = MLPClassifier((4,), max_iter=2, warm_start=True, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        model.fit(x[y < 2], y[y < 2])  # a subset of the classes, refused as scikit-learn does
    with pytest.raises(AttributeError, match="partial_fit is only available for stochastic"):
        MLPClassifier(solver="lbfgs").partial_fit(x, y, classes=[0, 1, 2])


def test_a_diverging_fit_keeps_the_best_epoch_with_early_stopping(regression):
    x, y = regression
    settings = {"solver": "sgd", "learning_rate_init": 1.0, "max_iter": 12, "random_state": 0}
    model = MLPRegressor(early_stopping=True, **settings).fit(x, 100 * y)
    assert model.n_iter_ == 12 and len(model.validation_scores_) == 12
    assert np.isnan(model.validation_scores_[-1]) and np.isnan(model.loss_curve_[-1])
    assert model.best_validation_score_ == np.nanmax(model.validation_scores_)
    assert np.all(np.isfinite(model.predict(x)))
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        MLPRegressor(**settings).fit(x, 100 * y)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_gives_the_dense_model(iris, fmt):
    x, y = iris
    settings = {"hidden_layer_sizes": (4,), "max_iter": 5, "random_state": 0}
    sparse = scipy.sparse.csr_matrix(x) if fmt == "csr" else scipy.sparse.csc_matrix(x)
    a = MLPClassifier(**settings).fit(sparse, y)
    b = MLPClassifier(**settings).fit(x, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    np.testing.assert_array_equal(a.predict_proba(sparse), b.predict_proba(x))


def test_multilabel_indicator_trains_one_sigmoid_per_label(iris):
    x, y = iris
    labels = np.stack([y == 0, y == 2, x[:, 0] > 0], axis=1).astype(int)
    settings = {"hidden_layer_sizes": (16,), "max_iter": 200, "random_state": 0,
                "learning_rate_init": 1e-2}  # fmt: skip
    ours = MLPClassifier(**settings).fit(x, labels)
    theirs = neural_network.MLPClassifier(**settings).fit(x, labels)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    assert ours.predict(x).shape == labels.shape and ours.predict_proba(x).shape == (150, 3)
    assert set(np.unique(ours.predict(x))) <= {0, 1}
    assert ours.score(x, labels) > theirs.score(x, labels) - 0.05


def test_lbfgs_reaches_scikit_learns_fit(iris, regression):
    x, y = iris
    settings = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "random_state": 0, "max_iter": 300}
    ours = MLPClassifier(**settings).fit(x, y)
    theirs = neural_network.MLPClassifier(**settings).fit(x, y)
    assert ours.n_iter_ <= 300 and ours.score(x, y) >= theirs.score(x, y) - 0.02
    xr, yr = regression
    ours = MLPRegressor(**settings).fit(xr, yr)
    theirs = neural_network.MLPRegressor(**settings).fit(xr, yr)
    assert ours.score(xr, yr) > theirs.score(xr, yr) - 0.01
    first = ours.loss_
    ours.set_params(warm_start=True, max_iter=20).fit(xr, yr)  # continues from its weights
    assert ours.loss_ <= first


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
def test_classifier_loss_curves_follow_scikit_learns(iris, kind):
    """Log loss summed over the outputs, mean over rows, plus the penalty: scikit-learn's scale
    for a softmax, one sigmoid, or one sigmoid per label."""
    x, y = iris
    y = {"multiclass": y, "binary": y == 1, "multilabel": np.stack([y == 1, x[:, 1] > 0], 1)}[kind]
    both = FULL_BATCH | {"batch_size": 150, "solver": "sgd", "learning_rate_init": 0.1}
    ours = MLPClassifier(**both, max_iter=6).fit(x, y)
    theirs = neural_network.MLPClassifier(**both, max_iter=6).fit(x, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-5)
    np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), atol=1e-5)
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))


@pytest.fixture(scope="module")
def counts():
    """Poisson counts ``y (120, 2)`` of rates ``e^(x A)``, zeros among them."""
    rng = np.random.default_rng(0)
    x = StandardScaler().fit_transform(rng.normal(size=(120, 5)))
    rate = np.exp(0.5 * x[:, :2] @ np.array([[1.0, -0.5], [0.5, 1.0]]))
    return x, rng.poisson(rate).astype(float)


@pytest.mark.parametrize(
    "settings",
    [
        {"solver": "adam", "learning_rate_init": 1e-2, "max_iter": 8},
        {"solver": "sgd", "learning_rate_init": 0.05, "max_iter": 8},
        {"solver": "lbfgs", "max_iter": 10},
    ],
    ids=["adam", "sgd", "lbfgs"],
)
@pytest.mark.parametrize("n_targets", [1, 2])
def test_poisson_fits_follow_scikit_learns(counts, settings, n_targets):
    """loss="poisson": an exp output, half the Poisson deviance summed over the outputs (mean over
    rows, plus the penalty) in the loss curve, the same full-batch steps, predictions e^z. Ten
    L-BFGS iterations from the same weights keep float32's agreement (far more drift apart, as
    any two roundings of a long optimisation do)."""
    x, y = counts
    y = y[:, 0] if n_targets == 1 else y
    both = FULL_BATCH | settings | {"loss": "poisson"}
    ours = MLPRegressor(**both).fit(x, y)
    theirs = neural_network.MLPRegressor(**both).fit(x, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert ours.n_iter_ == theirs.n_iter_
    if settings["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-5)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=2e-5)
    assert ours.predict(x).shape == theirs.predict(x).shape == y.shape
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), rtol=1e-4)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_poisson_refuses_negative_targets_and_takes_zeros(counts):
    x, y = counts
    y = y[:, 0].copy()
    y[3] = -1.0
    settings = {"loss": "poisson", "hidden_layer_sizes": (4,), "max_iter": 3, "random_state": 0}
    with pytest.raises(ValueError, match=r"y: targets for loss='poisson' must be in \[0, inf\)"):
        MLPRegressor(**settings).fit(x, y)
    # scikit-learn 1.9 takes them and reports a NaN loss (its log of a negative count)
    with np.errstate(all="ignore"):
        assert np.isnan(neural_network.MLPRegressor(**settings).fit(x, y).loss_)
    zeros = MLPRegressor(**settings).fit(x, np.zeros(len(x)))
    assert np.all(zeros.predict(x) > 0) and np.isfinite(zeros.loss_)
