"""The compiled training loop of ``jmlp.fit`` and ``jmlp.fit_many``: M members, one jitted call
per chunk of epochs (``fit`` is the case M = 1).

Every member carries its own params, optimizer state, hyper-parameters, stopping rules and data
order; a member that stops is frozen, and the loop ends when every member has stopped:

    while i < count and any member is active:                      (lax.while_loop)
        e = start + i
        for each block of G members:                               (lax.map over blocks)
            perm = permutation(fold_in(key, e), n)  (the block's key, or one per member)
            for s = 1..ceil(n / B):                                (lax.fori_loop)
                rows I = perm[sB : sB + B] weighing w_I (the examples' weights, 1 unless
                given; 0 past n); no step where sum w_I = 0
                (L_s, g) = gradient of the block's members on their mini-batches
                updates, state = optimizer(h_m).update(g, state, params);  params += updates
        per member: epoch loss sum_s (sum w_I) L_s / sum w (mean), the NaN policy, metrics of
        the validation and evaluation sets, the learning rule's angles (alignment), the best
        val_loss (patience), tol; the history row i

Every set of examples holds ``P >= n`` rows, the last ``P - n`` zeros (:mod:`jmlp.buckets`):
the real count ``n`` is data, so sets of one bucket size share one compiled program, and the
results are those of the ``n`` rows alone.

The gradient of a block is the delta rule in the layout its shapes call for (``Plan.layout``):
"single" (one network, batch-major), "columns" (G networks on one shared batch:
``jmlp.backprop.member_pass``) or "rows" (``jax.vmap`` of the batch-major pass: per-member
batches, autodiff, or a learning rule of :mod:`jmlp.feedback`). Stopping rules and the NaN
policy are decided here, on the device; the host (``jmlp.train``) sees the history once per
chunk.
"""

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from jmlp import buckets, precondition
from jmlp.backprop import delta_rule, member_pass, with_l2
from jmlp.feedback import alignment_angles, alignment_names, rule_gradient
from jmlp.forward import forward_cache, l2_penalty, per_example_loss
from jmlp.layouts import batch_major, select
from jmlp.metrics import validation_metrics, validation_names
from jmlp.net import MLP

Array = jax.Array
RUNNING, MAX_EPOCHS, TOL, PATIENCE, NON_FINITE, CALLBACK = range(6)  # Members.code
FINITE_COPY = 2**16  # members_finite: entries a member up to which its leaves are concatenated


class Plan(NamedTuple):
    """The static settings of a compiled run (hashable: equal plans share one compilation)."""

    net: MLP
    optimizer: Any  # jmlp.optimizer_spec.OptimizerSpec: .make(hparams) -> GradientTransformation
    gradient: str  # "backprop" | "autodiff"
    rule: str  # the rule carrying the error back: "backprop" or jmlp.feedback.RULES' others
    layout: str  # "single" | "columns" | "rows"
    batch: int | None  # mini-batch size; None: one full-batch step per epoch
    shared_order: bool  # one data order for the members of a block (the block's key, or none)
    mode: str  # NaN policy inside an epoch: "fast" (unchecked), "skip", "stop" (replay)
    monitor: str | None  # what patience watches: "val_loss", "loss" (training), None (off)
    blocks: int  # the members run in this many blocks of equal size, one after another
    chunk: int  # epochs the history buffer of one call holds
    split: Any = None  # a NamedSharding: every mini-batch split over its devices (fit)
    member_mesh: Any = None  # a 1-D Mesh: the members split over its devices (fit_many)
    alignment: bool = False  # the rule's angles to the gradient after every epoch (history)
    preconditioner: Any = None  # jmlp.precondition.KfacPlan (kind, every, samples), or None


class Members(NamedTuple):
    """The training state, every leaf with a leading member axis ``(M, ...)``."""

    params: Any
    opt_state: Any
    active: Array  # bool: still training
    code: Array  # int32: why it stopped (RUNNING while active)
    epochs_run: Array  # int32: epochs completed
    best_loss: Array  # the least monitored loss so far (inf), patience only
    best_epoch: Array  # int32: the epoch of best_loss
    stale: Array  # int32: epochs since the monitored loss last fell by more than min_delta
    best: Any  # (params, opt_state) of the best val_loss (patience on val_loss), or None


class Settings(NamedTuple):
    """Per-member data: ``hparams`` name -> ``(M,)``, ``l2``, ``tol`` ``(M,)`` (-inf: off),
    ``patience`` ``(M,)`` int32, ``min_delta`` ``(M,)``, ``keys``: one per block (``Plan.shared_order``: block b's
    members, m = b mod blocks, share key b), one per member ``(M,)``, or None (in order)."""

    hparams: dict
    l2: Array
    tol: Array
    patience: Array
    min_delta: Array
    keys: Any
    feedback: Any = ()  # the learning rule's fixed matrices, each (M, ...); () for none


class Data(NamedTuple):
    """``x (P, n_0)``, target rows ``t (P, n_L)`` of which the first ``n`` (int32) are real, and
    the sets evaluated after every epoch (validation first): a tuple of ``(x, t, n)`` alike;
    ``w (P,)``: the examples' weights (0 for the padding), or None (every example weighs 1)."""

    x: Array
    t: Array
    n: Array
    sets: tuple
    w: Array | None = None


# ----------------------------------------------------------------------------- small helpers


def members_finite(tree: Any) -> Array:
    """``(M,)``: True where every floating entry of member m's leaves is finite. Small leaves
    (at most ``FINITE_COPY`` entries a member in all) are checked by one reduction over their
    concatenation, which compiles to few kernels; larger ones each by ``sum(a * 0)`` (0, or NaN
    where an entry is not), which copies nothing."""
    leaves = [a.reshape(a.shape[0], -1) for a in jax.tree.leaves(tree)
              if jnp.issubdtype(a.dtype, jnp.inexact)]  # fmt: skip
    if sum(a.shape[1] for a in leaves) <= FINITE_COPY:
        return jnp.all(jnp.isfinite(jnp.concatenate(leaves, axis=1)), axis=1)
    return jnp.isfinite(sum(jnp.sum(a * 0, axis=1) for a in leaves))


def epoch_order(n: Array, size: int, key: Array | None, epoch: Array) -> Array:
    """The epoch's order of the ``size`` rows: ``permutation(fold_in(key, epoch), n)`` of the real
    rows, then the padding (``0, 1, ..., size - 1`` in order when ``key`` is None)."""
    if key is None:
        return jnp.arange(size)
    return buckets.permutation(jax.random.fold_in(key, epoch), n, size)


def step_rows(order: Array, n: Array, batch: int, step: Array) -> tuple[Array, Array]:
    """Step ``step``'s row indices ``order[sB : sB + B]`` ``(..., B)`` and their 0/1 weights
    (rows past ``n`` weigh 0; the order is read as if padded with more rows of padding)."""
    first = step * batch
    positions = first + jnp.arange(batch)
    size = order.shape[-1]
    idx = jnp.take(order, jnp.minimum(positions, size - 1), axis=-1)
    return idx, positions < n


# ----------------------------------------------------------------------------- gradients


def _one_gradient(net: MLP, gradient: str, rule: str):
    """``(params, feedback, x (B, n_0), t (B, n_L), s (B,), l2) -> (L, grads)`` of one network:
    the delta rule, or a learning rule's updates (:mod:`jmlp.feedback`), or autodiff."""
    if rule != "backprop":
        return rule_gradient(net, rule)
    if gradient == "backprop":

        def hand(params, feedback, x, t, scale, l2):
            value, grads, _ = delta_rule(net, params, x, t, scale, batch_major(net))
            return with_l2(value, grads, params, l2)

        return hand

    def loss(params, x, t, scale, l2):
        losses = per_example_loss(net, forward_cache(net, params, x), t)
        return jnp.sum(scale * losses) + l2_penalty(params, l2)

    return lambda params, feedback, *batch: jax.value_and_grad(loss)(params, *batch)


def block_gradient(plan: Plan):
    """``(params (G, ...), feedback (G, ...), x, t, scale, l2 (G,)) -> (L (G,), grads (G,
    ...))``; ``x`` and ``t`` shared ``(B, n)`` or, with one data order per member, ``(G, B, n)``;
    ``scale`` ``(B,)``, or ``(G, B)`` (weighted examples in per-member orders)."""
    if plan.layout == "columns":
        return lambda params, feedback, *batch: member_pass(plan.net, params, *batch)
    if plan.preconditioner is not None:  # the gradient and the forward cache of its factors
        one = precondition.gradient(plan.net)
    else:
        one = _one_gradient(plan.net, plan.gradient, plan.rule)
    if plan.layout == "single":

        def single(params, feedback, x, t, scale, l2):
            if not plan.shared_order:  # this member's own rows (1, B, n)
                x, t = x[0], t[0]
            first = jax.tree.map(lambda a: a[0], (params, feedback))
            value, grads = one(*first, x, t, scale.reshape(-1), l2[0])
            return jax.tree.map(lambda a: a[None], (value, grads))

        return single
    data_axis = None if plan.shared_order else 0

    def rows(params, feedback, x, t, scale, l2):
        axes = (0, 0, data_axis, data_axis, None if scale.ndim == 1 else 0, 0)
        return jax.vmap(one, in_axes=axes)(params, feedback, x, t, scale, l2)

    return rows


def block_update(plan: Plan):
    """``(hparams (G,), grads (G, ...), opt_state, params) -> (updates, opt_state)``: each
    member's optimizer, or K-FAC's step of the block (:mod:`jmlp.precondition`)."""
    if plan.preconditioner is not None:
        return plan.optimizer.block_update
    return jax.vmap(lambda h, g, s, p: plan.optimizer.make(h).update(g, s, p))


# ----------------------------------------------------------------------------- one epoch


def step_weights(data: Data, idx: Array | None, mask: Array) -> Array:
    """This step's example weights: the 0/1 row ``mask`` ``(B,)`` times the examples' weights
    ``w[idx]`` (``(B,)``, or ``(G, B)`` with one data order per member) when there are any."""
    if data.w is None:
        return mask
    w = data.w if idx is None else data.w[idx]
    return jnp.broadcast_to(mask, w.shape) * w


def step_scale(net: MLP, weights: Array) -> Array:
    """``s_n`` of ``L = sum_n s_n l_n`` over the last axis: ``w_n / sum w`` (mean; 0 where every
    weight is 0) or ``w_n`` (sum)."""
    if net.reduction != "mean":
        return weights
    total = jnp.sum(weights, axis=-1, keepdims=True)
    return weights / jnp.where(total > 0, total, 1)


def _step_batch(plan: Plan, data: Data, idx: Array | None, weights: Array):
    """This step's ``(x, t, scale)``: the whole set, or rows ``idx`` (shared or per member)."""
    x, t = (data.x, data.t) if idx is None else (data.x[idx], data.t[idx])
    scale = step_scale(plan.net, weights)
    if plan.split is not None:
        x, t, scale = jax.lax.with_sharding_constraint((x, t, scale), plan.split)
    return x, t, scale


def _epoch_orders(plan: Plan, data: Data, keys: Any, epoch: Array) -> Array:
    """``(P,)`` shared by the block, or one order per member ``(G, P)`` drawn by its key."""
    size = data.x.shape[0]
    if plan.shared_order:
        return epoch_order(data.n, size, keys, epoch)
    return jax.vmap(lambda k: epoch_order(data.n, size, k, epoch))(keys)


def block_epoch(plan: Plan, data: Data, epoch: Array, block: tuple, block_key) -> tuple:
    """One epoch of one block of G members: ``ceil(n / B)`` steps (one full-batch step).

    ``block = (params, opt_state, hparams, l2, feedback, keys)`` (leading axis G; ``keys`` None
    when the members share ``block_key``'s data order). Returns the new
    ``(params, opt_state)`` and per member: the epoch loss, steps not ok (non-finite, or
    skipped), the first step not ok (-1 if none) and whether the epoch ended finite."""
    params, state, hparams, l2, feedback, keys = block
    keys = block_key if plan.shared_order else keys
    gradient = block_gradient(plan)
    update = block_update(plan)
    members, dtype = l2.shape[0], data.x.dtype
    order = None if plan.batch is None else _epoch_orders(plan, data, keys, epoch)

    def step(s, carry):
        p, st, ok_so_far, loss, count, not_ok, first_bad = carry
        if plan.batch is None:
            idx, weights = None, buckets.row_mask(data.n, data.x.shape[0], dtype)
        else:
            idx, weights = step_rows(order, data.n, plan.batch, s)
            weights = weights.astype(dtype)  # idx (B,) shared, or (G, B) per member
        weights = step_weights(data, idx, weights)
        x, t, scale = _step_batch(plan, data, idx, weights)
        values, grads = gradient(p, feedback, x, t, scale, l2)
        updates, new_st = update(hparams, grads, st, p)
        new_p = optax.apply_updates(p, updates)
        if data.w is not None:  # a step whose examples all weigh 0 is no step
            taken = jnp.broadcast_to(jnp.sum(weights, -1) > 0, (members,))
            new_p, new_st = select(taken, new_p, p), select(taken, new_st, st)
        if plan.mode == "fast":
            ok = jnp.isfinite(values)
        else:
            ok = members_finite((values, new_p, new_st))
            ok = ok & ok_so_far if plan.mode == "stop" else ok
            new_p, new_st = select(ok, new_p, p), select(ok, new_st, st)
        total = jnp.sum(weights, -1)  # () shared, or (G,)
        if plan.net.reduction == "mean":
            weight = total * ok
        else:  # a step not taken (every weight 0) adds nothing
            weight = 1 if data.w is None else (total > 0).astype(dtype)
        loss = loss + jnp.where(ok, values, 0) * weight
        count = count + total * ok
        first_bad = jnp.where((first_bad < 0) & ~ok, s, first_bad)
        return new_p, new_st, ok, loss, count, not_ok + ~ok, first_bad

    steps = 1 if plan.batch is None else (data.n + plan.batch - 1) // plan.batch
    zeros = jnp.zeros((members,), dtype)
    carry = (params, state, jnp.ones((members,), bool), zeros, zeros,
             jnp.zeros((members,), jnp.int32), jnp.full((members,), -1, jnp.int32))  # fmt: skip
    params, state, _, loss, count, not_ok, first_bad = jax.lax.fori_loop(0, steps, step, carry)
    if plan.net.reduction == "mean":
        loss = loss / count
    all_ok = first_bad < 0
    finite = all_ok & members_finite((params, state)) if plan.mode == "fast" else True
    metrics = [jax.vmap(lambda p, s=s: jnp.stack(validation_metrics(plan.net, p, s)))(params)
               for s in data.sets]  # fmt: skip
    if plan.alignment:  # one more (G, K) block of columns after the sets' metrics
        metrics.append(epoch_alignment(plan, data, params, feedback, l2))
    finite = jnp.broadcast_to(finite, (members,))
    return (params, state), (loss, not_ok.astype(dtype), first_bad, finite, metrics)


def epoch_alignment(plan: Plan, data: Data, params, feedback, l2: Array) -> Array:
    """``(G, K)``: each member's angles of :func:`jmlp.feedback.alignment_names` at its
    epoch-end params, on the training set (its examples' weights; the padding weighs 0)."""
    size, dtype = data.x.shape[0], data.x.dtype
    scale = step_scale(plan.net, step_weights(data, None, buckets.row_mask(data.n, size, dtype)))
    angles = partial(alignment_angles, plan.net, plan.rule)
    return jax.vmap(lambda p, f, l: angles(p, f, data.x, data.t, scale, l))(params, feedback, l2)


def blocks_epoch(plan: Plan, members: Members, settings: Settings, data: Data, epoch: Array):
    """:func:`block_epoch` for every block in turn (``lax.map``), results merged to ``(M, ...)``."""
    block_keys, member_keys = (settings.keys, None) if plan.shared_order else (None, settings.keys)
    block = (members.params, members.opt_state, settings.hparams, settings.l2, settings.feedback,
             member_keys)  # fmt: skip
    run = partial(block_epoch, plan, data, epoch)
    if plan.blocks == 1:
        return run(_split_members(plan, block, 0), jax.tree.map(lambda k: k[0], block_keys))
    # member m runs in block m % blocks: each device's share of the members (a contiguous range
    # of m) is a share of every block
    split = lambda a: jnp.swapaxes(a.reshape((-1, plan.blocks) + a.shape[1:]), 0, 1)
    merge = lambda a: jnp.swapaxes(a, 0, 1).reshape((-1,) + a.shape[2:])
    blocks = _split_members(plan, jax.tree.map(split, block), 1)
    return jax.tree.map(merge, jax.lax.map(lambda a: run(*a), (blocks, block_keys)))


def _split_members(plan: Plan, tree: Any, axis: int) -> Any:
    """``tree``'s member axis (``axis``) split over ``plan.member_mesh`` (if any)."""
    if plan.member_mesh is None:
        return tree
    spec = PartitionSpec(*([None] * axis), plan.member_mesh.axis_names[0])
    return jax.lax.with_sharding_constraint(tree, NamedSharding(plan.member_mesh, spec))


# ----------------------------------------------------------------------------- the chunk


def pad_members(tree: Any, size: int) -> Any:
    """Leaves ``(N, ...)`` padded to ``(size, ...)`` by repeating member 0."""

    def pad(a):
        return jnp.concatenate([a, jnp.repeat(a[:1], size - a.shape[0], 0)])

    return tree if size == jax.tree.leaves(tree)[0].shape[0] else jax.tree.map(pad, tree)


def start(plan: Plan, size: int, params, opt_state, hparams: dict) -> Members:
    """The members at the start: ``params`` ``(N, ...)`` padded to ``size`` (the padding
    inactive); ``opt_state`` ``(N, ...)`` given, or ``optimizer(h_m).init(params_m)``."""
    n = jax.tree.leaves(params)[0].shape[0]
    params = pad_members(params, size)
    if opt_state is None:
        opt_state = jax.vmap(lambda h, p: plan.optimizer.make(h).init(p))(hparams, params)
    else:
        opt_state = pad_members(opt_state, size)
    zeros = jnp.zeros((size,), jnp.int32)
    best_loss = jnp.full((size,), jnp.inf, jax.tree.leaves(params)[0].dtype)
    best = (params, opt_state) if plan.monitor == "val_loss" else None
    active = jnp.arange(size) < n
    return Members(params, opt_state, active, zeros, zeros, best_loss, zeros, zeros, best)


def finish(plan: Plan, members: Members) -> tuple:
    """The params and optimizer state ``(M, ...)`` to return: the best epoch's (patience on
    val_loss) where there is one."""
    params, state = members.params, members.opt_state
    if members.best is not None:
        params, state = select(jnp.isfinite(members.best_loss), members.best, (params, state))
    return params, state


def _end_of_epoch(plan: Plan, members: Members, settings: Settings, epoch: Array, out) -> tuple:
    """Apply the NaN policy and the stopping rules to every member; the history row ``(K, M)``."""
    (params, state), (loss, not_ok, _, finite, set_metrics) = out
    keep = members.active & finite
    params, state = select(keep, params, members.params), select(keep, state, members.opt_state)
    done = (epoch + 1).astype(jnp.int32)
    rows = [loss] + ([not_ok] if plan.mode == "skip" else [])
    rows += [column for m in set_metrics for column in m.T]
    history = jnp.where(keep[None, :], jnp.stack(rows), jnp.nan)
    code = jnp.where(members.active & ~finite, NON_FINITE, members.code)
    best_loss, best_epoch, best = members.best_loss, members.best_epoch, members.best
    stale, waited = members.stale, jnp.zeros_like(keep)
    if plan.monitor is not None:
        value = set_metrics[0][:, 0] if plan.monitor == "val_loss" else loss
        lowest = keep & (value < best_loss)
        improved = keep & (value < best_loss - settings.min_delta)
        best_loss = jnp.where(lowest, value, best_loss)
        best_epoch = jnp.where(lowest, done, best_epoch)
        best = None if best is None else select(lowest, (params, state), best)
        stale = jnp.where(keep, jnp.where(improved, 0, stale + 1), stale)
        waited = keep & (stale >= settings.patience)
    reached = keep & (loss <= settings.tol)
    code = jnp.where(reached, TOL, jnp.where(waited, PATIENCE, code))
    members = Members(
        params,
        state,
        keep & ~reached & ~waited,
        code,
        jnp.where(keep, done, members.epochs_run),
        best_loss,
        best_epoch,
        stale,
        best,
    )
    return members, history


def run_chunk(plan: Plan, members: Members, settings: Settings, data: Data, start, count):
    """Up to ``count <= plan.chunk`` epochs from epoch ``start`` (0-based), stopping early when
    no member is active. Returns ``(members, history (chunk, K, M), epochs done)``; history rows
    past the epochs done, and entries of stopped members, are NaN."""
    n_rows = 1 + (plan.mode == "skip") + len(data.sets) * len(validation_names(plan.net))
    n_rows += len(alignment_names(plan.net.sizes, plan.rule)) if plan.alignment else 0
    history = jnp.full((plan.chunk, n_rows, members.active.shape[0]), jnp.nan, data.x.dtype)

    def body(carry):
        i, members, history = carry
        out = blocks_epoch(plan, members, settings, data, start + i)
        members, row = _end_of_epoch(plan, members, settings, start + i, out)
        return i + 1, members, jax.lax.dynamic_update_index_in_dim(history, row, i, 0)

    def cond(carry):
        i, members, _ = carry
        return (i < count) & jnp.any(members.active)

    i, members, history = jax.lax.while_loop(cond, body, (jnp.int32(0), members, history))
    return members, history, i


def replay_epoch(plan: Plan, members: Members, settings: Settings, data: Data, epoch):
    """Epoch ``epoch`` again with every step checked (``plan.mode == "stop"``): each member
    frozen before its first non-finite step. Returns ``(params, opt_state, first bad step)``."""
    (params, state), (_, _, first_bad, _, _) = blocks_epoch(plan, members, settings, data, epoch)
    return params, state, first_bad
