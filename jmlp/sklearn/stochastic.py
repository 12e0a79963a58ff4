"""The ``"sgd"`` and ``"adam"`` solvers with scikit-learn's semantics, trained by ``jmlp.fit``.

Per epoch, as ``sklearn.neural_network``'s ``_fit_stochastic``: ``n_iter_`` and ``t_`` (samples
seen) advance, the loss joins ``loss_curve_``; the stopping count grows when the loss is not
below ``best_loss_ - tol`` (with ``early_stopping``: the validation score not above
``best_validation_score_ + tol``) and stops training (``"adaptive"``: divides the rate by 5
instead, until it is <= 1e-6) once it passes ``n_iter_no_change``.

Common settings run as one compiled loop with the engine's own stopping rule (the same rule);
``verbose``, ``early_stopping``, ``learning_rate="adaptive"`` and warm starts run the same loop
one epoch per call with the rule on the host (a callback), which also keeps the best epoch's
weights and prints scikit-learn's lines.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from jmlp.train import NonFiniteLossError
from jmlp.train import fit as jmlp_fit

NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and "
    "need to be preprocessed."
)


def key_for(seed: int, epochs_done: int) -> jax.Array:
    """A threefry key for the data order, mixed from ``(seed, epochs_done)`` on the host (numpy's
    SeedSequence), so that no program is compiled to make it."""
    words = np.random.SeedSequence([seed, epochs_done]).generate_state(2)  # uint32 (2,)
    return jax.random.wrap_key_data(words, impl="threefry2x32")


def batch_size(est, n: int) -> int:
    """``"auto"`` = min(200, n); an int larger than n is clipped, with scikit-learn's warning."""
    if est.batch_size == "auto":
        return min(200, n)
    if est.batch_size > n:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
            stacklevel=7,  # the caller of fit
        )
    return int(np.clip(est.batch_size, 1, n))


def validation_split(est, x, t, w, rng):
    """scikit-learn's held-out set: ``validation_fraction`` of the rows (their weights ``w``
    with them, or None), stratified for one output (classes), drawn from the fit's random
    state. Returns ``(x, t, w, (x_val, t_val, w_val))``."""
    stratify = t if est._stratify else None
    arrays = (x, t) if w is None else (x, t, w)
    parts = train_test_split(
        *arrays, random_state=rng, test_size=est.validation_fraction, stratify=stratify
    )
    x, x_val, t, t_val = parts[:4]
    w, w_val = parts[4:] if w is not None else (None, None)
    if x_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size of your "
            "dataset."
        )
    return x, t, w, (x_val, t_val, w_val)


def reset_progress(est) -> None:
    """The stopping state of a first fit: scikit-learn's ``_initialize``."""
    est.n_iter_, est.t_, est.loss_curve_, est._no_improvement_count = 0, 0, [], 0
    if est.early_stopping:
        est.validation_scores_, est.best_validation_score_, est.best_loss_ = [], -np.inf, None
    else:
        est.validation_scores_, est.best_validation_score_, est.best_loss_ = None, None, np.inf
    est._best_params = est.params_


def _count_no_improvement(est, loss: float, params, validation) -> None:
    if validation is not None:
        score = est._score_params(params, *validation)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        worse = score < est.best_validation_score_ + est.tol
        if score > est.best_validation_score_:
            est.best_validation_score_, est._best_params = score, params
    else:
        worse = loss > est.best_loss_ - est.tol
        est.best_loss_ = min(est.best_loss_, loss) if not np.isnan(loss) else est.best_loss_
    est._no_improvement_count = est._no_improvement_count + 1 if worse else 0


def after_epoch(est, loss: float, n: int, params, validation) -> str | None:
    """scikit-learn's bookkeeping after one epoch; returns ``"stop"``, ``"slower"`` (the
    adaptive rate was divided by 5) or None."""
    est.n_iter_, est.t_ = est.n_iter_ + 1, est.t_ + n
    est.loss_ = loss
    est.loss_curve_.append(loss)
    if est.verbose:
        print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
    _count_no_improvement(est, loss, params, validation)
    if est._no_improvement_count <= est.n_iter_no_change:
        return None
    watched = "Validation score" if validation is not None else "Training loss"
    msg = (
        f"{watched} did not improve more than tol={est.tol:f} for {est.n_iter_no_change:d} "
        "consecutive epochs."
    )
    if est.solver == "sgd" and est.learning_rate == "adaptive" and est._rate > 1e-6:
        est._rate /= 5.0
        est._no_improvement_count = 0
        if est.verbose:
            print(f"{msg} Setting learning rate to {est._rate:f}")
        return "slower"
    if est.verbose:
        too_small = est.solver == "sgd" and est.learning_rate == "adaptive"
        print(msg + (" Learning rate too small. Stopping." if too_small else " Stopping."))
    return "stop"


def _hparams(est, n: int, batch: int, continuing: bool) -> dict:
    if est.solver == "adam":
        return {"learning_rate": float(est.learning_rate_init)}
    invscaling = est.learning_rate == "invscaling"
    return {
        "learning_rate": float(est.learning_rate_init if invscaling else est._rate),
        "power_t": float(est.power_t) if invscaling else 0.0,
        "steps": float(-(-n // batch)),
        "samples": float(n),
        "samples_first": float(est.t_ if continuing else 0),
        "samples_before": float(est.t_),
    }


def _fresh_count(state):
    """The optimizer state with its step count at 0: the schedule's epochs count from the call."""
    count = None if state is None else getattr(state, "count", None)
    return state if count is None else state._replace(count=jnp.zeros_like(count))


def _fit_once(est, x, t, w, epochs: int, continuing: bool, callback, seed: int):
    n, batch = len(x), batch_size(est, len(x))
    mean_weight = 1.0 if w is None else float(np.mean(w, dtype=np.float64))
    on_host = callback is not None or np.isinf(est.n_iter_no_change)
    return jmlp_fit(
        est.net_,
        est.params_,
        est._optimizer(),
        x,
        t,
        hparams=_hparams(est, n, batch, continuing),
        epochs=epochs,
        batch_size=batch,
        key=key_for(seed, est.t_),
        # scikit-learn's alpha / (2 sum_I w) ||W||^2 on each batch's loss: sum_I w ~ B w_mean
        l2=est.alpha / (batch * mean_weight),
        sample_weight=w,
        gradient=est.gradient,
        patience=None if on_host else int(est.n_iter_no_change) + 1,
        min_delta=float(est.tol),
        callback=callback,
        opt_state=_fresh_count(est.opt_state_) if est.solver == "sgd" else est.opt_state_,
        shuffle=bool(est.shuffle),
    )


def _on_host(est, incremental: bool) -> bool:
    adaptive = est.solver == "sgd" and est.learning_rate == "adaptive"
    continuing = est.n_iter_ > 0 or est._no_improvement_count > 0
    return not incremental and (est.verbose or est.early_stopping or adaptive or continuing)


def _epochs(est, x, t, w, incremental: bool, validation, seed: int) -> None:
    """Run the epochs of one fit (or one partial_fit), keeping the bookkeeping."""
    remaining = 1 if incremental else est.max_iter
    while remaining > 0:
        action = []

        def callback(epoch, params, history, action=action):
            action.append(after_epoch(est, history["loss"][-1], len(x), params, validation))
            return action[-1] is not None

        host = _on_host(est, incremental)
        try:
            hook = callback if host else None
            result = _fit_once(est, x, t, w, remaining, incremental, hook, seed)
        except NonFiniteLossError as error:
            result = error.result
        est.params_, est.opt_state_ = result.params, result.opt_state
        remaining -= result.epochs_run
        if not host:
            for loss in result.history["loss"]:
                action.append(after_epoch(est, loss, len(x), est.params_, None))
        if result.stopped.startswith("non-finite"):
            _diverged(est, len(x), validation)
            return
        if incremental or not action or action[-1] != "slower":
            return
        incremental = False  # the rest of the fit: at the new rate, the state carried over


def _diverged(est, n: int, validation) -> None:
    """scikit-learn's fit after a non-finite epoch: the loss and scores are NaN to max_iter, and
    without ``early_stopping`` the weights are refused."""
    if validation is None:
        raise ValueError(NON_FINITE)
    while est.n_iter_ < est.max_iter:
        est.n_iter_, est.t_ = est.n_iter_ + 1, est.t_ + n
        est.loss_curve_.append(np.nan)
        est.validation_scores_.append(np.nan)


def train(est, x: np.ndarray, t: np.ndarray, w, incremental: bool, rng) -> None:
    """Fit (``max_iter`` epochs and the stopping rule) or one partial_fit epoch, on the weights
    ``est.params_``, from the optimizer state ``est.opt_state_`` (None: a fresh one); ``w
    (n,)``: the examples' weights, or None."""
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    validation = None
    if est.early_stopping:
        x, t, w, validation = validation_split(est, x, t, w, rng)
    seed = rng.randint(np.iinfo(np.int32).max)  # the data order's key
    if not incremental:
        est.n_iter_, est.opt_state_, est._rate = 0, None, float(est.learning_rate_init)
    _epochs(est, x, t, w, incremental, validation, seed)
    if (
        not incremental
        and est.n_iter_ == est.max_iter
        and est._no_improvement_count <= (est.n_iter_no_change)
    ):
        warnings.warn(
            f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
            "optimization hasn't converged yet.",
            ConvergenceWarning,
            stacklevel=5,  # the caller of fit
        )
    if validation is not None:
        est.params_ = est._best_params
