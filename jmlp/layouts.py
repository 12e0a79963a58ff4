"""Layouts of the delta rule: where the batch axis (and a member axis) lives, and how each
product of the forward and backward pass is taken there.

The passes (``jmlp.forward.forward_cache``, ``jmlp.backprop``'s delta rule) are written once over
a :class:`Layout`: :func:`batch_major` is the documents' batch form ``h (B, n)`` for one network,
:func:`member_columns` the layout of ``G`` networks on one shared batch, ``h^T (G, n, B)``. Every
product of both goes through :func:`einsum` (the spec's compute dtype and precision).
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jmlp.net import MLP

Array = jax.Array


# specs that are ``a @ b``: taken by jnp.matmul, whose eager calls skip einsum's contraction search
MATMUL_SPECS = ("...i,io->...o", "...o,oi->...i", "ib,bo->io")


def einsum(net: MLP, spec: str, a: Array, b: Array) -> Array:
    """``einsum(spec, a, b)`` in the spec's compute dtype and precision, result in ``a``'s dtype
    (with a ``compute_dtype``, the inputs are cast to it and the sum accumulates in ``a``'s)."""
    product = jnp.matmul if spec in MATMUL_SPECS else partial(jnp.einsum, spec)
    if net.compute_dtype is None:
        return product(a, b, precision=net.precision)
    c = jnp.dtype(net.compute_dtype)
    out = product(a.astype(c), b.astype(c), precision=net.precision, preferred_element_type=a.dtype)
    return out.astype(a.dtype)


class Layout(NamedTuple):
    """How each product of the forward and backward pass is taken in one arrangement of the
    arrays:

    - ``affine(h, layer)``: ``z^l = h^{l-1} W^l + b^l``
    - ``back(delta, layer)``: ``delta^l W^l^T`` (the delta rule's product, before ``sigma'``)
    - ``grads(h, delta)``: ``{"W": h^{l-1}^T delta^l, "b": sum_n delta^l_n}``
    - ``classes``: the axis of the output units in this layout's arrays (the axis the tables'
      softmax and losses reduce over)
    - ``examples(a)``: per-example data ``(B, ...)`` (targets, batch weights) arranged to
      broadcast against this layout's arrays
    - ``batch_sum(a)``: sum over the batch axis of per-example values
    """

    affine: Callable
    back: Callable
    grads: Callable
    classes: int
    examples: Callable
    batch_sum: Callable


def batch_major(net: MLP) -> Layout:
    """The layout of the documents' batch form: ``h (B, n)``, ``W (n_in, n_out)``."""
    return Layout(
        affine=lambda h, layer: einsum(net, "...i,io->...o", h, layer["W"]) + layer["b"][None, :],
        back=lambda delta, layer: einsum(net, "...o,oi->...i", delta, layer["W"].T),
        # h^T kept a real array: XLA:CPU runs the dot contracting both operands' axis 0 on a
        # slower path
        grads=lambda h, delta: {
            "W": einsum(net, "ib,bo->io", jax.lax.optimization_barrier(h.T), delta),
            "b": jnp.sum(delta, axis=0),
        },
        classes=-1,
        examples=lambda a: a,
        batch_sum=lambda a: jnp.sum(a, axis=0),
    )


def member_columns(net: MLP) -> Layout:
    """The ensemble layout: G networks, activations ``h^T (G, n, B)`` (batch minor), the shared
    input ``x^T (n_0, B)``, and each layer given as ``{"W": W^T (G, n_out, n_in), "b" (G, n_out)}``:

        z^T = W^T h^T + b          (the shared input: one wide matmul, or multiply-adds)
        delta W^T  ->  W delta^T,  dL/dW = (delta^T h)^T,  dL/db = sum over the batch (minor) axis

    The output units are axis 1 (``(G, n_L, B)``): the tables' softmax and losses reduce over it
    there, with the batch minor. XLA:CPU runs a reduction over a tiny minor axis (3 classes as
    ``(G, B, 3)``) many times slower; and this layout needs no large transpose.
    """
    return Layout(
        affine=partial(_columns_affine, net),
        back=lambda delta, layer: einsum(net, "goi,gob->gib", layer["W"], delta),
        grads=lambda h, delta: {
            "W": jnp.swapaxes(
                einsum(net, "gob,ib->goi" if h.ndim == 2 else "gob,gib->goi", delta, h), 1, 2
            ),
            "b": jnp.sum(delta, axis=2),
        },
        classes=1,
        examples=lambda a: jnp.moveaxis(a, 0, -1)[None],  # (B, ...) -> (1, ..., B)
        batch_sum=lambda a: jnp.sum(a, axis=-1),
    )


def _columns_affine(net: MLP, h: Array, layer: dict) -> Array:
    """``z^T = W^T h^T + b`` for ``h^T`` shared ``(n_in, B)`` or per member ``(G, n_in, B)``. A
    shared input of at most 8 features is n_in multiply-adds (XLA:CPU's matmul with K <= 8 is
    slower; the benchmark's ensemble part measures it)."""
    W, b = layer["W"], layer["b"][:, :, None]
    if h.ndim == 2 and W.shape[2] <= 8 and net.compute_dtype is None:
        return sum(W[:, :, i, None] * h[None, None, i, :] for i in range(W.shape[2])) + b
    return einsum(net, "goi,ib->gob" if h.ndim == 2 else "goi,gib->gob", W, h) + b


def select(mask: Array, new: Any, old: Any) -> Any:
    """Member-wise ``where``: member m of ``new`` where ``mask[m]``, else of ``old``."""
    if mask.shape == (1,):  # one member: a branch, no element-wise kernels to compile
        return jax.lax.cond(mask[0], lambda: new, lambda: old)

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)
