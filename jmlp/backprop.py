"""The hand-written backward pass (the delta rule) and its autodiff twin.

With ``delta^l = dL/dz^l`` (shape ``(B, n_l)``) and ``s_n`` the batch weights (1/B for a mean):

- output layer: ``delta^L_n = s_n * g_n J_sigma(z^L_n)``, ``g = dl/dh^L`` from the loss table
  (element-wise: ``g * sigma'(z)``; softmax: ``s * (g - <g, s>)``), or the fused form
  ``delta^L_n = s_n dl/dz^L_n`` of ``jmlp.losses.FUSED``: ``s_n (h^L_n - t_n)`` for softmax +
  cross-entropy, sigmoid + binary cross-entropy, identity + half_sse, and the closed forms of
  sigmoid + cross-entropy and softmax + binary cross-entropy;
- hidden layers: ``delta^{l-1} = (delta^l W^l^T) * sigma'_{l-1}(z^{l-1})``;
- gradients: ``dL/dW^l = h^{l-1}^T delta^l``, ``dL/db^l = sum_n delta^l_n``, plus ``l2 W^l``.

The input layer's delta is never formed (nothing needs it), which autodiff's pass also skips.

The rule is written once, over a :class:`jmlp.layouts.Layout` (how each product is taken): the
batch-major layout of the documents for one network, and ``jmlp.layouts.member_columns`` for
``G`` networks on one shared batch (:func:`backprop_many`; :func:`member_pass` in
``jmlp.fit_many``).
"""

from functools import partial

import jax
import jax.numpy as jnp

from jmlp.checks import as_inputs, as_targets
from jmlp.forward import Cache, example_scale, forward_cache, l2_penalty, loss, per_example_loss
from jmlp.init import Params
from jmlp.layouts import Layout, batch_major, einsum, member_columns
from jmlp.net import MLP

Array = jax.Array
GRADIENTS = ("backprop", "autodiff")  # the two ways to the gradient: by hand, by jax.grad


def output_delta(net: MLP, cache: Cache, t: Array, scale: Array, axis: int = -1) -> Array:
    """``delta^L (B, n_out)`` for targets ``t (B, n_out)`` and batch weights ``scale (B,)``
    (``axis``: the class axis, where another layout puts it)."""
    z, h = cache.z[-1], cache.h[-1]
    scale = jnp.expand_dims(scale, axis)
    if net.fused is not None:
        return scale * net.fused.delta(z, h, t, axis=axis)
    g = scale * net.loss_fn.grad(h, t, axis=axis)
    return net.activations[-1].vjp(z, h, g, axis=axis)


def backward(
    net: MLP, params: Params, cache: Cache, delta: Array, layout: Layout | None = None
) -> list[Array]:
    """All deltas ``[delta^1, ..., delta^L]`` from ``delta^L``:
    ``delta^{l-1} = sigma'_{l-1}(z^{l-1}) * (delta^l W^l^T)`` (hidden activations are
    element-wise, so this holds in every layout)."""
    layout = layout or batch_major(net)
    deltas = [delta]
    for l in range(net.n_layers - 1, 0, -1):
        back = layout.back(delta, params[l])
        delta = net.activations[l - 1].vjp(cache.z[l - 1], cache.h[l], back)
        deltas.append(delta)
    return deltas[::-1]


def layer_grads(
    net: MLP, cache: Cache, deltas: list[Array], layout: Layout | None = None
) -> Params:
    """``[{"W": h^{l-1}^T delta^l, "b": sum_n delta^l_n}]``, the pytree ``jax.grad`` returns."""
    layout = layout or batch_major(net)
    return [layout.grads(h, delta) for h, delta in zip(cache.h, deltas)]


def delta_rule(
    net: MLP, params: Params, x: Array, t: Array, scale: Array, layout: Layout
) -> tuple[Array, Params, list[Array]]:
    """``(sum_n s_n l_n, grads, deltas)`` without L2: forward, output delta, delta rule, grads."""
    return cached_delta_rule(net, params, forward_cache(net, params, x, layout), t, scale, layout)


def cached_delta_rule(
    net: MLP, params: Params, cache: Cache, t: Array, scale: Array, layout: Layout
) -> tuple[Array, Params, list[Array]]:
    """:func:`delta_rule` from the forward pass's ``cache`` (kept for more quantities)."""
    t, scale = layout.examples(t), layout.examples(scale)
    losses = scale * per_example_loss(net, cache, t, layout.classes)
    delta = output_delta(net, cache, t, scale, layout.classes)
    deltas = backward(net, params, cache, delta, layout)
    return layout.batch_sum(losses), layer_grads(net, cache, deltas, layout), deltas


def with_l2(value: Array, grads: Params, params: Params, l2) -> tuple[Array, Params]:
    """``(value + l2/2 sum ||W||^2, grads with dW + l2 W)``; ``l2`` a number, or ``(G,)`` for
    stacked params (one coefficient per member)."""

    def add(g: Array, W: Array) -> Array:
        return g + jnp.reshape(l2, jnp.shape(l2) + (1,) * (W.ndim - jnp.ndim(l2))) * W

    grads = [{"W": add(g["W"], p["W"]), "b": g["b"]} for g, p in zip(grads, params)]
    return value + l2_penalty(params, l2), grads


def _forward_backward(net, params, x, y, l2, weights):
    xb = as_inputs(net, params, x)
    l2 = jnp.asarray(l2, xb.dtype)  # the params' dtype, whatever the type of l2
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    scale = example_scale(net, xb.shape[0], weights, xb.dtype)
    value, grads, deltas = delta_rule(net, params, xb, t, scale, batch_major(net))
    value, grads = with_l2(value, grads, params, l2)
    return value, grads, deltas


def backprop(net: MLP, params: Params, x, y, *, l2=0.0, weights=None) -> tuple[Array, Params]:
    """Loss and its gradient by the hand-written delta rule.

    **Arguments:** as :func:`jmlp.loss`: ``x (B, n_in)`` or ``(n_in,)``; ``y (B, n_out)`` or
    integer labels; ``l2`` the coupled L2 coefficient (weights only); ``weights (B,)`` optional.

    **Returns:** ``(value, grads)``, ``grads`` the same pytree as ``params`` (and as
    ``jax.grad(jmlp.loss, argnums=1)``).
    """
    value, grads, _ = _forward_backward(net, params, x, y, l2, weights)
    return value, grads


def autodiff(net: MLP, params: Params, x, y, *, l2=0.0, weights=None) -> tuple[Array, Params]:
    """``jax.value_and_grad`` of :func:`jmlp.loss` with respect to ``params``: the reference."""
    return jax.value_and_grad(loss, argnums=1)(net, params, x, y, l2=l2, weights=weights)


# ----------------------------------------------------------------------------- G networks at once


def member_pass(
    net: MLP, params: Params, x: Array, t: Array, scale: Array, l2: Array
) -> tuple[Array, Params]:
    """Losses ``(G,)`` and gradients of ``G`` networks (stacked params, ``W (G, n_in, n_out)``)
    on one shared batch ``x (B, n_0)``, target rows ``t (B, n_out)``, batch weights ``scale
    (B,)``, ``l2 (G,)``: the delta rule in the ``jmlp.layouts.member_columns`` layout."""
    # The barrier keeps W^T a real array: without it XLA folds the transpose into the matmuls
    # and runs W^T h with a non-minor contraction on a slower path.
    wt = jax.lax.optimization_barrier([jnp.swapaxes(p["W"], 1, 2) for p in params])
    columns = [{"W": w, "b": p["b"]} for w, p in zip(wt, params)]
    value, grads, _ = delta_rule(net, columns, x.T, t, scale, member_columns(net))
    return with_l2(value, grads, params, l2)


def backprop_many(net: MLP, params: Params, x, y, *, l2=0.0, weights=None) -> tuple[Array, Params]:
    """Losses and gradients of N networks on one shared batch, by the ensemble pass.

    **Arguments:** stacked ``params`` (``W (N, n_in, n_out)``, ``b (N, n_out)``); ``x (B, n_in)``
    and ``y`` as :func:`backprop`, shared by every member; ``l2`` a number or ``(N,)``;
    ``weights (B,)`` optional.

    **Returns:** ``(values (N,), grads)``, equal to
    ``jax.vmap(jmlp.backprop, (None, 0, None, None))(net, params, x, y)``.
    """
    first = jax.tree.map(lambda a: a[0], params)
    xb = as_inputs(net, first, x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    scale = example_scale(net, xb.shape[0], weights, xb.dtype)
    l2 = jnp.broadcast_to(jnp.asarray(l2, xb.dtype), params[0]["W"].shape[:1])
    return _member_pass_jit(net, params, xb, t, scale, l2)


_member_pass_jit = jax.jit(member_pass, static_argnums=0)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def custom_vjp_loss(net: MLP, params: Params, x, y, l2=0.0) -> Array:
    """:func:`jmlp.loss` whose reverse-mode derivative runs the hand-written backward pass.

    ``jax.grad(custom_vjp_loss, argnums=1)(net, params, x, y)`` equals :func:`backprop`'s
    gradient; so optax code that calls ``jax.grad`` trains on the hand-written rules. Cotangents:
    params and ``x`` (``delta^1 W^1^T``) and ``l2`` (``||W||^2 / 2``) exactly; ``y`` gets none
    (zero). Reverse mode only: use ``jax.test_util.check_grads(..., modes=["rev"])`` on it.
    """
    return loss(net, params, x, y, l2=l2)


def _custom_fwd(net, params, x, y, l2):
    value, grads, deltas = _forward_backward(net, params, x, y, l2, None)
    dx = einsum(net, "bo,oi->bi", deltas[0], params[0]["W"].T).reshape(jnp.shape(x))
    dl2 = 0.5 * sum(jnp.sum(p["W"] ** 2) for p in params)
    return value, (grads, dx.astype(jnp.result_type(x)), dl2, l2)


def _custom_bwd(net, residuals, g):
    grads, dx, dl2, l2 = residuals
    grads = jax.tree.map(lambda a: g * a, grads)
    return grads, g * dx, None, jnp.asarray(g * dl2, jnp.result_type(l2))


custom_vjp_loss.defvjp(_custom_fwd, _custom_bwd)
