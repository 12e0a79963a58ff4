"""Training: ``fit`` (one network) and ``fit_many`` (N networks), one engine.

Both run the compiled loop of :mod:`jmlp.engine` over a member axis, ``fit`` as its one-member
case: the data order, masking, stopping rules (``tol``, ``patience``), NaN policy, validation and
evaluation metrics, callbacks, checkpoints and the device mesh are the same code for both, and
member m of ``fit_many`` is ``fit`` of member m alone.

One compiled call runs a chunk of up to 256 epochs (fewer for large ensembles, whose history
buffer is larger: :func:`_chunk_size`); the host receives the history once per
chunk, and once per epoch only when a callback asks for it (with a progress line, chunks are
sized to about a quarter of a second). A run of epochs in one chunk and one epoch per chunk give
the same bits.

No recompilation for equal work: the compiled chunk is cached per static plan (the net, the
optimizer's key (:mod:`jmlp.optimizer_spec`: a fresh but equal optimizer has the same key), the
gradient, layout, batch, NaN policy) and by jax per shape. Hyper-parameters passed as data
(``hparams``, ``l2``, ``tol``, ``patience``) never recompile.
"""

import math
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from jmlp import buckets, engine, parallel
from jmlp.arguments import (
    check_choice,
    check_int,
    check_key,
    check_mesh,
    check_number,
    evaluation_sets,
    hparams_per_member,
    per_member,
    training_arrays,
)
from jmlp.backprop import GRADIENTS
from jmlp.checkpoint import load_checkpoint, save_checkpoint
from jmlp.checks import check_params, n_members
from jmlp.engine import Data, Members, Plan, Settings
from jmlp.init import Params
from jmlp.net import MLP
from jmlp.optimizer_spec import optimizer_spec
from jmlp.progress import Progress

Array = jax.Array
NAN_POLICIES = ("stop", "skip")
HISTORY_FLOATS = 2**20  # the history buffer of one compiled call: at most 4 MB of float32
_COMPILED: dict = {}  # plan (or a (what, plan, ...) tuple) -> its jitted programs


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    - ``params``, ``opt_state``: after the last epoch (with ``patience``: of the best epoch).
    - ``history``: lists of Python floats, one entry per epoch: ``"loss"``; with validation
      ``"val_loss"`` and ``"val_accuracy"``, ``"val_error"`` (classifiers) or ``"val_r2"``; for
      each ``evaluate`` set ``name`` the same with prefix ``name_``; with ``nan_policy="skip"``
      ``"skipped"`` (steps skipped).
    - ``epochs_run``: epochs done in all (a resumed run counts the checkpoint's epochs).
    - ``stopped``: why training stopped, in words.
    - ``key``: the key given (epoch e shuffles with ``fold_in(key, e)``; unused for full batch).
    """

    params: Params
    opt_state: Any
    history: dict[str, list[float]]
    epochs_run: int
    stopped: str
    key: Array | None


class EnsembleResult(NamedTuple):
    """What :func:`fit_many` returns: ``params`` and ``opt_state`` stacked (leading axis N);
    ``history`` name -> ``np.ndarray (N, E)``, E the epochs run by the longest member, NaN after
    a member stopped; ``epochs_run (N,)``; ``stopped``, one reason in words per member."""

    params: Params
    opt_state: Any
    history: dict[str, np.ndarray]
    epochs_run: np.ndarray
    stopped: list[str]


class NonFiniteLossError(FloatingPointError):
    """Raised by ``fit(..., nan_policy="stop")`` at the first step whose loss, new params or new
    optimizer state is NaN/inf. ``.epoch`` and ``.step`` (1-based) name it; ``.result`` is a
    :class:`FitResult` holding the params and optimizer state from just before that step."""

    def __init__(self, epoch: int, step: int, result: FitResult):
        super().__init__(
            f"non-finite loss or update at epoch {epoch}, step {step}: training stopped; the "
            "last finite params and optimizer state are in this error's .result"
        )
        self.epoch, self.step, self.result = epoch, step, result


# ----------------------------------------------------------------------------- input checks


OPTIONS = ("batch_size", "key", "validation", "evaluate", "l2", "hparams", "gradient", "tol",
           "patience", "min_delta", "progress", "callback", "checkpoint_path", "checkpoint_every", "resume",
           "nan_policy", "mesh", "block_size", "shuffle")  # fmt: skip


def _options(arguments: dict) -> dict:
    """The training options among a caller's ``locals()`` (those it does not take are None)."""
    return {k: arguments.get(k) for k in OPTIONS}


def _check_common(net: Any, epochs: Any, gradient: Any, nan_policy: Any, opts: dict) -> None:
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a jmlp.MLP, got {type(net).__name__}")
    check_int("epochs", epochs, 1)
    check_choice("gradient", gradient, GRADIENTS)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    if opts["callback"] is not None and not callable(opts["callback"]):
        raise TypeError(f"callback: expected a callable, got {type(opts['callback']).__name__}")
    path, every = opts["checkpoint_path"], opts["checkpoint_every"]
    if every is not None:
        check_int("checkpoint_every", every, 1)
    if path is None and (every is not None or opts["resume"]):
        raise ValueError("checkpoint_path: needed by checkpoint_every / resume=True, got None")
    if path is not None and not Path(path).parent.is_dir():
        raise ValueError(f"checkpoint_path: directory {Path(path).parent} does not exist")


# ----------------------------------------------------------------------------- the run


class _Run(NamedTuple):
    """Everything one call of ``fit`` / ``fit_many`` trains with."""

    plan: Plan
    members: Members  # padded to M = blocks * G members
    settings: Settings
    data: Data
    names: list[str]  # history rows, in the engine's order
    n: int  # real members (N); the rest are inactive padding
    key: Any
    mesh: Any  # the devices the run is placed on, or None


def _block_size(
    net: MLP, batch: int, n: int, block_size: int | None, columns: bool, devices: int
) -> int:
    """Members trained together: on a CPU as many as keep a block's widest activations per
    device near 320k floats, 1.28M in the ensemble layout (``columns``; measured fastest on a
    2-core CPU, 5-50-3 to 40-512-10); elsewhere all of them."""
    if block_size is not None:
        return min(block_size, n)
    if jax.default_backend() != "cpu":
        return n
    budget = (1_280_000 if columns else 320_000) * devices
    widest = batch * max(net.sizes[1:])
    return min(n, 2 ** max(0, int(math.log2(max(1, budget // widest)))))


def _key_period(keys: Array) -> int:
    """``p``, the number of distinct keys, if ``keys[m] == keys[m % p]`` for every member m (as
    ``jmlp.grid(..., seed=...).keys()`` gives: the seed axis last); else N."""
    if not getattr(keys, "is_fully_addressable", True):
        return len(keys)
    data = np.asarray(jax.random.key_data(keys)).reshape(len(keys), -1)
    p = len(np.unique(data, axis=0))
    return p if np.array_equal(data[p:], data[: len(data) - p]) else len(data)


def _engine_keys(key: Any, one: bool, plan: Plan, period: int, size: int) -> Any:
    """One key per block (``plan.shared_order``: block b's members share the ``one`` key, or
    ``key[b % period]``), or one per member padded to ``size``."""
    if not plan.shared_order:
        return engine.pad_members(key, size)
    if one:
        return jnp.broadcast_to(key, (plan.blocks,) + jnp.shape(key))  # typed or raw
    return key[np.arange(plan.blocks) % period]


def _layout(net: MLP, gradient: str, members: int, shared: bool) -> str:
    """ "single" for one network; "columns" (the ensemble pass) for networks sharing their
    batches (measured faster than "rows" for hidden widths 64 to 512); else "rows"."""
    if members == 1:
        return "single"
    return "columns" if shared and gradient == "backprop" else "rows"


def _pad_host(a: np.ndarray, size: int) -> np.ndarray:
    """``(N,)`` padded to ``(size,)`` by repeating member 0 (numpy, on the host)."""
    return np.concatenate([a, np.repeat(a[:1], size - len(a))])


def _cached(key: Any, build: Callable[[], Any]) -> Any:
    """``_COMPILED[key]``, built on first use (the oldest entry dropped beyond 64)."""
    if key not in _COMPILED:
        if len(_COMPILED) >= 64:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = build()
    return _COMPILED[key]


def _starter(plan: Plan, size: int, many: bool) -> Callable:
    """The jitted ``(params, opt_state or None, hparams) -> Members`` of ``plan``, cached."""
    return _cached(
        ("start", plan, size, many), lambda: jax.jit(partial(engine.start, plan, size, many))
    )


def _prepare(net, optimizer, x, y, params, opt_state, opts: dict, many: bool) -> _Run:
    """Check the arguments and build the plan, members, settings and data of a run."""
    # one member's shapes and dtypes (its values are not needed: nothing compiled to slice them)
    first = (
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)
        if many
        else params
    )
    x, t = training_arrays(net, first, x, y, ("x", "y"))
    names, sets = evaluation_sets(net, first, opts["validation"], opts["evaluate"])
    n_examples, dtype = x.shape[0], x.dtype
    n = jax.tree.leaves(params)[0].shape[0] if many else 1
    if opts["batch_size"] is not None:
        check_int("batch_size", opts["batch_size"], 1, n_examples)
    batch = None if opts["batch_size"] in (None, n_examples) else opts["batch_size"]
    shuffle = opts["shuffle"]
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle: expected True or False, got {opts['shuffle']!r}")
    keys = check_key(opts["key"], n, batch is None or not shuffle, many)
    mesh = check_mesh(opts["mesh"], None if many else batch or n_examples)
    hparams = hparams_per_member(opts["hparams"], n, dtype)
    spec = optimizer_spec(optimizer, hparams, first)
    tol = -np.inf if opts["tol"] is None else per_member("tol", opts["tol"], n, dtype)
    patience = np.iinfo(np.int32).max if opts["patience"] is None else opts["patience"]
    patience = per_member("patience", patience, n, jnp.int32, integer=True)
    if not np.all(np.asarray(patience) >= 1):
        raise ValueError(f"patience: expected ints >= 1, got {opts['patience']!r:.60}")
    min_delta = per_member("min_delta", opts["min_delta"], n, dtype)
    monitor = "val_loss" if opts["validation"] is not None else "loss"
    ordered = batch is None or not shuffle  # the data in order, whatever the keys
    period = _key_period(opts["key"]) if keys == "each" and not ordered else 1  # key[m % period]
    shared = period == 1 or period < n  # a block's members share their batches (and its key)
    groups = period if shared else 1  # the blocks come in multiples of this
    devices = mesh.size if many and mesh is not None else 1
    columns = _layout(net, opts["gradient"], n, shared) == "columns"
    g = _block_size(net, batch or n_examples, n, opts["block_size"], columns, devices)
    per_group = -(-n // groups)
    blocks = groups * -(-per_group // g)
    g = -(-n // blocks)
    g = -(-g // devices) * devices  # every block split evenly over the devices
    size = blocks * g
    plan = Plan(
        net=net,
        optimizer=spec,
        gradient=opts["gradient"],
        layout=_layout(net, opts["gradient"], g, shared),
        batch=batch,
        shared_order=shared,
        mode="skip" if opts["nan_policy"] == "skip" else "fast",
        monitor=None if opts["patience"] is None else monitor,
        blocks=blocks,
        chunk=_chunk_size(len(names) + 1 + (opts["nan_policy"] == "skip"), size),
        split=None if many or mesh is None else parallel.batch_sharding(mesh),
        member_mesh=mesh if many else None,
    )
    pad = partial(_pad_host, size=size)
    settings = Settings(
        hparams={k: pad(v) for k, v in hparams.items()},
        l2=pad(per_member("l2", opts["l2"], n, dtype)),
        tol=pad(np.broadcast_to(np.asarray(tol, dtype), (n,))),
        patience=pad(patience),
        min_delta=pad(np.asarray(min_delta)),
        keys=None if ordered else _engine_keys(opts["key"], keys == "one", plan, period, size),
    )
    members = _starter(plan, size, many)(params, opt_state, settings.hparams)
    data = _padded(Data(x, t, n_examples, sets), mesh is None)
    if mesh is not None:
        data = parallel.place(data, parallel.replicated(mesh), keep_global=True)
        members, settings = _on_mesh(plan, mesh, members, settings)
    names = ["loss"] + (["skipped"] if plan.mode == "skip" else []) + names
    return _Run(plan, members, settings, data, names, n, opts["key"], mesh)


def _padded(data: Data, bucketed: bool) -> Data:
    """Every set's rows padded with zeros to its :func:`jmlp.buckets.bucket` size (``bucketed``;
    else as they are), the real counts ``n`` as int32 data: new lengths of one bucket share the
    compiled program."""

    def pad(x, t, n):
        if bucketed:
            x, t = (jax.device_put(buckets.pad_rows(a, buckets.bucket(n))) for a in (x, t))
        return x, t, np.int32(n)

    x, t, n = pad(data.x, data.t, data.n)
    return Data(x, t, n, tuple(pad(x_s, t_s, len(x_s)) for x_s, t_s in data.sets))


def _member_sharding(plan: Plan, mesh: Mesh) -> NamedSharding:
    """Members split over the devices (fit_many), or replicated (fit, whose batch is split)."""
    split = plan.member_mesh is not None
    return parallel.member_sharding(mesh) if split else parallel.replicated(mesh)


def _on_mesh(plan: Plan, mesh: Mesh, members: Members, settings: Settings) -> tuple:
    """Members and settings placed on the mesh's devices (the blocks' keys replicated)."""
    each = _member_sharding(plan, mesh)
    keys = parallel.place(settings.keys, parallel.replicated(mesh) if plan.shared_order else each)
    settings = parallel.place(settings._replace(keys=None), each)._replace(keys=keys)
    return parallel.place(members, each), settings


def _compiled(plan: Plan) -> tuple[Callable, Callable]:
    """The jitted chunk and epoch replay for ``plan``, cached (no recompilation for equal work)."""
    return _cached(
        plan,
        lambda: (
            jax.jit(partial(engine.run_chunk, plan)),
            jax.jit(partial(engine.replay_epoch, plan._replace(mode="stop"))),
        ),
    )


# ----------------------------------------------------------------------------- checkpoints


def _own(tree: Any, n: int, many: bool) -> Any:
    """The user's view of padded member leaves: the N members stacked, or the one member."""
    return jax.tree.map(lambda a: a[:n] if many else a[0], tree)


# a fresh copy of the user's view as one compiled program (the callback may keep it)
_own_copy = jax.jit(_own, static_argnums=(1, 2))


MEMBER_FIELDS = ("active", "code", "epochs_run", "best_loss", "best_epoch", "stale")


def _save(path, run: _Run, members: Members, history: np.ndarray, epoch: int, many: bool) -> None:
    """Params, optimizer state, epoch, key, the history and every member's stopping state,
    written by process 0 (the others wait until the file is complete)."""
    own = partial(_own, n=run.n, many=many)
    host = parallel.gather(members)
    meta = {
        "history": {k: own(history[:, i, :].T).tolist() for i, k in enumerate(run.names)},
        "members": {f: getattr(host, f)[: run.n].tolist() for f in MEMBER_FIELDS},
    }
    best = (
        None if host.best is None else {"params": own(host.best[0]), "opt_state": own(host.best[1])}
    )
    if jax.process_index() == 0:
        save_checkpoint(path, params=own(host.params), opt_state=own(host.opt_state),
                        epoch=epoch, key=run.key, metadata=meta, extra=best)  # fmt: skip
    parallel.sync("jmlp checkpoint written")


def _key_bits(key: Any) -> np.ndarray | None:
    if key is None:
        return None
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    return np.asarray(jax.random.key_data(key) if typed else key)


def _resume(path, run: _Run, many: bool) -> tuple[Members, np.ndarray, int]:
    """Members, history ``(E, K, M)`` and epochs done from the checkpoint at ``path``."""
    members, size = run.members, run.members.active.shape[0]

    def like(tree):  # the user's view of the padded members' leaves, as shapes
        lead = (run.n,) if many else ()
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(lead + a.shape[1:], a.dtype), tree)

    best = (
        None
        if members.best is None
        else {"params": like(members.best[0]), "opt_state": like(members.best[1])}
    )
    ck = load_checkpoint(path, like_params=like(members.params),
                         like_opt_state=like(members.opt_state), like_extra=best)  # fmt: skip
    given, saved = _key_bits(run.key), _key_bits(ck.key)
    if given is not None and saved is not None and not np.array_equal(given, saved):
        raise ValueError(f"key: differs from the key saved in the checkpoint {path}")
    meta = ck.metadata if isinstance(ck.metadata, dict) else {}
    if "members" not in meta:
        raise ValueError(
            f"checkpoint_path: {path} was not written by fit / fit_many (no member state)"
        )
    saved = list(meta.get("history", {}))
    if saved != run.names:
        raise ValueError(
            f"validation / evaluate: the checkpoint {path} holds the history {saved}, this call "
            f"records {run.names}; give the validation= and evaluate= (and nan_policy) of the run "
            "that wrote it, or another checkpoint_path"
        )

    def padded(tree):
        tree = tree if many else jax.tree.map(lambda a: jnp.asarray(a)[None], tree)
        return engine.pad_members(tree, size)

    saved_members = {f: np.asarray(v) for f, v in meta["members"].items()}
    fill = {
        "active": False,
        "code": engine.MAX_EPOCHS,
        "epochs_run": 0,
        "best_loss": np.inf,
        "best_epoch": 0,
        "stale": 0,
    }
    restored = {}
    for f in MEMBER_FIELDS:
        values = np.full(size, fill[f], getattr(members, f).dtype)
        since_best = saved_members["epochs_run"] - saved_members["best_epoch"]  # min_delta 0
        values[: run.n] = saved_members.get(f, since_best)
        restored[f] = jax.device_put(values)
    best = None if ck.extra is None else padded((ck.extra["params"], ck.extra["opt_state"]))
    members = Members(padded(ck.params), padded(ck.opt_state), best=best, **restored)
    if run.mesh is not None:
        members = parallel.place(members, _member_sharding(run.plan, run.mesh))
    history = np.full((ck.epoch, len(run.names), size), np.nan)
    for i, name in enumerate(run.names):
        values = np.asarray(meta["history"].get(name, []), float).reshape(-1, ck.epoch)
        history[:, i, : run.n] = values.T
    return members, history, ck.epoch


# ----------------------------------------------------------------------------- the host loop


def _history(run: _Run, history: np.ndarray, many: bool) -> dict:
    """``(E, K, M)`` rows as the results give them: name -> list of floats (fit) or ``(N, E)``."""
    if many:
        return {k: history[:, i, : run.n].T.copy() for i, k in enumerate(run.names)}
    return {k: [float(v) for v in history[:, i, 0]] for i, k in enumerate(run.names)}


def _progress_text(run: _Run, row: np.ndarray, active: np.ndarray) -> str:
    """The last epoch's loss (and val_loss): the member's, or the mean over active members."""
    shown = [(k, row[i, : run.n]) for i, k in enumerate(run.names) if k in ("loss", "val_loss")]
    if run.n == 1:
        return "  ".join(f"{k} {v[0]:.4g}" for k, v in shown)
    alive = int(np.sum(active[: run.n]))
    values = "  ".join(
        f"mean {k} {np.nanmean(v) if np.any(np.isfinite(v)) else np.nan:.4g}" for k, v in shown
    )
    return f"{alive}/{run.n} active  {values}"


def _chunk_size(rows: int, members: int) -> int:
    """Epochs per compiled call: a power of two in [8, 256] whose history fits HISTORY_FLOATS."""
    fits = HISTORY_FLOATS // (rows * members)
    return min(256, max(8, 2 ** int(math.log2(max(fits, 1)))))


def _chunk_length(
    e: int, epochs: int, chunk: int, opts: dict, seconds_per_epoch: float | None
) -> int:
    count = min(chunk, epochs - e)
    if opts["callback"] is not None:
        count = 1
    if opts["checkpoint_every"] is not None:
        count = min(count, opts["checkpoint_every"] - e % opts["checkpoint_every"])
    if opts["progress"]:
        count = (
            1 if seconds_per_epoch is None else min(count, max(1, int(0.25 / seconds_per_epoch)))
        )
    return count


def _train(run: _Run, epochs: int, opts: dict, many: bool) -> tuple[Members, np.ndarray, int]:
    """Chunks of epochs until ``epochs`` or every member stopped, with the callback, progress
    line and checkpoints in between; returns members, history ``(E, K, M)`` and epochs done."""
    path = opts["checkpoint_path"]
    members, start = run.members, 0
    history = np.zeros((0, len(run.names), members.active.shape[0]))
    if opts["resume"] and Path(path).is_file():
        members, history, start = _resume(path, run, many)
    chunk, _ = _compiled(run.plan)
    bar = Progress(epochs, start) if opts["progress"] else None
    rows, e, saved, per_epoch, calls = [history], start, start, None, 0
    active = parallel.gather(members.active)
    try:
        while e < epochs and active.any():
            count = _chunk_length(e, epochs, run.plan.chunk, opts, per_epoch)
            began = time.perf_counter()
            members, rows_k, done = chunk(
                members, run.settings, run.data, np.int32(e), np.int32(count)
            )
            rows_k, done, active = parallel.gather((rows_k, done, members.active))
            if calls and done:  # the first call carries the compilation: not a rate
                per_epoch = (time.perf_counter() - began) / done
            calls += 1
            rows.append(rows_k[:done])
            e += int(done)
            if bar is not None:
                bar.update(e, _progress_text(run, rows_k[done - 1], active))
            every = opts["checkpoint_every"]
            if every is not None and e % every == 0:
                _save(path, run, members, np.concatenate(rows), e, many)
                saved = e
            callback = opts["callback"]
            if callback is not None and active.any():
                params = _own_copy(members.params, run.n, many)
                if callback(e, params, _history(run, np.concatenate(rows), many)):
                    stop = members.active
                    code = jnp.where(stop, engine.CALLBACK, members.code)
                    members = members._replace(active=jnp.zeros_like(stop), code=code)
                    active = np.zeros_like(active)
    finally:
        if bar is not None:
            bar.close()
    e = int(np.max(parallel.gather(members.epochs_run)[: run.n]))  # a non-finite epoch is not done
    history = np.concatenate(rows)[:e]
    if path is not None and saved != e:
        _save(path, run, members, history, e, many)
    return members, history, e


# ----------------------------------------------------------------------------- results


def _reason(code: int, m: int, members: dict, run: _Run, epochs: int, history: np.ndarray) -> str:
    """Why member ``m`` stopped, in words."""
    done = int(members["epochs_run"][m])
    if code == engine.TOL:
        loss = history[done - 1, run.names.index("loss"), m]
        return f"tol: loss {loss:.6g} <= {float(run.settings.tol[m]):g} at epoch {done}"
    if code == engine.PATIENCE:
        waited, delta = int(run.settings.patience[m]), float(run.settings.min_delta[m])
        by = f" by more than {delta:g}" if delta else ""
        return f"early stopping at epoch {done}: no {run.plan.monitor} improvement{by} in {waited} epochs"
    if code == engine.NON_FINITE:
        return f"non-finite loss or update in epoch {done + 1}; kept the params from before it"
    if code == engine.CALLBACK:
        return f"callback returned True at epoch {done}"
    return f"max epochs ({epochs})" if done >= epochs else f"stopped at epoch {done}"


def _finish(run: _Run, members: Members, history: np.ndarray, epochs: int, many: bool):
    """Params, opt_state (the best epoch's with patience), member state and reasons."""
    finish = _cached(
        ("finish", run.plan, run.n, many),
        lambda: jax.jit(partial(engine.finish, run.plan, run.n, many)),
    )
    params, state = finish(members)
    host = parallel.gather({f: getattr(members, f) for f in MEMBER_FIELDS})
    reasons = [
        _reason(int(c), m, host, run, epochs, history) for m, c in enumerate(host["code"][: run.n])
    ]
    kept_best = run.plan.monitor == "val_loss"
    for m in np.flatnonzero(kept_best & (host["best_loss"][: run.n] < np.inf)):
        best = f"epoch {host['best_epoch'][m]} (val_loss {host['best_loss'][m]:.6g})"
        reasons[m] += f"; restored the best {best}"
    return params, state, host, reasons


def fit(
    net: MLP,
    params: Params,
    optimizer: optax.GradientTransformation | Callable,
    x,
    y,
    *,
    epochs: int = 100,
    batch_size: int | None = None,
    key: Array | None = None,
    validation: tuple[Any, Any] | None = None,
    evaluate: Mapping[str, tuple[Any, Any]] | None = None,
    l2: float = 0.0,
    hparams: Mapping[str, float] | None = None,
    gradient: str = "backprop",
    tol: float | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    progress: bool = False,
    callback: Callable[[int, Params, dict], Any] | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    nan_policy: str = "stop",
    mesh: Mesh | None = None,
    opt_state: Any = None,
    shuffle: bool = True,
) -> FitResult:
    """Train ``params`` on ``x (N, n_in)``, ``y`` (rows ``(N, n_out)`` or integer labels ``(N,)``).

    Mini-batch epochs in one compiled loop (module docstring; :mod:`jmlp.engine`):
    ``ceil(N / B)`` optimizer steps per epoch, the data reshuffled by ``fold_in(key, epoch)``.

    **Arguments:**
    - ``optimizer``: any ``optax.GradientTransformation`` (``jmlp.optim``'s or optax's), or a
      function of ``hparams`` returning one (``lambda lr: optax.adam(lr)``, ``optax.adam`` with
      ``hparams={"learning_rate": 1e-3}``): the hyper-parameters are then data, and a loop over
      their values compiles once.
    - ``epochs``: maximum number of epochs (int >= 1).
    - ``batch_size``: None or N: full-batch gradient descent (no shuffle, no key needed); 1: SGD;
      else mini-batches of ``B`` reshuffled every epoch, the last partial one masked.
    - ``key``: keyword-only ``jax.random.key``; required unless full batch.
      Epoch ``e`` (0-based) uses ``fold_in(key, e)``: the same key gives bitwise the same run.
    - ``validation``: ``(x_val, y_val)``; its metrics are computed after each epoch.
    - ``evaluate``: ``{name: (x, y)}``, more sets evaluated after each epoch (``name_loss``, ...).
    - ``l2``: coupled L2 coefficient, ``L + l2/2 sum ||W||^2`` (weights only).
    - ``hparams``: ``{name: number}`` handed to an optimizer function.
    - ``gradient``: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``).
    - ``tol``: stop once the epoch's training loss is ``<= tol`` (document 001's ``E <= 1e-6``).
    - ``patience``: early stopping: stop after this many epochs in a row without improvement of
      ``val_loss`` (with ``validation``; the params and optimizer state returned are then those
      of the least ``val_loss``), else of the training loss (the last epoch's params returned).
    - ``min_delta``: an epoch improves when its loss is below the least so far minus
      ``min_delta`` (default 0). ``patience=n_iter_no_change + 1, min_delta=tol`` without
      validation is scikit-learn's ``tol`` / ``n_iter_no_change`` rule.
    - ``progress``: a progress line (epochs, loss, rate, time left) on stderr.
    - ``callback``: ``callback(epoch, params, history)`` after each epoch (1-based; ``params`` a
      copy; the epochs then run one per compiled call). Returning True stops.
    - ``checkpoint_path``, ``checkpoint_every``: save params, optimizer state, epoch, key, history
      and the stopping state (the best epoch's params with ``patience``) every
      ``checkpoint_every`` epochs and after the last. ``resume=True``: continue from that file
      if it exists (its key must equal ``key``); the result is bitwise that of an uninterrupted
      run.
    - ``nan_policy``: a step is non-finite if its loss, new params or new optimizer state holds a
      NaN/inf. ``"stop"``: raise :class:`NonFiniteLossError` naming the epoch and step, carrying
      the state from before that step (epochs run unchecked at full speed; one that ends
      non-finite is replayed with per-step checks). ``"skip"``: leave such steps out (as
      ``optax.apply_if_finite``), counted in ``history["skipped"]``.
    - ``mesh``: a 1-D ``jax.sharding.Mesh`` (``jmlp.data_mesh()``): data parallel; each step's
      mini-batch is split over its devices (``batch_size``, or N for full batch, a multiple of
      the mesh size), params replicated; equal to one device's result to float rounding.
    - ``opt_state``: the optimizer state to start from (default ``optimizer.init(params)``).
    - ``shuffle``: False keeps the examples in their order, every epoch (no key needed), as
      document 003's code does.

    **Returns:** :class:`FitResult` ``(params, opt_state, history, epochs_run, stopped, key)``.

    **Raises:** ValueError / TypeError on bad input (naming the argument), before compiling.
    """
    opts = _options(locals()) | {"block_size": 1}
    _check_common(net, epochs, gradient, nan_policy, opts)
    if tol is not None:
        check_number("tol", tol)
    if patience is not None:
        check_int("patience", patience, 1)
    check_number("min_delta", min_delta)
    check_params(net, params)
    run = _prepare(net, optimizer, x, y, params, opt_state, opts, False)
    members, history, done = _train(run, epochs, opts, many=False)
    if int(parallel.gather(members.code)[0]) == engine.NON_FINITE:
        _raise_non_finite(run, members, history)
    params, state, _, reasons = _finish(run, members, history, epochs, many=False)
    return FitResult(params, state, _history(run, history, False), done, reasons[0], key)


def _raise_non_finite(run: _Run, members: Members, history: np.ndarray) -> None:
    """Replay the failed epoch with every step checked and raise :class:`NonFiniteLossError`."""
    bad = int(members.epochs_run[0])  # 0-based index of the failed epoch = epochs completed
    _, replay = _compiled(run.plan)
    params, state, first_bad = replay(members, run.settings, run.data, jnp.int32(bad))
    step = (
        int(first_bad[0]) + 1
        if int(first_bad[0]) >= 0
        else -(-run.data.x.shape[0] // (run.plan.batch or run.data.x.shape[0]))
    )
    stopped = f"non-finite at epoch {bad + 1}, step {step}"
    result = FitResult(
        _own(params, 1, False),
        _own(state, 1, False),
        _history(run, history, False),
        bad,
        stopped,
        run.key,
    )
    raise NonFiniteLossError(bad + 1, step, result)


def fit_many(
    net: MLP,
    optimizer: optax.GradientTransformation | Callable,
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
    evaluate: Mapping[str, tuple[Any, Any]] | None = None,
    gradient: str = "backprop",
    tol=None,
    patience=None,
    min_delta=0.0,
    progress: bool = False,
    callback: Callable[[int, Params, dict], Any] | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    nan_policy: str = "stop",
    mesh: Mesh | None = None,
    block_size: int | None = None,
    shuffle: bool = True,
) -> EnsembleResult:
    """Train N networks (an ensemble, a sweep over hyper-parameters or seeds) in one engine.

    Member ``m`` is :func:`fit` of that member alone: ``fit(net, member(params, m),
    optimizer_m, x, y, key=key (or key[m]), l2=l2[m], tol=tol[m], patience=patience[m], ...)``,
    to float rounding; it stops by its own ``tol`` / ``patience`` / NaN policy and is then
    frozen; the call ends when every member has stopped or at ``epochs``.

    **Arguments** (the rest as :func:`fit`, each working per member):
    - ``optimizer``: an ``optax.GradientTransformation`` shared by all, or a function of one
      member's hyper-parameters returning one, called inside ``jax.vmap`` with that member's
      scalars: as keywords (``lambda lr: optax.adam(lr)``, or ``optax.adam`` with
      ``hparams={"learning_rate": lrs}``), or as one dict (``lambda h: optax.adam(h["lr"])``).
    - ``params``: stacked params, leading axis N (:func:`jmlp.init_many`).
    - ``key``: one ``jax.random.key``: every member sees the same mini-batches (epoch ``e`` uses
      ``fold_in(key, e)``); or ``N`` keys (shape ``(N,)``): one data order per member. None:
      full batch. Keys that repeat with a period (``key[m] == key[m % p]``, as
      ``jmlp.grid(..., seed=...).keys()`` gives with the seed axis last) let the members that
      share a key train in blocks of their own, on shared mini-batches (0.4-0.7 of the time).
    - ``hparams``: dict name -> number or array ``(N,)``; ``l2``, ``tol``, ``patience``,
      ``min_delta``: a number or an array ``(N,)``.
    - ``nan_policy``: ``"stop"``: a member whose epoch turns non-finite stops with the params
      from before that epoch (the others go on); ``"skip"``: as :func:`fit`.
    - ``callback``: ``callback(epoch, params, history)`` with stacked params and history arrays
      ``(N, epoch)``; returning True stops every member.
    - ``mesh``: a 1-D mesh (``jmlp.data_mesh()``): the members split over its devices (each
      block padded to a multiple of the mesh size), the data replicated.
    - ``shuffle``: as :func:`fit`.
    - ``block_size``: members trained together (blocks run one after another in the same call);
      default: on a CPU as many as keep a block's activations near the cache size, else all.

    **Returns:** :class:`EnsembleResult` ``(params, opt_state, history, epochs_run, stopped)``.
    """
    opts = _options(locals())
    _check_common(net, epochs, gradient, nan_policy, opts)
    n = n_members(net, params)
    if block_size is not None:
        check_int("block_size", block_size, 1)
    run = _prepare(net, optimizer, x, y, params, None, opts, True)
    members, history, _ = _train(run, epochs, opts, many=True)
    params, state, host, reasons = _finish(run, members, history, epochs, many=True)
    history = _history(run, history, True)
    return EnsembleResult(params, state, history, host["epochs_run"][:n].copy(), reasons)
