"""``jmlp train``: train an MLP on a built-in data set or a CSV/NPZ file and write a run folder.

A training run is configured by, in order of precedence: the command line, ``--config FILE``
(the ``config.json`` of an earlier run), the preset of the built-in data set (``PRESETS``), and
``DEFAULTS``. The resolved configuration is written to the run folder with the metrics, the
preprocessing and the checkpoint (the layout: ``jmlp.runs``). ``--resume RUN_FOLDER`` continues
a run with its own configuration, to a larger ``--epochs``.
"""

import argparse
import csv
import json
import re
import time
from functools import partial
from pathlib import Path
from typing import Any
from zipfile import BadZipFile, is_zipfile

import jax
import numpy as np

from jmlp import data, optim
from jmlp.checkpoint import save_checkpoint
from jmlp.cli.options import (
    UsageError,
    column,
    delimiter,
    fraction,
    int_list,
    names,
    non_negative,
    positive_int,
)
from jmlp.forward import MLP, forward, loss
from jmlp.init import init_params
from jmlp.losses import CLASSIFICATION, LOSSES
from jmlp.metrics import r2_score
from jmlp.runs import class_codes, run_metadata
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
scale, class names), metrics.csv (one row per epoch), checkpoint.npz (the trained model:
jmlp.load_run), last.npz (the training state after the last epoch, which --resume continues),
loss.png and, for classifiers, confusion.png (test set). jmlp predict applies it to new data.
Unset options come from --config, then the data set's preset, then the defaults."""


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
    a("--lr", type=non_negative, metavar="ETA", help="learning rate (default 1e-3 or preset)")
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
        type=int,
        metavar="S",
        help="seed of the split, the init and the shuffling (default 0)",
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
        type=non_negative,
        metavar="C",
        help="L2 coefficient: loss + l2/2 sum W^2 (default 0)",
    )
    a("--gradient", choices=GRADIENTS, help="backprop (hand-written, default) or autodiff")
    a("--out", type=Path, metavar="DIR", help="run folder (default runs/<data>-<date>-<time>)")
    a("--no-progress", action="store_true", help="no progress bar")
    a("--quiet", action="store_true", help="print only the run folder (no bar, no table)")
    p.set_defaults(run=run)


# ----------------------------------------------------------------------------- train: config


def read_config(path: Path) -> dict[str, Any]:
    """The settings saved in a run's config.json (a JSON object)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--config {path}: {err}") from None
    if not isinstance(saved, dict):
        raise TypeError(f"--config {path}: expected a JSON object, got {type(saved).__name__}")
    return saved


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Each setting from the command line, else ``--config``, else the preset, else DEFAULTS.
    ``--resume FOLDER`` is ``--config FOLDER/config.json`` where only ``--epochs`` may change."""
    if args.resume is not None:
        _check_resume_options(args)
        args = argparse.Namespace(**{**vars(args), "config": args.resume / "config.json"})
    saved = {} if args.config is None else read_config(args.config)
    name = args.data if args.data is not None else saved.get("data")
    if name is None:
        raise UsageError("train: --data is required (or --config FILE)")
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
    if given:
        raise UsageError(
            f"train: --resume continues a run with its own settings; only --epochs may change, "
            f"got {', '.join(given)}"
        )
    if not (args.resume / "config.json").is_file():
        raise FileNotFoundError(f"--resume: {args.resume} is not a run folder (no config.json)")


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


# ----------------------------------------------------------------------------- train: run


def _split(cfg: dict[str, Any], ds: data.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train", "validation" (if val_split > 0), "test"}`` -> ``(x, y)``."""
    x, y = ds.x_train, ds.y_train
    if cfg["val_split"] == 0:
        return {"train": (x, y), "test": (ds.x_test, ds.y_test)}
    x, y, x_val, y_val = data.train_val_split(x, y, cfg["val_split"], cfg["seed"])
    return {"train": (x, y), "validation": (x_val, y_val), "test": (ds.x_test, ds.y_test)}


def _earlier_seconds(out: Path, resume: bool) -> list[float]:
    """The per-epoch times of the run being resumed (its metrics.csv), or none."""
    if not resume:
        return []
    with (out / "metrics.csv").open(newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def run_training(
    cfg: dict[str, Any], net: MLP, parts: dict, n_classes: int, out: Path, options: dict
) -> dict[str, Any]:
    """Fit (or, ``options["resume"]``, continue the run in ``out``); returns the FitResult,
    the per-epoch wall times, the fit's seconds and key. fit keeps its own training state in
    last.npz (the last epoch's, and with early stopping the best epoch's too): what --resume
    continues, bitwise as if the run had never stopped."""
    key_init, key_fit = jax.random.split(jax.random.key(cfg["seed"]))
    params = init_params(key_init, net.sizes)
    x, y = parts["train"]
    cfg["batch_size"] = min(cfg["batch_size"], len(x))
    validation = parts.get("validation")
    if validation is not None:
        validation = (validation[0], _targets(net, validation[1], n_classes))
    resume = options["resume"]
    seconds = _earlier_seconds(out, resume)
    if resume and cfg["epochs"] <= len(seconds):
        raise UsageError(
            f"train: --epochs {cfg['epochs']}: the run has done {len(seconds)} epochs already; "
            "give more to continue it"
        )
    start, offset = time.perf_counter(), seconds[-1] if seconds else 0.0
    result = fit(
        net,
        params,
        make_optimizer(cfg),
        x,
        _targets(net, y, n_classes),
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        key=key_fit,
        validation=validation,
        l2=cfg["l2"],
        gradient=cfg["gradient"],
        patience=cfg["patience"] or None,
        progress=options["progress"],
        callback=lambda epoch, p, h: seconds.append(offset + time.perf_counter() - start),
        checkpoint_path=out / "last.npz",
        resume=resume,
    )
    return {
        "result": result,
        "seconds": seconds,
        "time": time.perf_counter() - start,
        "key": key_fit,
    }


@partial(jax.jit, static_argnums=0)
def _loss_outputs_r2(net: MLP, params, x, t) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Loss (without L2), the outputs and R^2 of a part, as one compiled call."""
    return loss(net, params, x, t), forward(net, params, x), r2_score(net, params, x, t)


def evaluate(net: MLP, params, parts: dict, n_classes: int) -> dict[str, dict[str, float]]:
    """``{part: {"loss", "score"}}``: loss (without L2) and accuracy or R^2 of each part."""
    scores = {}
    for part, (x, y) in parts.items():
        value, out, r2 = _loss_outputs_r2(net, params, x, _targets(net, y, n_classes))
        score = np.mean(class_codes(net, np.asarray(out)) == y) if n_classes else r2
        scores[part] = {"loss": float(value), "score": float(score)}
    return scores


def _epochs_line(result, max_epochs: int) -> str:
    """``epochs 30 of 30``, and why it stopped when that is not the epoch limit."""
    reason = re.sub(r"^max epochs \(\d+\)(; )?", "", result.stopped)
    return f"epochs      {result.epochs_run} of {max_epochs}" + (f" ({reason})" if reason else "")


def format_table(scores: dict, run: dict, cfg: dict, ds: data.Dataset, out: Path) -> str:
    """The final table: loss and accuracy (or R^2) per part, then epochs, time and folder."""
    score = "accuracy" if ds.task == "classification" else "R^2"
    lines = [f"{'':<12}{'loss':>10}{score:>10}"]
    for part, s in scores.items():
        lines.append(f"{part:<12}{s['loss']:>10.4f}{s['score']:>10.4f}")
    prep = ds.preprocessing
    if prep.y_mean is not None and np.any(prep.y_scale != 1):
        where = (
            f"(y - {prep.y_mean[0]:.6g}) / {prep.y_scale[0]:.6g}"
            if prep.y_mean.size == 1
            else "(y - mean) / scale, per column (preprocessing.json)"
        )
        lines.append(f"units       loss of the standardized target {where}")
    lines.append(_epochs_line(run["result"], cfg["epochs"]))
    lines.append(f"time        {run['time']:.1f} s (training, compilation included)")
    lines.append(f"run folder  {out}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- train: files


def write_metrics(path: Path, history: dict[str, list[float]], seconds: list[float]) -> None:
    """metrics.csv: one row per epoch, ``epoch, loss[, val_loss, val_...], seconds``."""
    names = list(history)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *names, "seconds"])
        for i, t in enumerate(seconds):
            writer.writerow([i + 1, *(repr(history[n][i]) for n in names), f"{t:.4f}"])


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


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of class ``i`` predicted as class ``j``."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    return counts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


CURVE_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "val_r2": "validation R^2",
}


def loss_figure(history: dict[str, list[float]]):
    """loss.png: training (and validation) loss per epoch, log scale; validation score beside."""
    plt = _pyplot()
    extra = [k for k in history if k in ("val_accuracy", "val_r2")]
    fig, axes = plt.subplots(1, 1 + len(extra), figsize=(5 + 4 * len(extra), 3.6), squeeze=False)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for name in ("loss", "val_loss"):
        if name in history:
            axes[0, 0].plot(epochs, history[name], label=CURVE_LABELS[name])
    axes[0, 0].set(xlabel="epoch", ylabel="loss", yscale="log")
    axes[0, 0].legend()
    for ax, name in zip(axes[0, 1:], extra):
        ax.plot(epochs, history[name], color="C1")
        ax.set(xlabel="epoch", ylabel=CURVE_LABELS[name])
    return fig


def confusion_figure(counts: np.ndarray, classes: tuple | None):
    """confusion.png: the test set's confusion matrix, counts written in, accuracy on top."""
    plt = _pyplot()
    k = len(counts)
    names = [str(c) for c in (classes or range(k))]
    fig, ax = plt.subplots(figsize=(2.5 + 0.45 * k, 1.6 + 0.45 * k))
    ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        color = "white" if c > counts.max() / 2 else "black"
        ax.text(j, i, str(c), ha="center", va="center", color=color, fontsize=8)
    correct, total = int(np.trace(counts)), int(counts.sum())
    title = f"test set: accuracy {correct / total:.4f}\n({correct} of {total})"
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticklabels(names)
    return fig


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def write_run(out: Path, cfg: dict, net: MLP, ds: data.Dataset, parts: dict, run: dict) -> None:
    """config.json, preprocessing.json, metrics.csv, checkpoint.npz, loss.png and
    (classifiers) confusion.png."""
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "preprocessing.json").write_text(json.dumps(ds.preprocessing.to_dict(), indent=1) + "\n")
    result = run["result"]
    write_metrics(out / "metrics.csv", result.history, run["seconds"])
    write_checkpoint(out / "checkpoint.npz", cfg, net, ds, run)
    save_figure(loss_figure(result.history), out / "loss.png")
    if ds.task == "classification":
        x, y = parts["test"]
        outputs = _loss_outputs_r2(net, result.params, x, _targets(net, y, ds.n_classes))[1]
        predicted = class_codes(net, np.asarray(outputs))
        counts = confusion_matrix(y, predicted, ds.n_classes)
        save_figure(confusion_figure(counts, ds.classes), out / "confusion.png")


def _check_same_data(out: Path, ds: data.Dataset) -> None:
    """A resumed run must see the data it was trained on: the same preprocessing."""
    saved = json.loads((out / "preprocessing.json").read_text())
    if saved != json.loads(json.dumps(ds.preprocessing.to_dict())):
        raise ValueError(
            f"--resume: the data differ from those {out} was trained on (their preprocessing "
            f"does not match {out / 'preprocessing.json'})"
        )


def run(args: argparse.Namespace) -> int:
    """``jmlp train``: load, fit (or continue), print the table, write the run folder."""
    cfg = resolve_config(args)
    ds = load_data(cfg)
    net = build_net(cfg, ds)
    parts = _split(cfg, ds)
    resume = args.resume is not None
    if resume:
        out = args.resume
        _check_same_data(out, ds)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        stem = "mnist" if cfg["data"].startswith(MNIST) else Path(cfg["data"]).stem
        out = args.out or Path("runs") / f"{stem}-{stamp}"
    cfg.update(out=str(out), task=ds.task, sizes=list(net.sizes), n_classes=ds.n_classes)
    cfg.update(classes=None if ds.classes is None else list(ds.classes))
    cfg["target"] = None if _built_in(cfg["data"]) else cfg["target"]
    out.mkdir(parents=True, exist_ok=True)  # fail before training if it cannot be made
    options = {"resume": resume, "progress": not (args.no_progress or args.quiet)}
    run = run_training(cfg, net, parts, ds.n_classes, out, options)
    write_run(out, cfg, net, ds, parts, run)
    scores = evaluate(net, run["result"].params, parts, ds.n_classes)
    print(out if args.quiet else format_table(scores, run, cfg, ds, out))
    return 0
