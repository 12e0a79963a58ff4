"""Activations: one table, each function with its hand-written derivatives beside it.

Every entry is an :class:`Activation` record ``(fn, deriv, vjp, deriv2)``:

- ``fn(z) -> h`` the activation, element-wise (softmax: along the class axis, ``axis=-1``);
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

Accuracy: every function and derivative is written so that it keeps full relative precision in any
floating dtype (float32, bfloat16, ...) wherever its value is a normal number, including the
tails, where the textbook forms cancel: sigma'(z) is sigma(z) sigma(-z), not h (1 - h);
tanh'(z) is 4 e / (1 + e)^2 with e = e^(-2|z|), not 1 - h^2; 1 + tanh(u) is 2 sigma(2u). Where
a value is e^(-p(z)) for a polynomial p (the GELUs' tails), the rounding of p(z) bounds it: a few
ulps times the function's condition number |z f'(z) / f(z)|, as for any formula evaluated in the
same dtype. Results keep the dtype of ``z``; options are Python floats.
"""

import difflib
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erfc

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
    """sigma(z) = 1 / (1 + e^-z), as e^z / (1 + e^z) for z < 0: no exp overflows, and the tail
    z << 0 keeps full relative precision (the form (1 + tanh(z/2)) / 2 gives 0 there)."""
    e = jnp.exp(-jnp.abs(z))
    return jnp.where(z >= 0, 1, e) / (1 + e)


def sigmoid_deriv(z: Array, h: Array) -> Array:
    """sigma(z) sigma(-z) = e / (1 + e)^2, e = e^-|z| (h (1 - h) cancels to 0 for z >> 0)."""
    e = jnp.exp(-jnp.abs(z))
    return e / (1 + e) ** 2


def sigmoid_deriv2(z: Array, h: Array) -> Array:
    return h * (1 - h) * (1 - 2 * h)


def tanh(z: Array) -> Array:
    return jnp.tanh(z)


def tanh_deriv(z: Array, h: Array) -> Array:
    """1 - h^2 = 1 / cosh^2 z = 4 e / (1 + e)^2, e = e^(-2|z|) (1 - h^2 cancels for large |z|)."""
    e = jnp.exp(-2 * jnp.abs(z))
    return 4 * e / (1 + e) ** 2


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
    """1 for z > 0, alpha e^z otherwise (h + alpha cancels for z << 0)."""
    return jnp.where(z > 0, jnp.ones_like(z), alpha * jnp.exp(jnp.where(z > 0, 0, z)))


def elu_deriv2(z: Array, h: Array, alpha: float = 1.0) -> Array:
    return jnp.where(z > 0, jnp.zeros_like(z), h + alpha)


_GELU_C, _GELU_A = 0.7978845608028654, 0.044715  # sqrt(2 / pi), the cubic coefficient


def gelu(z: Array) -> Array:
    """GELU, tanh approximation: z/2 (1 + tanh u) = z sigma(2u), u = c (z + 0.044715 z^3),
    c = sqrt(2/pi) (the sigma form keeps the tail z << 0, where 1 + tanh u cancels)."""
    return z * sigmoid(2 * _GELU_C * (z + _GELU_A * z**3))


def gelu_deriv(z: Array, h: Array) -> Array:
    """sigma(2u) + z sigma'(2u) 2u' = sigma(2u) (1 + 2 z u' sigma(-2u)), u' = c (1 + 3a z^2)."""
    u2 = 2 * _GELU_C * (z + _GELU_A * z**3)
    du2 = 2 * _GELU_C * (1 + 3 * _GELU_A * z * z)
    return sigmoid(u2) * (1 + z * du2 * sigmoid(-u2))


_SQRT_HALF, _INV_SQRT_2PI = 0.7071067811865476, 0.3989422804014327  # 1/sqrt 2, 1/sqrt(2 pi)


def _normal_cdf(z: Array) -> Array:
    """Phi(z) = erfc(-z / sqrt 2) / 2 (1 + erf(z / sqrt 2) would cancel for z << 0)."""
    return 0.5 * erfc(-_SQRT_HALF * z)


def gelu_deriv2(z: Array, h: Array) -> Array:
    """(1 - t^2) (u' - z t u'^2 + 3 a c z^2), t = tanh(u), u = c (z + a z^3), a = 0.044715."""
    t = jnp.tanh(_GELU_C * (z + 0.044715 * z**3))
    du = _GELU_C * (1 + 3 * 0.044715 * z * z)
    return (1 - t * t) * (du - z * t * du * du + 3 * 0.044715 * _GELU_C * z * z)


def gelu_exact(z: Array) -> Array:
    """GELU, exact: z Phi(z), Phi the standard normal cdf."""
    return z * _normal_cdf(z)


def gelu_exact_deriv(z: Array, h: Array) -> Array:
    """Phi(z) + z phi(z), phi(z) = e^(-z^2/2) / sqrt(2 pi)."""
    return _normal_cdf(z) + z * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)


def gelu_exact_deriv2(z: Array, h: Array) -> Array:
    """phi(z) (2 - z^2), phi the standard normal density."""
    phi = jnp.exp(-0.5 * z * z) / jnp.sqrt(2 * jnp.pi).astype(z.dtype)
    return phi * (2 - z * z)


def exp(z: Array) -> Array:
    """e^z: a positive rate (the log link of a Poisson output); inf where e^z overflows the dtype
    (z > 88.7 in float32, > 709.8 in float64)."""
    return jnp.exp(z)


def exp_deriv(z: Array, h: Array) -> Array:
    """e^z = h, and so is every higher derivative."""
    return h


def softmax(z: Array, *, axis: int = -1) -> Array:
    """e^z_k / sum_j e^z_j along the class axis (shifted by the max, which cancels)."""
    e = jnp.exp(z - jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True)))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def softmax_vjp(z: Array, h: Array, g: Array, *, axis: int = -1) -> Array:
    """g J for the softmax Jacobian J = diag(s) - s s^T:  s * (g - <g, s>)."""
    return h * (g - jnp.sum(g * h, axis=axis, keepdims=True))


def softmax_vjp_derivative(z: Array, h: Array, g: Array, u: Array, *, axis: int = -1) -> Array:
    """d/dz [g J(z)] u with g held fixed (softmax's second-order term, ``sum_k g_k H_k u``):
    ``s' * (g - <g, s>) - s <g, s'>`` with ``s' = J u = s * (u - <u, s>)``."""
    ds = softmax_vjp(z, h, u, axis=axis)
    centred = g - jnp.sum(g * h, axis=axis, keepdims=True)
    return ds * centred - h * jnp.sum(g * ds, axis=axis, keepdims=True)


def _elementwise(fn: Callable, deriv: Callable, deriv2: Callable | None = None) -> Activation:
    return Activation(fn, deriv, lambda z, h, g, axis=-1: g * deriv(z, h), deriv2)


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
    "exp": (exp, exp_deriv),
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
    "exp": exp_deriv,
}
# output only: softmax (along the class axis); exp, the log link of a rate (jmlp.losses' poisson),
# which in a hidden layer grows without bound
OUTPUT_ONLY = ("softmax", "exp")
PIECEWISE_LINEAR = ("identity", "relu", "leaky_relu")  # sigma'' = 0: second order skips its term
PARAMETER = {"leaky_relu": "slope", "elu": "alpha"}  # the one option an activation may take


def unknown_name(argument: str, name, known) -> str:
    """The message for a name not in ``known``: the known names, and the closest as a guess."""
    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"{argument}: unknown name {name!r}; {guess}known: {sorted(known)}"


def get_activation(name: str, param: float | None = None) -> Activation:
    """The table's record for ``name``, with its option (``PARAMETER[name]``) bound if given."""
    if name not in ACTIVATIONS:
        raise ValueError(unknown_name("activation", name, ACTIVATIONS))
    fn, deriv = ACTIVATIONS[name]
    deriv2 = SECOND_DERIVATIVES.get(name)
    if name == "softmax":
        return Activation(fn, None, softmax_vjp)
    if name in PARAMETER and param is not None:
        option = {PARAMETER[name]: float(param)}  # a Python float keeps z's dtype
        fn, deriv, deriv2 = (partial(f, **option) for f in (fn, deriv, deriv2))
    return _elementwise(fn, deriv, deriv2)
