"""Quantities beyond the gradient from the hand-written backward pass (BackPACK's, for an MLP).

Each is of :func:`jmlp.loss` ``L = sum_n s_n l_n`` as the net defines it (``s_n``: 1/B, 1 or the
normalised ``weights``) and is built from the forward cache ``h^{l-1}`` and backpropagated
vectors, never from per-example gradients or Jacobians.

- **Output-Hessian factors.** Per example, the Hessian of ``s_n l_n`` with respect to the
  output ``out = z^L`` is written ``H_n = sum_c e_{n,c} r_{n,c} r_{n,c}^T``, rows ``r (B, k,
  n_out)`` with signs ``e (B, k)`` (+1 where ``H_n`` is positive semi-definite and ``s_n > 0``).
  Each row is backpropagated by the delta rule, ``d^L = r``, ``d^{l-1} = (d^l W^l^T) *
  sigma'(z^{l-1})``, so that ``G^l_n = sum_c e_c d^l_c d^l_c^T`` is the matrix ``J^T H_n J`` of
  ``z^l``.
- **Diagonals.** ``diag[W^l]_{ij} = sum_n (h^{l-1}_{n,i})^2 G^l_{n,jj}``,
  ``diag[b^l]_j = sum_n G^l_{n,jj}``: ``z^l_n`` is linear in ``W^l`` with coefficients
  ``h^{l-1}_n``.
- **Exact Hessian.** Backward through a hidden layer the Hessian of ``z^{l-1}`` gains the
  activation's term ``diag(r)``, ``r = sigma''(z^{l-1}) * (delta^l W^l^T)`` (``delta`` the
  gradient's deltas; BackPACK's "residual", none for piecewise-linear activations): added to
  that layer's diagonal, and sent further down as one signed row ``sqrt|r_j| e_j`` per unit.

The GGN is the one :func:`jmlp.gnvp` multiplies by: ``out = z^L`` with the full Hessian in
``z^L`` for the fused pairs (``jmlp.losses.FUSED``), ``H = J_sigma^T diag(s_n hess) J_sigma``
otherwise. Parameters are ordered ``[W; b]`` in the Kronecker factors: layer ``l``'s block
flattens ``concatenate([W, b[None]])``, ``(n_in + 1, n_out)``, row-major.
"""

import jax
import jax.numpy as jnp

from jmlp.activations import PIECEWISE_LINEAR, sigmoid_deriv, softmax_vjp_derivative
from jmlp.backprop import backward, layer_grads, output_delta
from jmlp.checks import as_inputs, as_targets
from jmlp.forward import Cache, example_scale, forward_cache
from jmlp.init import Params
from jmlp.layouts import einsum
from jmlp.net import MLP

Array = jax.Array
KINDS = ("kflr", "kfac")


# --- symmetric factors of the output Hessian, per (output activation, loss) ---------------------
def _diagonal(d: Array) -> Array:
    """Rows ``(B, n, n)`` with ``d (B, n)`` on the diagonal."""
    return d[:, :, None] * jnp.eye(d.shape[-1], dtype=d.dtype)[None]


def _softmax_cross_entropy_rows(z: Array, h: Array, t: Array) -> Array:
    """``r_c = sqrt(T p_c) (e_c - p)``: ``sum_c r_c r_c^T = T (diag p - p p^T)``, ``T = sum t``
    (uses ``sum p = 1``)."""
    total = jnp.sum(t, axis=-1, keepdims=True)
    eye = jnp.eye(h.shape[-1], dtype=h.dtype)
    return jnp.sqrt(total * h)[:, :, None] * (eye[None] - h[:, None, :])


# Rows ``r (B, n, n)`` with ``sum_c r_c r_c^T = d^2 l / dz^2`` (unit weight) of the fused pairs
# whose Hessian is positive semi-definite; written from the closed forms of jmlp.losses.FUSED.
FACTORS = {
    ("softmax", "cross_entropy"): _softmax_cross_entropy_rows,
    ("sigmoid", "binary_cross_entropy"): lambda z, h, t: _diagonal(jnp.sqrt(sigmoid_deriv(z, h))),
    ("identity", "half_sse"): lambda z, h, t: _diagonal(jnp.ones_like(z)),
    ("sigmoid", "cross_entropy"): lambda z, h, t: _diagonal(jnp.sqrt(t * sigmoid_deriv(z, h))),
    ("exp", "poisson"): lambda z, h, t: _diagonal(jnp.sqrt(h)),  # d^2l/dz^2 = diag(e^z)
}


def _gauss_newton_rows(net: MLP, z: Array, h: Array, t: Array) -> Array:
    """``r_c = sqrt(hess_c) e_c J_sigma``: ``sum_c r_c r_c^T = J_sigma^T diag(hess) J_sigma``
    (every loss of the table is convex in ``h^L``, ``hess >= 0``)."""
    seeds = _diagonal(jnp.sqrt(net.loss_fn.hess(h, t)))
    return net.activations[-1].vjp(z[:, None, :], h[:, None, :], seeds)


def _softmax_hessian(net: MLP, z: Array, h: Array, t: Array) -> Array:
    """``d^2 l / dz^2 (B, n, n) = J^T diag(hess) J + sum_k g_k d^2 s_k / dz^2`` of a softmax
    output, ``J = diag(s) - s s^T``, ``g = dl/ds``: the chain rule through the tables (as
    :func:`jmlp.hvp` takes it)."""
    act, loss = net.activations[-1], net.loss_fn
    zb, hb = z[:, None, :], h[:, None, :]
    eye = jnp.broadcast_to(jnp.eye(z.shape[-1], dtype=z.dtype), zb.shape[:1] + 2 * zb.shape[-1:])
    rows = act.vjp(zb, hb, eye)  # e_c J (J is symmetric)
    first = act.vjp(zb, hb, loss.hess(h, t)[:, None, :] * rows)
    return first + softmax_vjp_derivative(zb, hb, loss.grad(h, t)[:, None, :], eye)


def _signed_rows(hessian: Array) -> tuple[Array, Array]:
    """Rows and signs of a symmetric ``(B, n, n)``: ``r_c = sqrt|lambda_c| v_c``, ``sign lambda_c``
    (its eigen-decomposition; the one factor of an indefinite matrix)."""
    lam, vectors = jnp.linalg.eigh(0.5 * (hessian + jnp.swapaxes(hessian, 1, 2)))
    return jnp.swapaxes(vectors, 1, 2) * jnp.sqrt(jnp.abs(lam))[:, :, None], jnp.sign(lam)


def output_factor(net: MLP, cache: Cache, t: Array, exact: bool) -> tuple[Array, Array | None]:
    """Rows ``r (B, k, n_out)`` and signs ``(B, k)`` (None: all +1) with ``sum_c e_c r_c r_c^T``
    the per-example output Hessian in ``z^L`` of unit weight: the Gauss-Newton one
    (``exact=False``, as :func:`jmlp.gnvp`) or the exact ``d^2 l / d(z^L)^2``."""
    z, h = cache.z[-1], cache.h[-1]
    pair = (net.output_activation, net.loss)
    if pair in FACTORS:
        return FACTORS[pair](z, h, t), None
    if net.fused is None and not exact:
        return _gauss_newton_rows(net, z, h, t), None
    if net.activations[-1].deriv is None:  # softmax: a full, possibly indefinite matrix
        return _signed_rows(_softmax_hessian(net, z, h, t))
    act, loss = net.activations[-1], net.loss_fn
    d = loss.hess(h, t) * act.deriv(z, h) ** 2 + loss.grad(h, t) * act.deriv2(z, h)
    return _diagonal(jnp.sqrt(jnp.abs(d))), jnp.sign(d)


def _weighted(rows: Array, signs: Array | None, scale: Array) -> tuple[Array, Array]:
    """Rows times ``sqrt|s_n|`` and signs times ``sign s_n``: the factor of ``s_n H_n``."""
    signs = jnp.ones(rows.shape[:2], rows.dtype) if signs is None else signs
    return rows * jnp.sqrt(jnp.abs(scale))[:, None, None], signs * jnp.sign(scale)[:, None]


# --- Monte Carlo factors: gradients at targets drawn from the model ------------------------------
def _categorical_rows(key: Array, z: Array, h: Array, t: Array, samples: int) -> Array:
    """``sqrt(T) (p - e_y)``, ``y ~ softmax(z)``: ``E[r r^T] = T (diag p - p p^T)``."""
    labels = jax.random.categorical(key, z, shape=(samples, z.shape[0])).T
    onehot = jax.nn.one_hot(labels, z.shape[-1], dtype=z.dtype)
    return jnp.sqrt(jnp.sum(t, axis=-1))[:, None, None] * (h[:, None, :] - onehot)


def _bernoulli_rows(key: Array, z: Array, h: Array, t: Array, samples: int) -> Array:
    """``sigma(z) - y``, ``y_k ~ Bernoulli(sigma(z_k))``: ``E[r r^T] = diag(sigma (1 - sigma))``."""
    draws = jax.random.bernoulli(key, h[:, None, :], (z.shape[0], samples, z.shape[-1]))
    return h[:, None, :] - draws.astype(h.dtype)


def _poisson_rows(key: Array, z: Array, h: Array, t: Array, samples: int) -> Array:
    """``e^z - y``, ``y_k ~ Poisson(e^z_k)``: ``E[r r^T] = diag(e^z)``."""
    draws = jax.random.poisson(key, h[:, None, :], (z.shape[0], samples, z.shape[-1]))
    return h[:, None, :] - draws.astype(h.dtype)


# The fused pairs that are a negative log-likelihood: a target drawn from the model's predictive
# distribution, r = dl/dz there. Every other pair draws r = sum_c eps_c r_c, eps ~ N(0, I), which
# for mse and half_sse is dl/dz at a target drawn from the Gaussian N(h^L, 1 / hess).
SAMPLERS = {
    ("softmax", "cross_entropy"): _categorical_rows,
    ("sigmoid", "binary_cross_entropy"): _bernoulli_rows,
    ("exp", "poisson"): _poisson_rows,
}


def sampled_factor(
    net: MLP, cache: Cache, t: Array, key: Array, samples: int
) -> tuple[Array, Array | None]:
    """Rows ``(B, k, n_out)``, signs as :func:`output_factor`, with
    ``E[sum_c e_c r_c r_c^T]`` the Gauss-Newton output Hessian (``k = samples``, or twice that
    for an indefinite one: its positive and negative parts drawn apart)."""
    z, h = cache.z[-1], cache.h[-1]
    pair = (net.output_activation, net.loss)
    if pair in SAMPLERS:
        return SAMPLERS[pair](key, z, h, t, samples) * samples**-0.5, None
    rows, signs = output_factor(net, cache, t, exact=False)
    eps = jax.random.normal(key, (z.shape[0], samples, rows.shape[1]), z.dtype) * samples**-0.5
    if signs is None:
        return jnp.einsum("bmk,bkn->bmn", eps, rows), None
    parts = [jnp.einsum("bmk,bkn->bmn", eps * (signs == e)[:, None, :], rows) for e in (1, -1)]
    ones = jnp.ones((z.shape[0], samples), z.dtype)
    return jnp.concatenate(parts, axis=1), jnp.concatenate([ones, -ones], axis=1)


# --- backpropagating the rows ---------------------------------------------------------------------
def _setup(net: MLP, params: Params, x, y, weights) -> tuple[Cache, Array, Array]:
    """Forward cache, targets ``t (B, n_out)`` and batch weights ``s_n (B,)``, checked."""
    xb = as_inputs(net, params, x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    return forward_cache(net, params, xb), t, example_scale(net, xb.shape[0], weights, xb.dtype)


def _wide(cache: Cache) -> Cache:
    """The cache with a rows axis, ``(B, 1, n_l)``, to broadcast against ``(B, k, n_l)``."""
    return Cache([a[:, None, :] for a in cache.h], [a[:, None, :] for a in cache.z])


def _curvature(
    h: Array, d: Array, signs: Array, net: MLP, per_example: bool, r: Array | None = None
) -> dict:
    """``{"W": sum_n h_n^2 G_nn, "b": sum_n G_nn}`` from rows ``d (B, k, n_l)``, ``G_nn (B, n_l)
    = sum_c e_c d_c^2 (+ r)`` the diagonal of ``G^l_n``; ``per_example``: without ``sum_n``."""
    g = jnp.einsum("bk,bkj->bj", signs, d * d)
    g = g if r is None else g + r
    if per_example:
        return {"W": (h * h)[:, :, None] * g[:, None, :], "b": g}
    return {"W": einsum(net, "...i,io->...o", (h * h).T, g), "b": jnp.sum(g, axis=0)}


def _plus_l2(diagonal: Params, l2) -> Params:
    """``+ l2`` on the weights' diagonal (left out when ``l2`` is the number 0)."""
    if isinstance(l2, (int, float)) and l2 == 0:
        return diagonal
    return [{"W": d["W"] + l2, "b": d["b"]} for d in diagonal]


def _check_flags(per_example, l2) -> None:
    if not isinstance(per_example, bool):
        raise TypeError(f"per_example: expected True or False, got {per_example!r}")
    if per_example and not (isinstance(l2, (int, float)) and l2 == 0):
        raise ValueError(f"l2: the per-example terms carry no L2 term; got l2={l2!r}")


def _check_samples(samples) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected an int >= 1, got {samples!r}")


def _ggn_diagonal(
    net: MLP, params: Params, cache: Cache, rows: Array, signs: Array, per_example: bool
) -> Params:
    """The diagonal from output rows ``(B, k, n_out)``: each sent back by the delta rule."""
    ds = backward(net, params, _wide(cache), rows)
    return [_curvature(h, d, signs, net, per_example) for h, d in zip(cache.h, ds)]


def diag_ggn(
    net: MLP, params: Params, x, y, *, per_example: bool = False, l2=0.0, weights=None
) -> Params:
    """Exact diagonal of the generalized Gauss-Newton matrix that :func:`jmlp.gnvp` multiplies by.

    ``diag[W^l]_{ij} = sum_n (h^{l-1}_{n,i})^2 sum_c (d^l_{n,c,j})^2 (+ l2)``,
    ``diag[b^l]_j = sum_n sum_c (d^l_{n,c,j})^2``, with ``d^l_{n,c}`` the ``c``-th row of a
    symmetric factor of the output Hessian ``s_n H_n`` (at most ``n_out`` rows) backpropagated to
    ``z^l`` (module docstring).

    **Arguments:** as :func:`jmlp.loss` (``x (B, n_in)`` or ``(n_in,)``, ``y``, ``l2``, ``weights
    (B,)``); ``per_example``: example ``n``'s term of the sum, with a leading ``(B,)`` axis.

    **Returns:** a pytree shaped like ``params`` (leaves ``(B, ...)`` with ``per_example``).
    """
    _check_flags(per_example, l2)
    cache, t, scale = _setup(net, params, x, y, weights)
    rows, signs = _weighted(*output_factor(net, cache, t, exact=False), scale)
    return _plus_l2(_ggn_diagonal(net, params, cache, rows, signs, per_example), l2)


def diag_ggn_mc(
    net: MLP, params: Params, x, y, *, key: Array, samples: int = 1, l2=0.0, weights=None
) -> Params:
    """Monte Carlo estimate of :func:`diag_ggn` (unbiased: its mean over keys is ``diag_ggn``).

    As :func:`diag_ggn` with the factor's rows replaced by ``samples`` gradients ``dl/dz^L`` at
    targets drawn from the model's predictive distribution (softmax + cross-entropy: a class
    ``y ~ softmax(z^L)``, giving ``p - e_y``; sigmoid + binary cross-entropy: ``y_k ~
    Bernoulli(h_k)``; exp + poisson: ``y_k ~ Poisson(h_k)``; mse and half_sse: a Gaussian around
    ``h^L``), each divided by ``sqrt(samples)``;
    other losses: ``sum_c eps_c r_c`` with ``eps ~ N(0, I)``. ``samples`` backpropagated vectors
    per example instead of ``n_out``.

    **Arguments:** as :func:`diag_ggn`; ``key``: a ``jax.random`` key; ``samples``: an int >= 1.

    **Returns:** a pytree shaped like ``params``.
    """
    _check_samples(samples)
    cache, t, scale = _setup(net, params, x, y, weights)
    rows, signs = _weighted(*sampled_factor(net, cache, t, key, samples), scale)
    return _plus_l2(_ggn_diagonal(net, params, cache, rows, signs, False), l2)


def _residual(net: MLP, params: Params, cache: Cache, deltas, l: int) -> Array | None:
    """``r = sigma''(z^l) * (delta^{l+1} W^{l+1}^T)`` ``(B, n_l)`` (0-based ``l``: hidden layer
    ``l + 1``), the activation's term ``diag(r)`` of the Hessian of ``z^l``; None where
    ``sigma'' = 0``."""
    if net.hidden_activations[l] in PIECEWISE_LINEAR:
        return None
    act, z, h = net.activations[l], cache.z[l], cache.h[l + 1]
    return act.deriv2(z, h) * einsum(net, "...i,io->...o", deltas[l + 1], params[l + 1]["W"].T)


def _hessian_rows(net: MLP, params: Params, cache: Cache, t: Array, scale: Array):
    """Per layer, input to output, rows ``(B, k_l, n_l)``, signs and residual ``r`` (or None) with
    ``sum_c e_c d_c d_c^T + diag(r)`` the Hessian of ``z^l``. Going down a layer, ``diag(r)``
    becomes the rows ``sqrt|r_j| e_j W^T`` with signs ``sign r_j`` (never a dense diagonal)."""
    rows, signs = _weighted(*output_factor(net, cache, t, exact=True), scale)
    deltas = backward(net, params, cache, output_delta(net, cache, t, scale))
    out, r = [(rows, signs, None)], None
    for l in range(net.n_layers - 2, -1, -1):
        w_t = params[l + 1]["W"].T
        back = einsum(net, "...i,io->...o", rows, w_t)
        if r is not None:
            back = jnp.concatenate([back, jnp.sqrt(jnp.abs(r))[:, :, None] * w_t[None]], axis=1)
            signs = jnp.concatenate([signs, jnp.sign(r)], axis=1)
        rows = net.activations[l].vjp(cache.z[l][:, None, :], cache.h[l + 1][:, None, :], back)
        r = _residual(net, params, cache, deltas, l)
        out.append((rows, signs, r))
    return out[::-1]


def diag_hessian(
    net: MLP, params: Params, x, y, *, per_example: bool = False, l2=0.0, weights=None
) -> Params:
    """Exact diagonal of the Hessian of :func:`jmlp.loss` (what ``jax.hessian`` has on its diagonal).

    As :func:`diag_ggn`, with the exact output Hessian ``d^2 (s_n l_n) / d(z^L)^2`` factored
    (signed rows where it is indefinite) and, at each hidden layer with ``sigma'' != 0``, the
    activation's term ``diag(r)``, ``r = sigma''(z^l) * (delta^{l+1} W^{l+1}^T)``: added to that
    layer's diagonal, and sent further down as one signed row per unit (``n_out`` plus the curved
    hidden widths above, rows per example).

    **Arguments, returns:** as :func:`diag_ggn`.
    """
    _check_flags(per_example, l2)
    cache, t, scale = _setup(net, params, x, y, weights)
    layers = _hessian_rows(net, params, cache, t, scale)
    diagonal = [_curvature(h, d, e, net, per_example, r) for h, (d, e, r) in zip(cache.h, layers)]
    return _plus_l2(diagonal, l2)


def kfac_factors(
    net: MLP,
    params: Params,
    x,
    y,
    *,
    kind: str = "kflr",
    key: Array | None = None,
    samples: int = 1,
    weights=None,
) -> list[dict[str, Array]]:
    """Kronecker factors of the Gauss-Newton blocks: ``kron(A^l, G^l)`` approximates the GGN block
    of layer ``l``'s parameters ordered as ``concatenate([W, b[None]]).ravel()`` (row-major) and
    equals it for a batch of one.

    ``A^l = sum_n s_n a_n a_n^T / sum_n s_n`` (``(1/B) sum_n a_n a_n^T`` without ``weights``),
    ``a_n = [h^{l-1}_n, 1]``; ``G^l = sum_n sum_c e_c d^l_{n,c} d^l_{n,c}^T`` with the rows of
    :func:`diag_ggn` (``kind="kflr"``, exact) or of :func:`diag_ggn_mc` (``kind="kfac"``,
    ``samples`` draws with ``key``).

    **Returns:** per layer ``{"A": (n_in + 1, n_in + 1), "G": (n_out, n_out)}``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if kind == "kfac" and key is None:
        raise ValueError("key: kind='kfac' samples targets and needs a jax.random key")
    _check_samples(samples)
    cache, t, scale = _setup(net, params, x, y, weights)
    return cache_factors(net, params, cache, t, scale, kind, key, samples)


def cache_factors(
    net: MLP, params: Params, cache: Cache, t: Array, scale: Array, kind: str, key, samples: int
) -> list[dict[str, Array]]:
    """:func:`kfac_factors` from a forward ``cache``, targets ``t (B, n_out)`` and batch
    weights ``scale (B,)`` (the training step's, whose gradient shares the cache)."""
    factor = (
        output_factor(net, cache, t, exact=False)
        if kind == "kflr"
        else sampled_factor(net, cache, t, key, samples)
    )
    rows, signs = _weighted(*factor, scale)
    ds = backward(net, params, _wide(cache), rows)
    return [_kronecker_factors(net, h, d, signs, scale) for h, d in zip(cache.h, ds)]


def _kronecker_factors(
    net: MLP, h: Array, d: Array, signs: Array, scale: Array
) -> dict[str, Array]:
    """``A = sum_n s_n a_n a_n^T / sum_n s_n``, ``a_n = [h_n, 1]``; ``G = sum_{n,c} e_c d_c
    d_c^T`` (rows of weight 0, the padding of a batch, count in neither)."""
    a = jnp.concatenate([h, jnp.ones_like(h[:, :1])], axis=1)
    rows = d.reshape(-1, d.shape[-1])
    weighted = (d * signs[:, :, None]).reshape(rows.shape)
    return {
        "A": einsum(net, "...i,io->...o", (a * (scale / jnp.sum(scale))[:, None]).T, a),
        "G": einsum(net, "...i,io->...o", weighted.T, rows),
    }


# --- first order: the per-example terms of the gradient, never formed ----------------------------
def _example_deltas(net: MLP, params: Params, x, y, weights) -> tuple[Cache, list[Array]]:
    cache, t, scale = _setup(net, params, x, y, weights)
    return cache, backward(net, params, cache, output_delta(net, cache, t, scale))


def sum_grad_squared(net: MLP, params: Params, x, y, *, weights=None) -> Params:
    """``sum_n g_n^2`` element-wise, ``g_n`` example ``n``'s term of the gradient (they sum to it):
    ``[W^l] = (h^{l-1})^2^T (delta^l)^2``, ``[b^l] = sum_n (delta^l_n)^2``.

    **Arguments:** as :func:`jmlp.loss` (no ``l2``: it is no example's term).
    **Returns:** a pytree shaped like ``params``.
    """
    cache, deltas = _example_deltas(net, params, x, y, weights)
    return layer_grads(net, Cache([h * h for h in cache.h], cache.z), [d * d for d in deltas])


def grad_variance(net: MLP, params: Params, x, y, *, weights=None) -> Params:
    """``(1/B) sum_n (g_n - g_bar)^2 = (1/B) sum_n g_n^2 - g_bar^2``, ``g_bar = (1/B) sum_n g_n``,
    with ``g_n`` as in :func:`sum_grad_squared` (``s_n`` included: ``g_n`` sum to the gradient).

    **Arguments, returns:** as :func:`sum_grad_squared`.
    """
    cache, deltas = _example_deltas(net, params, x, y, weights)
    batch = cache.h[0].shape[0]
    squares = layer_grads(net, Cache([h * h for h in cache.h], cache.z), [d * d for d in deltas])
    grads = layer_grads(net, cache, deltas)
    return jax.tree.map(lambda s, g: s / batch - (g / batch) ** 2, squares, grads)
