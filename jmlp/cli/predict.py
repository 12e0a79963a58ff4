"""``jmlp predict``: apply a trained run folder to new raw data, in the data's own units and names.

    jmlp predict RUN_FOLDER new.csv [--out predictions.csv]

The run's preprocessing (feature means and scales, target scale, class names) turns the raw rows
into the network's inputs and its outputs back into class names or values in the target's units.
"""

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

from jmlp import data
from jmlp.checks import check_finite_rows
from jmlp.cli.options import delimiter
from jmlp.runs import Run, load_run, predict_raw, saved_config

PREDICT_EPILOG = """examples:
  jmlp predict runs/iris-20250101-120000 new_flowers.csv              # CSV on stdout
  jmlp predict runs/houses-20250101-120000 houses.csv --out prices.csv

The file's columns are found by the training file's header names (any order, other columns
ignored), else by position: the feature columns, or those and the target column where it was in
the training CSV (taken only if its cells are the run's classes, or numbers for regression).
If the file holds the target column, the accuracy (or R^2) is printed to stderr. Rows holding
NaN or inf are refused, naming the first.
Output: one row per input row, 'prediction' (class name, or value in the target's units) and,
when the network outputs probabilities, one 'p(CLASS)' column per class."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="apply a trained run folder to a CSV/NPZ file",
        description="Predict with the network of a run folder (jmlp train) on new raw data.",
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_folder", type=Path, metavar="RUN_FOLDER", help="a jmlp train run folder")
    p.add_argument("data", type=Path, metavar="DATA", help="a .csv or .npz file (NPZ: array x)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the CSV here (default: stdout)")
    p.add_argument(
        "--delimiter",
        type=delimiter,
        metavar="CHAR",
        help="CSV cell separator (default: the training file's, else ',')",
    )
    p.set_defaults(run=run)


def prediction_rows(run: Run, answers: np.ndarray, proba: np.ndarray | None) -> list[list[str]]:
    """Header and rows of the output CSV."""
    classes = run.preprocessing.classes
    if classes is None:
        n_out = answers.shape[1]
        header = ["prediction"] if n_out == 1 else [f"prediction_{k}" for k in range(n_out)]
        return [header] + [[_number(v) for v in row] for row in answers.tolist()]
    if proba is None:
        return [["prediction"]] + [[str(a)] for a in answers.tolist()]
    header = ["prediction"] + [f"p({c})" for c in classes]
    return [header] + [[str(a), *map(_number, p)] for a, p in zip(answers.tolist(), proba.tolist())]


def _number(value: float) -> str:
    """Seven significant digits: the precision of the float32 arithmetic behind them."""
    return f"{value:.7g}"


def score_line(run: Run, answers: np.ndarray, targets: np.ndarray) -> str:
    """Accuracy against the file's labels, or R^2 in the target's units."""
    if run.preprocessing.classes is not None:
        hits = sum(_same_label(a, t) for a, t in zip(answers.tolist(), targets.tolist()))
        n = len(answers)
        return f"accuracy {hits / n:.4f} ({hits} of {n}) against the file's labels"
    t = np.asarray(targets, np.float64).reshape(answers.shape)
    r2 = 1 - np.sum((t - answers) ** 2) / np.sum((t - t.mean(axis=0)) ** 2)
    return f"R^2 {r2:.4f} against the file's targets ({len(t)} rows)"


def _same_label(a, b) -> bool:
    """Labels compare as text, numbers by value ("1", "1.0" and 1 are the same class)."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def run(args: argparse.Namespace) -> int:
    """``jmlp predict``: read the run and the file, write the predictions."""
    run_ = load_run(args.run_folder)
    cfg = saved_config(args.run_folder)
    target = cfg.get("target")
    sep = args.delimiter or cfg.get("delimiter") or ("\t" if args.data.suffix == ".tsv" else ",")
    x, targets = data.read_features(
        args.data,
        run_.preprocessing,
        target=target if isinstance(target, int) else None,  # None: no target column in training
        delimiter=sep,
    )
    check_finite_rows(str(args.data), x)
    answers, proba = predict_raw(run_, x)
    rows = prediction_rows(run_, answers, proba)
    if args.out is None:
        try:
            csv.writer(sys.stdout).writerows(rows)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader (say, head) stopped early: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    else:
        with args.out.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        print(f"wrote {len(rows) - 1} predictions to {args.out}", file=sys.stderr)
    if targets is not None:
        print(score_line(run_, answers, targets), file=sys.stderr)
    return 0
