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

This module runs the steps; each lives in its own: ``train_options`` (the options, ``DEFAULTS``,
``PRESETS``), ``train_config`` (a setting from its sources), ``train_data`` (the data and its
parts), ``train_loop`` (the net, the optimizer, the fit in chunks), ``train_results`` (the scores
and the table), ``clock`` (the time line), ``signals`` (SIGINT / SIGTERM), and ``jmlp.runs`` (every
file of the run folder, written and read).
"""

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jmlp import data, runs
from jmlp.cli.clock import Clock, format_time, import_seconds
from jmlp.cli.options import UsageError
from jmlp.cli.signals import Interrupted, Stop, stop_on_signals
from jmlp.cli.train_config import resolve_config, training_settings
from jmlp.cli.train_data import built_in, data_stem, load_data, split_parts
from jmlp.cli.train_loop import build_net, run_training
from jmlp.cli.train_options import SAVE_EVERY, add_arguments
from jmlp.cli.train_results import confusion_counts, evaluate, format_table
from jmlp.figures import Painter
from jmlp.net import MLP

PHASES = ("data", "training", "evaluation", "writing")

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
    add_arguments(p)
    p.set_defaults(run=run)


class Job(NamedTuple):
    """What a run trains on and where it writes: the resolved ``cfg``, the data ``ds``, the
    ``net``, the ``parts`` (train, validation, test), the run folder ``out`` and the
    ``settings`` a resume must find unchanged."""

    cfg: dict[str, Any]
    ds: data.Dataset
    net: MLP
    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    out: Path
    settings: dict[str, Any]


def prepare(args: argparse.Namespace) -> Job:
    """The configuration resolved, the data loaded and split, the net built, the folder named."""
    cfg = resolve_config(args)
    ds = load_data(cfg)
    net = build_net(cfg, ds)
    parts = split_parts(cfg, ds)
    cfg["batch_size"] = min(cfg["batch_size"], len(parts["train"][0]))
    out = _run_folder(args, cfg)
    cfg.update(out=str(out), task=ds.task, sizes=list(net.sizes), n_classes=ds.n_classes)
    cfg.update(classes=None if ds.classes is None else list(ds.classes))
    cfg["target"] = None if built_in(cfg["data"]) else cfg["target"]
    return Job(cfg, ds, net, parts, out, training_settings(cfg, parts))


def _run_folder(args: argparse.Namespace, cfg: dict) -> Path:
    """The resumed folder, ``--out`` (refused if it holds files, unless ``--overwrite``), or
    a new ``runs/<data>-<date>-<time>`` (``-2``, ``-3``, ... when taken)."""
    if args.resume is not None:
        return args.resume
    if args.out is not None:
        return args.out
    return runs.dated_run_folder(data_stem(cfg["data"]))


def run(args: argparse.Namespace) -> int:
    """``jmlp train``: load, fit (or continue), write the run folder, print the table and the
    time line. On SIGINT / SIGTERM: stop after the current chunk, save, write the folder,
    exit 130 / 143 saying how to resume."""
    with Clock(PHASES) as clock:
        imports = import_seconds(clock.started)
        with clock.phase("data"):
            job = prepare(args)
        if args.resume is None and args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        with runs.locked(job.out), stop_on_signals() as stop:
            try:
                trained, scores = _train(args, job, clock, stop)
            except Interrupted as err:
                return _interrupted(err.signum, job.out, job.cfg["epochs"])
        total = time.time() - clock.started + imports  # since the process began importing
        if args.quiet:
            print(job.out)
        else:
            print(format_table(scores, trained, job.cfg, job.ds, job.out))
            print(format_time(clock.parts(imports), total))
    result = trained["result"]
    cut = result.epochs_run < job.cfg["epochs"] and result.stopped.startswith("max epochs")
    return _interrupted(stop.signum, job.out, job.cfg["epochs"]) if stop.signum and cut else 0


def _train(args: argparse.Namespace, job: Job, clock: Clock, stop: Stop) -> tuple[dict, dict]:
    """Start (or reopen) the run folder, train, evaluate each part, write the results.
    Returns what :func:`run_training` returns (with ``stop``) and the scores."""
    options = {"progress": not (args.no_progress or args.quiet), "stop": stop}
    options["save_every"] = SAVE_EVERY if args.save_every is None else args.save_every
    with clock.phase("writing"):
        options["state"] = _start(args, job)
    if args.resume is not None:
        _say_resumed(job.out, options["state"], job.cfg["epochs"], args.quiet)
    with Painter() as painter:  # matplotlib readied in another process while this one trains
        with clock.phase("training"):
            trained = run_training(job.cfg, job.net, job.parts, job.ds.n_classes, job.out, options)
        trained["stop"] = stop
        params = trained["result"].params
        with clock.phase("evaluation"):
            scores = evaluate(job.net, params, job.parts, job.ds.n_classes)
        with clock.phase("writing"):
            confusion = confusion_counts(job.net, params, job.parts, job.ds)
            runs.write_results(
                job.out,
                job.net,
                job.ds.preprocessing,
                job.cfg,
                trained["result"],
                trained["key"],
                confusion,
                painter,
            )
    return trained, scores


def _start(args: argparse.Namespace, job: Job) -> dict[str, Any]:
    """The folder made ready: a resumed run's state checked (its epochs at most ``--epochs``)
    and its config rewritten, or a new run's first files. Returns the state training starts
    from: ``epoch``, ``seconds`` (of the epochs done) and ``notes``."""
    if args.resume is None:
        runs.claim_run_folder(job.out, args.overwrite)
        runs.write_start(job.out, job.cfg, job.ds.preprocessing, job.settings)
        return {"epoch": 0, "seconds": [], "notes": []}
    state = runs.resume_state(job.out, job.settings)
    epochs = job.cfg["epochs"]
    if epochs < state["epoch"]:
        raise UsageError(
            f"train: --epochs {epochs}: the run already has {state['epoch']} epochs; give more "
            "to continue"
        )
    runs.write_resumed(job.out, job.cfg, job.settings)
    return state


def _say_resumed(out: Path, state: dict, epochs: int, quiet: bool) -> None:
    """On stderr: from which epoch a resumed run continues, and what was repaired."""
    for note in state["notes"]:
        print(f"jmlp: note: {note}", file=sys.stderr)
    if not quiet:
        print(f"jmlp: resuming {out} from epoch {state['epoch']} of {epochs}", file=sys.stderr)


def _interrupted(signum: int, out: Path, epochs: int) -> int:
    """The message of an interrupted run (what it holds, how to continue) and its exit status."""
    done = runs.epochs_saved(out)
    print(
        f"jmlp: interrupted by {signal.Signals(signum).name}; {out} holds the training state "
        f"after epoch {done} of {epochs}; continue with: jmlp train --resume {out}",
        file=sys.stderr,
    )
    return 128 + signum
