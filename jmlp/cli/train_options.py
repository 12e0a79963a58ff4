"""The options of ``jmlp train``: their argparse set-up, the defaults, the presets of the built-in
data sets, and the types that check a config.json's settings as the command line checks them."""

import argparse
from functools import cache
from pathlib import Path
from typing import Any

from jmlp import optim
from jmlp.backprop import GRADIENTS
from jmlp.cli.options import (
    column,
    delimiter,
    finite_non_negative,
    fraction,
    int_list,
    names,
    positive_int,
    seed,
)
from jmlp.feedback import RULES
from jmlp.losses import LOSSES

OPTIMIZERS = {
    "adam": optim.adam,
    "adamw": optim.adamw,
    "sgd": optim.sgd,
    "momentum": optim.momentum,
    "nesterov": optim.nesterov,
    "rmsprop": optim.rmsprop,
}
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
    "rule": "backprop",
    "feedback_seed": None,  # the seed of the rule's feedback matrices: --seed's
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
    "mnist1d": {"hidden": (128, 128), "l2": 3e-3, "epochs": 60},
    "doc003": {"hidden": (50,), "lr": 1e-2, "epochs": 40, "batch_size": 50},
    "mnist": {"hidden": (128,), "epochs": 10},
}
SAVE_EVERY = 2.0  # seconds of training between saves of the training state (--save-every)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``jmlp train``, in the order ``--help`` lists them. A setting's option
    defaults to None (unset): its value comes from the first of command line, ``--config``,
    preset and ``DEFAULTS`` that gives it."""
    for group in (
        _source_options,
        _network_options,
        _optimizer_options,
        _fit_options,
        _output_options,
    ):
        group(p.add_argument)


def _source_options(a) -> None:
    """Where the data and the settings come from."""
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


def _network_options(a) -> None:
    """The network: widths, activations, loss."""
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


def _optimizer_options(a) -> None:
    """The optimizer, its learning rate, epochs, batches and seed."""
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


def _fit_options(a) -> None:
    """Held-out fractions, early stopping, L2, the gradient and the learning rule."""
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
    a(
        "--rule",
        choices=RULES,
        help="learning rule: backprop (default), feedback alignment fa, direct feedback "
        "alignment dfa, or sign symmetry sign",
    )
    a(
        "--feedback-seed",
        type=seed,
        metavar="S",
        help="seed of fa's and dfa's fixed random feedback matrices (default: --seed)",
    )


def _output_options(a) -> None:
    """The run folder and what is printed."""
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


@cache
def option_types() -> dict[str, tuple[Any, Any]]:
    """``{setting: (type, choices)}`` of ``jmlp train``'s options: config.json's checks."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    return {a.dest: (a.type, a.choices) for a in p._actions if a.dest in DEFAULTS}
