"""Activations: one table, each function with its hand-written derivatives beside it.

Every entry is an :class:`Activation` record ``(fn, deriv, vjp, deriv2)``:

- ``fn(z) -> h`` the activation, element-wise (softmax: along the last axis);
- ``deriv(z, h) -> dh/dz`` element-wise (``None`` for softmax, whose Jacobian is not diagonal);
- ``vjp(z, h, g) -> g @ dh/dz``, the product the delta rule needs:
  ``delta = g * sigma'(z)`` for element-wise activations, ``s * (g - <g, s>)`` for softmax;
- ``deriv2(z, h) -> d^2h/dz^2`` element-wise, for second-order products, from the table
  :data:`SECOND_DERIVATIVES` (``None`` for softmax, whose second-order term is
  :func:`softmax_vjp_derivative`).

Every Jacobian here is symmetric (diagonal, or ``diag(s) - s s^T``), so ``vjp`` is also the
Jacobian-vector product: ``R{h} = vjp(z, h, R{z})``.

At a kink the derivative is the one ``jax.grad`` of ``fn`` gives, because ``fn`` is written with
``jnp.where(z > 0, ...)``: relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha; and the second
derivative is autodiff's of the same form: relu''(0) = leaky_relu''(0) = 0, elu''(0) = alpha.
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

Array = jax.Array


class Activation(NamedTuple):
    fn: Callable[[Array], Array]
    deriv: Callable[[Array, Array], Array] | None
    vjp: Callable[[Array, Array, Array], Array]
    deriv2: Callable[[Array, Array], Array] | None = None


def identity(z: Array) -> Array:
    return z


def identity_deriv(z: Array, h: Array) -> Array:
    return jnp.ones_like(z)


def identity_deriv2(z: Array, h: Array) -> Array:
    return jnp.zeros_like(z)


def sigmoid(z: Array) -> Array:
    """1 / (1 + e^-z), written as (1 + tanh(z/2)) / 2 so no exp overflows for large |z|."""
    return 0.5 * (jnp.tanh(0.5 * z) + 1)


def sigmoid_deriv(z: Array, h: Array) -> Array:
    return h * (1 - h)


def sigmoid_deriv2(z: Array, h: Array) -> Array:
    return h * (1 - h) * (1 - 2 * h)


def tanh(z: Array) -> Array:
    return jnp.tanh(z)


def tanh_deriv(z: Array, h: Array) -> Array:
    return 1 - h * h


def tanh_deriv2(z: Array, h: Array) -> Array:
    return -2 * h * (1 - h * h)


def relu(z: Array) -> Array:
    return jnp.where(z > 0, z, 0)


def relu_deriv(z: Array, h: Array) -> Array:
    return (z > 0).astype(z.dtype)


def relu_deriv2(z: Array, h: Array) -> Array:
    return jnp.zeros_like(z)


def leaky_relu(z: Array, slope: float = 0.01) -> Array:
    return jnp.where(z > 0, z, slope * z)


def leaky_relu_deriv(z: Array, h: Array, slope: float = 0.01) -> Array:
    return jnp.where(z > 0, jnp.ones_like(z), slope * jnp.ones_like(z))


def leaky_relu_deriv2(z: Array, h: Array, slope: float = 0.01) -> Array:
    return jnp.zeros_like(z)


def softplus(z: Array) -> Array:
    """log(1 + e^z), computed as logaddexp(z, 0): finite for any z."""
    return jnp.logaddexp(z, jnp.zeros_like(z))


def softplus_deriv(z: Array, h: Array) -> Array:
    return sigmoid(z)


def softplus_deriv2(z: Array, h: Array) -> Array:
    s = sigmoid(z)
    return s * (1 - s)


def elu(z: Array, alpha: float = 1.0) -> Array:
    """z for z > 0, alpha (e^z - 1) otherwise (e^z taken of min(z, 0) so it never overflows)."""
    return jnp.where(z > 0, z, alpha * jnp.expm1(jnp.where(z > 0, 0, z)))


def elu_deriv(z: Array, h: Array, alpha: float = 1.0) -> Array:
    return jnp.where(z > 0, jnp.ones_like(z), h + alpha)


def elu_deriv2(z: Array, h: Array, alpha: float = 1.0) -> Array:
    return jnp.where(z > 0, jnp.zeros_like(z), h + alpha)


_GELU_C = 0.7978845608028654  # sqrt(2 / pi)


def gelu(z: Array) -> Array:
    """GELU, tanh approximation: z/2 (1 + tanh(c (z + 0.044715 z^3))), c = sqrt(2/pi)."""
    return 0.5 * z * (1 + jnp.tanh(_GELU_C * (z + 0.044715 * z**3)))


def gelu_deriv(z: Array, h: Array) -> Array:
    t = jnp.tanh(_GELU_C * (z + 0.044715 * z**3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * z * z)


def gelu_deriv2(z: Array, h: Array) -> Array:
    """(1 - t^2) (u' - z t u'^2 + 3 a c z^2), t = tanh(u), u = c (z + a z^3), a = 0.044715."""
    t = jnp.tanh(_GELU_C * (z + 0.044715 * z**3))
    du = _GELU_C * (1 + 3 * 0.044715 * z * z)
    return (1 - t * t) * (du - z * t * du * du + 3 * 0.044715 * _GELU_C * z * z)


def gelu_exact(z: Array) -> Array:
    """GELU, exact: z Phi(z) = z/2 (1 + erf(z / sqrt 2))."""
    return 0.5 * z * (1 + erf(z / jnp.sqrt(2.0).astype(z.dtype)))


def gelu_exact_deriv(z: Array, h: Array) -> Array:
    phi = jnp.exp(-0.5 * z * z) / jnp.sqrt(2 * jnp.pi).astype(z.dtype)
    return 0.5 * (1 + erf(z / jnp.sqrt(2.0).astype(z.dtype))) + z * phi


def gelu_exact_deriv2(z: Array, h: Array) -> Array:
    """phi(z) (2 - z^2), phi the standard normal density."""
    phi = jnp.exp(-0.5 * z * z) / jnp.sqrt(2 * jnp.pi).astype(z.dtype)
    return phi * (2 - z * z)


def softmax(z: Array) -> Array:
    """e^z_k / sum_j e^z_j along the last axis (shifted by the max, which cancels)."""
    e = jnp.exp(z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True)))
    return e / jnp.sum(e, axis=-1, keepdims=True)


def softmax_vjp(z: Array, h: Array, g: Array) -> Array:
    """g J for the softmax Jacobian J = diag(s) - s s^T:  s * (g - <g, s>)."""
    return h * (g - jnp.sum(g * h, axis=-1, keepdims=True))


def softmax_vjp_derivative(z: Array, h: Array, g: Array, u: Array) -> Array:
    """d/dz [g J(z)] u with g held fixed (softmax's second-order term, ``sum_k g_k H_k u``):
    ``s' * (g - <g, s>) - s <g, s'>`` with ``s' = J u = s * (u - <u, s>)``."""
    ds = softmax_vjp(z, h, u)
    centred = g - jnp.sum(g * h, axis=-1, keepdims=True)
    return ds * centred - h * jnp.sum(g * ds, axis=-1, keepdims=True)


def _elementwise(fn: Callable, deriv: Callable, deriv2: Callable | None = None) -> Activation:
    return Activation(fn, deriv, lambda z, h, g: g * deriv(z, h), deriv2)


ACTIVATIONS: dict[str, tuple[Callable, Callable | None]] = {
    "identity": (identity, identity_deriv),
    "sigmoid": (sigmoid, sigmoid_deriv),
    "tanh": (tanh, tanh_deriv),
    "relu": (relu, relu_deriv),
    "leaky_relu": (leaky_relu, leaky_relu_deriv),
    "softplus": (softplus, softplus_deriv),
    "elu": (elu, elu_deriv),
    "gelu": (gelu, gelu_deriv),
    "gelu_exact": (gelu_exact, gelu_exact_deriv),
    "softmax": (softmax, None),
}
SECOND_DERIVATIVES: dict[str, Callable] = {  # sigma'' of each element-wise activation
    "identity": identity_deriv2,
    "sigmoid": sigmoid_deriv2,
    "tanh": tanh_deriv2,
    "relu": relu_deriv2,
    "leaky_relu": leaky_relu_deriv2,
    "softplus": softplus_deriv2,
    "elu": elu_deriv2,
    "gelu": gelu_deriv2,
    "gelu_exact": gelu_exact_deriv2,
}
OUTPUT_ONLY = ("softmax",)
PIECEWISE_LINEAR = ("identity", "relu", "leaky_relu")  # sigma'' = 0: second order skips its term
PARAMETER = {"leaky_relu": "slope", "elu": "alpha"}  # the one option an activation may take


def get_activation(name: str, param: float | None = None) -> Activation:
    """The table's record for ``name``, with its option (``PARAMETER[name]``) bound if given."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: unknown name {name!r}; known: {sorted(ACTIVATIONS)}")
    fn, deriv = ACTIVATIONS[name]
    deriv2 = SECOND_DERIVATIVES.get(name)
    if name == "softmax":
        return Activation(fn, None, softmax_vjp)
    if name in PARAMETER and param is not None:
        fn, deriv = (
            partial(fn, **{PARAMETER[name]: param}),
            partial(deriv, **{PARAMETER[name]: param}),
        )
        deriv2 = partial(deriv2, **{PARAMETER[name]: param})
    return _elementwise(fn, deriv, deriv2)
