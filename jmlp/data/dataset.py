"""The :class:`Dataset` record, and arrays -> Dataset: the task inferred and class labels coded
(:func:`encode_target`), then the split, the cast and the standardization (:func:`make_dataset`),
with the checks that name a bad column or row.

Features ``x`` come back as ``(n, n_in)`` floats (float32 unless ``dtype`` says otherwise); class
labels as ``(n,)`` int32 codes ``0..k-1``; regression targets as ``(n, n_out)`` floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from jmlp.data.preprocessing import (
    Preprocessing,
    check_fits,
    check_scaled,
    float_dtype,
    split_indices,
    standardize,
)

_MAX_CLASSES = 20  # integer-valued targets with at most this many values are inferred as classes


class Dataset(NamedTuple):
    """A train/test split.

    **Fields:**
    - ``x_train`` ``(n_train, n_in)``, ``x_test`` ``(n_test, n_in)``: float features.
    - ``y_train`` ``(n_train,)``, ``y_test`` ``(n_test,)``: int32 labels in ``0..n_classes-1``
      (classification), or float targets ``(n, n_out)`` (regression).
    - ``task``: ``"classification"`` or ``"regression"``.
    - ``n_classes``: number of classes, 0 for regression.
    - ``name``: where the data came from.
    - ``classes``: the original label of each code (``classes[k]`` for code ``k``); None for
      regression.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int
    name: str
    classes: tuple | None = None
    preprocessing: Preprocessing | None = None


def _few_whole_values(y: np.ndarray) -> bool:
    """Integer-valued, finite, and at most ``_MAX_CLASSES`` distinct values."""
    y = y.astype(np.float64)
    whole = np.all(np.isfinite(y)) and np.all(y == np.round(y))
    return bool(whole) and len(np.unique(y)) <= _MAX_CLASSES


def encode_target(
    y: np.ndarray, task: str | None, where: str, at: Callable[[int], str] = "row {}".format
) -> tuple[np.ndarray, str, Any]:
    """Targets -> (int32 codes or float targets, task, classes). Strings are always classes.
    ``where`` names the targets in errors, ``at(i)`` their row ``i``."""
    if task not in (None, "classification", "regression"):
        raise ValueError(f"task: expected 'classification', 'regression' or None, got {task!r}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    numeric = np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_
    if task is None:
        few = y.ndim == 1 and numeric and _few_whole_values(y)
        if y.ndim == 1 and numeric and not few:
            _check_not_almost_labels(y, where, at)
        task = "classification" if few or not numeric else "regression"
    if task == "regression":
        if not numeric:
            raise ValueError(f"{where}: task='regression' needs numbers, got {y.dtype} targets")
        return y.reshape(len(y), -1), task, None
    if y.ndim != 1:
        raise ValueError(f"{where}: class labels must be one column, got shape {y.shape}")
    values, codes = np.unique(y, return_inverse=True)
    if len(values) < 2:
        raise ValueError(
            f"{where}: every example has the label {values[0].item()!r}: one class, and a "
            "classifier needs at least two"
        )
    if numeric and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    return codes.astype(np.int32), task, tuple(values.tolist())


def _check_not_almost_labels(y: np.ndarray, where: str, at: Callable[[int], str]) -> None:
    """Few distinct values, most of them whole, but not all: class labels with a typo, or
    numbers? Refused rather than guessed (a stray 1.5 among labels 0, 1, 2 would otherwise make
    the whole task regression)."""
    y = y.astype(np.float64)
    whole = y == np.round(y)
    if len(np.unique(y)) > _MAX_CLASSES or np.mean(whole) <= 0.5:
        return
    i, values = int(np.argmax(~whole)), np.unique(y[whole])
    labels = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
    raise ValueError(
        f"{where}: looks like class labels (whole numbers {labels}) but {at(i)} holds "
        f"{y[i].item()!r}; correct that label, or pass task='regression' (jmlp train --task "
        "regression) to fit the values as numbers"
    )


def _check_finite(name: str, a: np.ndarray) -> None:
    """ValueError naming the first column holding NaN/inf, how many, and the first row."""
    bad = ~np.isfinite(a)
    if np.any(bad):
        j = int(np.argmax(bad.any(axis=0)))
        rows = np.flatnonzero(bad[:, j])
        raise ValueError(
            f"{name}: column {j} holds {len(rows)} NaN/inf values (first in row {rows[0]}); "
            "fill them in or drop those rows"
        )


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    classes: tuple | None,
    name: str,
    test_size: float,
    seed: int,
    scale: bool,
    dtype: DTypeLike,
    columns: tuple | None = None,
    scale_targets: bool = True,
) -> Dataset:
    """Split (stratified for classes), cast and optionally standardize (regression: y too, unless
    not ``scale_targets``), keeping the statistics in ``Dataset.preprocessing``. Values the dtype
    cannot hold, raw or standardized, are refused naming the column (``columns``: the features'
    names)."""
    dtype = float_dtype(dtype)
    strata = y if task == "classification" else None
    train, test = split_indices(len(x), test_size, seed, strata)
    check_fits("x", x, dtype, columns)
    x_train, x_test = x[train].astype(dtype), x[test].astype(dtype)
    y_train, y_test = y[train], y[test]
    x_mean, x_scale = np.zeros(x.shape[1:], dtype), np.ones(x.shape[1:], dtype)
    y_mean = y_scale = None
    if task == "regression":
        check_fits("y", y, dtype, None)
        y_train, y_test = y_train.astype(dtype), y_test.astype(dtype)
        y_mean, y_scale = np.zeros(y.shape[1:], dtype), np.ones(y.shape[1:], dtype)
    if scale:
        x_train, x_test, x_mean, x_scale = standardize(x_train, x_test)
        check_scaled("x", (x_train, x_test), x_scale, columns)
        if task == "regression" and scale_targets:
            y_train, y_test, y_mean, y_scale = standardize(y_train, y_test)
            check_scaled("y", (y_train, y_test), y_scale, None)
    n_classes = len(classes) if task == "classification" else 0
    prep = Preprocessing(x_mean, x_scale, y_mean, y_scale, classes)
    return Dataset(x_train, y_train, x_test, y_test, task, n_classes, name, classes, prep)


def from_arrays(
    x: ArrayLike,
    y: ArrayLike,
    *,
    task: str | None = None,
    name: str = "arrays",
    test_size: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    dtype: DTypeLike = np.float32,
    standardize_targets: bool = True,
) -> Dataset:
    """Turn features ``x (n, n_in)`` and targets ``y (n,)`` or ``(n, n_out)`` into a Dataset.

    ``task=None`` infers it: string labels, or integer-valued numbers with at most 20 distinct
    values, are classes (coded ``0..k-1`` in sorted order, kept in ``Dataset.classes``); other
    numbers are regression targets, except few values mostly whole (a stray 1.5 among labels
    0, 1, 2), which are refused: say ``task``. ``standardize`` z-scores x, and for regression y
    as well (unless not ``standardize_targets``: counts for a poisson loss stay >= 0), with
    training statistics only. One class, and values the dtype cannot hold (raw or
    standardized), are refused.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"x: expected a 2-D numeric array, got {x.dtype} {x.shape}")
    if y.ndim not in (1, 2) or len(y) != len(x):
        raise ValueError(f"y: expected shape ({len(x)},) or ({len(x)}, n_out), got {y.shape}")
    _check_finite("x", x)
    if np.issubdtype(y.dtype, np.number):
        _check_finite("y", y.reshape(len(y), -1))
    y, task, classes = encode_target(y, task, "y")
    return make_dataset(
        x, y, task, classes, name, test_size, seed, standardize, dtype, None, standardize_targets
    )
