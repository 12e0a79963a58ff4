"""``solver="lbfgs"``: scipy's L-BFGS-B (scikit-learn's choice) on jmlp's hand-written loss and
gradient of the whole training set, jitted: ``maxiter=max_iter``, ``maxfun=max_fun``,
``gtol=tol``; the objective is scikit-learn's, ``L + alpha / (2 n) sum ||W||^2`` (with example
weights ``w``: ``sum_n w_n l_n / sum w + alpha / (2 sum w) sum ||W||^2``)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.flatten_util import ravel_pytree
from sklearn.utils.optimize import _check_optimize_result

from jmlp.backprop import backprop


@partial(jax.jit, static_argnums=0)
def _objective(net, params, x, t, w, l2):
    """``(L + l2/2 sum ||W||^2, its gradient)`` on the whole set (examples weighted by ``w``
    ``(n,)`` or None), by the hand-written pass."""
    value, grads = backprop(net, params, x, t, weights=w)
    value = value + l2 / 2 * sum(jnp.sum(layer["W"] ** 2) for layer in params)
    grads = [{"W": g["W"] + l2 * p["W"], "b": g["b"]} for g, p in zip(grads, params, strict=True)]
    return value, grads


def train(est, x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> None:
    """Minimise from ``est.params_`` (examples weighted by ``w (n,)``, or all alike); sets
    ``params_``, ``n_iter_``, ``loss_``."""
    flat, unravel = ravel_pytree(est.params_)
    total = len(x) if w is None else float(np.sum(w, dtype=np.float64))
    x, t, l2 = jnp.asarray(x), jnp.asarray(t), jnp.float32(est.alpha / total)
    w = None if w is None else jnp.asarray(w)

    def value_and_grad(theta: np.ndarray):
        value, grads = _objective(est.net_, unravel(jnp.asarray(theta, flat.dtype)), x, t, w, l2)
        return float(value), np.asarray(ravel_pytree(grads)[0], np.float64)

    result = scipy.optimize.minimize(
        value_and_grad,
        np.asarray(flat, np.float64),
        method="L-BFGS-B",
        jac=True,
        options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol},
    )
    est.n_iter_ = _check_optimize_result("lbfgs", result, est.max_iter)
    est.loss_ = float(result.fun)
    est.params_ = unravel(jnp.asarray(result.x, flat.dtype))
    if not np.isfinite(result.x).all():
        raise ValueError(
            "Solver produced non-finite parameter weights. The input data may contain large "
            "values and need to be preprocessed."
        )
