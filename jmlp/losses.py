"""Losses: one table, each per-example loss with its derivative with respect to the prediction.

Shapes: prediction ``y`` and target ``t`` are ``(batch, n_out)``; ``value(y, t)`` is the
per-example loss ``(batch,)``; ``grad(y, t)`` is ``dl/dy``, ``(batch, n_out)``; ``hess(y, t)`` is
the diagonal of ``d^2l/dy^2``, ``(batch, n_out)`` (every loss here is a sum over output units of
a function of ``(y_k, t_k)``, so its Hessian is diagonal). The batch is reduced elsewhere
(``jmlp.forward.loss``), by mean or sum.

Per example, as the documents define them (``n`` = number of output units, ``r = y - t``):

================== ======================================== ==================================
name               l(y, t)                                  dl/dy
================== ======================================== ==================================
mse                1/n sum r^2                              2 r / n
half_sse           1/2 sum r^2                              r
mae                1/n sum |r|                              sign(r) / n   (0 at r = 0)
huber              1/n sum (r^2/2 if |r|<=d else d(|r|-d/2)) clip(r, -d, d) / n
binary_cross_entropy -sum t log y + (1-t) log(1-y)          (y - t) / (y (1 - y))
cross_entropy      -sum t log y                             -t / y
hinge              sum max(0, 1 - t y), t in {-1, +1}       -t where t y < 1, else 0
poisson            sum t log(t / y) - t + y, t >= 0, y > 0  1 - t / y
================== ======================================== ==================================

``poisson`` is half the Poisson deviance (scikit-learn's ``loss="poisson"``): the negative
log-likelihood ``y - t log y`` of counts ``t ~ Poisson(y)`` plus ``t log t - t``, so that it is 0
at ``y = t`` (``t log t = 0`` at ``t = 0``). Its fused pair with the log link ``y = e^z`` has
``delta^L = e^z - t`` and ``d^2l/dz^2 = diag(e^z)``; e^z overflows to inf for z > 88.7 in float32
(709.8 in float64), and so do the value and delta there (nothing is clipped; training stops at a
non-finite loss).

The pairs in :data:`FUSED` compute the loss from the output pre-activation ``z`` instead, with
``delta^L = dl/dz`` in closed form: every log loss on a sigmoid or softmax output is one of them
(log-sigmoid, log-softmax and log(1 - softmax) from the logits), so no probability is ever clipped
there and a confidently wrong output keeps its gradient. The plain log-loss entries above clip
``y`` to ``[eps, 1 - eps]`` (``eps`` = the dtype's machine epsilon) so ``log(0)`` never occurs,
with derivative 0 where the clip is active, as autodiff gives; they are reached only for outputs
that are not probabilities by construction.

Accuracy: the fused values and deltas keep full relative precision in any floating dtype where
the textbook forms cancel (a confident output: h - t with h = 1 - tiny, log s with s = 1 - tiny,
log(1 - s)); they are as accurate as rounding their inputs allows. Results keep the dtype of
``y`` or ``z``; Huber's threshold is a Python float.

Second derivatives, ``hess(y, t)``: mse ``2/n``, half_sse 1, mae 0, huber ``[|r| <= d] / n``,
binary_cross_entropy ``t/y^2 + (1-t)/(1-y)^2``, cross_entropy ``t/y^2`` (0 where the clip is
active), hinge 0, poisson ``t/y^2``; at the kinks of mae, huber and hinge, autodiff's value of the
same form. poisson clips ``y`` below at the dtype's smallest normal number (derivatives 0 there),
so an output that underflows to 0 never takes ``log 0``.
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Loss(NamedTuple):
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    hess: Callable[[Array, Array], Array] | None = None  # diagonal of d^2l/dy^2


class FusedLoss(NamedTuple):
    """A loss computed from the output pre-activation z, with delta^L = dl/dz in closed form and,
    where given, the Hessian-vector product (d^2l/dz^2) v per example (None: the chain rule
    through the activation and loss tables is used instead)."""

    value: Callable[[Array, Array], Array]  # (z, t) -> (batch,)
    delta: Callable[[Array, Array, Array], Array]  # (z, h, t) -> (batch, n_out)
    # (z, h, t, v) -> (batch, n_out)
    hvp: Callable[[Array, Array, Array, Array], Array] | None = None


def mse(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.mean((y - t) ** 2, axis=axis)


def mse_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    return 2 * (y - t) / y.shape[axis]


def mse_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.full_like(y, 2 / y.shape[axis])


def half_sse(y: Array, t: Array, *, axis: int = -1) -> Array:
    return 0.5 * jnp.sum((y - t) ** 2, axis=axis)


def half_sse_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    return y - t


def half_sse_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.ones_like(y)


def mae(y: Array, t: Array, *, axis: int = -1) -> Array:
    r = y - t
    return jnp.mean(r * jnp.sign(r), axis=axis)  # |r|, with subgradient sign(0) = 0


def mae_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.sign(y - t) / y.shape[axis]


def mae_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.zeros_like(y)


def huber(y: Array, t: Array, delta: float = 1.0, *, axis: int = -1) -> Array:
    r = y - t
    abs_r = r * jnp.sign(r)
    return jnp.mean(
        jnp.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta)), axis=axis
    )


def huber_grad(y: Array, t: Array, delta: float = 1.0, *, axis: int = -1) -> Array:
    r = y - t
    return jnp.where(r * jnp.sign(r) <= delta, r, delta * jnp.sign(r)) / y.shape[axis]


def huber_hess(y: Array, t: Array, delta: float = 1.0, *, axis: int = -1) -> Array:
    r = y - t
    return (r * jnp.sign(r) <= delta).astype(y.dtype) / y.shape[axis]


def _clip_probability(y: Array) -> Array:
    eps = jnp.finfo(y.dtype).eps
    return jnp.where(y < eps, eps, jnp.where(y > 1 - eps, 1 - eps, y))


def _inside_clip(y: Array) -> Array:
    eps = jnp.finfo(y.dtype).eps
    return (y >= eps) & (y <= 1 - eps)


def binary_cross_entropy(y: Array, t: Array, *, axis: int = -1) -> Array:
    p = _clip_probability(y)
    return -jnp.sum(t * jnp.log(p) + (1 - t) * jnp.log(1 - p), axis=axis)


def binary_cross_entropy_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    p = _clip_probability(y)
    return jnp.where(_inside_clip(y), (1 - t) / (1 - p) - t / p, 0)


def binary_cross_entropy_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    p = _clip_probability(y)
    return jnp.where(_inside_clip(y), t / (p * p) + (1 - t) / ((1 - p) * (1 - p)), 0)


def cross_entropy(y: Array, t: Array, *, axis: int = -1) -> Array:
    return -jnp.sum(t * jnp.log(_clip_probability(y)), axis=axis)


def cross_entropy_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.where(_inside_clip(y), -t / _clip_probability(y), 0)


def cross_entropy_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    p = _clip_probability(y)
    return jnp.where(_inside_clip(y), t / (p * p), 0)


def hinge(y: Array, t: Array, *, axis: int = -1) -> Array:
    margin = t * y
    return jnp.sum(jnp.where(margin < 1, 1 - margin, 0), axis=axis)


def hinge_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.where(t * y < 1, -t, 0)


def hinge_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.zeros_like(y)


def _half_poisson_deviance(log_y: Array, y: Array, t: Array) -> Array:
    """``t log(t / y) - t + y`` element-wise from ``y > 0`` and its log, as ``t (e^u - 1 - u)``,
    ``u = log y - log t``, for ``t > 0`` (``y - t (1 + u)`` for ``u >= 1``, where nothing cancels
    and ``e^u`` may overflow) and ``y`` for ``t = 0``: near ``y = t`` the textbook sum of
    ``t log t``, ``t log y``, ``t`` and ``y`` would cancel to its rounding."""
    positive = t > 0
    t1 = jnp.where(positive, t, 1)  # log t and its derivative stay finite at t = 0
    u = log_y - jnp.log(t1)
    near = u < 1
    value = jnp.where(near, t1 * (jnp.expm1(jnp.where(near, u, 0)) - u), y - t1 * (1 + u))
    return jnp.where(positive, value, y)


def _clip_rate(y: Array) -> Array:
    tiny = jnp.finfo(y.dtype).tiny
    return jnp.where(y < tiny, tiny, y)


def poisson(y: Array, t: Array, *, axis: int = -1) -> Array:
    r = _clip_rate(y)
    return jnp.sum(_half_poisson_deviance(jnp.log(r), r, t), axis=axis)


def poisson_grad(y: Array, t: Array, *, axis: int = -1) -> Array:
    return jnp.where(y < jnp.finfo(y.dtype).tiny, 0, 1 - t / _clip_rate(y))


def poisson_hess(y: Array, t: Array, *, axis: int = -1) -> Array:
    r = _clip_rate(y)
    return jnp.where(y < jnp.finfo(y.dtype).tiny, 0, t / (r * r))


LOSSES: dict[str, Loss] = {
    "mse": Loss(mse, mse_grad, mse_hess),
    "half_sse": Loss(half_sse, half_sse_grad, half_sse_hess),
    "mae": Loss(mae, mae_grad, mae_hess),
    "huber": Loss(huber, huber_grad, huber_hess),
    "binary_cross_entropy": Loss(
        binary_cross_entropy, binary_cross_entropy_grad, binary_cross_entropy_hess
    ),
    "cross_entropy": Loss(cross_entropy, cross_entropy_grad, cross_entropy_hess),
    "hinge": Loss(hinge, hinge_grad, hinge_hess),
    "poisson": Loss(poisson, poisson_grad, poisson_hess),
}
CLASSIFICATION = ("binary_cross_entropy", "cross_entropy", "hinge")  # accept integer labels
NON_NEGATIVE = ("poisson",)  # targets t >= 0 (counts, rates)


# --- fused pairs: the loss from the pre-activation z, delta^L = dl/dz in closed form -------------
# Written for full relative precision where the textbook forms cancel: log s of a dominant class
# (S = 1 + tiny), 1 - s for it, log(1 - s), and sigma(z) - 1 for z >> 0.


def _log_sigmoid(z: Array) -> Array:
    """log sigma(z) = -log(1 + e^-z)."""
    return -jnp.logaddexp(-z, jnp.zeros_like(z))


def _sigmoid_binary_cross_entropy(z: Array, t: Array, *, axis: int = -1) -> Array:
    """-[t log sigma(z) + (1 - t) log sigma(-z)]: two non-negative terms, nothing cancels."""
    return -jnp.sum(t * _log_sigmoid(z) + (1 - t) * _log_sigmoid(-z), axis=axis)


def _softmax_cross_entropy_hvp(z: Array, h: Array, t: Array, v: Array, *, axis: int = -1) -> Array:
    """sum(t) (diag(s) - s s^T) v = sum(t) (s * v - s <s, v>), per example."""
    return jnp.sum(t, axis=axis, keepdims=True) * h * (v - jnp.sum(h * v, axis=axis, keepdims=True))


def _sigmoid_binary_cross_entropy_delta(z: Array, h: Array, t: Array, *, axis: int = -1) -> Array:
    """h - t = (1 - t) sigma(z) - t sigma(-z) (h - 1 would cancel for z >> 0)."""
    return (1 - t) * h - t * jax.nn.sigmoid(-z)


def _sigmoid_cross_entropy(z: Array, t: Array, *, axis: int = -1) -> Array:
    """-sum t log sigma(z)."""
    return -jnp.sum(t * _log_sigmoid(z), axis=axis)


def _sigmoid_cross_entropy_delta(z: Array, h: Array, t: Array, *, axis: int = -1) -> Array:
    """d/dz [-t log sigma(z)] = -t (1 - h) = -t sigma(-z)."""
    return -t * jax.nn.sigmoid(-z)


def _log_softmax(z: Array, *, axis: int = -1) -> tuple[Array, Array]:
    """``log s = z - c - log1p(S - 1)`` for logits ``z (B, n)``, ``c = max_j z_j``,
    ``S = sum_j e^(z_j - c)``, and ``S - 1 (B, 1)``, summed without the 1 of the largest logit
    (``S - 1`` would cancel, and log S lose the precision of log s for a dominant class)."""
    c = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    top = z == c
    e = jnp.exp(z - c)
    # e - 1 is exactly 0 at a maximum and carries de/dz = e there (autodiff stays exact); each
    # further maximum of a tie adds its 1
    rest = jnp.sum(jnp.where(top, e - 1, e), axis=axis, keepdims=True)
    rest = rest + (jnp.sum(top, axis=axis, keepdims=True) - 1)
    return z - c - jnp.log1p(rest), rest


def _dominant(h: Array) -> Array:
    """``(B, n)`` bool: the class with probability above 1/2, if any (at most one per row); only
    there does ``1 - h`` cancel."""
    return h > 0.5


def _log_sum_exp_others(z: Array, dominant: Array, *, axis: int = -1) -> tuple[Array, Array]:
    """``log sum_{j not dominant} e^(z_j - max z)`` and the weights ``e^z_j / sum_{k not dominant}
    e^z_k`` (0 at the dominant class), shifted by the largest of those logits so that neither
    underflows when the dominant class takes nearly all the probability (n >= 2)."""
    c = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    z_others = jnp.where(dominant, -jnp.inf, z)
    c2 = jax.lax.stop_gradient(jnp.max(z_others, axis=axis, keepdims=True))
    e2 = jnp.exp(z_others - c2)
    sum2 = jnp.sum(e2, axis=axis, keepdims=True)
    return (c2 - c) + jnp.log(sum2), e2 / sum2


def _softmax_cross_entropy(z: Array, t: Array, *, axis: int = -1) -> Array:
    """-sum t log s, log s from the logits."""
    return -jnp.sum(t * _log_softmax(z, axis=axis)[0], axis=axis)


def _softmax_cross_entropy_delta(z: Array, h: Array, t: Array, *, axis: int = -1) -> Array:
    """h sum(t) - t; for a dominant class (h > 1/2) sum_{k != j} t_k - sum(t) sum_{k != j} h_k,
    where h sum(t) - t would cancel (h_j = 1 - tiny)."""
    dominant = _dominant(h)
    total = jnp.sum(t, axis=axis, keepdims=True)
    t_others = jnp.sum(jnp.where(dominant, 0, t), axis=axis, keepdims=True)
    h_others = jnp.sum(jnp.where(dominant, 0, h), axis=axis, keepdims=True)  # 1 - h_dominant
    return jnp.where(dominant, t_others - total * h_others, h * total - t)


def _softmax_binary_cross_entropy(z: Array, t: Array, *, axis: int = -1) -> Array:
    """-sum [t log s + (1 - t) log(1 - s)], both logs from the logits: log(1 - s) is log1p(-s)
    for s <= 1/2, else log sum_{k != j} e^z_k - log sum_k e^z_k (two negative terms)."""
    log_s, rest = _log_softmax(z, axis=axis)
    s = jnp.exp(log_s)
    dominant = _dominant(s)
    log_others = _log_sum_exp_others(z, dominant, axis=axis)[0]
    log_1ms = jnp.where(
        dominant, log_others - jnp.log1p(rest), jnp.log1p(-jnp.where(dominant, 0, s))
    )
    return -jnp.sum(t * log_s + (1 - t) * log_1ms, axis=axis)


def _softmax_binary_cross_entropy_delta(z: Array, h: Array, t: Array, *, axis: int = -1) -> Array:
    """dl/dz_j = h_j (1 + T - 2 t_j - Q_j) - t_j (1 - h_j), with T = sum_k t_k, the odds
    q_k = h_k / (1 - h_k) and Q_j = sum_{k != j} (1 - t_k) q_k. The odds of a dominant class d may
    overflow, so for j != d the product h_j q_d is formed as h_d e^z_j / sum_{k != d} e^z_k."""
    dominant = _dominant(h)
    h_others = jnp.sum(jnp.where(dominant, 0, h), axis=axis, keepdims=True)
    one_minus_h = jnp.where(dominant, h_others, 1 - h)
    odds = jnp.where(dominant, 0, h / one_minus_h)  # <= 1 off the dominant class
    q_others = jnp.sum((1 - t) * odds, axis=axis, keepdims=True)  # Q_d
    h_d = jnp.sum(jnp.where(dominant, h, 0), axis=axis, keepdims=True)  # 0 without one
    t_d = jnp.sum(jnp.where(dominant, t, 0), axis=axis, keepdims=True)
    weights = _log_sum_exp_others(z, dominant, axis=axis)[1]
    h_q = jnp.where(
        dominant, h * q_others, (1 - t_d) * h_d * weights + h * (q_others - (1 - t) * odds)
    )
    return h * (1 + jnp.sum(t, axis=axis, keepdims=True) - 2 * t) - h_q - t * one_minus_h


def _exp_poisson(z: Array, t: Array, *, axis: int = -1) -> Array:
    """sum t log(t / e^z) - t + e^z, with log y = z exactly."""
    return jnp.sum(_half_poisson_deviance(z, jnp.exp(z), t), axis=axis)


# (output activation, loss) pairs computed from z^L. For softmax + cross-entropy, sigmoid +
# binary cross-entropy, identity + half_sse and exp + poisson (the canonical links), delta^L =
# dl/dz is y - t (cf. scikit-learn's comment on those pairs); for softmax the exact form is
# y sum(t) - t, which is y - t whenever the target row sums to 1. Sigmoid + cross-entropy and
# softmax + binary cross-entropy complete the log losses on probability outputs, so no clip of a
# probability ever zeroes their gradient.
FUSED: dict[tuple[str, str], FusedLoss] = {
    ("softmax", "cross_entropy"): FusedLoss(
        _softmax_cross_entropy, _softmax_cross_entropy_delta, _softmax_cross_entropy_hvp
    ),
    ("sigmoid", "binary_cross_entropy"): FusedLoss(
        _sigmoid_binary_cross_entropy,
        _sigmoid_binary_cross_entropy_delta,
        lambda z, h, t, v, axis=-1: h * (1 - h) * v,
    ),
    ("identity", "half_sse"): FusedLoss(
        half_sse, lambda z, h, t, axis=-1: z - t, lambda z, h, t, v, axis=-1: v
    ),
    ("sigmoid", "cross_entropy"): FusedLoss(
        _sigmoid_cross_entropy,
        _sigmoid_cross_entropy_delta,
        lambda z, h, t, v, axis=-1: (
            t * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z) * v
        ),  # d/dz of -t s(-z)
    ),
    ("softmax", "binary_cross_entropy"): FusedLoss(
        _softmax_binary_cross_entropy, _softmax_binary_cross_entropy_delta
    ),
    ("exp", "poisson"): FusedLoss(  # the log link: delta = e^z - t, d^2l/dz^2 = diag(e^z)
        _exp_poisson, lambda z, h, t, axis=-1: h - t, lambda z, h, t, v, axis=-1: h * v
    ),
}


def get_loss(name: str, delta: float | None = None) -> Loss:
    """The table's record for ``name``; ``delta`` is Huber's threshold (ignored otherwise)."""
    if name not in LOSSES:
        raise ValueError(f"loss: unknown name {name!r}; known: {sorted(LOSSES)}")
    if name == "huber" and delta is not None:
        delta = float(delta)  # a Python float keeps y's dtype
        return Loss(*(partial(f, delta=delta) for f in (huber, huber_grad, huber_hess)))
    return LOSSES[name]
