"""Second order by hand: Hessian- and Gauss-Newton-vector products, the empirical NTK, sharpness.

Pearlmutter's R-operator (1994), ``R{f} = d/de f(params + e v)`` at ``e = 0``, applied to the
forward pass and to the delta rule of :mod:`jmlp.backprop`, for a params-shaped direction
``v = [{"W": V^l, "b": c^l}]``. With ``J_l`` the activation Jacobian at ``z^l`` (``diag(sigma')``;
softmax: ``diag(s) - s s^T``, symmetric, so the table's ``vjp`` also gives ``J u``):

    R-forward   R{h^0} = 0,  R{z^l} = R{h^{l-1}} W^l + h^{l-1} V^l + c^l,  R{h^l} = J_l R{z^l}
    output      R{delta^L} = s_n H_z R{z^L}   (fused pairs, their ``hvp``), otherwise
                R{delta^L} = J_L^T (s_n H_y R{h^L}) + D_L(s_n g, R{z^L}),  g = dl/dh^L, H_y = hess
    R-backward  R{delta^{l-1}} = J_{l-1}^T (R{delta^l} W^l^T + delta^l V^l^T)
                                 + D_{l-1}(delta^l W^l^T, R{z^{l-1}})
    Hv          [Hv]_{W^l} = R{h^{l-1}}^T delta^l + h^{l-1}^T R{delta^l} + l2 V^l
                [Hv]_{b^l} = sum_n R{delta^l}_n

``D(g, u) = d/dz [g J(z)] u`` is the activation's second-order term: ``g * sigma''(z) * u``
element-wise, :func:`~jmlp.activations.softmax_vjp_derivative` for softmax, and left out for the
piecewise-linear activations (``PIECEWISE_LINEAR``: identity, relu, leaky_relu), whose ``sigma''``
is 0 (so no work is spent on it). Kinks get the second derivative autodiff gives for the same
``jnp.where`` form (relu'' = 0 everywhere).

The generalized Gauss-Newton product ``G v = J^T H_out J v`` (``J = d out / d params``,
``H_out`` the per-example loss Hessian with respect to ``out``: ``z^L`` for fused pairs,
``h^L`` otherwise) is the plain delta rule run on ``delta^L = s_n H_out R{out}``: the R-forward
pass gives ``J v = R{out}``, the backward pass is ``J^T``.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jmlp.activations import PIECEWISE_LINEAR, Activation, softmax_vjp_derivative
from jmlp.backprop import backward, layer_grads, output_delta
from jmlp.checks import as_inputs, as_targets, param_dtype
from jmlp.forward import Cache, example_scale, forward_cache
from jmlp.init import Params
from jmlp.layouts import batch_major, einsum
from jmlp.net import MLP

Array = jax.Array


class _Point(NamedTuple):
    """Where the curvature is taken: forward cache, targets ``t (B, n_out)``, weights ``s_n``."""

    cache: Cache
    t: Array
    scale: Array


def _inputs(net: MLP, params: Params, x, y, weights) -> tuple[Array, Array, Array]:
    """``x (B, n_in)``, targets ``t (B, n_out)`` and batch weights ``s_n (B,)``, checked."""
    xb = as_inputs(net, params, x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    return xb, t, example_scale(net, xb.shape[0], weights, xb.dtype)


def _point(net: MLP, params: Params, xb: Array, t: Array, scale: Array) -> _Point:
    return _Point(forward_cache(net, params, xb), t, scale)


def _deltas(net: MLP, params: Params, point: _Point) -> list[Array]:
    cache, t, scale = point
    return backward(net, params, cache, output_delta(net, cache, t, scale))


def _as_direction(params: Params, v) -> Params:
    """``v`` cast to the params' dtype; ValueError naming ``v`` unless shaped like ``params``."""

    def shapes(tree):
        return [jnp.shape(a) for a in jax.tree.leaves(tree)]

    if jax.tree.structure(v) != jax.tree.structure(params) or shapes(v) != shapes(params):
        raise ValueError(
            f"v: expected a pytree shaped like params, {jax.tree.map(jnp.shape, params)}, "
            f"got {jax.tree.map(jnp.shape, v)!r:.200}"
        )
    return jax.tree.map(lambda a: jnp.asarray(a, param_dtype(params)), v)


def _curved(net: MLP) -> tuple[bool, ...]:
    """Per layer, input to output: whether its activation has a second-order term."""
    names = net.hidden_activations + (net.output_activation,)
    return tuple(name not in PIECEWISE_LINEAR for name in names)


def _vjp_derivative(act: Activation, z: Array, h: Array, g: Array, u: Array) -> Array:
    """``D(g, u) = d/dz [g J(z)] u`` with ``g`` fixed: ``g * sigma''(z) * u`` element-wise."""
    if act.deriv is None:  # softmax, the one activation whose Jacobian is not diagonal
        return softmax_vjp_derivative(z, h, g, u)
    return g * act.deriv2(z, h) * u


def _plus_l2(products: Params, v: Params, l2) -> Params:
    """``+ l2 V^l`` on the weights (left out when ``l2`` is the number 0)."""
    if isinstance(l2, (int, float)) and l2 == 0:
        return products
    return [{"W": g["W"] + l2 * dv["W"], "b": g["b"]} for g, dv in zip(products, v)]


def _r_forward(net: MLP, params: Params, cache: Cache, v: Params):
    """``[R{z^1}, ..., R{z^L}]`` and ``[R{h^1}, ..., R{h^L}]``, each ``(B, n_l)``."""
    rzs, rhs = [], []
    for l, (layer, dv, act) in enumerate(zip(params, v, net.activations)):
        rz = einsum(net, "bi,io->bo", cache.h[l], dv["W"]) + dv["b"][None, :]
        if l:  # R{h^0} = 0
            rz = rz + einsum(net, "bi,io->bo", rhs[-1], layer["W"])
        rzs.append(rz)
        rhs.append(act.vjp(cache.z[l], cache.h[l + 1], rz))
    return rzs, rhs


def _output_curvature(net: MLP, point: _Point, rz: Array, rh: Array, gauss_newton: bool) -> Array:
    """``s_n H_out R{out}`` as an output delta ``(B, n_out)``: the fused pair's ``hvp`` of
    ``R{z^L}``, or by the chain rule ``J^T (s_n H_y R{h^L})`` plus ``D(s_n g, R{z^L})`` for the
    full Hessian and for a fused pair without ``hvp`` (whose ``H_out`` is with respect to ``z^L``).
    """
    (z, h), t, s = (point.cache.z[-1], point.cache.h[-1]), point.t, point.scale[:, None]
    fused, act, loss = net.fused, net.activations[-1], net.loss_fn
    if fused is not None and fused.hvp is not None:
        return s * fused.hvp(z, h, t, rz)
    if loss.hess is None:
        raise ValueError(f"loss: {net.loss!r} has no second derivative (hess) in the loss table")
    r_delta = act.vjp(z, h, s * loss.hess(h, t) * rh)
    if (gauss_newton and fused is None) or not _curved(net)[-1]:
        return r_delta
    return r_delta + _vjp_derivative(act, z, h, s * loss.grad(h, t), rz)


def _r_backward(net: MLP, params: Params, v: Params, cache: Cache, rzs, deltas, r_delta):
    """``[R{delta^1}, ..., R{delta^L}]`` from ``R{delta^L}``, beside the deltas of ``backward``."""
    r_deltas, curved = [r_delta], _curved(net)
    for l in range(net.n_layers - 1, 0, -1):
        act, z, h = net.activations[l - 1], cache.z[l - 1], cache.h[l]
        r_back = einsum(net, "bo,oi->bi", r_delta, params[l]["W"].T)
        r_back = r_back + einsum(net, "bo,oi->bi", deltas[l], v[l]["W"].T)
        r_delta = act.vjp(z, h, r_back)
        if curved[l - 1]:
            back = batch_major(net).back(deltas[l], params[l])  # backward's: shared under jit
            r_delta = r_delta + _vjp_derivative(act, z, h, back, rzs[l - 1])
        r_deltas.append(r_delta)
    return r_deltas[::-1]


def _hessian_product(net: MLP, params: Params, point: _Point, deltas, v: Params, l2) -> Params:
    rzs, rhs = _r_forward(net, params, point.cache, v)
    r_out = _output_curvature(net, point, rzs[-1], rhs[-1], gauss_newton=False)
    r_deltas = _r_backward(net, params, v, point.cache, rzs, deltas, r_out)
    hv = layer_grads(net, point.cache, r_deltas)
    for l in range(1, net.n_layers):  # the R{h^{l-1}}^T delta^l term; R{h^0} = 0
        hv[l]["W"] = hv[l]["W"] + einsum(net, "ib,bo->io", rhs[l - 1].T, deltas[l])
    return _plus_l2(hv, v, l2)


def _gauss_newton_product(net: MLP, params: Params, point: _Point, v: Params, l2) -> Params:
    rzs, rhs = _r_forward(net, params, point.cache, v)
    delta = _output_curvature(net, point, rzs[-1], rhs[-1], gauss_newton=True)
    gv = layer_grads(net, point.cache, backward(net, params, point.cache, delta))
    return _plus_l2(gv, v, l2)


def hvp(net: MLP, params: Params, x, y, v: Params, *, l2=0.0, weights=None) -> Params:
    """Hessian of :func:`jmlp.loss` with respect to ``params``, times ``v``, by the R-operator.

    **Arguments:** as :func:`jmlp.loss` (``x (B, n_in)`` or ``(n_in,)``; ``y (B, n_out)`` rows or
    integer labels; ``l2``; ``weights (B,)``), and ``v`` a pytree shaped like ``params``.

    **Returns:** ``H v``, shaped like ``params`` (equal to ``jax.jvp(jax.grad(jmlp.loss))``):
    ``[{"W": R{h^{l-1}}^T delta^l + h^{l-1}^T R{delta^l} + l2 V^l, "b": sum_n R{delta^l}_n}]``.
    One forward, one R-forward, one backward and one R-backward pass (module docstring).
    """
    v = _as_direction(params, v)
    point = _point(net, params, *_inputs(net, params, x, y, weights))
    return _hessian_product(net, params, point, _deltas(net, params, point), v, l2)


def gnvp(net: MLP, params: Params, x, y, v: Params, *, l2=0.0, weights=None) -> Params:
    """Generalized Gauss-Newton matrix of :func:`jmlp.loss` times ``v``: ``J^T H_out J v + l2 V``.

    ``J = d out / d params`` and ``H_out = sum_n s_n d^2 l_n / d out_n^2`` with ``out = z^L`` for
    the fused pairs (softmax + cross-entropy: ``diag(s) - s s^T`` per example) and ``out = h^L``
    otherwise (``diag(hess)``). Positive semi-definite whenever ``H_out`` is: every loss of the
    table is convex in ``h^L`` (``hess >= 0``), and the fused pairs in ``z^L``. Arguments and
    returns as :func:`hvp`.
    """
    v = _as_direction(params, v)
    point = _point(net, params, *_inputs(net, params, x, y, weights))
    return _gauss_newton_product(net, params, point, v, l2)


def _jacobian_deltas(net: MLP, params: Params, x) -> tuple[list[Array], list[Array]]:
    """``[h^0, ..., h^{L-1}]`` ``(B, n_{l-1})`` and ``[D^1, ..., D^L]`` ``(B, n_out, n_l)`` with
    ``D^l[n, a] = d h^L_{n,a} / d z^l_n``: the delta rule seeded with the rows of ``J_L``."""
    cache = forward_cache(net, params, as_inputs(net, params, x))
    z, h, n_out = cache.z[-1], cache.h[-1], net.sizes[-1]
    seeds = jnp.broadcast_to(jnp.eye(n_out, dtype=z.dtype), (z.shape[0], n_out, n_out))
    rows = net.activations[-1].vjp(z[:, None, :], h[:, None, :], seeds)
    wide = Cache([a[:, None, :] for a in cache.h], [a[:, None, :] for a in cache.z])
    return cache.h[:-1], backward(net, params, wide, rows)


def _layer_kernel(net: MLP, h1: Array, h2: Array, d1: Array, d2: Array, trace: bool) -> Array:
    """``(<h1_i, h2_j> + 1) <D1_{i,a}, D2_{j,b}>``, as ``(B1, B2)`` summed over ``a = b`` or
    ``(B1, B2, n_out, n_out)``."""
    gram = einsum(net, "ik,kj->ij", h1, h2.T) + 1
    (b1, n_out, k), b2 = d1.shape, d2.shape[0]
    if trace:
        return gram * einsum(
            net, "ik,kj->ij", d1.reshape(b1, n_out * k), d2.reshape(b2, n_out * k).T
        )
    prod = einsum(net, "ik,kj->ij", d1.reshape(b1 * n_out, k), d2.reshape(b2 * n_out, k).T)
    return gram[:, :, None, None] * prod.reshape(b1, n_out, b2, n_out).transpose(0, 2, 1, 3)


def ntk(net: MLP, params: Params, x1, x2, *, trace: bool = True) -> Array:
    """Empirical neural tangent kernel of the network output ``h^L = jmlp.forward``.

    ``Theta(x_i, x'_j)_{ab} = <d h^L_a(x_i) / d params, d h^L_b(x'_j) / d params>``
    ``= sum_l (<h^{l-1}_i, h'^{l-1}_j> + 1) <D^l_{i,a}, D'^l_{j,b}>``, ``D^l_{i,a} = dh^L_a/dz^l``
    (the ``+ 1`` is the bias), from one forward and one ``n_out``-wide backward pass per input
    set, without forming the Jacobians. For the kernel of the logits of a softmax or sigmoid
    network, pass the same net with ``output_activation="identity"``.

    **Arguments:** ``x1 (B1, n_in)``, ``x2 (B2, n_in)`` (or ``(n_in,)``: that axis is dropped);
    ``trace``: sum over the outputs ``a = b``.

    **Returns:** ``(B1, B2)`` (``trace=True``) or ``(B1, B2, n_out, n_out)``.
    """
    n_in = net.sizes[0]
    for name, x in (("x1", x1), ("x2", x2)):
        if jnp.ndim(x) not in (1, 2) or jnp.shape(x)[-1] != n_in:
            raise ValueError(
                f"{name}: expected shape (batch, {n_in}) or ({n_in},), got {jnp.shape(x)}"
            )
    h1, d1 = _jacobian_deltas(net, params, x1)
    h2, d2 = (h1, d1) if x2 is x1 else _jacobian_deltas(net, params, x2)
    kernel = sum(_layer_kernel(net, *parts, trace) for parts in zip(h1, h2, d1, d2))
    if jnp.ndim(x2) == 1:
        kernel = kernel[:, 0]
    return kernel[0] if jnp.ndim(x1) == 1 else kernel


def _orthogonalize(basis: Array, w: Array) -> Array:
    """``w`` minus its projection on the rows of ``basis`` (twice: "twice is enough")."""
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def lanczos_max(matvec, n: int, steps: int, key: Array, dtype) -> Array:
    """Largest eigenvalue of the symmetric operator ``matvec: (n,) -> (n,)``: the top Ritz value
    of ``steps <= n`` Lanczos steps from ``jax.random.normal(key, (n,))`` (normalized), fully
    reorthogonalized; on a breakdown (an invariant subspace found) it restarts from a new random
    vector orthogonal to the basis, so ``steps = n`` gives every eigenvalue."""
    eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny

    def unit(a):
        return a / jnp.maximum(jnp.linalg.norm(a), tiny)

    def step(carry, i):
        basis, v, v_prev, beta = carry
        basis = basis.at[i].set(v)
        w = matvec(v) - beta * v_prev
        alpha = jnp.vdot(v, w)
        w = _orthogonalize(basis, w - alpha * v)
        beta_next = jnp.linalg.norm(w)
        breakdown = beta_next <= 10 * eps * (jnp.abs(alpha) + beta)
        fresh = jax.random.normal(jax.random.fold_in(key, i + 1), (n,), dtype)
        v_next = jnp.where(breakdown, unit(_orthogonalize(basis, fresh)), unit(w))
        beta_next = jnp.where(breakdown, jnp.zeros_like(beta_next), beta_next)
        return (basis, v_next, v, beta_next), (alpha, beta_next)

    v0 = unit(jax.random.normal(key, (n,), dtype))
    carry = (jnp.zeros((steps, n), dtype), v0, jnp.zeros_like(v0), jnp.zeros((), dtype))
    _, (alphas, betas) = jax.lax.scan(step, carry, jnp.arange(steps))
    off = betas[:-1]
    tridiagonal = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
    return jnp.linalg.eigvalsh(tridiagonal)[-1]


@partial(jax.jit, static_argnums=(0, 7))
def _sharpness(net: MLP, params: Params, xb, t, scale, l2, key, iters: int) -> Array:
    point = _point(net, params, xb, t, scale)
    deltas = _deltas(net, params, point)
    flat, unravel = ravel_pytree(params)

    def matvec(u):
        return ravel_pytree(_hessian_product(net, params, point, deltas, unravel(u), l2))[0]

    return lanczos_max(matvec, flat.size, min(iters, flat.size), key, flat.dtype)


def sharpness(
    net: MLP, params: Params, x, y, *, iters: int = 20, key: Array, l2=0.0, weights=None
) -> Array:
    """Largest eigenvalue of the Hessian of :func:`jmlp.loss` (jitted), by Lanczos on :func:`hvp`.

    Lanczos, not power iteration: it finds the largest eigenvalue, where power iteration finds
    the largest in magnitude (a negative one near a saddle); and its error falls like
    ``T_{k-1}(1 + 2 gamma)^-2 ~ exp(-4 k sqrt(gamma))`` (``gamma`` the relative gap below the top
    eigenvalue), where power iteration's falls like ``exp(-2 k gamma)``.

    Accuracy of ``iters = k``: the result ``theta`` never exceeds ``lambda_1`` (it is a Rayleigh
    quotient), and ``lambda_1 - theta <= (lambda_1 - lambda_n) (tan phi / T_{k-1}(1 + 2 gamma))^2``
    (Kaniel-Paige-Saad), ``phi`` the angle between the random start and the top eigenvector,
    ``gamma = (lambda_1 - lambda_2) / (lambda_2 - lambda_n)``. With ``iters`` >= the number of
    parameters it is exact to rounding (fully reorthogonalized; ``iters`` is capped there).

    **Arguments:** as :func:`jmlp.loss`; ``iters``: Lanczos steps (one :func:`hvp` each); ``key``:
    draws the start vector, ``jax.random.normal(key, (P,))`` over the flattened parameters.

    **Returns:** a scalar in the parameters' dtype.
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters: expected an int >= 1, got {iters!r}")
    return _sharpness(net, params, *_inputs(net, params, x, y, weights), l2, key, iters)
