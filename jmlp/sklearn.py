"""scikit-learn estimators over jmlp: ``MLPClassifier`` and ``MLPRegressor``.

They take ``sklearn.neural_network``'s parameter names where the meaning is the same, and train
through :func:`jmlp.fit` (the whole fit one compiled loop, stopping rules included, the
hand-written backward pass by default; row counts padded to :mod:`jmlp.buckets` sizes, so the
folds of a grid search share one training and one prediction program), so they work in
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` and pass
scikit-learn's estimator checks (the list of checks left out is in ``tests/test_sklearn.py``)::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from jmlp.sklearn import MLPClassifier

    model = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=50, random_state=0))
    model.fit(X_train, y_train).score(X_test, y_test)

Classifier: two classes give one sigmoid output with binary cross-entropy, more classes a softmax
output with cross-entropy (both computed from the logits), as scikit-learn's. Regressor: identity
output, ``loss="mse"`` (jmlp's ``1/n_out sum (y - t)^2``, twice scikit-learn's squared error).

Differences from ``sklearn.neural_network``: float32 arithmetic; solvers ``"adam"`` and ``"sgd"``
(no ``"lbfgs"``, constant learning rate only); with ``early_stopping`` training stops when the
validation loss has not improved for ``n_iter_no_change`` epochs and the best epoch's weights are
kept (scikit-learn watches the validation score, improved by at least ``tol``).
"""

import itertools
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:
    raise ImportError(
        'jmlp.sklearn needs scikit-learn >= 1.6: pip install "jmlp[experiments]"'
    ) from error

from jmlp import buckets, optim
from jmlp.checks import check_finite_rows
from jmlp.forward import forward
from jmlp.net import MLP
from jmlp.train import fit as jmlp_fit

SOLVERS = ("adam", "sgd")
ACTIVATION_ALIASES = {"logistic": "sigmoid"}  # scikit-learn's name -> jmlp's
REGRESSION_LOSSES = ("mse", "half_sse", "mae", "huber")


def make_optimizer(
    solver: str, momentum: float, nesterov: bool, b1: float, b2: float, eps: float
) -> Callable[[Any], optax.GradientTransformation]:
    """A function of ``learning_rate`` returning the ``jmlp.optim`` transformation: ``jmlp.fit``
    takes the rate as data (``hparams``, handed over as an array), so fits at other rates reuse
    the compiled loop.

    ``"sgd"``: ``theta <- theta - eta g`` with ``momentum`` as scikit-learn's (``v <- mu v - eta
    g``, then ``theta <- theta + v``, or ``+ mu v - eta g`` with Nesterov), ``"adam"``: Adam with
    bias correction, eps outside the root (scikit-learn's and Kingma & Ba's)."""
    if solver == "adam":

        def adam(learning_rate):
            return optim.adam(jnp.asarray(learning_rate), b1, b2, eps)

        return adam
    rule = optim.sgd if momentum == 0 else optim.nesterov if nesterov else optim.momentum
    extra = () if momentum == 0 else (momentum,)

    def sgd(learning_rate):
        return rule(jnp.asarray(learning_rate), *extra)

    return sgd


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def hidden_sizes(value: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple: an int is one layer, ``()`` none."""
    sizes = (value,) if _is_int(value) else value
    ok = isinstance(sizes, (Sequence, np.ndarray)) and not isinstance(sizes, str)
    ok = ok and all(_is_int(n) and n >= 1 for n in sizes)
    _check("hidden_layer_sizes", value, ok, "a positive int or a sequence of them")
    return tuple(int(n) for n in sizes)


def glorot_params(rng: np.random.RandomState, sizes: tuple[int, ...], logistic: bool) -> list:
    """scikit-learn's initialisation (Glorot & Bengio 2010), drawn in its order from ``rng``:
    for each layer ``W (n_in, n_out)`` then ``b (n_out,)`` from ``U(-a, a)``,
    ``a = sqrt(f / (n_in + n_out))`` with ``f = 2`` for a logistic activation, else 6; float32.
    The same ``random_state`` gives scikit-learn's initial weights, and no program to compile."""
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        a = np.sqrt((2.0 if logistic else 6.0) / (n_in + n_out))
        W, b = rng.uniform(-a, a, (n_in, n_out)), rng.uniform(-a, a, n_out)
        params.append(
            {"W": jax.device_put(W.astype(np.float32)), "b": jax.device_put(b.astype(np.float32))}
        )
    return params


_forward = jax.jit(forward, static_argnums=0)


def _key(seed: int, epochs_done: int) -> jax.Array:
    """A threefry key for the data order, mixed from ``(seed, epochs_done)`` on the host (numpy's
    SeedSequence), so that no program is compiled to make it."""
    words = np.random.SeedSequence([seed, epochs_done]).generate_state(2)  # uint32 (2,)
    return jax.random.wrap_key_data(words, impl="threefry2x32")


class _MLPEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, checks, training."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        gradient="backprop",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.gradient = gradient

    # ------------------------------------------------------------------------- settings

    def _check_settings(self) -> None:
        _check("solver", self.solver, self.solver in SOLVERS, f"one of {SOLVERS}")
        lr = self.learning_rate_init
        _check("learning_rate_init", lr, _is_real(lr) and lr > 0, "a number > 0")
        for name in ("alpha", "tol", "epsilon"):
            value = getattr(self, name)
            _check(name, value, _is_real(value) and value >= 0, "a number >= 0")
        for name in ("momentum", "beta_1", "beta_2", "validation_fraction"):
            value = getattr(self, name)
            _check(name, value, _is_real(value) and 0 <= value < 1, "a number in [0, 1)")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            _check(name, value, _is_int(value) and value >= 1, "an int >= 1")
        batch = self.batch_size
        ok = batch == "auto" or (_is_int(batch) and batch >= 1)
        _check("batch_size", batch, ok, "'auto' or an int >= 1")

    def _net(self, n_in: int, n_out: int, loss: str) -> MLP:
        activation = ACTIVATION_ALIASES.get(self.activation, self.activation)
        sizes = (n_in, *hidden_sizes(self.hidden_layer_sizes), n_out)
        return MLP(sizes, activation=activation, loss=loss)

    def _forget_changed_net(self, n_in: int, n_out: int, loss: str) -> None:
        """Drop fitted weights that the settings no longer describe (``hidden_layer_sizes``,
        ``activation`` or ``loss`` changed by ``set_params``): training then starts afresh."""
        if hasattr(self, "params_") and self.net_ != self._net(n_in, n_out, loss):
            del self.params_

    def _optimizer(self) -> Callable[..., optax.GradientTransformation]:
        settings = (float(self.momentum), bool(self.nesterovs_momentum))
        settings += (float(self.beta_1), float(self.beta_2), float(self.epsilon))
        return make_optimizer(self.solver, *settings)

    def _batch(self, n: int) -> int:
        return min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)

    # ------------------------------------------------------------------------- training

    def _train(self, x: np.ndarray, t: np.ndarray, n_out: int, loss: str, incremental: bool):
        """Fit (``max_iter`` epochs, stopping rules) or continue one epoch (``partial_fit``)."""
        self._check_settings()
        restart = not hasattr(self, "params_") or not (incremental or self.warm_start)
        rng = check_random_state(self.random_state)
        if restart:
            self.net_ = self._net(x.shape[1], n_out, loss)
            logistic = ACTIVATION_ALIASES.get(self.activation, self.activation) == "sigmoid"
            self.params_ = glorot_params(rng, self.net_.sizes, logistic)
            self.opt_state_, self.loss_curve_, self.n_iter_ = None, [], 0
        seed = rng.randint(np.iinfo(np.int32).max)  # the data order's key
        optimizer = self._optimizer()
        if not incremental:
            self.opt_state_ = None  # fit (even warm-started) starts a fresh optimizer
        early = self.early_stopping and not incremental
        x, t, validation = self._validation_split(x, t, seed) if early else (x, t, None)
        batch = self._batch(len(x))
        result = jmlp_fit(
            self.net_,
            self.params_,
            optimizer,
            x,
            t,
            hparams={"learning_rate": float(self.learning_rate_init)},
            epochs=1 if incremental else self.max_iter,
            batch_size=batch,
            key=_key(seed, self.n_iter_),
            validation=validation,
            l2=self.alpha / batch,  # scikit-learn's alpha / (2 B) ||W||^2 on each batch's loss
            gradient=self.gradient,
            # scikit-learn's rules: more than n_iter_no_change epochs without a val_loss below
            # its least (early stopping), or without a training loss below its least - tol
            patience=self.n_iter_no_change + (not early),
            min_delta=0.0 if early else float(self.tol),
            progress=bool(self.verbose),
            opt_state=self.opt_state_,
        )
        self.params_, self.opt_state_ = result.params, result.opt_state
        self.loss_curve_ = self.loss_curve_ + result.history["loss"]
        self.n_iter_ += result.epochs_run
        self._record_scores(result.history, early)
        if not incremental and result.stopped.startswith("max epochs"):
            warnings.warn(
                f"max_iter={self.max_iter} epochs reached and the optimization has not converged "
                f"yet (rule: loss not improving by tol={self.tol} for {self.n_iter_no_change} "
                "epochs)",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit
            )
        return self

    def _validation_split(self, x, t, seed: int):
        stratify = t if isinstance(self, ClassifierMixin) else None
        x, x_val, t, t_val = train_test_split(
            x, t, test_size=self.validation_fraction, random_state=seed, stratify=stratify
        )
        if len(x_val) < 2:
            raise ValueError(
                f"validation_fraction: {self.validation_fraction} of {len(x) + len(x_val)} "
                f"examples leaves {len(x_val)} for validation; early_stopping needs at least 2"
            )
        return x, t, (x_val, t_val)

    def _record_scores(self, history: dict, early: bool) -> None:
        if early:
            name = "val_accuracy" if "val_accuracy" in history else "val_r2"
            self.validation_scores_ = list(history[name])
            self.best_validation_score_ = max(self.validation_scores_)
            self.best_loss_ = None
        else:
            self.validation_scores_, self.best_validation_score_ = None, None
            self.best_loss_ = min(self.loss_curve_)

    def _outputs(self, X) -> np.ndarray:
        """The network output ``h^L (n, n_out)`` for checked ``X``, as float64 numpy."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        check_finite_rows("X", X, np.float32)
        n = len(X)
        rows = buckets.pad_rows(np.asarray(X, np.float32), buckets.bucket(n))
        out = _forward(self.net_, self.params_, rows)  # rows are independent: padding is inert
        return np.asarray(out, np.float64)[:n]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """scikit-learn's view of the weights: ``[W^1 (n_in, n_1), ...]`` as numpy arrays."""
        check_is_fitted(self)
        return [np.asarray(layer["W"]) for layer in self.params_]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The biases ``[b^1 (n_1,), ...]`` as numpy arrays."""
        check_is_fitted(self)
        return [np.asarray(layer["b"]) for layer in self.params_]


class MLPClassifier(ClassifierMixin, _MLPEstimator):
    """Multi-layer perceptron classifier trained by :func:`jmlp.fit`.

    **Parameters** (scikit-learn's names and meanings):
    - ``hidden_layer_sizes``: widths of the hidden layers, e.g. ``(100,)``; ``()`` for none.
    - ``activation``: hidden activation, any jmlp name (``relu``, ``tanh``, ``sigmoid`` or
      ``logistic``, ``identity``, ``gelu``, ...).
    - ``solver``: ``"adam"`` (``beta_1``, ``beta_2``, ``epsilon``) or ``"sgd"`` (``momentum``,
      ``nesterovs_momentum``); ``learning_rate_init``: the step size eta.
    - ``alpha``: L2 penalty, ``alpha / (2 B) sum ||W||^2`` added to each batch's mean loss.
    - ``batch_size``: ``"auto"`` = ``min(200, n)``, or an int (clipped to n).
    - ``max_iter``: maximum epochs. ``tol``, ``n_iter_no_change``: stop when the training loss
      has not improved by ``tol`` for more than ``n_iter_no_change`` epochs.
    - ``early_stopping``, ``validation_fraction``: hold out that (stratified) fraction; stop when
      its loss has not improved for ``n_iter_no_change`` epochs; keep the best epoch.
    - ``random_state``: int, RandomState or None; the same int gives bitwise the same model.
    - ``warm_start``: ``fit`` continues from the current weights (with a fresh optimizer);
      after a change of ``hidden_layer_sizes`` or ``activation`` it starts afresh.
    - ``verbose``: a progress bar. ``gradient``: ``"backprop"`` (hand-written) or ``"autodiff"``.

    **Attributes:** ``classes_``, ``n_features_in_``, ``feature_names_in_`` (pandas input),
    ``loss_curve_``, ``n_iter_``, ``best_loss_``, ``validation_scores_``,
    ``best_validation_score_``, ``coefs_``, ``intercepts_``, and jmlp's own ``net_`` (the
    :class:`jmlp.MLP`), ``params_`` and ``opt_state_``.
    """

    def fit(self, X, y) -> "MLPClassifier":
        """Train on ``X (n, n_features)`` and labels ``y (n,)`` of any type (ints, strings...)."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None) -> "MLPClassifier":
        """One epoch over ``(X, y)``, continuing the weights and optimizer state; the first call
        needs ``classes``, every label there may be."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes: the first partial_fit needs every class, got None")
        return self._fit(X, y, incremental=True, classes=classes)

    def _fit(self, X, y, incremental: bool, classes=None) -> "MLPClassifier":
        first = not hasattr(self, "classes_") or not (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=first, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y: labels {unknown.tolist()} not in classes_ {self.classes_.tolist()}"
            )
        if len(self.classes_) < 2:
            raise ValueError(
                f"y: a classifier needs at least 2 classes, got 1 class: {self.classes_.tolist()}"
            )
        codes = np.searchsorted(self.classes_, y).astype(np.int32)
        k = len(self.classes_)
        loss, n_out = ("binary_cross_entropy", 1) if k == 2 else ("cross_entropy", k)
        self._forget_changed_net(X.shape[1], n_out, loss)
        return self._train(np.asarray(X, np.float32), codes, n_out, loss, incremental)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        out = self._outputs(X)
        return np.hstack([1 - out, out]) if out.shape[1] == 1 else out

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, ``(n,)``, as labels of ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MLPRegressor(RegressorMixin, _MLPEstimator):
    """Multi-layer perceptron regressor trained by :func:`jmlp.fit`: identity output, ``y (n,)``
    or ``(n, n_targets)``. Parameters and attributes as :class:`MLPClassifier`'s (less
    ``classes_``), plus ``loss``: ``"mse"`` (default), ``"half_sse"``, ``"mae"`` or ``"huber"``.
    Predictions have the shape of the ``y`` it was fitted on."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        loss="mse",
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        gradient="backprop",
    ):
        settings = {k: v for k, v in locals().items() if k not in ("self", "loss", "__class__")}
        super().__init__(**settings)
        self.loss = loss

    def fit(self, X, y) -> "MLPRegressor":
        """Train on ``X (n, n_features)`` and numbers ``y (n,)`` or ``(n, n_targets)``."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y) -> "MLPRegressor":
        """One epoch over ``(X, y)``, continuing the weights and optimizer state."""
        return self._fit(X, y, incremental=True)

    def _fit(self, X, y, incremental: bool) -> "MLPRegressor":
        first = not hasattr(self, "params_") or not (incremental or self.warm_start)
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            dtype=(np.float64, np.float32),
            multi_output=True,
            y_numeric=True,
        )
        _check("loss", self.loss, self.loss in REGRESSION_LOSSES, f"one of {REGRESSION_LOSSES}")
        t = np.asarray(y, np.float32).reshape(len(y), -1)
        if not first and t.shape[1] != self.net_.sizes[-1]:
            raise ValueError(f"y: expected {self.net_.sizes[-1]} targets per row, got {t.shape[1]}")
        self._y_shape = y.shape[1:]
        self._forget_changed_net(X.shape[1], t.shape[1], self.loss)
        return self._train(np.asarray(X, np.float32), t, t.shape[1], self.loss, incremental)

    def predict(self, X) -> np.ndarray:
        """Predictions ``(n,)`` (fitted on 1-D ``y``) or ``(n, n_targets)``, float64."""
        out = self._outputs(X)
        return out.reshape(len(out), *self._y_shape)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
