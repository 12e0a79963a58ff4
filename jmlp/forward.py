"""The forward pass (with and without its cache) and the loss.

Layer l (1-based, as in the documents) computes ``z^l = h^{l-1} @ W^l + b^l`` and
``h^l = sigma_l(z^l)``, with ``h^0 = x``. The documents' column form ``z = W h + b`` uses the
transpose of our ``W`` (shape ``(n_in, n_out)``, batch-major).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmlp.checks import (
    as_inputs,
    as_targets,
    param_dtype,
)
from jmlp.init import Params
from jmlp.layouts import Layout, batch_major
from jmlp.net import MLP

Array = jax.Array


class Cache(NamedTuple):
    """Everything the backward pass needs: ``h = [h^0 = x, ..., h^L]``, ``z = [z^1, ..., z^L]``."""

    h: list[Array]
    z: list[Array]


def forward_cache(net: MLP, params: Params, x: Array, layout: Layout | None = None) -> Cache:
    """Forward pass of a batch ``x (B, n_in)`` keeping every ``z^l (B, n_l)`` and ``h^l``, all in
    the parameters' dtype (``layout``: another arrangement of the same products, default
    ``jmlp.layouts.batch_major``)."""
    layout = layout or batch_major(net)
    x = jnp.asarray(x, param_dtype(params))
    h, zs, hs = x, [], [x]
    for layer, act in zip(params, net.activations):
        z = layout.affine(h, layer)
        h = act.fn(z) if act.deriv is not None else act.fn(z, axis=layout.classes)
        zs.append(z)
        hs.append(h)
    return Cache(hs, zs)


def forward(net: MLP, params: Params, x) -> Array:
    """Network output ``h^L``: ``(B, n_out)`` for ``x (B, n_in)``, ``(n_out,)`` for ``x (n_in,)``."""
    out = forward_cache(net, params, as_inputs(net, params, x)).h[-1]
    return out[0] if jnp.ndim(x) == 1 else out


def per_example_loss(net: MLP, cache: Cache, t: Array, axis: int = -1) -> Array:
    """``l_n`` for every example, ``(B,)``; fused pairs are computed from ``z^L``. ``axis``: the
    class axis of ``h^L``, ``z^L`` and ``t`` (the last, in the batch-major layout)."""
    if net.fused is not None:
        return net.fused.value(cache.z[-1], t, axis=axis)
    return net.loss_fn.value(cache.h[-1], t, axis=axis)


def example_scale(net: MLP, batch: int, weights, dtype) -> Array:
    """``s_n`` with ``L = sum_n s_n l_n``: 1/B (mean), 1 (sum), or ``w_n / sum w`` / ``w_n``."""
    if weights is None:
        return jnp.full((batch,), 1 / batch if net.reduction == "mean" else 1, dtype)
    weights = jnp.asarray(weights, dtype)
    if weights.shape != (batch,):
        raise ValueError(f"weights: expected shape ({batch},), got {weights.shape}")
    return weights / jnp.sum(weights) if net.reduction == "mean" else weights


def l2_penalty(params: Params, l2) -> Array:
    """``l2 / 2 * sum_l ||W^l||^2`` (weights only; biases are not penalised), in the params' dtype.
    With ``l2 (G,)`` and stacked params ``W (G, n_in, n_out)``: one penalty per member, ``(G,)``."""
    l2 = jnp.asarray(l2, param_dtype(params))
    lead = jnp.ndim(l2)
    squares = [jnp.sum(p["W"] ** 2, axis=tuple(range(lead, p["W"].ndim))) for p in params]
    return 0.5 * l2 * sum(squares)


def loss(net: MLP, params: Params, x, y, *, l2=0.0, weights=None) -> Array:
    """Scalar loss ``L = sum_n s_n l(h^L_n, t_n) + l2/2 sum ||W||^2``.

    ``x``: ``(B, n_in)`` or ``(n_in,)``; ``y``: ``(B, n_out)`` rows, or integer labels ``(B,)`` for
    classification losses; ``s_n = 1/B`` (``reduction="mean"``) or 1 (``"sum"``), or the normalised
    ``weights (B,)``. Targets and inputs are cast to the parameters' dtype.
    """
    xb = as_inputs(net, params, x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    cache = forward_cache(net, params, xb)
    scale = example_scale(net, xb.shape[0], weights, xb.dtype)
    return jnp.sum(scale * per_example_loss(net, cache, t)) + l2_penalty(params, l2)
