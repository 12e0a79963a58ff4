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
================== ======================================== ==================================

Log losses on probabilities clip ``y`` to ``[eps, 1 - eps]`` (``eps`` = the dtype's machine
epsilon) so ``log(0)`` never occurs; the derivative is 0 where the clip is active, as autodiff
gives. The fused pairs in :data:`FUSED` work on the pre-activation ``z`` instead and need no clip.

Second derivatives, ``hess(y, t)``: mse ``2/n``, half_sse 1, mae 0, huber ``[|r| <= d] / n``,
binary_cross_entropy ``t/y^2 + (1-t)/(1-y)^2``, cross_entropy ``t/y^2`` (0 where the clip is
active), hinge 0; at the kinks of mae, huber and hinge, autodiff's value of the same form.
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


def mse(y: Array, t: Array) -> Array:
    return jnp.mean((y - t) ** 2, axis=-1)


def mse_grad(y: Array, t: Array) -> Array:
    return 2 * (y - t) / y.shape[-1]


def mse_hess(y: Array, t: Array) -> Array:
    return jnp.full_like(y, 2 / y.shape[-1])


def half_sse(y: Array, t: Array) -> Array:
    return 0.5 * jnp.sum((y - t) ** 2, axis=-1)


def half_sse_grad(y: Array, t: Array) -> Array:
    return y - t


def half_sse_hess(y: Array, t: Array) -> Array:
    return jnp.ones_like(y)


def mae(y: Array, t: Array) -> Array:
    r = y - t
    return jnp.mean(r * jnp.sign(r), axis=-1)  # |r|, with subgradient sign(0) = 0


def mae_grad(y: Array, t: Array) -> Array:
    return jnp.sign(y - t) / y.shape[-1]


def mae_hess(y: Array, t: Array) -> Array:
    return jnp.zeros_like(y)


def huber(y: Array, t: Array, delta: float = 1.0) -> Array:
    r = y - t
    abs_r = r * jnp.sign(r)
    return jnp.mean(jnp.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta)), axis=-1)


def huber_grad(y: Array, t: Array, delta: float = 1.0) -> Array:
    r = y - t
    return jnp.where(r * jnp.sign(r) <= delta, r, delta * jnp.sign(r)) / y.shape[-1]


def huber_hess(y: Array, t: Array, delta: float = 1.0) -> Array:
    r = y - t
    return (r * jnp.sign(r) <= delta).astype(y.dtype) / y.shape[-1]


def _clip_probability(y: Array) -> Array:
    eps = jnp.finfo(y.dtype).eps
    return jnp.where(y < eps, eps, jnp.where(y > 1 - eps, 1 - eps, y))


def _inside_clip(y: Array) -> Array:
    eps = jnp.finfo(y.dtype).eps
    return (y >= eps) & (y <= 1 - eps)


def binary_cross_entropy(y: Array, t: Array) -> Array:
    p = _clip_probability(y)
    return -jnp.sum(t * jnp.log(p) + (1 - t) * jnp.log(1 - p), axis=-1)


def binary_cross_entropy_grad(y: Array, t: Array) -> Array:
    p = _clip_probability(y)
    return jnp.where(_inside_clip(y), (1 - t) / (1 - p) - t / p, 0)


def binary_cross_entropy_hess(y: Array, t: Array) -> Array:
    p = _clip_probability(y)
    return jnp.where(_inside_clip(y), t / (p * p) + (1 - t) / ((1 - p) * (1 - p)), 0)


def cross_entropy(y: Array, t: Array) -> Array:
    return -jnp.sum(t * jnp.log(_clip_probability(y)), axis=-1)


def cross_entropy_grad(y: Array, t: Array) -> Array:
    return jnp.where(_inside_clip(y), -t / _clip_probability(y), 0)


def cross_entropy_hess(y: Array, t: Array) -> Array:
    p = _clip_probability(y)
    return jnp.where(_inside_clip(y), t / (p * p), 0)


def hinge(y: Array, t: Array) -> Array:
    margin = t * y
    return jnp.sum(jnp.where(margin < 1, 1 - margin, 0), axis=-1)


def hinge_grad(y: Array, t: Array) -> Array:
    return jnp.where(t * y < 1, -t, 0)


def hinge_hess(y: Array, t: Array) -> Array:
    return jnp.zeros_like(y)


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
}
CLASSIFICATION = ("binary_cross_entropy", "cross_entropy", "hinge")  # accept integer labels


def _softmax_cross_entropy(z: Array, t: Array) -> Array:
    return -jnp.sum(t * jax.nn.log_softmax(z, axis=-1), axis=-1)


def _sigmoid_binary_cross_entropy(z: Array, t: Array) -> Array:
    # -[t log s(z) + (1 - t) log(1 - s(z))] = log(1 + e^z) - t z
    return jnp.sum(jnp.logaddexp(z, jnp.zeros_like(z)) - t * z, axis=-1)


def _softmax_cross_entropy_hvp(z: Array, h: Array, t: Array, v: Array) -> Array:
    """sum(t) (diag(s) - s s^T) v = sum(t) (s * v - s <s, v>), per example."""
    return jnp.sum(t, axis=-1, keepdims=True) * h * (v - jnp.sum(h * v, axis=-1, keepdims=True))


# (output activation, loss) pairs whose delta^L = dl/dz is y - t (cf. scikit-learn's comment on
# identity + squared error, logistic + log loss, softmax + cross-entropy). For softmax the exact
# form is y * sum(t) - t, which is y - t whenever the target row sums to 1.
FUSED: dict[tuple[str, str], FusedLoss] = {
    ("softmax", "cross_entropy"): FusedLoss(
        _softmax_cross_entropy,
        lambda z, h, t: h * jnp.sum(t, axis=-1, keepdims=True) - t,
        _softmax_cross_entropy_hvp,
    ),
    ("sigmoid", "binary_cross_entropy"): FusedLoss(
        _sigmoid_binary_cross_entropy, lambda z, h, t: h - t, lambda z, h, t, v: h * (1 - h) * v
    ),
    ("identity", "half_sse"): FusedLoss(half_sse, lambda z, h, t: z - t, lambda z, h, t, v: v),
}


def get_loss(name: str, delta: float | None = None) -> Loss:
    """The table's record for ``name``; ``delta`` is Huber's threshold (ignored otherwise)."""
    if name not in LOSSES:
        raise ValueError(f"loss: unknown name {name!r}; known: {sorted(LOSSES)}")
    if name == "huber" and delta is not None:
        return Loss(*(partial(f, delta=delta) for f in (huber, huber_grad, huber_hess)))
    return LOSSES[name]
