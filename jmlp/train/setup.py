"""The setup of a run: checked arrays, the blocks of members, the plan, the per-member settings
and everything placed on its devices."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmlp import buckets, engine, parallel
from jmlp.arguments import (
    check_int,
    check_key,
    check_mesh,
    check_sample_weight,
    evaluation_sets,
    hparams_per_member,
    per_member,
    training_arrays,
)
from jmlp.engine import Data, Members, Plan, Settings
from jmlp.feedback import alignment_names, check_feedback, feedback_shapes
from jmlp.net import MLP
from jmlp.optimizer_spec import optimizer_spec
from jmlp.precondition import DAMPING, DECAY, KEY, KfacSpec
from jmlp.train import programs
from jmlp.train.options import Options

HISTORY_FLOATS = 2**20  # the history buffer of one compiled call: at most 4 MB of float32


class Run(NamedTuple):
    """Everything one call of ``fit`` / ``fit_many`` trains with."""

    plan: Plan
    members: Members  # padded to M = blocks * G members
    settings: Settings
    data: Data
    names: list[str]  # history rows, in the engine's order
    n: int  # real members (N); the rest are inactive padding
    single: bool  # one network as fit sees it: params without a member axis
    opts: Options
    mesh: Any  # the devices the run is placed on, or None


class Blocks(NamedTuple):
    """How N members are laid out: ``count`` blocks of ``size`` (``M = count * size``);
    ``shared``: a block's members share their mini-batches; ``period``: key[m] == key[m % p]."""

    count: int
    size: int
    shared: bool
    period: int

    @property
    def members(self) -> int:
        return self.count * self.size


def block_size(net: MLP, batch: int, n: int, given: int | None, columns: bool, devices: int) -> int:
    """Members trained together: on a CPU as many as keep a block's widest activations per
    device near 320k floats, 1.28M in the ensemble layout (``columns``); elsewhere all."""
    if given is not None:
        return min(given, n)
    if jax.default_backend() != "cpu":
        return n
    budget = (1_280_000 if columns else 320_000) * devices
    widest = batch * max(net.sizes[1:])
    return min(n, 2 ** max(0, int(math.log2(max(1, budget // widest)))))


def key_period(keys: jax.Array) -> int:
    """``p``, the number of distinct keys, if ``keys[m] == keys[m % p]`` for every member m (as
    ``jmlp.grid(..., seed=...).keys()`` gives: the seed axis last); else N."""
    if not getattr(keys, "is_fully_addressable", True):
        return len(keys)
    data = np.asarray(jax.random.key_data(keys)).reshape(len(keys), -1)
    p = len(np.unique(data, axis=0))
    return p if np.array_equal(data[p:], data[: len(data) - p]) else len(data)


def layout(opts: Options, members: int, shared: bool) -> str:
    """ "single" for one network; "columns" (the ensemble pass) for networks sharing their
    batches with backprop's hand-written gradient; else "rows"."""
    if members == 1:
        return "single"
    hand = opts.gradient == "backprop" and opts.rule == "backprop" and opts.preconditioner is None
    return "columns" if shared and hand else "rows"


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def blocks(net: MLP, opts: Options, n: int, batch: int, period: int, devices: int) -> Blocks:
    """Members sharing a key (``key[m % period]``) train in blocks of their own; each block's
    size a multiple of the number of ``devices`` the members are split over."""
    shared = period == 1 or period < n
    groups = period if shared else 1  # the blocks come in multiples of this
    columns = layout(opts, n, shared) == "columns"
    given = opts.block_size
    if given is None and opts.preconditioner is not None and jax.default_backend() == "cpu":
        given = 1  # blocks of 2+ K-FAC members hang XLA:CPU's concurrency-optimized scheduler
    g = block_size(net, batch, n, given, columns, devices)
    count = groups * ceil_div(ceil_div(n, groups), g)
    size = ceil_div(ceil_div(n, count), devices) * devices
    return Blocks(count, size, shared, period)


def chunk_size(rows: int, members: int) -> int:
    """Epochs per compiled call: a power of two in [8, 256] whose history fits HISTORY_FLOATS."""
    fits = HISTORY_FLOATS // (rows * members)
    return min(256, max(8, 2 ** int(math.log2(max(fits, 1)))))


def pad_host(a: np.ndarray, size: int) -> np.ndarray:
    """``(N,)`` padded to ``(size,)`` by repeating member 0 (numpy, on the host)."""
    return np.concatenate([a, np.repeat(a[:1], size - len(a))])


def settings(opts: Options, hparams: dict, n: int, dtype, keys: Any, size: int) -> Settings:
    """The per-member data ``(M,)``: hyper-parameters, l2, tol (-inf: off), patience, min_delta."""
    tol = -np.inf if opts.tol is None else per_member("tol", opts.tol, n, dtype)
    patience = np.iinfo(np.int32).max if opts.patience is None else opts.patience
    patience = per_member("patience", patience, n, jnp.int32, integer=True)
    if not np.all(np.asarray(patience) >= 1):
        raise ValueError(f"patience: expected ints >= 1, got {opts.patience!r:.60}")
    min_delta = per_member("min_delta", opts.min_delta, n, dtype)

    def pad(a):
        return pad_host(np.broadcast_to(np.asarray(a), (n,)), size)

    return Settings(
        hparams={k: pad(v) for k, v in hparams.items()},
        l2=pad(per_member("l2", opts.l2, n, dtype)),
        tol=pad(np.asarray(tol, dtype)),
        patience=pad(patience),
        min_delta=pad(min_delta),
        keys=keys,
    )


def engine_keys(key: Any, kind: str, plan: Plan, period: int, size: int) -> Any:
    """One key per block (``plan.shared_order``: block b's members share the one key, or
    ``key[b % period]``), or one per member padded to ``size``."""
    if not plan.shared_order:
        return engine.pad_members(key, size)
    if kind == "one":
        return _copies(key, plan.blocks)
    return key[np.arange(plan.blocks) % period]


def _copies(key: jax.Array, n: int) -> jax.Array:
    """``n`` copies ``(n, ...)`` of one key, typed or raw, made on the host (no program)."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = np.asarray(jax.random.key_data(key) if typed else key)
    copies = np.broadcast_to(data, (n,) + data.shape)
    return jax.random.wrap_key_data(copies, impl=jax.random.key_impl(key)) if typed else copies


def preconditioner_data(opts: Options, n: int, dtype) -> dict:
    """K-FAC's per-member damping and decay ``(N,)`` (:mod:`jmlp.precondition`)."""
    pre = opts.preconditioner
    return {DAMPING: per_member("damping", pre.damping, n, dtype),
            DECAY: per_member("decay", pre.decay, n, dtype)}  # fmt: skip


def preconditioner_keys(opts: Options, n: int, key_kind: str, size: int) -> dict:
    """K-FAC's draws (kind "kfac"): each member's run key (the one key, or its own), padded to
    ``size``; nothing otherwise."""
    pre = opts.preconditioner
    if pre is None or pre.kind != "kfac":
        return {}
    if opts.key is None:
        raise ValueError("key: the K-FAC preconditioner with kind='kfac' draws targets from the "
                         "model; pass key=jax.random.key(...), or use kind='kflr'")  # fmt: skip
    key = opts.key
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    keys = key if key_kind == "each" else jnp.broadcast_to(key, (n,))
    return {KEY: engine.pad_members(keys, size)}


def padded(data: Data, sizes: tuple[int, ...] | None) -> Data:
    """Every set's rows (and the examples' weights) padded with zeros to its size in ``sizes``
    (training set first; None: as they are), the real counts ``n`` as int32 data: sets of new
    lengths share the compiled program."""

    def pad(x, t, size):
        n = np.int32(len(x))
        if size is not None:
            x, t = (jax.device_put(buckets.pad_rows(a, size)) for a in (x, t))
        return x, t, n

    sets = ((data.x, data.t), *data.sets)
    sizes = sizes or [None] * len(sets)
    (x, t, n), *rest = [pad(*s, size) for s, size in zip(sets, sizes)]
    w = data.w
    if w is not None:
        w = jax.device_put(w if sizes[0] is None else buckets.pad_rows(w, sizes[0]))
    return Data(x, t, n, tuple(rest), w)


def member_sharding(plan: Plan, mesh) -> Any:
    """Members split over the devices (fit_many), or replicated (fit, whose batch is split)."""
    split = plan.member_mesh is not None
    return parallel.member_sharding(mesh) if split else parallel.replicated(mesh)


def on_mesh(plan: Plan, mesh, members: Members, settings: Settings) -> tuple:
    """Members and settings placed on the mesh's devices (the blocks' keys replicated)."""
    each = member_sharding(plan, mesh)
    keys = parallel.place(settings.keys, parallel.replicated(mesh) if plan.shared_order else each)
    settings = parallel.place(settings._replace(keys=None), each)._replace(keys=keys)
    return parallel.place(members, each), settings


def member_feedback(net: MLP, opts: Options, n: int, single: bool, dtype, size: int) -> Any:
    """The learning rule's matrices ``(M, ...)``: fit's one set, or fit_many's shared set or
    stack of N (:func:`jmlp.init_feedback`); ``()`` for backprop and sign symmetry."""
    given = opts.feedback
    listed = isinstance(given, (list, tuple))
    stacked = not single and listed and all(jnp.ndim(b) == 3 for b in given)
    shapes = (
        [jax.ShapeDtypeStruct(jnp.shape(b)[1:], jnp.result_type(b)) for b in given]
        if stacked
        else given
    )
    check_feedback(net, opts.rule, shapes, dtype)
    if not feedback_shapes(net.sizes, opts.rule):
        return ()
    if stacked and {jnp.shape(b)[0] for b in given} != {n}:
        raise ValueError(f"feedback: expected one set of matrices or a stack of {n} (leading axis "
                         f"{n}), got leading axes {sorted({jnp.shape(b)[0] for b in given})}")  # fmt: skip
    members = given if stacked else [jnp.broadcast_to(b, (n,) + jnp.shape(b)) for b in given]
    return engine.pad_members([jax.device_put(b) for b in members], size)


def member_shapes(params: Any, single: bool) -> Any:
    """One member's params (shapes and dtypes are enough: nothing is compiled to slice them)."""
    if single:
        return params
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)


def prepare(net: MLP, optimizer, x, y, params, opts: Options, n: int, single: bool) -> Run:
    """Check the data and settings and build the plan, members, settings and data of a run of
    ``n`` members (``single``: fit's one network, ``params`` without a member axis)."""
    first = member_shapes(params, single)
    x, t = training_arrays(net, first, x, y, ("x", "y"))
    names, sets = evaluation_sets(net, first, opts.validation, opts.evaluate)
    rows = x.shape[0]
    w = check_sample_weight(opts.sample_weight, rows, x.dtype)
    if opts.batch_size is not None:
        check_int("batch_size", opts.batch_size, 1, rows)
    batch = None if opts.batch_size in (None, rows) else opts.batch_size
    ordered = batch is None or not opts.shuffle  # the data in order, whatever the keys
    kind = check_key(opts.key, n, ordered, not single)
    mesh = check_mesh(opts.mesh, batch or rows if single else None)
    hparams = hparams_per_member(opts.hparams, n, x.dtype)
    spec = optimizer_spec(optimizer, hparams, first)
    pre = opts.preconditioner
    if pre is not None:
        spec = KfacSpec(spec, net, pre.static)
        hparams = hparams | preconditioner_data(opts, n, x.dtype)
    period = key_period(opts.key) if kind == "each" and not ordered else 1
    devices = mesh.size if mesh is not None and not single else 1
    layout_of = blocks(net, opts, n, batch or rows, period, devices)
    names = ["loss"] + (["skipped"] if opts.nan_policy == "skip" else []) + names
    names += alignment_names(net.sizes, opts.rule) if opts.alignment else []
    plan = Plan(
        net=net,
        optimizer=spec,
        gradient=opts.gradient,
        rule=opts.rule,
        layout=layout(opts, layout_of.size, layout_of.shared),
        batch=batch,
        shared_order=layout_of.shared,
        mode="skip" if opts.nan_policy == "skip" else "fast",
        monitor=opts.monitor,
        blocks=layout_of.count,
        chunk=chunk_size(len(names), layout_of.members),
        split=parallel.batch_sharding(mesh) if single and mesh is not None else None,
        member_mesh=mesh if not single else None,
        alignment=opts.alignment,
        preconditioner=None if pre is None else pre.static,
    )
    size = layout_of.members
    keys = None if ordered else engine_keys(opts.key, kind, plan, period, size)
    run_settings = settings(opts, hparams, n, x.dtype, keys, size)
    run_settings = run_settings._replace(
        feedback=member_feedback(net, opts, n, single, x.dtype, size),
        hparams=run_settings.hparams | preconditioner_keys(opts, n, kind, size),
    )
    members = programs.starter(plan, size, single)(params, opts.opt_state, run_settings.hparams)
    counts = (rows, *(len(x_s) for x_s, _ in sets))
    data = padded(
        Data(x, t, rows, sets, w), programs.row_sizes(plan, counts) if mesh is None else None
    )
    if mesh is not None:
        data = parallel.place(data, parallel.replicated(mesh), keep_global=True)
        members, run_settings = on_mesh(plan, mesh, members, run_settings)
    return Run(plan, members, run_settings, data, names, n, single, opts, mesh)
