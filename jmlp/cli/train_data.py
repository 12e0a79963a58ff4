"""The data of a ``jmlp train`` run: the built-in set, MNIST or the user's file named by
``--data``, its parts (train, validation, test), and the targets in the form the loss wants."""

import csv
from pathlib import Path
from typing import Any
from zipfile import BadZipFile, is_zipfile

import numpy as np

from jmlp import data
from jmlp.net import MLP

MNIST = "mnist:"  # --data mnist:DIR: the four MNIST IDX files in DIR (jmlp.data.load_mnist)


def built_in(name: str) -> bool:
    """``name`` is a built-in set or ``mnist:DIR`` (not a file of the user's)."""
    return name in data.DATASETS or name.startswith(MNIST)


def data_stem(name: str) -> str:
    """What a run folder is named after: ``mnist``, the set's name or the file's stem."""
    return "mnist" if name.startswith(MNIST) else Path(name).stem


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
    return _load_file(name, cfg)


def _load_file(name: str, cfg: dict[str, Any]) -> data.Dataset:
    """The user's CSV/NPZ file, split; every error it raises as one ValueError naming the file.
    Sets ``cfg["delimiter"]`` (tab for .tsv, else comma) when unset."""
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
    counts = cfg.get("loss") == "poisson"  # targets >= 0, as they are: no classes, no z-scores
    task = ("regression" if counts else None) if cfg["task"] == "auto" else cfg["task"]
    cfg["delimiter"] = cfg["delimiter"] or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        return data.load_table(
            path,
            target=cfg["target"],
            task=task,
            delimiter=cfg["delimiter"],
            test_size=cfg["test_split"],
            seed=cfg["seed"],
            standardize_targets=not counts,
        )
    except (ValueError, TypeError, OSError, KeyError, EOFError, csv.Error, BadZipFile) as err:
        message = str(err) if name in str(err) else f"{name}: {err}"
        raise ValueError(f"--data: cannot use {message}") from None


def split_parts(cfg: dict[str, Any], ds: data.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


def loss_targets(net: MLP, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class codes 0..k-1 as the loss wants them: {-1, +1} for hinge, one-hot rows for a
    regression loss, as they are otherwise (and regression targets as they are)."""
    if n_classes == 0 or net.loss in ("cross_entropy", "binary_cross_entropy"):
        return y
    return 2 * y - 1 if net.loss == "hinge" else data.one_hot(y, n_classes)


def target_rows(net: MLP, t: np.ndarray) -> np.ndarray:
    """Targets as rows ``(n, n_out)``: integer labels one-hot, one column of values as a column."""
    t = np.asarray(t)
    if t.ndim == 2:
        return t
    integer = np.issubdtype(t.dtype, np.integer) and net.sizes[-1] > 1
    return data.one_hot(t, net.sizes[-1]) if integer else t[:, None]
