"""Ensembles and hyper-parameter sweeps: N networks trained in one compiled call.

Member ``m`` of ``fit_many`` is exactly ``jmlp.fit(net, params[m], optimizer_fn(hparams[m]), x, y,
key=key (or keys[m]), l2=l2[m], ...)``: the same data order, steps and history, to float
rounding. The whole run (every epoch of every member) is one jitted call: ``lax.map`` over blocks
of members, each block a ``lax.scan`` over epochs of a ``lax.scan`` over steps.

With one shuffle key the members see the same mini-batches, and the hand-written *ensemble
backward pass* (:func:`backprop_many`) runs the block as one network of ``G`` independent
towers, activations stored transposed, ``h^T (G, n_l, B)`` (batch minor):

    layer 1:  z^T = W^T h^0T          one wide matmul (G n_1, n_0) @ (n_0, B), shared inputs
    layer l:  z^T_g = W_g^T h^T_g     batched matmuls; W^T copied once per step (small)
    backward: delta^{l-1}T_g = sigma'(z^{l-1}T_g) * (W_g delta^lT_g),  dW_g = h_g delta_g^T

Measured (``experiments/benchmark.py``; 512 members of 5-50-3, 400 examples, batch 50, 100
epochs of Adam; 2-core AMD EPYC shared with other jobs, jax 0.10.2; wall seconds, and the cost per
member over one ``jmlp.fit`` of one model, 32.6 ms):

==============================================================  ========  ===========
plain ``jax.vmap`` of the whole training run (member-major)       5.98 s   0.36
``fit_many``, N data orders (``vmap`` of ``backprop``, blocks)    5.54 s   0.33
``fit_many(gradient="autodiff")``, shared batch, blocks of 128    3.44 s   0.21
ensemble pass, transposed, one block of 512                       3.35 s   0.20
ensemble pass, transposed, blocks of 256 / 64                     2.8 / 2.6 s
ensemble pass, transposed, blocks of 128                          2.31 s   0.14
==============================================================  ========  ===========

Later, the same 512 members timed in one process, alternating, against one ``jmlp.fit`` of
46-49 ms: the ensemble pass as above, 3.63 s (0.154); with ``W^T`` kept a real array by an
optimization barrier (the default now), 2.41-2.59 s (0.102-0.105). Without the barrier XLA
folds the transpose into the matmul ``W^T h``, which then contracts over a non-minor axis of
``W`` on a slower path (287 us against 58-85 us per step of a block of 128, profiled).

Ideas tried on the way (512 members, wall seconds under load): member-major hand-written
einsums ``(N, B, H)``: no better than ``vmap`` (~6.7 s); members on the minor axis ``(B, H, N)``
with element-wise contractions: 4 to 18 s (XLA:CPU's reductions over the batch axis and the
transposes it adds for batched dots dominated); the first layer as ``n_0`` broadcast multiply-adds
instead of a ``K = 5`` matmul: 9% faster, not kept. The target (1/16 of one model's cost) is not
met: the step's eight big ops (two matmuls with K or N = 5, three batched matmuls with a side of
3, three element-wise passes over ``(G, 50, 50)``) already cost more than that budget at
XLA:CPU's speed on these shapes.

Tried again later (same box, 512 members, per member-step): members on the minor axis
``h (B, n, G)`` with the 50 -> 3 layer as three unrolled multiply-reduce passes and the first
layer one wide matmul, 6.1-10.6 us against 7.5-10 us for the ensemble pass without the barrier
(G = 64..256; a profile put each XLA:CPU reduction over ``(50, 50, 128)`` at 100-150 us); with
the barrier, against 2.41-2.59 s in the same process: ``W`` untransposed for the backward
matmuls, 2.61-2.78 s; every contraction over K <= 8 entries (the first layer, ``W delta`` into
3 outputs) as K fused multiply-adds, 3.00 s (XLA fused the softmax delta and ``z^1`` back into
the ``(G, 50, 50)`` loop and recomputed them per element). None kept. At 0.10 the target is
still 1.6x away; the profile's largest items are the two wide K = 5 matmuls of layer 1
(150-170 us each per block step), the batched output-layer matmuls (60-150 us) and the loss
sum over rows ``(B, G, 3)`` (100 us).

XLA:CPU runs a reduction over a tiny minor axis (softmax over 3 classes laid out (G, B, 3)) ~50x
slower than with the batch minor ((G, 3, B): 10 us vs 480 us for G = 512), and transposes large
arrays slowly: the transposed layout needs no large transpose and keeps the small axes major in
every matmul (the output layer's tables still see rows ``(G, B, n_L)``, a small array); blocks of
~128 members keep a block's activations (1.3 MB) in the 2 MB L2 cache. With N keys (one data
order per member) the inputs differ per member and the step is ``jax.vmap`` of
:func:`jmlp.backprop`; ``gradient="autodiff"`` is ``jax.vmap`` of :func:`jmlp.autodiff`.
"""

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jmlp.arguments import (
    check_choice,
    check_int,
    check_optimizer,
    training_arrays,
    validation_arrays,
)
from jmlp.backprop import autodiff, backprop, output_delta
from jmlp.forward import (
    MLP,
    Cache,
    as_inputs,
    as_targets,
    check_params,
    example_scale,
    forward,
    per_example_loss,
)
from jmlp.init import Params, init_params
from jmlp.losses import CLASSIFICATION
from jmlp.metrics import decide, validation_metrics
from jmlp.train import epoch_batches, history_names

Array = jax.Array
OptimizerFn = Callable[[dict[str, Array]], optax.GradientTransformation]
_CACHE: dict = {}  # static settings -> (optimizer kept alive, jitted run)


class EnsembleResult(NamedTuple):
    """What :func:`fit_many` returns: ``params`` and ``opt_state`` stacked (leading axis N);
    ``history`` name -> ``np.ndarray (N, epochs)`` (``"loss"``, and validation metrics as
    :func:`jmlp.fit`'s)."""

    params: Params
    opt_state: Any
    history: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- stacking


def init_many(keys: Array, sizes, *, weight_scale=1.0, **init_options) -> Params:
    """``init_params`` for every key: ``keys (N,)`` -> params with a leading axis N.

    ``weight_scale`` may be an array ``(N,)`` (one scale per member, for the ``"normal"`` and
    ``"uniform"`` schemes); other options as :func:`jmlp.init_params`.
    """
    keys = jnp.asarray(keys)
    scale = jnp.broadcast_to(jnp.asarray(weight_scale), keys.shape[:1])
    one = lambda k, s: init_params(k, sizes, weight_scale=s, **init_options)
    return jax.vmap(one)(keys, scale)


def member(params: Params, m: int) -> Params:
    """Member ``m``'s params from stacked params (``W (N, n_in, n_out)`` -> ``(n_in, n_out)``)."""
    return jax.tree.map(lambda a: a[m], params)


def _n_members(net: MLP, params: Params) -> int:
    """N, after checking ``params`` is a stack of N valid parameter lists."""
    if not isinstance(params, (list, tuple)) or not params or not isinstance(params[0], dict):
        raise ValueError(
            f"params: expected stacked params (a list of layer dicts), got {params!r:.80}"
        )
    n = jnp.shape(params[0].get("W"))[0] if jnp.ndim(params[0].get("W")) == 3 else None
    leading = {jnp.shape(a)[:1] for a in jax.tree.leaves(params)}
    if n is None or leading != {(n,)}:
        raise ValueError(
            "params: expected stacked params, every leaf with the same leading axis N "
            f"(W (N, n_in, n_out)); got leading shapes {sorted(leading)}"
        )
    check_params(net, member(params, 0))
    return n


# ----------------------------------------------------------------------------- the ensemble pass


def _mm(net: MLP, spec: str, a: Array, b: Array) -> Array:
    """``einsum(spec, a, b)`` in the spec's compute dtype and precision, result in ``a``'s dtype."""
    if net.compute_dtype is None:
        return jnp.einsum(spec, a, b, precision=net.precision)
    c = jnp.dtype(net.compute_dtype)
    out = jnp.einsum(
        spec, a.astype(c), b.astype(c), precision=net.precision, preferred_element_type=a.dtype
    )
    return out.astype(a.dtype)


def _matmul_spec(h: Array, transposed_weights: bool) -> str:
    """``z^T = W^T h^T`` (forward) or ``W delta^T`` (backward) for shared ``h (n, B)`` or
    per-member ``h (G, n, B)``."""
    if transposed_weights:
        return "goi,ib->gob" if h.ndim == 2 else "goi,gib->gob"
    return "goi,gob->gib"


def _per_column(f: Callable, *arrays: Array, out_axes=2) -> Callable:
    """``f`` (a table function written for rows ``(batch, n)``, reducing over the last axis)
    applied to transposed ``(G, n, B)`` arrays: ``jax.vmap`` over axis 2, one example (column)
    at a time, so ``f`` sees the ``G`` members' rows ``(G, n)``."""
    return jax.vmap(f, in_axes=2, out_axes=out_axes)(*arrays)


def _forward_t(net: MLP, Wt: list[Array], bs: list[Array], x_t: Array) -> Cache:
    """Forward pass of G towers, transposed: ``h^0T = x^T (n_0, B)`` shared (or ``(G, n_0, B)``),
    ``z^lT = W^lT h^{l-1}T + b^l`` and ``h^lT`` ``(G, n_l, B)``. Hidden activations are
    element-wise; the output one is applied to rows ``(G, B, n_L)``."""
    h, hs, zs = x_t, [x_t], []
    for l, act in enumerate(net.activations):
        z = _mm(net, _matmul_spec(h, True), Wt[l], h) + bs[l][:, :, None]
        h = act.fn(z) if l < net.n_layers - 1 else _per_column(act.fn, z)
        zs.append(z)
        hs.append(h)
    return Cache(hs, zs)


def _backward_t(net: MLP, Wt: list[Array], cache: Cache, t: Array, scale: Array):
    """Per-member losses ``sum_n s_n l_n`` ``(G,)`` (no L2) and ``[delta^1T, ..., delta^LT]``,
    ``delta^{l-1}T = sigma'(z^{l-1}T) * (W^l delta^lT)`` per member."""

    n_members = cache.z[-1].shape[0]

    def example_output(z, h, t_n, s_n):  # example n of every member: rows (G, n_L)
        c, t_g = Cache([h], [z]), jnp.broadcast_to(t_n, z.shape)
        s_g = jnp.broadcast_to(s_n, (n_members,))
        return s_g * per_example_loss(net, c, t_g), output_delta(net, c, t_g, s_g)

    example = jax.vmap(example_output, in_axes=(2, 2, 0, 0), out_axes=(1, 2))
    losses, delta = example(cache.z[-1], cache.h[-1], t, scale)
    values, deltas = jnp.sum(losses, axis=1), [delta]
    for l in range(net.n_layers - 1, 0, -1):
        back = _mm(net, _matmul_spec(delta, False), Wt[l], delta)
        delta = net.activations[l - 1].vjp(cache.z[l - 1], cache.h[l], back)
        deltas.append(delta)
    return values, deltas[::-1]


def _backprop_block(net: MLP, params: Params, x: Array, t: Array, l2: Array, weights) -> tuple:
    """:func:`backprop_many` on checked arrays: ``x (B, n_0)``, ``t (B, n_L)``, ``l2 (G,)``."""
    # The barrier keeps W^T a real array: without it XLA folds the transpose into the matmuls
    # and runs W^T h with a non-minor contraction on a slower path (1.5x the step time).
    Wt = jax.lax.optimization_barrier([jnp.swapaxes(p["W"], 1, 2) for p in params])
    x_t = x.T
    cache = _forward_t(net, Wt, [p["b"] for p in params], x_t)
    scale = example_scale(net, x.shape[0], weights, x.dtype)
    values, deltas = _backward_t(net, Wt, cache, t, scale)
    grads = []
    for p, h, delta in zip(params, cache.h, deltas):
        spec = "gob,ib->goi" if h.ndim == 2 else "gob,gib->goi"
        dW = jnp.swapaxes(_mm(net, spec, delta, h), 1, 2) + l2[:, None, None] * p["W"]
        grads.append({"W": dW, "b": jnp.sum(delta, axis=2)})
    penalty = 0.5 * l2 * sum(jnp.sum(p["W"] ** 2, axis=(1, 2)) for p in params)
    return values + penalty, grads


def backprop_many(net: MLP, params: Params, x, y, *, l2=0.0, weights=None) -> tuple[Array, Params]:
    """Losses and gradients of N networks on one shared batch, by the ensemble backward pass.

    **Arguments:** stacked ``params`` (``W (N, n_in, n_out)``, ``b (N, n_out)``); ``x (B, n_in)``
    and ``y`` as :func:`jmlp.backprop`, shared by every member; ``l2`` a number or ``(N,)``;
    ``weights (B,)`` optional.

    **Returns:** ``(values (N,), grads)``, equal to
    ``jax.vmap(jmlp.backprop, (None, 0, None, None))(net, params, x, y)`` (module docstring).
    """
    n = _n_members(net, params)
    xb = as_inputs(net, member(params, 0), x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    l2 = _per_member("l2", l2, n, xb.dtype)
    weights = None if weights is None else jnp.asarray(weights, xb.dtype)
    return _backprop_block_jit(net, params, xb, t, l2, weights)


_backprop_block_jit = jax.jit(_backprop_block, static_argnums=0)


# ----------------------------------------------------------------------------- training


def _grad_fn(net: MLP, gradient: str, shared: bool) -> Callable:
    """``(params (G, ...), x, t, l2 (G,), w) -> (values (G,), grads)``; ``x`` shared ``(B, n_0)``
    or per member ``(G, B, n_0)``."""
    if gradient == "backprop" and shared:
        return partial(_backprop_block, net)
    one = backprop if gradient == "backprop" else autodiff
    step = lambda p, x, t, l2, w: one(net, p, x, t, l2=l2, weights=w)
    x_axis = None if shared else 0
    return jax.vmap(step, in_axes=(0, x_axis, x_axis, 0, None))


def _epoch_indices(n: int, batch: int | None, keys, epoch: Array, shared: bool):
    """``(idx, w)``: ``(S, B)`` (shared) or ``(S, G, B)`` step indices and the 0/1 weights of
    the padded last step (or None), drawn exactly as :func:`jmlp.fit` draws them."""
    if shared:
        return epoch_batches(n, batch, keys, epoch)
    idx, w = jax.vmap(lambda k: epoch_batches(n, batch, k, epoch))(keys)
    return jnp.swapaxes(idx, 0, 1), None if w is None else w[0]


def _epoch_loss(net: MLP, values: Array, n: int, batch: int) -> Array:
    """``sum_s n_s L_s / N`` (mean) or ``sum_s L_s`` (sum) from the steps' values ``(S, G)``."""
    if net.reduction == "sum":
        return jnp.sum(values, axis=0)
    counts = np.minimum(batch, n - batch * np.arange(values.shape[0]))
    return jnp.sum(values * jnp.asarray(counts, values.dtype)[:, None], axis=0) / n


def _train_block(net, make_opt, gradient, shared, batch, epochs, data, block) -> tuple:
    """All epochs of one block of G members: ``(params, opt_state, history (epochs, K, G))``,
    K metrics: the epoch loss, then validation's (:func:`jmlp.fit`'s order)."""
    x, t, val, shared_key = data
    params, hparams, l2, member_keys = block
    keys = shared_key if shared else member_keys
    grad_fn, n = _grad_fn(net, gradient, shared), x.shape[0]
    update = jax.vmap(lambda h, g, s, p: make_opt(h).update(g, s, p))

    def step(carry, xs):
        (p, s), (idx, w) = carry, xs
        xb, tb = (x, t) if idx is None else (x[idx], t[idx])
        values, grads = grad_fn(p, xb, tb, l2, w)
        updates, s = update(hparams, grads, s, p)
        return (optax.apply_updates(p, updates), s), values

    def epoch(carry, e):
        if batch is None:  # one full-batch step, no shuffle
            carry, values = step(carry, (None, None))
            values = values[None]
        else:
            carry, values = jax.lax.scan(step, carry, _epoch_indices(n, batch, keys, e, shared))
        metrics = [_epoch_loss(net, values, n, batch or n)]
        if val is not None:
            per_member = jax.vmap(lambda p: jnp.stack(validation_metrics(net, p, val)))
            metrics += list(per_member(carry[0]).T)
        return carry, jnp.stack(metrics)

    state = jax.vmap(lambda h, p: make_opt(h).init(p))(hparams, params)
    (params, state), history = jax.lax.scan(epoch, (params, state), jnp.arange(epochs))
    return params, state, history


def _run(net, make_opt, gradient, shared, batch, epochs, n_blocks, data, members) -> tuple:
    """Every block in turn (``lax.map``): ``members`` leaves ``(n_blocks * G, ...)``."""
    split = lambda a: a.reshape((n_blocks, -1) + a.shape[1:])
    merge = lambda a: a.reshape((-1,) + a.shape[2:])
    blocks = jax.tree.map(split, members)
    train = partial(_train_block, net, make_opt, gradient, shared, batch, epochs, data)
    params, state, history = jax.lax.map(train, blocks)  # history (n_blocks, epochs, K, G)
    history = jnp.moveaxis(history, 0, 2).reshape(history.shape[1:3] + (-1,))
    return jax.tree.map(merge, params), jax.tree.map(merge, state), history


def _compiled(net, optimizer, gradient, shared, batch, epochs, n_blocks) -> Callable:
    """The jitted run for these static settings, cached (a second call does not recompile)."""
    cache_key = (id(optimizer), net, gradient, shared, batch, epochs, n_blocks)
    if cache_key not in _CACHE:
        if len(_CACHE) >= 32:
            _CACHE.pop(next(iter(_CACHE)))
        is_transform = callable(getattr(optimizer, "update", None))
        make_opt = (lambda h: optimizer) if is_transform else optimizer
        fn = partial(_run, net, make_opt, gradient, shared, batch, epochs, n_blocks)
        _CACHE[cache_key] = (optimizer, jax.jit(fn))
    return _CACHE[cache_key][1]


# ----------------------------------------------------------------------------- input checks


def _per_member(name: str, value, n: int, dtype) -> Array:
    """A number or an array ``(N,)`` as an array ``(N,)`` of ``dtype``."""
    a = jnp.asarray(value)
    if a.ndim not in (0, 1) or (a.ndim == 1 and a.shape != (n,)):
        raise ValueError(
            f"{name}: expected a number or an array of shape ({n},), got shape {a.shape}"
        )
    if not jnp.issubdtype(a.dtype, jnp.number) or jnp.issubdtype(a.dtype, jnp.complexfloating):
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    return jnp.broadcast_to(a.astype(dtype), (n,))


def _check_hparams(hparams, n: int, dtype) -> dict[str, Array]:
    if hparams is None:
        return {}
    if not isinstance(hparams, Mapping):
        raise TypeError(
            f"hparams: expected a dict name -> array ({n},), got {type(hparams).__name__}"
        )
    return {k: _per_member(f"hparams[{k!r}]", v, n, dtype) for k, v in hparams.items()}


def _check_keys(key, n: int, full: bool) -> bool:
    """True if ``key`` is one key (shared data order); False for ``N`` keys."""
    if key is None:
        if not full:
            raise TypeError("key: mini-batch training shuffles every epoch; pass a jax.random.key")
        return True
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(f"key: expected a jax.random.key or N of them, got {key!r:.60}")
    if key.shape not in ((), (n,)):
        raise ValueError(
            f"key: expected one key (shape ()) or {n} keys (shape ({n},)), got shape {key.shape}"
        )
    return key.shape == ()


def _check_optimizer_arg(optimizer, hparams: dict[str, Array]) -> None:
    """A GradientTransformation, or a function of one member's hparams returning one."""
    if callable(getattr(optimizer, "update", None)):
        return check_optimizer(optimizer)
    if not callable(optimizer):
        raise TypeError(
            "optimizer: expected an optax.GradientTransformation or a function hparams -> "
            f"GradientTransformation, got {type(optimizer).__name__}"
        )
    check_optimizer(optimizer({k: v[0] for k, v in hparams.items()}))


def _pad(tree, n: int, padded: int):
    """Leaves ``(n, ...)`` padded to ``(padded, ...)`` by repeating member 0."""
    if padded == n:
        return tree
    return jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], padded - n, 0)]), tree)


def fit_many(
    net: MLP,
    optimizer: optax.GradientTransformation | OptimizerFn,
    x,
    y,
    *,
    params: Params,
    epochs: int = 100,
    batch_size: int | None = None,
    key: Array | None = None,
    hparams: Mapping[str, Any] | None = None,
    l2=0.0,
    validation: tuple[Any, Any] | None = None,
    gradient: str = "backprop",
    block_size: int = 128,
) -> EnsembleResult:
    """Train N networks (an ensemble, or a sweep over hyper-parameters) in one compiled call.

    Member ``m`` follows :func:`jmlp.fit` exactly: ``fit(net, member(params, m),
    optimizer_m, x, y, epochs=epochs, batch_size=batch_size, key=key_m, l2=l2[m],
    validation=validation)``, to float rounding.

    **Arguments:**
    - ``optimizer``: an ``optax.GradientTransformation`` shared by all, or a function
      ``hparams_m -> GradientTransformation`` called per member inside ``jax.vmap`` with that
      member's scalars, e.g. ``lambda h: optax.adam(h["lr"])`` (optax takes array rates).
    - ``params``: stacked params, leading axis N (:func:`init_many`: one init key each, and a
      weight scale per member if wanted).
    - ``epochs``, ``batch_size``: as :func:`jmlp.fit`.
    - ``key``: one ``jax.random.key``: every member sees the same mini-batches (epoch ``e`` uses
      ``fold_in(key, e)``; the fast path, see the module docstring); or ``N`` keys (shape
      ``(N,)``, e.g. ``jax.random.split(k, N)``): one data order per member. None: full batch.
    - ``hparams``: dict name -> number or array ``(N,)``, handed to ``optimizer`` per member.
    - ``l2``: coupled L2 coefficient, a number or ``(N,)``.
    - ``validation``: ``(x_val, y_val)``, metrics per member after each epoch.
    - ``gradient``: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.vmap`` of
      ``jax.value_and_grad``).
    - ``block_size``: members trained together (one block after another, all in one call).
      128 suits small networks on a CPU (the block's activations stay in cache).

    **Returns:** :class:`EnsembleResult` ``(params, opt_state, history)``, params and state
    stacked, ``history[name]`` of shape ``(N, epochs)``. There is no NaN check: a member that
    diverges shows NaN in its history and leaves the others untouched.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a jmlp.MLP, got {type(net).__name__}")
    n = _n_members(net, params)
    check_int("epochs", epochs, 1)
    check_int("block_size", block_size, 1)
    check_choice("gradient", gradient, ("backprop", "autodiff"))
    first = member(params, 0)
    xb, t = training_arrays(net, first, x, y, ("x", "y"))
    val = validation_arrays(net, first, validation)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1, xb.shape[0])
    batch = None if batch_size in (None, xb.shape[0]) else batch_size
    shared = _check_keys(key, n, batch is None)
    dtype = xb.dtype
    hp = _check_hparams(hparams, n, dtype)
    _check_optimizer_arg(optimizer, hp)
    l2 = _per_member("l2", l2, n, dtype)
    if bool(jnp.any(l2 < 0)):
        raise ValueError(f"l2: expected numbers >= 0, got {l2}")
    n_blocks = -(-n // block_size)
    padded = n_blocks * -(-n // n_blocks)
    keys = None if shared else _pad(key, n, padded)
    members = (_pad(params, n, padded), _pad(hp, n, padded), _pad(l2, n, padded), keys)
    run = _compiled(net, optimizer, gradient, shared, batch, epochs, n_blocks)
    data = (xb, t, val, key if shared and batch is not None else None)
    out_params, state, history = run(data, members)
    history = np.asarray(history)[:, :, :n]  # (epochs, K, N): one transfer
    names = history_names(net, validation, "stop")
    trim = partial(jax.tree.map, lambda a: a[:n])
    return EnsembleResult(
        trim(out_params), trim(state), {k: history[:, i].T for i, k in enumerate(names)}
    )


# ----------------------------------------------------------------------------- using an ensemble


def ensemble_predict_proba(net: MLP, params: Params, x) -> Array:
    """Mean of the members' outputs, ``(1/N) sum_m h^L_m(x)``: ``(B, n_out)`` for ``x (B, n_in)``
    (averaged class probabilities for softmax / sigmoid outputs)."""
    _n_members(net, params)
    return _mean_output(net, params, x)


@partial(jax.jit, static_argnums=0)
def _mean_output(net: MLP, params: Params, x) -> Array:
    return jnp.mean(jax.vmap(lambda p: forward(net, p, x))(params), axis=0)


def ensemble_predict(net: MLP, params: Params, x) -> Array:
    """Predictions from the averaged outputs: labels by :func:`jmlp.predict`'s rule for
    classifiers (``(B,)`` int32), the mean output ``(B, n_out)`` for regression."""
    proba = ensemble_predict_proba(net, params, x)
    if net.loss not in CLASSIFICATION:
        return proba
    d = decide(net, jnp.atleast_2d(proba))
    return d[0] if jnp.ndim(x) == 1 else d


def summarize(values, axis: int = 0) -> dict[str, np.ndarray]:
    """``{"mean", "std", "min", "max"}`` over members (``axis``), e.g. of ``history["val_error"]
    (N, epochs)`` -> one curve each. ``std`` is the population standard deviation (ddof 0)."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 0 or v.shape[axis] == 0:
        raise ValueError(
            f"values: expected an array with members along axis {axis}, got shape {v.shape}"
        )
    return {
        "mean": v.mean(axis),
        "std": v.std(axis),
        "min": v.min(axis),
        "max": v.max(axis),
    }
