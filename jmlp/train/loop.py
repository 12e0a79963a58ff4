"""The host loop: compiled chunks of epochs until ``epochs`` or every member stopped, with the
callback, progress line and checkpoints in between (one compiled call per chunk; per epoch only
when a callback asks for it; a run of epochs in one chunk or one per call gives the same bits)."""

import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jmlp import engine, parallel
from jmlp.engine import Members
from jmlp.progress import Progress
from jmlp.train import programs
from jmlp.train.options import Options
from jmlp.train.results import history_arrays
from jmlp.train.saving import resume, save
from jmlp.train.setup import Run

PROGRESS_SECONDS = 0.25  # with a progress line, chunks last about this long


def chunk_length(e: int, opts: Options, chunk: int, seconds_per_epoch: float | None) -> int:
    """Epochs in the next call: up to the chunk, the end, the next checkpoint; one with a
    callback; about :data:`PROGRESS_SECONDS` with a progress line."""
    count = min(chunk, opts.epochs - e)
    if opts.callback is not None:
        count = 1
    if opts.checkpoint_every is not None:
        count = min(count, opts.checkpoint_every - e % opts.checkpoint_every)
    if opts.progress:
        rate = seconds_per_epoch
        count = 1 if rate is None else min(count, max(1, int(PROGRESS_SECONDS / rate)))
    return count


def progress_text(run: Run, row: np.ndarray, active: np.ndarray) -> str:
    """The last epoch's loss (and val_loss): the member's, or the mean over active members."""
    shown = [(k, row[i, : run.n]) for i, k in enumerate(run.names) if k in ("loss", "val_loss")]
    if run.n == 1:
        return "  ".join(f"{k} {v[0]:.4g}" for k, v in shown)
    alive = int(np.sum(active[: run.n]))
    values = "  ".join(
        f"mean {k} {np.nanmean(v) if np.any(np.isfinite(v)) else np.nan:.4g}" for k, v in shown
    )
    return f"{alive}/{run.n} active  {values}"


def _call_back(run: Run, members: Members, e: int, rows: list) -> Members:
    """Hand the callback a copy of the params and the history; stop every member if it says so."""
    params = programs.own_copy(members.params, run.n, run.single)
    history = history_arrays(run.names, np.concatenate(rows), run.n)
    if run.single:
        history = {k: [float(v) for v in h[0]] for k, h in history.items()}
    if not run.opts.callback(e, params, history):
        return members
    code = jnp.where(members.active, engine.CALLBACK, members.code)
    return members._replace(active=jnp.zeros_like(members.active), code=code)


def train(run: Run) -> tuple[Members, np.ndarray, int]:
    """Chunks of epochs until ``epochs`` or every member stopped; returns the members, the
    history ``(E, K, M)`` and the epochs done."""
    opts, path = run.opts, run.opts.checkpoint_path
    members, start = run.members, 0
    history = np.zeros((0, len(run.names), members.active.shape[0]))
    if opts.resume and Path(path).is_file():
        members, history, start = resume(path, run)
    chunk = programs.chunk(run.plan)
    bar = Progress(opts.epochs, start) if opts.progress else None
    rows, e, saved, per_epoch = [history], start, start, None
    active = parallel.gather(members.active)
    try:
        while e < opts.epochs and active.any():
            count = chunk_length(e, opts, run.plan.chunk, per_epoch)
            began = time.perf_counter()
            members, rows_k, done = chunk(
                members, run.settings, run.data, np.int32(e), np.int32(count)
            )
            rows_k, done, active = parallel.gather((rows_k, done, members.active))
            if len(rows) > 1 and done:  # the first call compiles: not a rate
                per_epoch = (time.perf_counter() - began) / done
            rows.append(rows_k[:done])
            e += int(done)
            if bar is not None:
                bar.update(e, progress_text(run, rows_k[done - 1], active))
            if opts.checkpoint_every is not None and e % opts.checkpoint_every == 0:
                save(path, run, members, np.concatenate(rows), e)
                saved = e
            if opts.callback is not None and active.any():
                members = _call_back(run, members, e, rows)
                active = parallel.gather(members.active)
    finally:
        if bar is not None:
            bar.close()
    e = int(np.max(parallel.gather(members.epochs_run)[: run.n]))  # a non-finite epoch is not done
    history = np.concatenate(rows)[:e]
    if path is not None and saved != e:
        save(path, run, members, history, e)
    return members, history, e
