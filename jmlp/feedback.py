"""Learning rules beyond backprop: the delta rule with another matrix carrying the error back.

Backprop sends the error from layer l to layer l-1 through the transpose of the forward weights,
``delta^{l-1} = (delta^l W^l^T) * sigma'_{l-1}(z^{l-1})``. The rules here replace that product:

- ``"fa"``, feedback alignment (Lillicrap et al. 2016): a fixed random ``B^l`` shaped like
  ``W^l`` ``(n_{l-1}, n_l)``: ``delta^{l-1} = (delta^l B^l^T) * sigma'_{l-1}(z^{l-1})``;
- ``"dfa"``, direct feedback alignment (Nokland 2016): the output delta straight to every hidden
  layer through a fixed random ``B^l (n_L, n_l)``: ``delta^l = (delta^L B^l) * sigma'_l(z^l)``;
- ``"sign"``, sign symmetry (Liao, Leibo & Poggio 2016; Xiao et al. 2018): ``B^l = sign(W^l)``
  at each step, in the place of ``W^l``;
- ``"backprop"``: ``B^l = W^l``, the true gradient.

The output delta ``delta^L`` and the update of every layer from its delta
(``dW^l = h^{l-1}^T delta^l + l2 W^l``, ``db^l = sum_n delta^l_n``) are backprop's (the output
layer's update is the true gradient's). The matrices are ``[B^2, ..., B^L]`` (fa) or
``[B^1, ..., B^{L-1}]`` (dfa), a plain list: stacked on a leading member axis, ``jax.vmap`` runs
one rule over many networks, each with its own matrices.

References: T. P. Lillicrap, D. Cownden, D. B. Tweed, C. J. Akerman, "Random synaptic feedback
weights support error backpropagation for deep learning", Nature Communications 7, 13276 (2016).
A. Nokland, "Direct feedback alignment provides learning in deep neural networks", NeurIPS 2016.
Q. Liao, J. Z. Leibo, T. Poggio, "How important is weight symmetry in backpropagation?", AAAI
2016. W. Xiao, H. Chen, Q. Liao, T. Poggio, "Biologically-plausible learning algorithms can scale
to large datasets", arXiv:1811.03567 (2018).
"""

import itertools
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp

from jmlp.activations import unknown_name
from jmlp.backprop import backward, layer_grads, output_delta, with_l2
from jmlp.checks import as_inputs, as_targets, param_dtype
from jmlp.forward import Cache, example_scale, forward_cache, per_example_loss
from jmlp.init import Params, check_sizes
from jmlp.layouts import einsum
from jmlp.net import MLP

Array = jax.Array
Feedback = list[Array]
RULES = ("backprop", "fa", "dfa", "sign")


def feedback_shapes(sizes: Sequence[int], rule: str) -> list[tuple[int, int]]:
    """The shapes of a rule's matrices: ``(n_{l-1}, n_l)`` for l = 2..L (fa), ``(n_L, n_l)`` for
    l = 1..L-1 (dfa), none (sign, backprop)."""
    _check_rule(rule)
    sizes = check_sizes(sizes)
    if rule == "fa":
        return list(itertools.pairwise(sizes[1:]))
    if rule == "dfa":
        return [(sizes[-1], n) for n in sizes[1:-1]]
    return []


def init_feedback(
    key: jax.Array,
    sizes: Sequence[int],
    rule: str,
    *,
    scale: float | None = None,
    dtype: jnp.dtype = jnp.float32,
) -> Feedback:
    """Draw the fixed feedback matrices of ``rule`` for layer widths ``sizes = (n_0, ..., n_L)``.

    Every entry is drawn independently from ``U(-a, a)``: uniform, as both papers draw them.
    ``a = scale`` if given, else ``a = 1 / sqrt(fan)``, ``fan`` the number of error signals each
    receiving unit sums: ``n_l`` for fa's ``B^l (n_{l-1}, n_l)``, ``n_L`` for dfa's
    ``B^l (n_L, n_l)`` (so the fed-back signal keeps its size whatever the widths).

    **Arguments:** ``key`` a ``jax.random`` key (one sub-key per matrix); ``sizes`` as
    :func:`jmlp.init_params`; ``rule`` one of :data:`RULES`; ``scale`` the bound ``a``;
    ``dtype`` the params' floating dtype.

    **Returns:** ``[B^2, ..., B^L]`` (fa), ``[B^1, ..., B^{L-1}]`` (dfa), ``[]`` (sign, backprop).
    """
    shapes = feedback_shapes(sizes, rule)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype!r}")
    if scale is not None and not _positive(scale):
        raise ValueError(
            f"scale: expected a positive number (the bound a of U(-a, a)), got {scale!r}"
        )
    if not shapes:
        return []
    try:
        keys = jax.random.split(key, len(shapes))
    except (TypeError, ValueError):
        raise TypeError(
            f"key: expected one jax.random key, e.g. jax.random.key(0), got {key!r:.60}"
        ) from None
    fan = [shape[1] if rule == "fa" else shape[0] for shape in shapes]
    bounds = [float(scale) if scale is not None else 1 / n**0.5 for n in fan]
    return [jax.random.uniform(k, s, dtype, -a, a) for k, s, a in zip(keys, shapes, bounds)]


# ----------------------------------------------------------------------------- the deltas


def _backprop_deltas(net: MLP, params: Params, feedback: Feedback, cache: Cache, delta: Array):
    return backward(net, params, cache, delta)


def _fa_deltas(net: MLP, params: Params, feedback: Feedback, cache: Cache, delta: Array):
    """``delta^{l-1} = (delta^l B^l^T) * sigma'(z^{l-1})``: backprop's rule with ``B^l`` for
    ``W^l`` (layer 1's matrix is never used)."""
    return backward(net, [None] + [{"W": B} for B in feedback], cache, delta)


def _sign_deltas(net: MLP, params: Params, feedback: Feedback, cache: Cache, delta: Array):
    """``delta^{l-1} = (delta^l sign(W^l)^T) * sigma'(z^{l-1})`` (``sign(0) = 0``)."""
    return backward(net, [{"W": jnp.sign(p["W"])} for p in params], cache, delta)


def _dfa_deltas(net: MLP, params: Params, feedback: Feedback, cache: Cache, delta: Array):
    """``delta^l = (delta^L B^l) * sigma'_l(z^l)`` for every hidden layer, then ``delta^L``."""
    hidden = [
        act.vjp(z, h, einsum(net, "...i,io->...o", delta, B))
        for act, z, h, B in zip(net.activations[:-1], cache.z, cache.h[1:], feedback)
    ]
    return hidden + [delta]


DELTAS = {  # rule -> (net, params, feedback, cache, delta^L) -> [delta^1, ..., delta^L]
    "backprop": _backprop_deltas,
    "fa": _fa_deltas,
    "dfa": _dfa_deltas,
    "sign": _sign_deltas,
}


def rule_pass(
    net: MLP, rule: str, params: Params, feedback: Feedback, x: Array, t: Array, scale: Array, l2
) -> tuple[Array, Params]:
    """``(L, updates)`` of one network on rows ``x (B, n_0)``, targets ``t (B, n_L)``, batch
    weights ``scale (B,)`` (``L = sum_n s_n l_n + l2/2 sum ||W||^2``), no checks: forward,
    backprop's output delta, the rule's deltas, then ``h^{l-1}^T delta^l`` (+ ``l2 W^l``)."""
    cache = forward_cache(net, params, x)
    value = jnp.sum(scale * per_example_loss(net, cache, t))
    delta = output_delta(net, cache, t, scale)
    deltas = DELTAS[rule](net, params, feedback, cache, delta)
    return with_l2(value, layer_grads(net, cache, deltas), params, l2)


def rule_gradient(net: MLP, rule: str) -> Callable:
    """``(params, feedback, x (B, n_0), t (B, n_L), s (B,), l2) -> (L, updates)`` of one network,
    the form a training loop vmaps over members (params and feedback stacked)."""
    _check_rule(rule)
    return partial(rule_pass, net, rule)


def feedback_grads(
    net: MLP,
    params: Params,
    x,
    y,
    *,
    rule: str,
    feedback: Feedback | None = None,
    l2=0.0,
    weights=None,
) -> tuple[Array, Params]:
    """Loss and the weight and bias updates a learning rule gives (module docstring).

    **Arguments:** as :func:`jmlp.backprop` (``x (B, n_in)`` or ``(n_in,)``, ``y`` rows or labels,
    ``l2``, ``weights (B,)``), plus ``rule`` one of :data:`RULES` and ``feedback`` the rule's
    matrices from :func:`init_feedback` (fa, dfa; ``None`` for sign and backprop).

    **Returns:** ``(value, updates)``: ``value`` is :func:`jmlp.loss`; ``updates`` has the pytree
    of ``params``, the output layer's entry is the true gradient's, and with ``rule="backprop"``
    (or fa with ``B^l = W^l``) the whole of it is :func:`jmlp.backprop`'s gradient.
    """
    _check_rule(rule)
    xb = as_inputs(net, params, x)
    check_feedback(net, rule, feedback, param_dtype(params))
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    scale = example_scale(net, xb.shape[0], weights, xb.dtype)
    return rule_pass(net, rule, params, feedback or [], xb, t, scale, jnp.asarray(l2, xb.dtype))


def _positive(value) -> bool:
    """A real number > 0 (not a bool, a string or an array)."""
    try:
        return not isinstance(value, (bool, str)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def _check_rule(rule) -> None:
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(unknown_name("rule", rule, RULES))


def check_feedback(net: MLP, rule: str, feedback, dtype) -> None:
    """ValueError / TypeError unless ``feedback`` holds the rule's matrices, shaped and typed."""
    shapes = feedback_shapes(net.sizes, rule)
    if not shapes:
        if feedback is not None and len(feedback) != 0:
            raise ValueError(
                f"feedback: rule {rule!r} uses no feedback matrices for sizes={net.sizes}, got "
                f"{len(feedback)}; leave it out"
            )
        return
    if feedback is None:
        raise ValueError(
            f"feedback: rule {rule!r} needs its fixed matrices; give "
            f"feedback=jmlp.init_feedback(key, net.sizes, {rule!r})"
        )
    if not isinstance(feedback, (list, tuple)) or len(feedback) != len(shapes):
        got = (
            f"{len(feedback)} matrices"
            if isinstance(feedback, (list, tuple))
            else type(feedback).__name__
        )
        raise ValueError(
            f"feedback: expected a list of {len(shapes)} matrices for rule {rule!r} and "
            f"sizes={net.sizes}, got {got}"
        )
    for i, (B, shape) in enumerate(zip(feedback, shapes)):
        if jnp.shape(B) != shape:
            raise ValueError(
                f"feedback[{i}]: expected shape {shape} for rule {rule!r} and sizes={net.sizes}, "
                f"got {jnp.shape(B)}"
            )
        if jnp.result_type(B) != dtype:
            raise TypeError(
                f"feedback[{i}]: expected the params' dtype {dtype}, got {jnp.result_type(B)}"
            )


# ----------------------------------------------------------------------------- alignment


def angle(a: Array, b: Array) -> Array:
    """The angle in degrees between ``a`` and ``b`` taken as flat vectors,
    ``2 atan2(|u - v|, |u + v|)`` with ``u = a/|a|``, ``v = b/|b|`` (equal to
    ``arccos(<a, b> / (|a| |b|))``, and accurate near 0 and 180); NaN if either is zero."""
    u, v = jnp.ravel(a) / jnp.linalg.norm(a), jnp.ravel(b) / jnp.linalg.norm(b)
    return jnp.degrees(2 * jnp.arctan2(jnp.linalg.norm(u - v), jnp.linalg.norm(u + v)))


def update_angles(updates: Params, grads: Params) -> Array:
    """``(L,)``: per layer, the angle (degrees) between a rule's weight update ``dW^l`` and the
    true gradient's (0 for backprop; below 90 when the rule's update still descends)."""
    return jnp.stack([angle(u["W"], g["W"]) for u, g in zip(updates, grads)])


def feedback_angles(params: Params, feedback: Feedback) -> Array:
    """``(L-1,)``: feedback alignment's angle (degrees) between ``W^l`` and ``B^l``, l = 2..L
    (Lillicrap et al. 2016 watch it fall as ``W`` comes to align with ``B``)."""
    angles = [angle(p["W"], B) for p, B in zip(params[1:], feedback)]
    return jnp.stack(angles) if angles else jnp.zeros((0,), param_dtype(params))


def alignment_names(sizes: Sequence[int], rule: str) -> list[str]:
    """The history columns of ``fit(..., alignment=True)``: ``update_angle_l`` for l = 1..L
    (:func:`update_angles`), then for fa ``feedback_angle_l`` for l = 2..L
    (:func:`feedback_angles`)."""
    depth = len(sizes) - 1
    names = [f"update_angle_{l}" for l in range(1, depth + 1)]
    if rule == "fa":
        names += [f"feedback_angle_{l}" for l in range(2, depth + 1)]
    return names


def alignment_angles(
    net: MLP, rule: str, params: Params, feedback: Feedback, x: Array, t: Array, scale: Array, l2
) -> Array:
    """``(K,)``: the angles of :func:`alignment_names` on rows ``x (B, n_0)``, targets
    ``t (B, n_L)``, batch weights ``scale (B,)`` (as :func:`rule_pass`), no checks."""
    _, updates = rule_pass(net, rule, params, feedback, x, t, scale, l2)
    _, grads = rule_pass(net, "backprop", params, [], x, t, scale, l2)
    angles = [update_angles(updates, grads)]
    if rule == "fa":
        angles.append(feedback_angles(params, feedback))
    return jnp.concatenate(angles)


def alignment(
    net: MLP,
    params: Params,
    x,
    y,
    *,
    rule: str,
    feedback: Feedback | None = None,
    l2=0.0,
    weights=None,
) -> dict[str, Array]:
    """The papers' alignment measures at ``params`` on a batch: ``{"update": (L,)}``, the angles
    of :func:`update_angles` between the rule's update and :func:`jmlp.backprop`'s gradient, and
    for fa ``"feedback": (L-1,)``, the angles of :func:`feedback_angles`."""
    _, updates = feedback_grads(
        net, params, x, y, rule=rule, feedback=feedback, l2=l2, weights=weights
    )
    _, grads = feedback_grads(net, params, x, y, rule="backprop", l2=l2, weights=weights)
    out = {"update": update_angles(updates, grads)}
    if rule == "fa":
        out["feedback"] = feedback_angles(params, feedback)
    return out
