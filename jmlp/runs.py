"""Run folders: what ``jmlp train`` writes, read back to predict with (or to continue training).

A run folder holds ``config.json`` (the settings), ``preprocessing.json``, ``training.json`` (the
settings that fix the training trajectory and a SHA-256 of the training data, which ``jmlp train
--resume`` must find unchanged), ``metrics.csv`` (one row per epoch), ``last.npz`` (``jmlp.fit``'s
training state, saved every few seconds of training, which ``--resume`` continues),
``checkpoint.npz`` (the trained model), ``loss.png`` and, for classifiers, ``confusion.png``.
``checkpoint.npz`` is self-contained: besides params (with early stopping, the best epoch's),
optimizer state, epoch and key, its metadata holds ``"net"`` (the spec), ``"preprocessing"``,
``"config"`` and ``"history"``, so :func:`load_run` needs no other file and no template.

Every file is written atomically (a temporary file in the folder, then ``os.replace``), so a
process killed at any point leaves each file whole: the old version or the new. ``last.npz`` is
the source of truth for the epochs done; ``metrics.csv`` may run ahead of it after a kill, never
behind, and is rewritten from it on resume. The temporary files a killed write leaves behind are
removed by the next run in the folder, which holds a lock on it (:func:`locked`).

This module is the one place that knows the folder's file names and formats, both ways: what
``jmlp train`` writes (:func:`write_start`, :func:`write_metrics`, :func:`write_results`, ...) and
what it and ``jmlp predict`` read back (:func:`resume_state`, :func:`saved_config`,
:func:`load_run`).
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jmlp import cache, figures
from jmlp.checkpoint import (
    TEMP_FILE,
    atomic_write,
    load_checkpoint,
    remove_temp_files,
    save_checkpoint,
)
from jmlp.checks import check_finite_rows, check_params, non_finite_rows, param_dtype
from jmlp.data import Preprocessing
from jmlp.forward import forward
from jmlp.init import Params
from jmlp.metrics import decide
from jmlp.net import MLP

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class Run(NamedTuple):
    """A trained network with what it needs to answer on raw data: ``net, params, preprocessing =
    jmlp.load_run(folder)``."""

    net: MLP
    params: Params
    preprocessing: Preprocessing


def net_to_dict(net: MLP) -> dict[str, Any]:
    """The spec as a JSON-ready dict (:func:`net_from_dict` is its inverse)."""
    return dataclasses.asdict(net)


def net_from_dict(saved: dict[str, Any]) -> MLP:
    return MLP(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def run_metadata(net: MLP, preprocessing: Preprocessing, **more: Any) -> dict[str, Any]:
    """Checkpoint metadata that makes a run self-contained: net spec, preprocessing, ``more``."""
    return {"net": net_to_dict(net), "preprocessing": preprocessing.to_dict(), **more}


# ----------------------------------------------------------------------------- the run folder

CONFIG = "config.json"  # the resolved settings (jmlp train --config reads it back)
PREPROCESSING = "preprocessing.json"  # Preprocessing.to_dict()
TRAINING = "training.json"  # what --resume must find unchanged
METRICS = "metrics.csv"  # one row per epoch
MODEL = "checkpoint.npz"  # the trained model, self-contained (load_run)
STATE = "last.npz"  # jmlp.fit's training state (--resume continues it)
LOSS_FIGURE = "loss.png"
CONFUSION_FIGURE = "confusion.png"
RUN_FILES = (CONFIG, PREPROCESSING, TRAINING, METRICS, MODEL, STATE, LOSS_FIGURE, CONFUSION_FIGURE)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temp file in the same folder, then os.replace)."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def new_run_folder(parent: str | os.PathLike, stem: str) -> Path:
    """A new, empty folder ``parent/stem``, or ``stem-2``, ``stem-3``, ... when taken. Each is
    made with ``os.mkdir``, which fails if the name exists, so two processes never share one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
    raise AssertionError("unreachable")


def dated_run_folder(stem: str, parent: str | os.PathLike = "runs") -> Path:
    """A new folder ``parent/<stem>-<date>-<time>`` (:func:`new_run_folder`)."""
    return new_run_folder(parent, f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")


def _contents(folder: Path) -> list[str]:
    """The names in ``folder``, leftover temporary files of killed writes excluded."""
    return sorted(p.name for p in folder.iterdir() if not TEMP_FILE.fullmatch(p.name))


def claim_run_folder(folder: str | os.PathLike, overwrite: bool) -> None:
    """Make ``folder`` ready for a new run: created if missing; refused if it holds anything,
    unless ``overwrite``, which removes an earlier run's files (``RUN_FILES``) and keeps others."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    present = _contents(folder)
    if present and not overwrite:
        shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
        raise FileExistsError(
            f"--out {folder}: the folder is not empty ({shown}); give --overwrite to replace "
            f"the run in it, --resume {folder} to continue it, or another --out"
        )
    remove_temp_files(folder)
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the run folder (``flock`` on the folder itself, released when
    the process ends however it ends): a second ``jmlp train`` in it is refused, not interleaved.
    Where ``flock`` does not exist (Windows), no lock is taken."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(
                f"{folder}: another jmlp train is writing this run folder; wait for it to end"
            ) from None
        yield
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- writing a run


def write_start(
    folder: Path, config: dict[str, Any], preprocessing: Preprocessing, settings: dict[str, Any]
) -> None:
    """What a run folder holds before training: preprocessing.json, training.json (``settings``)
    and, last (it marks the folder as a run's), config.json."""
    write_json(folder / PREPROCESSING, preprocessing.to_dict())
    write_json(folder / TRAINING, settings)
    write_json(folder / CONFIG, config)


def write_resumed(folder: Path, config: dict[str, Any], settings: dict[str, Any]) -> None:
    """A resumed run's config.json, and its training.json where that was missing."""
    if not (folder / TRAINING).is_file():
        write_json(folder / TRAINING, settings)
    write_json(folder / CONFIG, config)


def state_path(folder: str | os.PathLike) -> Path:
    """Where ``jmlp.fit`` saves and finds the training state of the run (``checkpoint_path``)."""
    return Path(folder) / STATE


def write_metrics(
    folder: str | os.PathLike, history: dict[str, list[float]], seconds: list[float | None]
) -> None:
    """The folder's metrics.csv, atomically: one row per epoch of ``history`` (``epoch, loss[, val_loss,
    ...], seconds``), ``seconds`` the training time at the end of each epoch (blank if unknown)."""
    names = list(history)
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["epoch", *names, "seconds"])
    for i in range(len(history["loss"])):
        t = seconds[i] if i < len(seconds) else None
        writer.writerow(
            [i + 1, *(repr(history[n][i]) for n in names), "" if t is None else f"{t:.4f}"]
        )
    write_text(Path(folder) / METRICS, out.getvalue())


def write_results(
    folder: Path,
    net: MLP,
    preprocessing: Preprocessing,
    config: dict[str, Any],
    result: Any,
    key: jax.Array,
    confusion: np.ndarray | None = None,
    painter: figures.Painter | None = None,
) -> None:
    """After training: checkpoint.npz (``result``'s params, optimizer state and epochs run, the
    ``key``; as metadata the net spec, the preprocessing, the config and the history: a
    self-contained run, :func:`load_run`), loss.png and, given the test set's ``confusion``
    counts ``(k, k)``, confusion.png (drawn by ``painter`` if given, else in this process)."""
    save_checkpoint(
        folder / MODEL,
        params=result.params,
        opt_state=result.opt_state,
        epoch=result.epochs_run,
        key=key,
        metadata=run_metadata(net, preprocessing, config=config, history=result.history),
    )
    jobs = {LOSS_FIGURE: ("loss", (result.history,))}
    if confusion is not None:
        jobs[CONFUSION_FIGURE] = ("confusion", (confusion, preprocessing.classes))
    draw = figures.draw_pngs if painter is None else painter.draw_pngs
    for name, png in zip(jobs, draw(list(jobs.values()))):
        atomic_write(folder / name, lambda f, png=png: f.write(png))


# ----------------------------------------------------------------------------- reading a run


def config_path(folder: str | os.PathLike) -> Path:
    """The run's config.json (``jmlp train --config`` takes it)."""
    return Path(folder) / CONFIG


def read_config(path: str | os.PathLike) -> Any:
    """The settings in a config.json file as JSON reads them (OSError, ValueError if it cannot)."""
    return json.loads(Path(path).read_text())


def saved_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The settings a run was trained with ({} if the folder has no config.json)."""
    path = config_path(folder)
    return read_config(path) if path.is_file() else {}


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or ValueError naming the file."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is damaged ({err})") from None


def _read_seconds(path: str | os.PathLike, epochs: int) -> tuple[list[float | None], int]:
    """The ``seconds`` of epochs ``1..epochs`` from metrics.csv, None where a row is missing or
    unreadable (a damaged file is read up to its first bad row), and how many rows were good."""
    seconds: list[float | None] = [None] * epochs
    good = 0
    with contextlib.suppress(OSError, csv.Error, UnicodeDecodeError), open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= epochs or None in row or None in row.values():  # a row cut short
                break
            try:
                if int(row["epoch"]) != i + 1:
                    break
                seconds[i] = float(row["seconds"]) if row["seconds"] else None
            except (KeyError, TypeError, ValueError):
                break
            good += 1
    return seconds, good


def data_digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' dtypes, shapes and bytes: equal digests, equal data."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def training_record(settings: dict[str, Any], arrays: list[np.ndarray]) -> dict[str, Any]:
    """training.json's content: ``settings`` as JSON reads them back, and ``"data_sha256"``, the
    :func:`data_digest` of ``arrays``."""
    return json.loads(json.dumps({**settings, "data_sha256": data_digest(*arrays)}))


def check_same_training(saved: dict[str, Any], given: dict[str, Any], source: str) -> None:
    """ValueError naming the first setting whose ``given`` value differs from the ``saved`` one
    (both as JSON reads them), with ``source`` saying where the given values come from."""
    given = json.loads(json.dumps(given))
    for key in sorted(set(saved) | set(given)):
        if saved.get(key) != given.get(key):
            old, new = saved.get(key, "(not set)"), given.get(key, "(not set)")
            if key == "data_sha256":
                raise ValueError(
                    f"--resume: the training data differ from those the run was trained on "
                    f"(their SHA-256 {str(new)[:12]}..., saved {str(old)[:12]}...): give it the "
                    f"same data, or start a new run"
                )
            raise ValueError(
                f"--resume: {key} differs: the run was trained with {key} {old!r}, {source} gives "
                f"{new!r}; resuming continues the same training: put {key} back to {old!r}, or "
                f"start a new run with the new setting"
            )


def resume_state(folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run starts from: ``epoch``, the epochs done (from last.npz, the training
    state), and ``seconds``, theirs (from metrics.csv, None where unknown), after checking that
    the settings are those the run was trained with (training.json) and the folder is whole.
    ``notes`` say what was repaired. Leftover temporary files of killed writes are removed."""
    remove_temp_files(folder)
    notes = []
    saved = _read_json(folder / TRAINING) if (folder / TRAINING).is_file() else None
    if saved is None:
        notes.append(f"{folder / TRAINING} was missing; recorded from {CONFIG}")
    elif not isinstance(saved, dict):
        raise ValueError(f"{folder / TRAINING} is damaged (not a JSON object); restore it")
    else:
        check_same_training(saved, settings, str(folder / CONFIG))
    done = _epochs_done(folder)
    seconds, good = _read_seconds(folder / METRICS, done)
    if good < done:
        notes.append(
            f"{folder / METRICS} had {good} of the {done} epochs' rows; rewritten from "
            f"{STATE} (the lost rows' seconds are left blank)"
        )
    return {"epoch": done, "seconds": seconds, "notes": notes}


def _epochs_done(folder: Path) -> int:
    """The epoch of the folder's training state; 0 if the run has none yet, an error naming the
    fix if it is damaged or lost (metrics or a model without it)."""
    last = state_path(folder)
    again = f"jmlp train --config {folder / CONFIG} --out NEW_FOLDER"
    if last.is_file():
        try:
            return load_checkpoint(last).epoch
        except (ValueError, OSError) as err:
            raise ValueError(
                f"--resume: {last} is damaged, so the training cannot continue ({err}); start "
                f"the run again: {again}"
            ) from None
    if _read_seconds(folder / METRICS, 1)[1] or (folder / MODEL).is_file():
        raise FileNotFoundError(
            f"--resume: {last} is missing, so the training state is lost (the folder's "
            f"model, {MODEL}, still works with jmlp predict); train again: {again}"
        )
    return 0


def epochs_saved(folder: str | os.PathLike) -> int:
    """The epochs done in the folder's training state (0 if it has none)."""
    last = state_path(folder)
    return load_checkpoint(last).epoch if last.is_file() else 0


def load_run(folder: str | os.PathLike) -> Run:
    """The net, params and preprocessing of a run folder (or of its ``checkpoint.npz``).

    **Returns:** :class:`Run` ``(net, params, preprocessing)``: ``preprocessing.inputs(x_raw)``
    gives the network's inputs, :func:`predict_raw` the answers in original units and names.

    **Raises:** FileNotFoundError without a checkpoint; ValueError if the checkpoint was not
    written by ``jmlp train`` (load it with ``jmlp.load_checkpoint``).
    """
    path = Path(folder)
    path = path / "checkpoint.npz" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no run folder or checkpoint at {folder}: no {path}")
    ck = load_checkpoint(path)
    missing = [k for k in ("net", "preprocessing") if k not in ck.metadata]
    if missing:
        raise ValueError(
            f"{path}: no {missing} in its metadata, so not a run's checkpoint; read it with "
            "jmlp.load_checkpoint"
        )
    net = net_from_dict(ck.metadata["net"])
    check_params(net, ck.params)
    return Run(net, ck.params, Preprocessing.from_dict(ck.metadata["preprocessing"]))


# ----------------------------------------------------------------------------- answers on raw data


@partial(cache.jit, static_argnums=0)
def _forward(net: MLP, params: Params, x: jax.Array) -> jax.Array:
    return forward(net, params, x)


def class_codes(net: MLP, out: np.ndarray) -> np.ndarray:
    """Class codes ``0..k-1`` ``(n,)`` from outputs ``(n, n_out)``: the loss's decision (argmax;
    ``> 0.5`` for one sigmoid; sign for one hinge output, -1 -> 0), argmax for a regression loss
    trained on one-hot rows."""
    codes = np.asarray(decide(net, np.asarray(out)))
    return (codes + 1) // 2 if net.loss == "hinge" and out.shape[1] == 1 else codes


def class_probabilities(net: MLP, out: np.ndarray) -> np.ndarray | None:
    """``(n, k)`` class probabilities where the output is one (softmax; one sigmoid unit p gives
    ``[1 - p, p]``), else None."""
    if net.output_activation == "softmax":
        return out
    if net.output_activation == "sigmoid" and out.shape[1] == 1:
        return np.hstack([1 - out, out])
    return None


def predict_raw(run: Run, x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Answers for raw feature rows ``(n, n_in)``: class labels ``(n,)`` and probabilities
    ``(n, k)`` (None if the output is not one), or regression values ``(n, n_out)`` in the
    original units and None. One row ``(n_in,)`` gives one answer: a label ``()`` and ``(k,)``,
    or values ``(n_out,)``.

    **Raises:** ValueError naming the first row that holds NaN/inf, or whose standardized
    values overflow the params' dtype: no answer is made up for it."""
    x_raw = np.asarray(x_raw)
    if x_raw.shape == run.preprocessing.x_mean.shape:  # one example
        answers, proba = predict_raw(run, x_raw[None])
        return answers[0], None if proba is None else proba[0]
    check_finite_rows("x_raw", x_raw, np.float64)
    x = run.preprocessing.inputs(x_raw, param_dtype(run.params))
    overflow = non_finite_rows(x)
    if overflow.size:
        raise ValueError(
            f"x_raw: row {overflow[0]} overflows {x.dtype} once standardized ((x - mean) / "
            "scale): far outside the training data's range"
        )
    out = np.asarray(_forward(run.net, run.params, x), np.float64)
    if run.preprocessing.classes is None:
        return run.preprocessing.outputs(out), None
    labels = run.preprocessing.labels(class_codes(run.net, out))
    return labels, class_probabilities(run.net, out)
