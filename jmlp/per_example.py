"""Per-example gradients and their norms from one forward and one backward pass.

With the batch weights ``s_n = 1`` the deltas of the batch pass are the per-example deltas
``delta^l_n = dl_n/dz^l_n`` (example n's loss depends on row n only), so the gradient of example
n's loss ``l_n`` is the outer product of two cached rows:

    dl_n/dW^l = h^{l-1}_n (outer) delta^l_n,     dl_n/db^l = delta^l_n

(``jax.vmap(jax.grad(jmlp.loss))`` over single examples gives the same numbers, re-running the
network once per example). Its squared norm needs no outer product,
``||a b^T||_F^2 = ||a||^2 ||b||^2``:

    ||g_n||^2 = sum_l ||h^{l-1}_n||^2 ||delta^l_n||^2 + ||delta^l_n||^2

Large batches run in chunks of ``chunk_size`` examples (``lax.map``), so the cache and deltas in
memory at once are those of one chunk. No L2 term: it belongs to the batch loss, not to ``l_n``.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jmlp.backprop import backward, output_delta
from jmlp.checks import as_inputs, as_targets
from jmlp.forward import forward_cache, per_example_loss
from jmlp.init import Params
from jmlp.net import MLP

Array = jax.Array


def _cache_and_deltas(net: MLP, params: Params, x: Array, t: Array):
    """``(l (B,), cache, [delta^1, ..., delta^L])`` with every example weighted 1."""
    cache = forward_cache(net, params, x)
    ones = jnp.ones((x.shape[0],), x.dtype)
    deltas = backward(net, params, cache, output_delta(net, cache, t, ones))
    return per_example_loss(net, cache, t), cache, deltas


def _grads_chunk(net: MLP, params: Params, x: Array, t: Array) -> tuple[Array, Params]:
    losses, cache, deltas = _cache_and_deltas(net, params, x, t)
    grads = [
        {"W": jnp.einsum("bi,bo->bio", h, delta), "b": delta} for h, delta in zip(cache.h, deltas)
    ]
    return losses, grads


def _norms_chunk(net: MLP, params: Params, x: Array, t: Array) -> tuple[Array, Array]:
    losses, cache, deltas = _cache_and_deltas(net, params, x, t)
    sq = sum(
        (jnp.sum(h * h, axis=1) + 1) * jnp.sum(delta * delta, axis=1)
        for h, delta in zip(cache.h, deltas)
    )
    return losses, sq


def _chunked(fn: Callable, x: Array, t: Array, chunk_size: int | None):
    """``fn(x, t)`` on chunks of ``chunk_size`` rows (``lax.map``; the last chunk padded by
    repeating the last row and trimmed), results concatenated along the batch axis."""
    batch = x.shape[0]
    if chunk_size is None or chunk_size >= batch:
        return fn(x, t)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected None or an int >= 1, got {chunk_size!r}")
    n_chunks = -(-batch // chunk_size)
    pad = n_chunks * chunk_size - batch

    def split(a):
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), mode="edge")
        return a.reshape((n_chunks, chunk_size) + a.shape[1:])

    out = jax.lax.map(lambda xt: fn(*xt), (split(x), split(t)))
    return jax.tree.map(lambda a: a.reshape((n_chunks * chunk_size,) + a.shape[2:])[:batch], out)


def _inputs(net: MLP, params: Params, x, y) -> tuple[Array, Array]:
    xb = as_inputs(net, params, x)
    return xb, as_targets(net, y, xb.shape, xb.dtype)


def per_example_grads(
    net: MLP, params: Params, x, y, *, chunk_size: int | None = None
) -> tuple[Array, Params]:
    """Per-example losses and gradients, hand-written from one forward/backward pass.

    **Arguments:**
    - ``x``: ``(B, n_in)`` (or ``(n_in,)``, B = 1); ``y``: ``(B, n_out)`` rows or integer labels.
    - ``chunk_size``: process at most this many examples at a time (None: all at once).

    **Returns:** ``(losses (B,), grads)``: ``losses[n] = l(h^L_n, t_n)`` and ``grads`` the params
    pytree with a leading batch axis, ``grads[l]["W"][n] = h^{l-1}_n (outer) delta^l_n``
    ``(B, n_{l-1}, n_l)`` and ``grads[l]["b"][n] = delta^l_n`` ``(B, n_l)``: the gradient of
    ``l_n`` alone, ``jax.vmap(jax.grad(jmlp.loss, argnums=1), (None, None, 0, 0))``.
    """
    xb, t = _inputs(net, params, x, y)
    return _chunked(lambda a, b: _grads_chunk(net, params, a, b), xb, t, chunk_size)


def per_example_grad_norms(
    net: MLP, params: Params, x, y, *, chunk_size: int | None = None
) -> tuple[Array, Array]:
    """Per-example losses and squared gradient norms without forming the gradients.

    ``||g_n||^2 = sum_l (||h^{l-1}_n||^2 + 1) ||delta^l_n||^2`` (weights and biases), from
    ``||a b^T||_F^2 = ||a||^2 ||b||^2``. Arguments as :func:`per_example_grads`.

    **Returns:** ``(losses (B,), sq_norms (B,))``; ``jnp.sqrt(sq_norms)`` are the norms.
    """
    xb, t = _inputs(net, params, x, y)
    return _chunked(lambda a, b: _norms_chunk(net, params, a, b), xb, t, chunk_size)
