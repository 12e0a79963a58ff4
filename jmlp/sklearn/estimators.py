"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn 1.9's parameters, attributes, messages and
training rules, computed by jmlp (:mod:`jmlp.sklearn.stochastic`, :mod:`jmlp.sklearn.lbfgs`)."""

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from jmlp import buckets, cache
from jmlp.checks import check_finite_rows, check_target_values
from jmlp.forward import forward
from jmlp.net import MLP
from jmlp.sklearn import lbfgs, stochastic
from jmlp.sklearn.settings import (
    ACTIVATION_ALIASES,
    CONSTRAINTS,
    JMLP_REGRESSION_LOSSES,
    REGRESSION_LOSSES,
    glorot_params,
    hidden_sizes,
    make_optimizer,
)

_forward = cache.jit(forward, static_argnums=0)


def _dense(X) -> np.ndarray:
    """CSR / CSC input made dense (float32) for the batch; dense input cast."""
    X = X.toarray() if scipy.sparse.issparse(X) else X
    return np.asarray(X, np.float32)


def _weights(sample_weight, X) -> np.ndarray | None:
    """scikit-learn's checks of ``sample_weight`` (a number, or ``(n,)`` finite, not all 0, here
    also >= 0), as float32; None stays None."""
    if sample_weight is None:
        return None
    w = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
    return np.asarray(w, np.float32)


class _MLPEstimator(BaseEstimator):
    """What the classifier and the regressor share: settings, the network, training."""

    _parameter_constraints: dict = CONSTRAINTS

    def _net(self, n_in: int, n_out: int, loss: str) -> MLP:
        activation = ACTIVATION_ALIASES.get(self.activation, self.activation)
        sizes = (n_in, *hidden_sizes(self.hidden_layer_sizes), n_out)
        return MLP(sizes, activation=activation, output_activation=self._output(loss), loss=loss)

    def _optimizer(self):
        settings = (float(self.momentum), bool(self.nesterovs_momentum))
        settings += (float(self.beta_1), float(self.beta_2), float(self.epsilon))
        return make_optimizer(self.solver, *settings)

    def _fit_arrays(self, x, t, w, loss: str, first: bool, incremental: bool):
        """Start or continue the network on checked ``x (n, n_in)``, targets ``t (n, n_out)`` and
        example weights ``w (n,)`` (or None)."""
        net = self._net(x.shape[1], t.shape[1], loss)
        check_target_values(net, t)  # poisson: y >= 0 (scikit-learn's loss would be NaN)
        rng = check_random_state(self.random_state)
        if first or self.net_ != net:  # a changed net (set_params) starts afresh
            self.net_, self.n_outputs_, self.n_layers_ = net, t.shape[1], len(net.sizes)
            self.out_activation_ = {"sigmoid": "logistic"}.get(
                net.output_activation, net.output_activation
            )
            self.params_ = glorot_params(rng, net.sizes, self.activation == "logistic")
            self.opt_state_ = None
            stochastic.reset_progress(self)
        if self.solver == "lbfgs":
            lbfgs.train(self, x, t, w)
        else:
            stochastic.train(self, x, t, w, incremental, rng)
        return self

    def _outputs(self, X, check_input: bool = True) -> np.ndarray:
        """The network output ``h^L (n, n_out)`` for ``X``, as float64 numpy."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=(np.float64, np.float32))  # fmt: skip
        return self._outputs_with(self.params_, _dense(X))

    def _outputs_with(self, params, x: np.ndarray) -> np.ndarray:
        check_finite_rows("X", x, np.float32)
        n = len(x)
        rows = buckets.pad_rows(x, buckets.bucket(n))
        out = _forward(self.net_, params, rows)  # rows are independent: padding is inert
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_DOC_PARAMETERS = """
    **Parameters** (scikit-learn 1.9's names, order, defaults and meanings):
    - ``hidden_layer_sizes``: widths of the hidden layers, e.g. ``(100,)``.
    - ``activation``: hidden activation, ``identity``, ``logistic``, ``tanh``, ``relu`` or any
      other jmlp name (``gelu``, ``elu``, ...).
    - ``solver``: ``"adam"`` (``beta_1``, ``beta_2``, ``epsilon``), ``"sgd"`` (``momentum``,
      ``nesterovs_momentum``, ``learning_rate`` ``"constant"``, ``"invscaling"`` with
      ``power_t``, ``"adaptive"``) or ``"lbfgs"`` (full batch; ``max_iter``, ``max_fun``,
      ``tol``); ``learning_rate_init``: the step size eta.
    - ``alpha``: L2 penalty, ``alpha / (2 B) sum ||W||^2`` added to each batch's mean loss
      (with ``sample_weight``: ``alpha / (2 B w_mean)``, ``w_mean`` the mean weight).
    - ``batch_size``: ``"auto"`` = ``min(200, n)``, or an int; ``shuffle``: reshuffle each epoch.
    - ``max_iter``: epochs per fit. ``tol``, ``n_iter_no_change`` (``np.inf``: never stop early):
      stop when the training loss has not fallen by ``tol`` for more than ``n_iter_no_change``
      epochs, or with ``early_stopping`` the validation score (``validation_fraction`` held out)
      not risen by ``tol``; the best epoch's weights are then kept.
    - ``random_state``: int, RandomState or None; ``warm_start``: fit continues the weights;
      ``verbose``: scikit-learn's lines on stdout; ``gradient``: ``"backprop"`` (hand-written,
      jmlp's) or ``"autodiff"``.

    **Attributes:** ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``,
    ``best_validation_score_``, ``n_iter_``, ``t_``, ``coefs_``, ``intercepts_``,
    ``n_outputs_``, ``n_layers_``, ``out_activation_``, ``n_features_in_``,
    ``feature_names_in_``; jmlp's ``net_`` (:class:`jmlp.MLP`), ``params_``, ``opt_state_``.
"""


class MLPClassifier(ClassifierMixin, _MLPEstimator):
    __doc__ = (
        "Multi-layer perceptron classifier trained by jmlp: one class of ``y`` per softmax "
        "output (several classes), one sigmoid output (two), or one sigmoid output per label "
        "(a multilabel indicator ``y (n, k)``).\n" + _DOC_PARAMETERS
    )

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
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
        max_fun=15000,
        gradient="backprop",
    ):
        for name, value in list(locals().items()):
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    @staticmethod
    def _output(loss: str) -> str:
        return "softmax" if loss == "cross_entropy" else "sigmoid"

    def fit(self, X, y, sample_weight=None) -> "MLPClassifier":
        """Train on ``X (n, n_features)`` (dense or CSR/CSC) and labels ``y (n,)`` of any type,
        or a multilabel indicator ``y (n, k)``; ``sample_weight (n,)``: each example's weight in
        the loss (scikit-learn's: ``sum_n w_n l_n / sum w`` on each batch)."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None) -> "MLPClassifier":
        """One epoch over ``(X, y)`` (weighted by ``sample_weight``), continuing the weights and
        optimizer state; the first call needs ``classes``, every label there may be."""
        self._validate_params()
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                "stochastic."
            )
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            multilabel = type_of_target(y).startswith("multilabel")
            self._label_binarizer.fit(y if multilabel else classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, incremental: bool) -> "MLPClassifier":
        hidden_sizes(self.hidden_layer_sizes)
        first = not hasattr(self, "params_") or not (self.warm_start or incremental)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=first)  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._set_classes(y, first, incremental)
        t = self._label_binarizer.transform(y).astype(np.float32)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y: a classifier needs at least 2 classes, got 1 class: {self.classes_.tolist()}"
            )
        loss = "cross_entropy" if self._label_binarizer.y_type_ == "multiclass" else (
            "binary_cross_entropy")  # fmt: skip
        self._stratify = t.shape[1] == 1
        w = _weights(sample_weight, X)
        return self._fit_arrays(_dense(X), t, w, loss, first, incremental)

    def _set_classes(self, y, first: bool, incremental: bool) -> None:
        """scikit-learn's rules: a fit defines ``classes_``; a warm start needs the same set;
        partial_fit accepts only known classes."""
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
            return
        classes = unique_labels(y)
        if self.warm_start:
            if set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                )
        elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
            raise ValueError(
                "`y` has classes not in `self.classes_`. "
                f"`self.classes_` has {self.classes_}. 'y' has {classes}."
            )

    def _score_params(self, params, x, t, w=None) -> float:
        out = self._outputs_with(params, x)
        if not np.isfinite(out).all():
            return np.nan
        return accuracy_score(self._labels(t), self._labels(out), sample_weight=w)

    def _labels(self, out: np.ndarray) -> np.ndarray:
        return self._label_binarizer.inverse_transform(out.ravel() if out.shape[1] == 1 else out)

    def predict(self, X) -> np.ndarray:
        """Labels of ``classes_``, ``(n,)`` (or the indicator ``(n, k)`` for multilabel ``y``)."""
        check_is_fitted(self)
        return self._labels(self._outputs(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        out = self._outputs(X)
        return np.hstack([1 - out, out]) if out.shape[1] == 1 else out

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLPEstimator):
    __doc__ = (
        "Multi-layer perceptron regressor trained by jmlp: ``y (n,)`` or ``(n, n_targets)``; "
        '``loss``: ``"squared_error"`` (scikit-learn\'s, ``1/2`` the mean square, identity '
        'output), ``"poisson"`` (scikit-learn\'s, half the Poisson deviance, exp output, '
        '``y >= 0``) or jmlp\'s ``"mse"``, ``"half_sse"``, ``"mae"``, ``"huber"``.\n'
        + _DOC_PARAMETERS
    )
    _parameter_constraints: dict = CONSTRAINTS | {
        "loss": [StrOptions({*REGRESSION_LOSSES, *JMLP_REGRESSION_LOSSES})]
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
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
        max_fun=15000,
        gradient="backprop",
    ):
        for name, value in list(locals().items()):
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    @staticmethod
    def _output(loss: str) -> None:
        return None  # what the loss needs: exp for poisson, else identity

    def fit(self, X, y, sample_weight=None) -> "MLPRegressor":
        """Train on ``X (n, n_features)`` (dense or CSR/CSC) and ``y (n,)`` or ``(n, k)``;
        ``sample_weight (n,)``: each example's weight in the loss (scikit-learn's: ``sum_n w_n
        l_n / sum w`` on each batch)."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None) -> "MLPRegressor":
        """One epoch over ``(X, y)`` (weighted by ``sample_weight``), continuing the weights and
        optimizer state."""
        self._validate_params()
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                "stochastic."
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, incremental: bool) -> "MLPRegressor":
        hidden_sizes(self.hidden_layer_sizes)
        first = not hasattr(self, "params_") or not (self.warm_start or incremental)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=first)  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        t = np.asarray(y, np.float32).reshape(len(y), -1)
        if not first and t.shape[1] != self.net_.sizes[-1]:
            raise ValueError(f"y: expected {self.net_.sizes[-1]} targets per row, got {t.shape[1]}")
        self._stratify = False
        loss = REGRESSION_LOSSES.get(self.loss, self.loss)
        w = _weights(sample_weight, X)
        return self._fit_arrays(_dense(X), t, w, loss, first, incremental)

    def _score_params(self, params, x, t, w=None) -> float:
        out = self._outputs_with(params, x)
        return r2_score(t, out, sample_weight=w) if np.isfinite(out).all() else np.nan

    def predict(self, X) -> np.ndarray:
        """Predictions ``(n,)`` for one output, else ``(n, n_outputs_)``, float64."""
        check_is_fitted(self)
        out = self._outputs(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
