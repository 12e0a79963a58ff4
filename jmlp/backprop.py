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
"""

from functools import partial

import jax
import jax.numpy as jnp

from jmlp.forward import (
    MLP,
    Cache,
    as_inputs,
    as_targets,
    example_scale,
    forward_cache,
    l2_penalty,
    loss,
    matmul,
    per_example_loss,
)
from jmlp.init import Params

Array = jax.Array


def output_delta(net: MLP, cache: Cache, t: Array, scale: Array) -> Array:
    """``delta^L (B, n_out)`` for targets ``t (B, n_out)`` and batch weights ``scale (B,)``."""
    z, h = cache.z[-1], cache.h[-1]
    if net.fused is not None:
        return scale[:, None] * net.fused.delta(z, h, t)
    g = scale[:, None] * net.loss_fn.grad(h, t)
    return net.activations[-1].vjp(z, h, g)


def backward(net: MLP, params: Params, cache: Cache, delta: Array) -> list[Array]:
    """All deltas ``[delta^1, ..., delta^L]`` from ``delta^L``:
    ``delta^{l-1} = sigma'_{l-1}(z^{l-1}) * (delta^l W^l^T)`` (as a vjp for softmax)."""
    deltas = [delta]
    for l in range(net.n_layers - 1, 0, -1):
        back = matmul(net, delta, params[l]["W"].T)
        delta = net.activations[l - 1].vjp(cache.z[l - 1], cache.h[l], back)
        deltas.append(delta)
    return deltas[::-1]


def layer_grads(net: MLP, cache: Cache, deltas: list[Array]) -> Params:
    """``[{"W": h^{l-1}^T delta^l, "b": sum_n delta^l_n}]``, the pytree ``jax.grad`` returns."""
    return [
        {"W": matmul(net, h.T, delta), "b": jnp.sum(delta, axis=0)}
        for h, delta in zip(cache.h, deltas)
    ]


def _forward_backward(net, params, x, y, l2, weights):
    xb = as_inputs(net, params, x)
    l2 = jnp.asarray(l2, xb.dtype)  # the params' dtype, whatever the type of l2
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    cache = forward_cache(net, params, xb)
    scale = example_scale(net, xb.shape[0], weights, xb.dtype)
    value = jnp.sum(scale * per_example_loss(net, cache, t)) + l2_penalty(params, l2)
    deltas = backward(net, params, cache, output_delta(net, cache, t, scale))
    grads = layer_grads(net, cache, deltas)
    grads = [{"W": g["W"] + l2 * p["W"], "b": g["b"]} for g, p in zip(grads, params)]
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
    dx = matmul(net, deltas[0], params[0]["W"].T).reshape(jnp.shape(x))
    dl2 = 0.5 * sum(jnp.sum(p["W"] ** 2) for p in params)
    return value, (grads, dx.astype(jnp.result_type(x)), dl2, l2)


def _custom_bwd(net, residuals, g):
    grads, dx, dl2, l2 = residuals
    grads = jax.tree.map(lambda a: g * a, grads)
    return grads, g * dx, None, jnp.asarray(g * dl2, jnp.result_type(l2))


custom_vjp_loss.defvjp(_custom_fwd, _custom_bwd)
