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
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jmlp.checkpoint import TEMP_FILE, atomic_write, load_checkpoint, remove_temp_files
from jmlp.data import Preprocessing
from jmlp.forward import MLP, check_finite_rows, check_params, forward, non_finite_rows, param_dtype
from jmlp.init import Params
from jmlp.metrics import decide

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

RUN_FILES = (
    "config.json",
    "preprocessing.json",
    "training.json",
    "metrics.csv",
    "checkpoint.npz",
    "last.npz",
    "loss.png",
    "confusion.png",
)


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


def write_metrics(
    path: str | os.PathLike, history: dict[str, list[float]], seconds: list[float | None]
) -> None:
    """metrics.csv, atomically: one row per epoch of ``history`` (``epoch, loss[, val_loss,
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
    write_text(path, out.getvalue())


def read_seconds(path: str | os.PathLike, epochs: int) -> tuple[list[float | None], int]:
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


@partial(jax.jit, static_argnums=0)
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
