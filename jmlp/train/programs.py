"""The jitted programs of training, built once per static plan and kept (no recompilation for
equal work: a fresh but equal optimizer has the same plan, :mod:`jmlp.optimizer_spec`)."""

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jmlp import buckets, cache, engine
from jmlp.engine import Members, Plan

_PROGRAMS: dict = {}  # (what, plan, ...) -> its jitted program
_ROWS: dict = {}  # plan -> the padded row counts its runs have had (training set, other sets)
_LOCK = threading.Lock()  # fits may run in threads (joblib's threading backend)


def _cached(key: Any, build: Callable[[], Any]) -> Any:
    """``_PROGRAMS[key]``, built on first use (the oldest entry dropped beyond 64)."""
    with _LOCK:
        if key not in _PROGRAMS:
            if len(_PROGRAMS) >= 64:
                _PROGRAMS.pop(next(iter(_PROGRAMS)))
            _PROGRAMS[key] = build()
        return _PROGRAMS[key]


def row_sizes(plan: Plan, counts: tuple[int, ...]) -> tuple[int, ...]:
    """Padded row counts for sets of ``counts`` rows (training set first): the smallest that a run
    of this plan has had and that hold them within :func:`jmlp.buckets.roomy` sizes, else those
    sizes. So a refit on all rows reuses the program of the folds before it."""
    with _LOCK:
        return _row_sizes(plan, counts)


def _row_sizes(plan: Plan, counts: tuple[int, ...]) -> tuple[int, ...]:
    fits = [
        had for had in _ROWS.get(plan, ())
        if len(had) == len(counts) and all(n <= s <= buckets.roomy(n) for n, s in zip(counts, had))
    ]  # fmt: skip
    sizes = min(fits, key=sum) if fits else tuple(buckets.roomy(n) for n in counts)
    if plan not in _ROWS and len(_ROWS) >= 256:
        _ROWS.pop(next(iter(_ROWS)))
    _ROWS.setdefault(plan, set()).add(sizes)
    return sizes


def compiled(plan: Plan, fun: Callable) -> Callable:
    """``fun`` jitted; one network's programs with :func:`jmlp.cache.jit`'s quicker compilation
    (an ensemble's take XLA's defaults: its "columns" step runs slower without them)."""
    return cache.jit(fun) if plan.layout == "single" else jax.jit(fun)


def stacked(tree: Any) -> Any:
    """One network's leaves with a member axis of 1."""
    return jax.tree.map(lambda a: jnp.asarray(a)[None], tree)


def own(tree: Any, n: int, single: bool) -> Any:
    """The user's view of the members' padded leaves: the N members, or the one network."""
    return jax.tree.map(lambda a: a[0] if single else a[:n], tree)


def starter(plan: Plan, size: int, single: bool) -> Callable:
    """``(params, opt_state or None, hparams) -> Members``, one network's params (``single``)
    given a member axis first."""

    def start(params, opt_state, hparams):
        if single:
            params, opt_state = stacked((params, opt_state))
        return engine.start(plan, size, params, opt_state, hparams)

    return _cached(("start", plan, size, single), lambda: compiled(plan, start))


def finisher(plan: Plan, n: int, single: bool) -> Callable:
    """``members -> (params, opt_state)`` to return, in the user's view."""
    return _cached(
        ("finish", plan, n, single),
        lambda: compiled(plan, lambda members: own(engine.finish(plan, members), n, single)),
    )


def chunk(plan: Plan) -> Callable:
    """``(members, settings, data, start, count) -> (members, history, done)``."""
    return _cached(("chunk", plan), lambda: compiled(plan, partial(engine.run_chunk, plan)))


def replay(plan: Plan) -> Callable:
    """``(members, settings, data, epoch) -> (params, opt_state, first bad step)``."""
    stop = plan._replace(mode="stop")
    return _cached(("replay", plan), lambda: compiled(plan, partial(engine.replay_epoch, stop)))


# a fresh copy of the user's view as one compiled program (the callback may keep it)
own_copy: Callable[[Members, int, bool], Any] = jax.jit(own, static_argnums=(1, 2))
