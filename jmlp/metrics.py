"""Predictions and metrics: class decisions, accuracy, error rate, R², validation metrics.

Every public function takes the params of one network or stacked params (``W (N, n_in,
n_out)``, as ``jmlp.fit_many`` returns them): then it runs jitted over the members and returns
one value (or one prediction array) per member, leading axis N.
"""

from functools import partial, wraps

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.checks import (
    as_inputs,
    as_targets,
    check_finite_rows,
    check_numeric,
    check_params,
    check_target_values,
    param_dtype,
)
from jmlp.forward import example_scale, forward, forward_cache, per_example_loss
from jmlp.init import Params
from jmlp.losses import CLASSIFICATION
from jmlp.net import MLP

Array = jax.Array


def decide(net: MLP, rows: Array) -> Array:
    """Class decisions from outputs or targets ``(B, n_out)``: argmax (cross-entropy, hinge with
    several outputs) -> ``(B,)``; ``> 0.5`` (binary cross-entropy) -> ``(B,)`` if one output else
    ``(B, n_out)`` (multi-label); sign (hinge, one output) -> ``(B,)`` in {-1, +1}. Numpy rows
    give numpy decisions (no program compiled)."""
    xp = np if isinstance(rows, np.ndarray) else jnp
    if net.loss == "binary_cross_entropy":
        d = (rows > 0.5).astype(np.int32)
        return d[:, 0] if rows.shape[-1] == 1 else d
    if net.loss == "hinge" and rows.shape[-1] == 1:
        return xp.where(rows[:, 0] >= 0, 1, -1).astype(np.int32)
    return xp.argmax(rows, axis=-1).astype(np.int32)


def _rates(net: MLP, out: Array, t: Array, weights: Array | None = None) -> tuple[Array, Array]:
    """``(accuracy, error)``: the fractions of decisions equal to and different from the
    targets' (each counted, so both are exact fractions), over the rows of weight 1."""
    same = decide(net, out) == decide(net, t)
    if weights is None:
        return jnp.mean(same.astype(out.dtype)), jnp.mean((~same).astype(out.dtype))
    weights = weights.reshape(weights.shape + (1,) * (same.ndim - 1))
    total = jnp.sum(jnp.broadcast_to(weights, same.shape))
    return jnp.sum(same * weights) / total, jnp.sum(~same * weights) / total


def _r2_rows(out: Array, t: Array, weights: Array | None = None) -> Array:
    """``1 - sum (t - out)^2 / sum (t - mean t)^2`` over the rows of weight 1 (all by default)."""
    w = jnp.ones(t.shape[:1], t.dtype) if weights is None else weights
    w = w[:, None]
    mean = jnp.sum(w * t, axis=0, keepdims=True) / jnp.sum(w)
    return 1 - jnp.sum(w * (t - out) ** 2) / jnp.sum(w * (t - mean) ** 2)


def _stacked(params: Params) -> bool:
    return isinstance(params, (list, tuple)) and bool(params) and jnp.ndim(params[0].get("W")) == 3


@partial(jax.jit, static_argnums=(0, 1))
def _over_members(fn, net: MLP, params: Params, *args):
    return jax.vmap(lambda p: fn(net, p, *args))(params)


def per_member(fn):
    """Let ``fn(net, params, x, ...)`` also take stacked params: checked on member 0, then run
    jitted over every member (``jax.vmap``), results with a leading member axis. Rows of ``x``
    holding NaN/inf (in the params' dtype) are refused, naming the first: no answer, class or
    score, is made up for them."""

    @wraps(fn)
    def wrapped(net: MLP, params: Params, *args):
        if not _stacked(params):
            check_params(net, params)
            _check_rows(args[0], params)
            return fn(net, params, *args)
        jax.eval_shape(partial(fn, net), jax.tree.map(lambda a: a[0], params), *args)
        _check_rows(args[0], params)
        if len(args) == 2 and net.loss in CLASSIFICATION:  # label values, checked on the host
            check_target_values(net, np.asarray(args[1]))
        return _over_members(fn, net, params, *args)

    return wrapped


def _check_rows(x, params: Params) -> None:
    check_numeric("x", x)
    check_finite_rows("x", x, param_dtype(params))


@per_member
def predict_proba(net: MLP, params: Params, x) -> Array:
    """The network output ``h^L``, ``(B, n_out)`` for ``x (B, n_in)``: class probabilities for
    softmax / sigmoid outputs, scores for hinge, values for regression."""
    return forward(net, params, x)


@per_member
def predict(net: MLP, params: Params, x) -> Array:
    """Predictions for ``x (B, n_in)`` (or ``(n_in,)``). Classifiers give int32 labels ``(B,)``:
    ``argmax_k h^L_k`` (cross-entropy; hinge with several outputs), ``h^L > 0.5`` (binary
    cross-entropy; ``(B, n_out)`` multi-label if several outputs), ``sign(h^L)`` in {-1, +1}
    (hinge, one output). Regression: the outputs ``h^L``."""
    out = forward(net, params, x)
    if net.loss not in CLASSIFICATION:
        return out
    d = decide(net, jnp.atleast_2d(out))
    return d[0] if jnp.ndim(x) == 1 else d


def _rows(net: MLP, params: Params, x, y, name: str) -> tuple[Array, Array]:
    if net.loss not in CLASSIFICATION and name != "r2_score":
        raise ValueError(
            f"net: {name} needs a classification loss {CLASSIFICATION}, got {net.loss!r}"
        )
    xb = as_inputs(net, params, x)
    t = as_targets(net, y, jnp.shape(xb), xb.dtype)
    return forward(net, params, xb), t


@per_member
def accuracy(net: MLP, params: Params, x, y) -> Array:
    """Fraction of examples whose :func:`predict` equals the label; ``y`` integer labels ``(B,)``
    or target rows ``(B, n_out)`` (decided by the same rule). Multi-label: over all entries."""
    return _rates(net, *_rows(net, params, x, y, "accuracy"))[0]


@per_member
def error_rate(net: MLP, params: Params, x, y) -> Array:
    """``1 - accuracy``: document 003's ``mean(prediction != t)``."""
    return _rates(net, *_rows(net, params, x, y, "error_rate"))[1]


@per_member
def r2_score(net: MLP, params: Params, x, y) -> Array:
    """Coefficient of determination over all outputs, ``y (B, n_out)``:
    ``1 - sum (t - h^L)^2 / sum (t - mean_n t)^2`` (column means; scikit-learn's
    ``r2_score(..., multioutput="variance_weighted")``)."""
    return _r2_rows(*_rows(net, params, x, y, "r2_score"))


def validation_names(net: MLP) -> list[str]:
    """Names of :func:`validation_metrics`' values, in order."""
    return ["val_loss"] + (
        ["val_accuracy", "val_error"] if net.loss in CLASSIFICATION else ["val_r2"]
    )


def validation_metrics(net: MLP, params: Params, val: tuple) -> list[Array]:
    """``[val_loss, accuracy, error]`` (classifiers) or ``[val_loss, r2]`` on checked arrays
    ``val = (x (P, n_in), t (P, n_out), n)``: the first ``n`` rows (all without ``n``), the rest
    padding of weight 0; ``val_loss`` without L2. Traceable (jit, vmap)."""
    x, t = val[:2]
    weights = (jnp.arange(x.shape[0]) < (val[2] if len(val) == 3 else x.shape[0])).astype(x.dtype)
    cache = forward_cache(net, params, x)
    scale = example_scale(net, x.shape[0], weights, x.dtype)
    value = jnp.sum(scale * per_example_loss(net, cache, t))
    if net.loss in CLASSIFICATION:
        return [value, *_rates(net, cache.h[-1], t, weights)]
    return [value, _r2_rows(cache.h[-1], t, weights)]
