"""``jmlp train``: train an MLP on a built-in data set or a CSV/NPZ file and write a run folder.

A training run is configured by, in order of precedence: the command line, ``--config FILE``
(the ``config.json`` of an earlier run), the preset of the built-in data set (``PRESETS``), and
``DEFAULTS``. The resolved configuration is written to the run folder with the metrics, the
preprocessing and the checkpoint (the layout: ``jmlp.runs``). ``--resume RUN_FOLDER`` continues
a run with its own configuration, to a larger ``--epochs``.

A run is never lost: training runs in chunks of about ``--save-every`` seconds, each saving the
training state (last.npz) and metrics.csv; SIGINT or SIGTERM ends the current chunk, saves it,
writes the folder and exits 130 / 143 saying how to resume; every file is written atomically, so
a kill at any point (SIGKILL included) leaves a folder that ``--resume`` continues, bitwise as if
never stopped. After the table, one line says where the time went (imports, compilation or
compilation-cache loads, training, writing, ...).
"""

import argparse
import contextlib
import csv
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache, partial
from pathlib import Path
from typing import Any, Self
from zipfile import BadZipFile, is_zipfile

import jax
import numpy as np

import jmlp
from jmlp import buckets, data, optim
from jmlp.checkpoint import load_checkpoint, remove_temp_files, save_checkpoint
from jmlp.cli.figures import confusion_figure, confusion_matrix, loss_figure, save_figure
from jmlp.cli.figures import preload as preload_figures
from jmlp.cli.options import (
    UsageError,
    column,
    delimiter,
    finite_non_negative,
    fraction,
    int_list,
    names,
    positive_int,
    seed,
)
from jmlp.forward import MLP, forward, param_dtype
from jmlp.init import init_params
from jmlp.losses import CLASSIFICATION, LOSSES
from jmlp.metrics import validation_metrics
from jmlp.progress import Progress
from jmlp.runs import (
    check_same_training,
    claim_run_folder,
    class_codes,
    data_digest,
    locked,
    new_run_folder,
    read_seconds,
    run_metadata,
    write_json,
    write_metrics,
)
from jmlp.train import fit

OPTIMIZERS = {
    "adam": optim.adam,
    "adamw": optim.adamw,
    "sgd": optim.sgd,
    "momentum": optim.momentum,
    "nesterov": optim.nesterov,
    "rmsprop": optim.rmsprop,
}
GRADIENTS = ("backprop", "autodiff")
TASKS = ("auto", "classification", "regression")
DEFAULTS: dict[str, Any] = {
    "target": -1,
    "delimiter": None,  # tab for .tsv files, else comma
    "task": "auto",
    "hidden": (64, 64),
    "activation": "relu",
    "output_activation": None,  # what the loss needs (jmlp.MLP's default)
    "loss": None,  # cross_entropy for classification, mse for regression
    "optimizer": "adam",
    "lr": 1e-3,
    "epochs": 100,
    "batch_size": 32,
    "seed": 0,
    "val_split": 0.1,
    "test_split": 0.2,
    "patience": 0,  # 0: no early stopping
    "l2": 0.0,
    "gradient": "backprop",
}
# Per built-in data set: settings that reach a good test score in a few seconds on a laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "digits": {"hidden": (128,), "epochs": 30},
    "iris": {"hidden": (8,), "lr": 1e-2, "epochs": 50, "batch_size": 16},
    "wine": {"hidden": (32,), "lr": 3e-3, "epochs": 60, "batch_size": 16},
    "breast_cancer": {"hidden": (32,), "epochs": 40},
    "diabetes": {"hidden": (32,), "l2": 1e-2, "epochs": 100},
    "moons": {"hidden": (32, 32), "lr": 3e-3, "epochs": 100},
    "spirals": {"hidden": (64, 64), "lr": 1e-2, "epochs": 300},
    "doc003": {"hidden": (50,), "lr": 1e-2, "epochs": 40, "batch_size": 50},
    "mnist": {"hidden": (128,), "epochs": 10},
}
SAVE_EVERY = 2.0  # seconds of training between saves of the training state (--save-every)
MNIST = "mnist:"  # --data mnist:DIR: the four MNIST IDX files in DIR (jmlp.data.load_mnist)

TRAIN_EPILOG = """examples:
  jmlp train --data digits                       # ~97% test accuracy in seconds
  jmlp train --data iris --hidden 16 --epochs 200 --optimizer sgd --lr 0.1
  jmlp train --data spirals --activation tanh --patience 30 --out runs/spirals
  jmlp train --data houses.csv --target price --task regression
  jmlp train --data iris --loss mse --output-activation sigmoid   # one-hot targets
  jmlp train --data mnist:data/mnist               # the four MNIST IDX files in data/mnist
  jmlp train --config runs/digits-20250101-120000/config.json --seed 1
  jmlp train --resume runs/digits-20250101-120000 --epochs 60    # 30 more epochs

built-in data sets: {datasets}; mnist:DIR reads MNIST's IDX files (its own test set, pixels/255)
The run folder (--out) gets config.json, preprocessing.json (feature means and scales, target
scale, class names), training.json (the settings and data a resume must match), metrics.csv (one
row per epoch), last.npz (the training state, saved every --save-every seconds, which --resume
continues), checkpoint.npz (the trained model: jmlp.load_run), loss.png and, for classifiers,
confusion.png (test set). jmlp predict applies it to new data. Ctrl-C or SIGTERM stops after the
current chunk of epochs and saves; jmlp train --resume RUN_FOLDER continues, bitwise as if never
stopped. Unset options come from --config, then the data set's preset, then the defaults."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an MLP and write a run folder",
        description="Train an MLP on a built-in data set or a CSV/NPZ file.",
        epilog=TRAIN_EPILOG.format(datasets=", ".join(data.DATASETS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a(
        "--data",
        metavar="NAME|FILE",
        help="built-in data set name, mnist:DIR, or a .csv / .npz file (NPZ: arrays x and y)",
    )
    a(
        "--config",
        type=Path,
        metavar="FILE",
        help="config.json of an earlier run: its settings become defaults",
    )
    a(
        "--resume",
        type=Path,
        metavar="RUN_FOLDER",
        help="continue that run up to --epochs (bitwise as if never stopped); the folder is updated",
    )
    a(
        "--target",
        type=column,
        metavar="COL",
        help="target column of a CSV: index or name (default -1: last)",
    )
    a(
        "--delimiter",
        type=delimiter,
        metavar="CHAR",
        help="CSV cell separator, e.g. ';' or tab (default: tab for .tsv, else ',')",
    )
    a("--task", choices=TASKS, help="classification, regression or auto (default: inferred)")
    a(
        "--hidden",
        type=int_list,
        metavar="W,W",
        help="hidden widths, e.g. 64,64 (default 64,64 or preset)",
    )
    a(
        "--activation",
        type=names,
        metavar="NAME[,NAME]",
        help="hidden activation, one or one per layer (default relu)",
    )
    a(
        "--output-activation",
        metavar="NAME",
        help="default: softmax (cross_entropy), sigmoid (binary_cross_entropy), else identity",
    )
    a(
        "--loss",
        choices=sorted(LOSSES),
        help="default: cross_entropy (classes) or mse (regression); a regression loss on "
        "classes trains on one-hot rows",
    )
    a("--optimizer", choices=list(OPTIMIZERS), help="default adam")
    a(
        "--lr",
        type=finite_non_negative,
        metavar="ETA",
        help="learning rate (default 1e-3 or preset)",
    )
    a(
        "--epochs",
        type=positive_int,
        metavar="N",
        help="maximum number of epochs (default 100 or preset)",
    )
    a(
        "--batch-size",
        type=positive_int,
        metavar="B",
        help="mini-batch size (default 32 or preset)",
    )
    a(
        "--seed",
        type=seed,
        metavar="S",
        help="seed of the split, the init and the shuffling, 0 to 2**32-1 (default 0)",
    )
    a(
        "--val-split",
        type=fraction,
        metavar="F",
        help="fraction of the training set held out (default 0.1)",
    )
    a(
        "--test-split",
        type=fraction,
        metavar="F",
        help="fraction of the data held out for testing (0.2)",
    )
    a(
        "--patience",
        type=int,
        metavar="N",
        help="early stopping after this many epochs without improvement (0: off)",
    )
    a(
        "--l2",
        type=finite_non_negative,
        metavar="C",
        help="L2 coefficient: loss + l2/2 sum W^2 (default 0)",
    )
    a("--gradient", choices=GRADIENTS, help="backprop (hand-written, default) or autodiff")
    a("--out", type=Path, metavar="DIR", help="run folder (default runs/<data>-<date>-<time>)")
    a(
        "--overwrite",
        action="store_true",
        help="replace the run in a non-empty --out folder (refused without it)",
    )
    a(
        "--save-every",
        type=finite_non_negative,
        metavar="SECONDS",
        help=f"save the training state about this often (default {SAVE_EVERY:g}; 0: every epoch)",
    )
    a("--no-progress", action="store_true", help="no progress bar")
    a("--quiet", action="store_true", help="print only the run folder (no bar, no table)")
    p.set_defaults(run=run)


# ----------------------------------------------------------------------------- train: config


def read_config(path: Path, option: str = "--config") -> dict[str, Any]:
    """The settings saved in a run's config.json (a JSON object), each checked as the command
    line checks its option; ValueError naming the file, the setting and the fix."""
    fix = (
        "restore it, or start a new run"
        if option == "--resume"
        else "give the config.json of an earlier run"
    )
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{option}: no file {path}") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{option}: {path} is not readable JSON ({err}); {fix}") from None
    if not isinstance(saved, dict):
        raise TypeError(
            f"{option}: {path} holds a JSON {type(saved).__name__}, not an object of settings; "
            f"{fix}"
        )
    types = _option_types()
    for key, value in saved.items():
        if key not in types or (value is None and (DEFAULTS[key] is None or key == "target")):
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            kind, choices = types[key]
            saved[key] = kind(text) if kind is not None else text
            if not isinstance(value, (str, int, float, list)) or (
                choices is not None and saved[key] not in choices
            ):
                raise argparse.ArgumentTypeError(f"expected one of {list(choices or ())}")
        except argparse.ArgumentTypeError as err:
            raise ValueError(
                f"{option}: {path}: {key!r} is {value!r}: {err} (as --{key.replace('_', '-')}); "
                "correct it in the file"
            ) from None
    return saved


@cache
def _option_types() -> dict[str, tuple[Any, Any]]:
    """``{setting: (type, choices)}`` of ``jmlp train``'s options: config.json's checks."""
    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    return {
        a.dest: (a.type, a.choices) for a in sub.choices["train"]._actions if a.dest in DEFAULTS
    }


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Each setting from the command line, else ``--config``, else the preset, else DEFAULTS.
    ``--resume FOLDER`` is ``--config FOLDER/config.json`` where only ``--epochs`` may change."""
    option = "--config"
    if args.resume is not None:
        _check_resume_options(args)
        args = argparse.Namespace(**{**vars(args), "config": args.resume / "config.json"})
        option = "--resume"
    saved = {} if args.config is None else read_config(args.config, option)
    name = args.data if args.data is not None else saved.get("data")
    if name is None:
        raise UsageError("train: --data is required (or --config FILE)")
    if not isinstance(name, str):
        raise TypeError(f"{option}: {args.config}: 'data' is {name!r}, not a name or a path")
    for option in ("target", "delimiter"):
        if _built_in(name) and getattr(args, option) is not None:
            raise ValueError(
                f"--{option}: applies to a CSV/NPZ file, not the built-in set {name!r}"
            )
    preset = PRESETS.get("mnist" if name.startswith(MNIST) else name, {})
    cfg = {"data": name}
    for key in DEFAULTS:
        value = getattr(args, key)
        for source in (saved, preset, DEFAULTS):
            if value is None and key in source:
                value = source[key]
        cfg[key] = tuple(value) if isinstance(value, list) else value
    return cfg


def _built_in(name: str) -> bool:
    return name in data.DATASETS or name.startswith(MNIST)


def _check_resume_options(args: argparse.Namespace) -> None:
    given = [key for key in (*DEFAULTS, "data", "config", "out") if getattr(args, key) is not None]
    given = [f"--{key.replace('_', '-')}" for key in given if key != "epochs"]
    given += ["--overwrite"] if args.overwrite else []
    if given:
        raise UsageError(
            f"train: --resume continues a run with its own settings; only --epochs may change, "
            f"got {', '.join(given)}"
        )
    if not args.resume.is_dir():
        raise FileNotFoundError(f"--resume: no run folder {args.resume}")
    if not (args.resume / "config.json").is_file():
        raise FileNotFoundError(
            f"--resume: {args.resume} has no config.json, so no run was started there; start "
            f"one with jmlp train ... --out {args.resume} --overwrite"
        )


def load_data(cfg: dict[str, Any]) -> data.Dataset:
    """The built-in set, MNIST or the user's CSV/NPZ file named by ``cfg["data"]``, split."""
    name, test = cfg["data"], cfg["test_split"]
    if name.startswith(MNIST):
        if cfg["task"] not in ("auto", "classification"):
            raise ValueError(f"--task {cfg['task']}: MNIST is classification")
        return data.load_mnist(name.removeprefix(MNIST))
    if name in data.DATASETS:
        seed = None if name == "doc003" else cfg["seed"]  # doc003 keeps the document's split
        ds = data.load(name, test_size=test, seed=seed)
        if cfg["task"] not in ("auto", ds.task):
            raise ValueError(f"--task {cfg['task']}: built-in set {name!r} is {ds.task}")
        return ds
    path = Path(name)
    if path.suffix.lower() not in (".csv", ".npz", ".txt", ".tsv") and not path.exists():
        raise ValueError(
            f"--data: unknown data set {name!r}; built-in: {', '.join(data.DATASETS)}; "
            "or give a path to a .csv or .npz file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"--data: no such file: {name}")
    if path.suffix.lower() == ".npz" and not is_zipfile(path):
        raise ValueError(f"--data: {name} is not an NPZ archive (numpy.savez)")
    task = None if cfg["task"] == "auto" else cfg["task"]
    cfg["delimiter"] = cfg["delimiter"] or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        return data.load_table(
            path,
            target=cfg["target"],
            task=task,
            delimiter=cfg["delimiter"],
            test_size=test,
            seed=cfg["seed"],
        )
    except (ValueError, TypeError, OSError, KeyError, EOFError, csv.Error, BadZipFile) as err:
        message = str(err) if name in str(err) else f"{name}: {err}"
        raise ValueError(f"--data: cannot use {message}") from None


def build_net(cfg: dict[str, Any], ds: data.Dataset) -> MLP:
    """The MLP for the data: loss and output activation from the task when not given. A
    regression loss on classes (document 000's sigmoid + MSE) trains on one-hot rows."""
    classes = ds.task == "classification"
    name = cfg["loss"] or ("cross_entropy" if classes else "mse")
    if not classes and name in CLASSIFICATION:
        raise ValueError(f"--loss {name}: a classification loss; the data is regression")
    single = name in ("binary_cross_entropy", "hinge")
    if single and ds.n_classes != 2:
        raise ValueError(f"--loss {name}: needs 2 classes, the data has {ds.n_classes}")
    n_out = (1 if single else ds.n_classes) if classes else ds.y_train.shape[1]
    sizes = (ds.x_train.shape[1], *cfg["hidden"], n_out)
    net = MLP(sizes, cfg["activation"], cfg["output_activation"], name)
    cfg.update(loss=name, output_activation=net.output_activation)
    return net


def make_optimizer(cfg: dict[str, Any]):
    """The jmlp.optim transformation named by ``cfg["optimizer"]`` at learning rate ``lr``."""
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ValueError(
            f"--optimizer: expected one of {tuple(OPTIMIZERS)}, got {cfg['optimizer']!r}"
        )
    return OPTIMIZERS[cfg["optimizer"]](cfg["lr"])


def _targets(net: MLP, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class codes 0..k-1 as the loss wants them: {-1, +1} for hinge, one-hot rows for a
    regression loss, as they are otherwise (and regression targets as they are)."""
    if n_classes == 0 or net.loss in ("cross_entropy", "binary_cross_entropy"):
        return y
    return 2 * y - 1 if net.loss == "hinge" else data.one_hot(y, n_classes)


# ----------------------------------------------------------------------------- train: time

COMPILE_EVENTS = (  # jax.monitoring's events of tracing, lowering and compiling a program
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",  # includes a persistent-cache load
)
CACHE_EVENT = "/jax/compilation_cache/cache_retrieval_time_sec"
_FIRST_RUN = [True]  # the imports are counted by the first run of the process only


def process_start() -> float:
    """When this process began importing jmlp (``time.time()``): the imports are counted from
    there (a shell that ``exec``s the command keeps its own start time, so /proc cannot say)."""
    return jmlp.IMPORT_STARTED


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Time spans ``(start, end)`` merged where they overlap, sorted."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` covered by the merged ``spans``."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


class Clock:
    """Where a run's time went: phases timed with ``with clock.phase(name)``, and JAX's
    compilations and persistent-cache loads, heard through ``jax.monitoring`` while the clock
    runs (``with Clock() as clock``), taken out of the phase they happened in."""

    def __init__(self, phases: tuple[str, ...]) -> None:
        self.started = time.time()
        self.phases: dict[str, list[tuple[float, float]]] = {name: [] for name in phases}
        self.compiling: list[tuple[float, float]] = []
        self.loading: list[tuple[float, float]] = []

    def _span(self, event: str, start: float, end: float, **_) -> None:
        if event in COMPILE_EVENTS:
            self.compiling.append((start, end))

    def _duration(self, event: str, seconds: float, **_) -> None:
        if event == CACHE_EVENT:
            now = time.time()
            self.loading.append((now - seconds, now))

    def __enter__(self) -> Self:
        jax.monitoring.register_event_time_span_listener(self._span)
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        return self

    def __exit__(self, *_) -> None:
        jax.monitoring.unregister_event_time_span_listener(self._span)
        jax.monitoring.unregister_event_duration_listener(self._duration)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:
            self.phases[name].append((start, time.time()))

    def parts(self, imports: float) -> dict[str, float]:
        """Seconds: ``imports``, each phase less the compiling and loading in it, in order, with
        compilation and cache load (0 without one) after the first. They add up to at
        most the wall time since the process started."""
        loading = _merged(self.loading)
        either = _merged(self.compiling + self.loading)
        cached = _covered(loading, self.started, time.time())
        phases = {
            name: sum(b - a - _covered(either, a, b) for a, b in spans)
            for name, spans in self.phases.items()
        }
        compiled = _covered(either, self.started, time.time()) - cached
        first = dict(list(phases.items())[:1])
        return {
            "imports": imports,
            **first,
            "compilation": compiled,
            "cache load": cached,
            **phases,
        }


def format_time(parts: dict[str, float], total: float) -> str:
    """``time  0.9 s imports, 1.1 s compilation, ... (4.8 s in all)``; no cache load when none."""
    shown = [f"{s:.1f} s {k}" for k, s in parts.items() if k != "cache load" or s > 0]
    return f"time        {', '.join(shown)} ({total:.1f} s in all)"


# ----------------------------------------------------------------------------- train: signals


class Interrupted(KeyboardInterrupt):
    """A second SIGINT / SIGTERM: stop at once (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Stop:
    """The first SIGINT or SIGTERM received while training (``signum``; None: none yet)."""

    signum: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """While inside: the first SIGINT / SIGTERM sets ``stop.signum`` (training ends after the
    chunk of epochs it is in, which is then saved); a second raises :class:`Interrupted`."""
    stop = Stop()

    def handle(signum: int, frame) -> None:
        if stop.signum is not None:
            raise Interrupted(signum)
        stop.signum = signum
        name = signal.Signals(signum).name
        message = (
            f"\njmlp: {name}: stopping after this chunk of epochs (at most a few seconds) and "
            "saving the run; send it again to stop at once\n"
        )
        os.write(2, message.encode())  # unbuffered: safe while the main thread prints

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------- train: run


def _split(cfg: dict[str, Any], ds: data.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train", "validation" (if val_split > 0), "test"}`` -> ``(x, y)``."""
    x, y = ds.x_train, ds.y_train
    if cfg["val_split"] == 0:
        return {"train": (x, y), "test": (ds.x_test, ds.y_test)}
    try:
        x, y, x_val, y_val = data.train_val_split(x, y, cfg["val_split"], cfg["seed"])
    except ValueError:
        raise ValueError(
            f"--val-split {cfg['val_split']}: cannot hold out that fraction of the "
            f"{len(x)} training examples and keep both parts non-empty; give a smaller --val-split"
        ) from None
    return {"train": (x, y), "validation": (x_val, y_val), "test": (ds.x_test, ds.y_test)}


TRAINING = tuple(k for k in DEFAULTS if k != "epochs")  # the settings that fix the trajectory


def training_settings(cfg: dict[str, Any], parts: dict) -> dict[str, Any]:
    """training.json: the settings of ``cfg`` that fix the training trajectory, the layer
    sizes, and the SHA-256 of the training and validation arrays."""
    arrays = [a for part in ("train", "validation") if part in parts for a in parts[part]]
    settings = {k: cfg[k] for k in (*TRAINING, "sizes")}
    return json.loads(json.dumps({**settings, "data_sha256": data_digest(*arrays)}))


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or ValueError naming the file."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is damaged ({err})") from None


def resume_state(out: Path, settings: dict[str, Any], epochs: int) -> dict[str, Any]:
    """What a resumed run starts from: the epochs done (from last.npz, the training state) and
    their seconds (from metrics.csv, None where unknown), after checking that the settings are
    those the run was trained with (training.json) and the folder is whole. A note says what
    was repaired."""
    notes = []
    saved = _read_json(out / "training.json") if (out / "training.json").is_file() else None
    if saved is None:
        notes.append(f"{out / 'training.json'} was missing; recorded from config.json")
    elif not isinstance(saved, dict):
        raise ValueError(f"{out / 'training.json'} is damaged (not a JSON object); restore it")
    else:
        check_same_training(saved, settings, str(out / "config.json"))
    last = out / "last.npz"
    if last.is_file():
        try:
            done = load_checkpoint(last).epoch
        except (ValueError, OSError) as err:
            raise ValueError(
                f"--resume: {last} is damaged, so the training cannot continue ({err}); start "
                f"the run again: jmlp train --config {out / 'config.json'} --out NEW_FOLDER"
            ) from None
    else:
        rows = read_seconds(out / "metrics.csv", 1)[1]
        if rows or (out / "checkpoint.npz").is_file():
            raise FileNotFoundError(
                f"--resume: {last} is missing, so the training state is lost (the folder's "
                f"model, checkpoint.npz, still works with jmlp predict); train again: jmlp train "
                f"--config {out / 'config.json'} --out NEW_FOLDER"
            )
        done = 0
    if epochs < done:
        raise UsageError(
            f"train: --epochs {epochs}: the run already has {done} epochs; give more to continue"
        )
    seconds, good = read_seconds(out / "metrics.csv", done)
    if good < done:
        notes.append(
            f"{out / 'metrics.csv'} had {good} of the {done} epochs' rows; rewritten from "
            "last.npz (the lost rows' seconds are left blank)"
        )
    return {"epoch": done, "seconds": seconds, "notes": notes}


def _next_length(length: int, epochs: int, seconds: float, save_every: float) -> int:
    """Epochs in the next chunk: about ``save_every`` seconds at the last chunk's rate
    (``epochs`` in ``seconds``), at most 4 times the last ``length`` (its rate may include the
    compilation)."""
    if save_every <= 0 or epochs <= 0:
        return 1
    return max(1, min(4 * length, int(save_every * epochs / max(seconds, 1e-9))))


def _progress_text(history: dict[str, list[float]]) -> str:
    """The progress line's text: the epoch's loss (the mean over its steps) and val_loss."""
    text = f"loss {history['loss'][-1]:.4g} (mean over the epoch's steps)"
    return text + (f"  val_loss {history['val_loss'][-1]:.4g}" if "val_loss" in history else "")


def run_training(
    cfg: dict[str, Any], net: MLP, parts: dict, n_classes: int, out: Path, options: dict
) -> dict[str, Any]:
    """Fit from ``options["state"]`` (epochs done and their seconds) up to ``cfg["epochs"]``,
    in chunks of about ``options["save_every"]`` seconds: each chunk is one ``jmlp.fit`` that
    continues out/last.npz and saves it at its end (bitwise as if never stopped), and
    metrics.csv is written before that save, so it never has fewer rows than last.npz. Stops
    after the chunk in which ``options["stop"]`` is set. Returns the last FitResult, the
    per-epoch seconds, the epoch it started from and the key."""
    key_init, key_fit = jax.random.split(jax.random.key(cfg["seed"]))
    params = init_params(key_init, net.sizes)
    x, y = parts["train"]
    validation = parts.get("validation")
    if validation is not None:
        validation = (validation[0], _targets(net, validation[1], n_classes))
    first, seconds = options["state"]["epoch"], options["state"]["seconds"]
    bar = Progress(cfg["epochs"], first) if options["progress"] else None
    offset = next((t for t in reversed(seconds) if t is not None), 0.0)
    start, chunk = time.perf_counter(), {"end": first, "length": 1}

    def after_epoch(epoch: int, _params, history: dict) -> None:
        seconds[epoch - 1 :] = [offset + time.perf_counter() - start]
        if bar is not None:
            bar.update(epoch, _progress_text(history))
        if epoch == chunk["end"]:  # before fit saves last.npz
            write_metrics(out / "metrics.csv", history, seconds)

    done = first
    try:
        while True:
            chunk["end"] = min(cfg["epochs"], done + chunk["length"])
            began = time.perf_counter()
            result = fit(
                net,
                params,
                make_optimizer(cfg),
                x,
                _targets(net, y, n_classes),
                epochs=chunk["end"],
                batch_size=cfg["batch_size"],
                key=key_fit,
                validation=validation,
                l2=cfg["l2"],
                gradient=cfg["gradient"],
                patience=cfg["patience"] or None,
                callback=after_epoch,
                checkpoint_path=out / "last.npz",
                resume=True,
            )
            ran, done = result.epochs_run - done, result.epochs_run
            seconds[done:] = []  # an early stop's last epoch gets no callback: its time now
            seconds += [offset + time.perf_counter() - start] * (done - len(seconds))
            write_metrics(out / "metrics.csv", result.history, seconds)
            if (
                done >= cfg["epochs"]
                or not result.stopped.startswith("max epochs")
                or options["stop"].signum is not None
            ):
                break
            length = _next_length(chunk["length"], ran, time.perf_counter() - began,
                                  options["save_every"])  # fmt: skip
            chunk["length"] = length
    finally:
        if bar is not None:
            bar.close()
    return {"result": result, "seconds": seconds, "first": first, "key": key_fit}


def _target_rows(net: MLP, t: np.ndarray) -> np.ndarray:
    """Targets as rows ``(n, n_out)``: integer labels one-hot, one column of values as a column."""
    t = np.asarray(t)
    if t.ndim == 2:
        return t
    integer = np.issubdtype(t.dtype, np.integer) and net.sizes[-1] > 1
    return data.one_hot(t, net.sizes[-1]) if integer else t[:, None]


@partial(jax.jit, static_argnums=0)
def _loss_outputs_r2(net: MLP, params, x, t, n) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Loss (without L2), the outputs and R^2 of a part's first ``n`` rows of ``x (P, n_in)``,
    ``t (P, n_out)`` (the rest padding), as one compiled call per bucket size."""
    metrics = validation_metrics(net, params, (x, t, n))
    return metrics[0], forward(net, params, x), metrics[-1]


def part_outputs(net: MLP, params, x, y, n_classes: int) -> tuple[float, np.ndarray, float]:
    """Loss (without L2), outputs ``(n, n_out)`` and R^2 of a part, its rows padded to their
    bucket size (one program for the parts of one size class)."""
    t, n = _target_rows(net, _targets(net, y, n_classes)), len(x)
    dtype, size = param_dtype(params), buckets.bucket(n)
    padded = [buckets.pad_rows(np.asarray(a, dtype), size) for a in (x, t)]
    value, out, r2 = _loss_outputs_r2(net, params, *padded, n)
    return float(value), np.asarray(out)[:n], float(r2)


def evaluate(net: MLP, params, parts: dict, n_classes: int) -> dict[str, dict[str, float]]:
    """``{part: {"loss", "score"}}``: loss (without L2) and accuracy or R^2 of each part."""
    scores = {}
    for part, (x, y) in parts.items():
        value, out, r2 = part_outputs(net, params, x, y, n_classes)
        score = np.mean(class_codes(net, out) == y) if n_classes else r2
        scores[part] = {"loss": value, "score": float(score)}
    return scores


def _epochs_line(run: dict, max_epochs: int, stop: Stop) -> str:
    """``epochs 30 of 30``, why it stopped when that is not the epoch limit, and where a
    resumed run started."""
    result = run["result"]
    reason = re.sub(r"^max epochs \(\d+\)(; )?", "", result.stopped)
    if stop.signum is not None and result.epochs_run < max_epochs and not reason:
        reason = f"interrupted by {signal.Signals(stop.signum).name}"
    if run["first"]:
        reason = f"resumed from epoch {run['first']}" + (f"; {reason}" if reason else "")
    return f"epochs      {result.epochs_run} of {max_epochs}" + (f" ({reason})" if reason else "")


def format_table(scores: dict, run: dict, cfg: dict, ds: data.Dataset, out: Path) -> str:
    """The final table: loss and accuracy (or R^2) per part, what the losses are, then epochs
    and folder."""
    score = "accuracy" if ds.task == "classification" else "R^2"
    lines = [f"{'':<12}{'loss':>10}{score:>10}"]
    for part, s in scores.items():
        lines.append(f"{part:<12}{s['loss']:>10.4f}{s['score']:>10.4f}")
    lines.append(
        "losses      after training, on each whole set, without L2 (the progress line's loss "
        "is the mean over an epoch's steps)"
    )
    prep = ds.preprocessing
    if prep.y_mean is not None and np.any(prep.y_scale != 1):
        where = (
            f"(y - {prep.y_mean[0]:.6g}) / {prep.y_scale[0]:.6g}"
            if prep.y_mean.size == 1
            else "(y - mean) / scale, per column (preprocessing.json)"
        )
        lines.append(f"units       loss of the standardized target {where}")
    lines.append(_epochs_line(run, cfg["epochs"], run["stop"]))
    lines.append(f"run folder  {out}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- train: files


def write_checkpoint(path: Path, cfg: dict, net: MLP, ds: data.Dataset, run: dict) -> None:
    """checkpoint.npz: the final params and optimizer state, the key; as metadata the net spec,
    the preprocessing, the config and the history (a self-contained run: jmlp.load_run)."""
    result = run["result"]
    save_checkpoint(
        path,
        params=result.params,
        opt_state=result.opt_state,
        epoch=result.epochs_run,
        key=run["key"],
        metadata=run_metadata(net, ds.preprocessing, config=cfg, history=result.history),
    )


def write_start(out: Path, cfg: dict, ds: data.Dataset, settings: dict) -> None:
    """What a run folder holds before training: preprocessing.json, training.json and, last
    (it marks the folder as a run's), config.json."""
    write_json(out / "preprocessing.json", ds.preprocessing.to_dict())
    write_json(out / "training.json", settings)
    write_json(out / "config.json", cfg)


def write_run(out: Path, cfg: dict, net: MLP, ds: data.Dataset, parts: dict, run: dict) -> None:
    """After training: checkpoint.npz, loss.png and (classifiers) confusion.png."""
    result = run["result"]
    write_checkpoint(out / "checkpoint.npz", cfg, net, ds, run)
    save_figure(loss_figure(result.history), out / "loss.png")
    if ds.task == "classification":
        x, y = parts["test"]
        predicted = class_codes(net, part_outputs(net, result.params, x, y, ds.n_classes)[1])
        counts = confusion_matrix(y, predicted, ds.n_classes)
        save_figure(confusion_figure(counts, ds.classes), out / "confusion.png")


def _run_folder(args: argparse.Namespace, cfg: dict) -> Path:
    """The resumed folder, ``--out`` (refused if it holds files, unless ``--overwrite``), or
    a new ``runs/<data>-<date>-<time>`` (``-2``, ``-3``, ... when taken)."""
    if args.resume is not None:
        return args.resume
    if args.out is not None:
        return args.out
    stem = "mnist" if cfg["data"].startswith(MNIST) else Path(cfg["data"]).stem
    return new_run_folder("runs", f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")


def run(args: argparse.Namespace) -> int:
    """``jmlp train``: load, fit (or continue), write the run folder, print the table and the
    time line. On SIGINT / SIGTERM: stop after the current chunk, save, write the folder,
    exit 130 / 143 saying how to resume."""
    with Clock(("data", "training", "evaluation", "writing")) as clock:
        began = process_start() if _FIRST_RUN[0] else clock.started
        imports, _FIRST_RUN[0] = clock.started - began, False
        with clock.phase("data"):
            cfg = resolve_config(args)
            ds = load_data(cfg)
            net = build_net(cfg, ds)
            parts = _split(cfg, ds)
            cfg["batch_size"] = min(cfg["batch_size"], len(parts["train"][0]))
            out = _run_folder(args, cfg)
            cfg.update(out=str(out), task=ds.task, sizes=list(net.sizes), n_classes=ds.n_classes)
            cfg.update(classes=None if ds.classes is None else list(ds.classes))
            cfg["target"] = None if _built_in(cfg["data"]) else cfg["target"]
            settings = training_settings(cfg, parts)
        resume = args.resume is not None
        if not resume and args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        with locked(out), stop_on_signals() as stop:
            options = {"progress": not (args.no_progress or args.quiet), "stop": stop}
            options["save_every"] = SAVE_EVERY if args.save_every is None else args.save_every
            try:
                with clock.phase("writing"):
                    if resume:
                        remove_temp_files(out)
                        options["state"] = resume_state(out, settings, cfg["epochs"])
                        if not (out / "training.json").is_file():
                            write_json(out / "training.json", settings)
                        write_json(out / "config.json", cfg)
                    else:
                        claim_run_folder(out, args.overwrite)
                        options["state"] = {"epoch": 0, "seconds": [], "notes": []}
                        write_start(out, cfg, ds, settings)
                if resume:
                    _say_resumed(out, options["state"], cfg["epochs"], args.quiet)
                with clock.phase("training"):
                    preload_figures()
                    run = run_training(cfg, net, parts, ds.n_classes, out, options)
                run["stop"] = stop
                with clock.phase("evaluation"):
                    scores = evaluate(net, run["result"].params, parts, ds.n_classes)
                with clock.phase("writing"):
                    write_run(out, cfg, net, ds, parts, run)
            except Interrupted as err:
                return _interrupted(err.signum, out, cfg["epochs"])
        total = time.time() - began
        if args.quiet:
            print(out)
        else:
            print(format_table(scores, run, cfg, ds, out))
            print(format_time(clock.parts(imports), total))
    result = run["result"]
    cut = result.epochs_run < cfg["epochs"] and result.stopped.startswith("max epochs")
    return _interrupted(stop.signum, out, cfg["epochs"]) if stop.signum and cut else 0


def _say_resumed(out: Path, state: dict, epochs: int, quiet: bool) -> None:
    """On stderr: from which epoch a resumed run continues, and what was repaired."""
    for note in state["notes"]:
        print(f"jmlp: note: {note}", file=sys.stderr)
    if not quiet:
        print(f"jmlp: resuming {out} from epoch {state['epoch']} of {epochs}", file=sys.stderr)


def _interrupted(signum: int, out: Path, epochs: int) -> int:
    """The message of an interrupted run (what it holds, how to continue) and its exit status."""
    last = out / "last.npz"
    done = load_checkpoint(last).epoch if last.is_file() else 0
    print(
        f"jmlp: interrupted by {signal.Signals(signum).name}; {out} holds the training state "
        f"after epoch {done} of {epochs}; continue with: jmlp train --resume {out}",
        file=sys.stderr,
    )
    return 128 + signum
