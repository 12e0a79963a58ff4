"""Data sets and loaders: bundled toy sets, document 003's problem, MNIST IDX files, CSV/NPZ tables.

Everything here is numpy; nothing is downloaded. Features ``x`` come back as ``(n, n_in)`` floats
(float32 unless ``dtype`` says otherwise); class labels as ``(n,)`` int32 codes ``0..k-1``;
regression targets as ``(n, n_out)`` floats. scikit-learn (``pip install "jmlp[experiments]"``)
is needed only for its bundled sets and generators, and is imported inside the functions that use it.

Splits are seeded and, for classification, stratified: class ``c`` with ``n_c`` of ``n`` examples
gets ``n_test * n_c / n`` test examples, rounded by largest remainder, ``n_test = ceil(test_size n)``.
Standardization uses the training statistics only: ``x' = (x - mean_train) / std_train``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import math
import os
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

_SKLEARN_HINT = 'scikit-learn is needed for this data set: pip install "jmlp[experiments]"'
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


class Preprocessing(NamedTuple):
    """How raw rows became the network's inputs and targets (training statistics), and back.

    ``x' = (x - x_mean) / x_scale``; regression targets ``t' = (t - y_mean) / y_scale``, so an
    output ``y'`` means ``y = y' y_scale + y_mean``; class code ``k`` means ``classes[k]``.

    **Fields:**
    - ``x_mean``, ``x_scale``: ``x_train.shape[1:]``, e.g. ``(n_in,)`` (0 and 1: unscaled).
    - ``y_mean``, ``y_scale``: ``(n_out,)`` for regression, None for classes.
    - ``classes``: the original label of each class code; None for regression.
    - ``features``, ``target``: the names of the feature and target columns (a CSV header),
      None if unnamed.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray | None = None
    y_scale: np.ndarray | None = None
    classes: tuple | None = None
    features: tuple[str, ...] | None = None
    target: str | None = None

    def inputs(self, x: ArrayLike, dtype: DTypeLike = np.float32) -> np.ndarray:
        """Raw features ``(n, n_in)`` -> network inputs ``(x - x_mean) / x_scale`` in ``dtype``
        (the arithmetic of training, so the same rows give bitwise the same inputs)."""
        dtype = _float_dtype(dtype)
        x = np.asarray(x).astype(dtype)
        if x.shape[1:] != self.x_mean.shape:
            raise ValueError(
                f"x: expected rows of shape {self.x_mean.shape}, i.e. x of shape "
                f"(n, {', '.join(map(str, self.x_mean.shape))}), got x of shape {x.shape}"
            )
        return (x - self.x_mean.astype(dtype)) / self.x_scale.astype(dtype)

    def outputs(self, y: ArrayLike) -> np.ndarray:
        """Regression outputs ``(n, n_out)`` in training units -> original units, float64."""
        y = np.asarray(y, np.float64)
        return y if self.y_mean is None else y * self.y_scale + self.y_mean

    def labels(self, codes: ArrayLike) -> np.ndarray:
        """Class codes ``(n,)`` -> the original labels ``classes[code]``."""
        return np.asarray(self.classes)[np.asarray(codes)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats exact: ``json`` writes the shortest repr that round-trips).
        NaN/inf statistics (which JSON writes as ``NaN``/``Infinity``) are refused."""
        for field in ("x_mean", "x_scale", "y_mean", "y_scale"):
            value = getattr(self, field)
            if value is not None and not np.all(np.isfinite(value)):
                j = int(np.argmax(~np.isfinite(np.ravel(value))))
                raise ValueError(
                    f"preprocessing: {field} holds {np.ravel(value)[j].item()!r} (column {j}); "
                    "statistics must be finite"
                )
        plain = {
            k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self._asdict().items()
        }
        plain["dtype"] = str(self.x_mean.dtype)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in plain.items()}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Preprocessing:
        """The inverse of :meth:`to_dict`."""
        dtype = np.dtype(saved.get("dtype", "float32"))
        fields = {k: saved.get(k) for k in cls._fields}
        for k, v in fields.items():
            if v is not None and k != "target":
                fields[k] = np.asarray(v, dtype) if k.endswith(("mean", "scale")) else tuple(v)
        return cls(**fields)


# ----------------------------------------------------------------------------- small tools


def one_hot(labels: ArrayLike, n_classes: int, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Indicator matrix ``T[i, k] = 1 if labels[i] == k else 0``; labels ``(n,)`` -> ``(n, k)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected 1-D integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels: expected values in [0, {n_classes}), got [{labels.min()}, {labels.max()}]"
        )
    return (labels[:, None] == np.arange(n_classes)).astype(dtype)


def standardize(x_train: ArrayLike, *others: ArrayLike) -> tuple[np.ndarray, ...]:
    """Z-score every array with the statistics of ``x_train`` (columns = features).

    ``mean = mean_i x_train[i]``, ``std = std_i x_train[i]`` (1 where it is 0), then
    ``x' = (x - mean) / std`` for ``x_train`` and each of ``others``, in ``x_train``'s dtype.
    The statistics are computed in float64 on each column divided by its largest magnitude, so
    no square overflows (values near float64's limit keep a finite std).

    **Returns:** ``(x_train', *others', mean, std)``; mean and std have shape ``x_train.shape[1:]``.
    """
    x_train = np.asarray(x_train)
    mean, std = _mean_std(x_train)
    dtype = x_train.dtype if np.issubdtype(x_train.dtype, np.floating) else np.dtype(np.float64)
    with np.errstate(over="ignore"):  # what overflows the dtype is refused by the callers
        mean, std = mean.astype(dtype), std.astype(dtype)
        scaled = tuple((np.asarray(a) - mean) / std for a in (x_train, *others))
    return (*scaled, mean, std)


def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of ``x (n, ...)`` in float64, computed on
    ``x / m`` with ``m`` the column's largest magnitude; a std of 0 becomes 1."""
    x = x.astype(np.float64)
    m = np.max(np.abs(x), axis=0) if len(x) else np.ones(x.shape[1:])
    m = np.where((m > 0) & np.isfinite(m), m, 1.0)
    u = x / m
    mean, std = u.mean(axis=0) * m, u.std(axis=0) * m
    return mean, np.where(std > 0, std, 1.0)


def _check_fits(name: str, a: np.ndarray, dtype: np.dtype, columns: tuple | None) -> None:
    """ValueError naming the first column of ``a (n, ...)`` whose values overflow ``dtype``
    (float64 values beyond float32's +-3.4e38), with the largest magnitude there."""
    flat = a.reshape(len(a), -1)
    if not flat.size:
        return
    low, high = flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)
    peak = np.maximum(-low, high)
    big = peak > np.finfo(dtype).max
    if np.any(big):
        j = int(np.argmax(big))
        raise ValueError(
            f"{name}: column {_label(j, columns)} holds {peak[j]:.3g}, beyond the range of "
            f"{dtype} (+-{np.finfo(dtype).max:.3g}); rescale it or pass dtype=np.float64"
        )


def _check_scaled(name: str, arrays: tuple, std: np.ndarray, columns: tuple | None) -> None:
    """ValueError naming the first column whose standardized values ``(x - mean) / std``
    overflow the dtype (a std far below the values' spread in another split)."""
    for a in arrays:
        bad = ~np.isfinite(a.reshape(len(a), -1))
        if np.any(bad):
            j = int(np.argmax(bad.any(axis=0)))
            raise ValueError(
                f"{name}: column {_label(j, columns)} overflows {a.dtype} once standardized "
                f"((x - mean) / std, std {std.reshape(-1)[j]:.3g}); pass dtype=np.float64 or "
                "rescale it"
            )


def _label(j: int, columns: tuple | None) -> str:
    """How a message names column ``j``: by its name when the columns have names."""
    return repr(columns[j]) if columns else str(j)


def _split_indices(
    n: int, test_size: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test indices; per-stratum quotas by largest remainder."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size: expected a fraction in (0, 1), got {test_size}")
    n_test = math.ceil(test_size * n)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} of {n} examples leaves an empty split")
    rng = np.random.default_rng(seed)
    if strata is None:
        perm = rng.permutation(n)
        return perm[n_test:], perm[:n_test]
    values, codes, counts = np.unique(strata, return_inverse=True, return_counts=True)
    exact = n_test * counts / n
    quota = np.floor(exact).astype(int)
    extra = np.argsort(-(exact - quota), kind="stable")[: n_test - quota.sum()]
    quota[extra] += 1
    test, train = [], []
    for k in range(len(values)):
        members = rng.permutation(np.flatnonzero(codes == k))
        test.append(members[: quota[k]])
        train.append(members[quota[k] :])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def train_val_split(
    x: ArrayLike, y: ArrayLike, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``ceil(val_fraction n)`` examples, stratified when ``y`` is 1-D integer labels.

    **Returns:** ``(x_train, y_train, x_val, y_val)``; the same seed gives the same split.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x, y: expected the same number of rows, got {len(x)} and {len(y)}")
    labels = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    train, val = _split_indices(len(x), val_fraction, seed, y if labels else None)
    return x[train], y[train], x[val], y[val]


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    return dtype


# ----------------------------------------------------------------------------- arrays -> Dataset


def _few_whole_values(y: np.ndarray) -> bool:
    """Integer-valued, finite, and at most ``_MAX_CLASSES`` distinct values."""
    y = y.astype(np.float64)
    whole = np.all(np.isfinite(y)) and np.all(y == np.round(y))
    return bool(whole) and len(np.unique(y)) <= _MAX_CLASSES


def _encode_target(
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


def _make_dataset(
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
) -> Dataset:
    """Split (stratified for classes), cast and optionally standardize (regression: y too),
    keeping the statistics in ``Dataset.preprocessing``. Values the dtype cannot hold, raw or
    standardized, are refused naming the column (``columns``: the features' names)."""
    dtype = _float_dtype(dtype)
    strata = y if task == "classification" else None
    train, test = _split_indices(len(x), test_size, seed, strata)
    _check_fits("x", x, dtype, columns)
    x_train, x_test = x[train].astype(dtype), x[test].astype(dtype)
    y_train, y_test = y[train], y[test]
    x_mean, x_scale = np.zeros(x.shape[1:], dtype), np.ones(x.shape[1:], dtype)
    y_mean = y_scale = None
    if task == "regression":
        _check_fits("y", y, dtype, None)
        y_train, y_test = y_train.astype(dtype), y_test.astype(dtype)
        y_mean, y_scale = np.zeros(y.shape[1:], dtype), np.ones(y.shape[1:], dtype)
    if scale:
        x_train, x_test, x_mean, x_scale = standardize(x_train, x_test)
        _check_scaled("x", (x_train, x_test), x_scale, columns)
        if task == "regression":
            y_train, y_test, y_mean, y_scale = standardize(y_train, y_test)
            _check_scaled("y", (y_train, y_test), y_scale, None)
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
) -> Dataset:
    """Turn features ``x (n, n_in)`` and targets ``y (n,)`` or ``(n, n_out)`` into a Dataset.

    ``task=None`` infers it: string labels, or integer-valued numbers with at most 20 distinct
    values, are classes (coded ``0..k-1`` in sorted order, kept in ``Dataset.classes``); other
    numbers are regression targets, except few values mostly whole (a stray 1.5 among labels
    0, 1, 2), which are refused: say ``task``. ``standardize`` z-scores x, and for regression y
    as well, with training statistics only. One class, and values the dtype cannot hold (raw or
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
    return _dataset(x, y, task, name, test_size, seed, standardize, dtype)


def _dataset(
    x: np.ndarray,
    y: np.ndarray,
    task: str | None,
    name: str,
    test_size: float,
    seed: int,
    scale: bool,
    dtype: DTypeLike,
    columns: tuple | None = None,
    where: str = "y",
    at: Callable[[int], str] = "row {}".format,
) -> Dataset:
    """Checked ``x``, ``y`` -> Dataset; errors name the feature ``columns``, the targets
    (``where``) and their rows (``at(i)``)."""
    y, task, classes = _encode_target(y, task, where, at)
    return _make_dataset(x, y, task, classes, name, test_size, seed, scale, dtype, columns)


# ----------------------------------------------------------------------------- built-in sets


def make_spirals(
    n_per_arm: int = 300, n_arms: int = 3, noise: float = 0.05, turns: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n_arms`` interleaved 2-D spirals, arm ``k`` being class ``k``.

    Along arm ``k``, ``r = linspace(0.05, 1, n_per_arm)``, ``theta = 2 pi (k / n_arms + turns r)``
    and ``x = r (cos theta, sin theta) + noise * N(0, I)``.

    **Returns:** ``x (n_per_arm n_arms, 2)`` float64 and ``y (n_per_arm n_arms,)`` int32.
    """
    if n_per_arm < 1 or n_arms < 2:
        raise ValueError(f"n_per_arm >= 1 and n_arms >= 2 expected, got {n_per_arm}, {n_arms}")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1.0, n_per_arm), n_arms)
    y = np.repeat(np.arange(n_arms, dtype=np.int32), n_per_arm)
    theta = 2 * np.pi * (y / n_arms + turns * r)
    x = r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + noise * rng.standard_normal(x.shape), y


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError as error:
        raise ImportError(_SKLEARN_HINT) from error
    return datasets


def _bundled(loader_name: str):
    def read(seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
        bunch = getattr(_sklearn_datasets(), loader_name)()
        names = getattr(bunch, "target_names", None)
        return bunch.data, bunch.target, None if names is None else tuple(names.tolist())

    return read


def _moons(seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    x, y = _sklearn_datasets().make_moons(n_samples=1000, noise=0.2, random_state=seed)
    return x, y, (0, 1)


def _spirals(seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    x, y = make_spirals(seed=seed)
    return x, y, (0, 1, 2)


# name -> (reader(seed) -> (x, y, classes or None), task)
_BUILTIN = {
    "iris": (_bundled("load_iris"), "classification"),
    "digits": (_bundled("load_digits"), "classification"),
    "wine": (_bundled("load_wine"), "classification"),
    "breast_cancer": (_bundled("load_breast_cancer"), "classification"),
    "diabetes": (_bundled("load_diabetes"), "regression"),
    "moons": (_moons, "classification"),
    "spirals": (_spirals, "classification"),
}
DATASETS: tuple[str, ...] = (*_BUILTIN, "doc003")


def _doc003(test_size: float, seed: int, scale: bool, dtype: DTypeLike) -> Dataset:
    """Document 003, section 3: make_classification(...) then train_test_split(...), verbatim."""
    x, y = _sklearn_datasets().make_classification(
        n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3, random_state=7
    )
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed
    )
    dtype = _float_dtype(dtype)
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    x_mean, x_scale = np.zeros(5, dtype), np.ones(5, dtype)
    if scale:
        x_train, x_test, x_mean, x_scale = standardize(x_train, x_test)
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    prep = Preprocessing(x_mean, x_scale, classes=(0, 1, 2))
    return Dataset(x_train, y_train, x_test, y_test, "classification", 3, "doc003", (0, 1, 2), prep)


def load(
    name: str,
    *,
    test_size: float = 0.2,
    seed: int | None = None,
    standardize: bool | None = None,
    dtype: DTypeLike = np.float32,
) -> Dataset:
    """Load a built-in data set (one of ``DATASETS``), split and (optionally) standardized.

    - ``iris`` (150 x 4, 3 classes), ``digits`` (1797 x 64, 10), ``wine`` (178 x 13, 3),
      ``breast_cancer`` (569 x 30, 2): scikit-learn's bundled copies.
    - ``diabetes`` (442 x 10): regression; y is ``(n, 1)`` and, when standardized, z-scored with
      the training mean and std (R^2 is unchanged by this affine rescaling).
    - ``moons`` (1000 x 2, 2): ``make_moons(1000, noise=0.2, random_state=seed)``.
    - ``spirals`` (900 x 2, 3): ``make_spirals(seed=seed)``.
    - ``doc003`` (500 x 5, 3): document 003's problem exactly: ``make_classification(
      n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3,
      random_state=7)`` then ``train_test_split(test_size=0.2, random_state=7)`` (not stratified),
      raw features. Its defaults differ: ``seed=None`` means 7 and ``standardize=None`` False.

    ``seed=None`` means 0 (7 for doc003); ``standardize=None`` means True (False for doc003).
    Other sets are split with a seeded stratified (classification) split of ``ceil(test_size n)``.
    """
    if name == "doc003":
        seed = 7 if seed is None else seed
        return _doc003(test_size, seed, bool(standardize), dtype)
    if name not in _BUILTIN:
        raise ValueError(f"name: expected one of {DATASETS}, got {name!r}")
    seed = 0 if seed is None else seed
    reader, task = _BUILTIN[name]
    x, y, classes = reader(seed)
    if task == "classification":
        y = y.astype(np.int32)
    else:
        classes, y = None, y.reshape(len(y), 1)
    scale = True if standardize is None else standardize
    return _make_dataset(x, y, task, classes, name, test_size, seed, scale, dtype)


# ----------------------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


def _read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic 1f 8b."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {os.fspath(path)!r}")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise ValueError(f"{os.fspath(path)!r}: corrupt gzip data ({error})") from error


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a native-endian numpy array.

    Layout: bytes ``0 0 code ndim``, then ``ndim`` big-endian uint32 sizes, then the big-endian
    data; code 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
    """
    raw, where = _read_bytes(path), repr(os.fspath(path))
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{where}: not an IDX file (header {raw[:4].hex(' ')})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{where}: header truncated ({len(raw)} bytes, ndim {ndim})")
    shape = struct.unpack(f">{ndim}I", raw[4:start])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - start != expected:
        raise ValueError(
            f"{where}: shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {len(raw) - start}"
        )
    return np.frombuffer(raw, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: ArrayLike) -> None:
    """Write ``array`` as an IDX file (see ``load_idx``); gzipped when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(
            f"array: IDX stores uint8/int8/int16/int32/float32/float64, got {array.dtype}"
        )
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(f"array: shape {array.shape} does not fit an IDX header")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(_IDX_DTYPES[code], copy=False).tobytes()
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def _find_mnist_file(directory: str, stem: str, kind: str) -> str:
    """``{stem}-{kind}-ubyte`` or ``{stem}.{kind}-ubyte``, each optionally ``.gz``."""
    names = [f"{stem}{sep}{kind}-ubyte{gz}" for sep in "-." for gz in ("", ".gz")]
    for name in names:
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise FileNotFoundError(f"load_mnist: none of {names} in {directory!r}")


def load_mnist(
    directory: str | os.PathLike,
    *,
    flatten: bool = True,
    scale: bool = True,
    dtype: DTypeLike = np.float32,
) -> Dataset:
    """MNIST (or any set in its four IDX files) from ``directory``.

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` (``.`` instead of the middle ``-`` and ``.gz`` accepted).

    **Returns:** a Dataset with ``x (n, 784)`` (``(n, 28, 28)`` unless ``flatten``), pixels
    ``p / 255`` when ``scale`` else ``p``, in ``dtype``; labels ``(n,)`` int32; 10 classes.
    """
    directory = os.fspath(directory)
    dtype = _float_dtype(dtype)
    arrays = []
    for stem in ("train", "t10k"):
        images = load_idx(_find_mnist_file(directory, f"{stem}-images", "idx3"))
        labels = load_idx(_find_mnist_file(directory, f"{stem}-labels", "idx1"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"load_mnist: {stem} images {images.shape} and labels {labels.shape} in "
                f"{directory!r}: expected (n, rows, cols) and (n,)"
            )
        x = images.astype(dtype) / dtype.type(255) if scale else images.astype(dtype)
        arrays += [x.reshape(len(x), -1) if flatten else x, labels.astype(np.int32)]
    shape, classes = arrays[0].shape[1:], tuple(range(10))
    x_scale = np.full(shape, 255 if scale else 1, dtype)
    prep = Preprocessing(np.zeros(shape, dtype), x_scale, classes=classes)
    return Dataset(*arrays, "classification", 10, "mnist", classes, prep)


# ----------------------------------------------------------------------------- user tables


class _Cells(NamedTuple):
    """A CSV file's non-blank rows as text: ``cells (n, n_cols)``, the file line of each row,
    and the header row (None if the file has none)."""

    cells: np.ndarray
    lines: list[int]
    header: list[str] | None


def _read_csv(path: str, delimiter: str) -> _Cells:
    """Every non-blank row, stripped; the first is a header when :func:`_has_header` says so."""
    rows, lines = [], []
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: drops Excel's BOM
        reader = csv.reader(f, delimiter=delimiter)
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path!r}: no rows")
    for row, line in zip(rows, lines):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"{path!r}: line {line} has {len(row)} cells, line {lines[0]} has {len(rows[0])}"
            )
    header = rows.pop(0) if _has_header(rows) else None
    lines = lines[1:] if header is not None else lines
    if not rows:
        raise ValueError(f"{path!r}: a header row and no data rows")
    if header is not None:
        _check_unique(header, path)
    return _Cells(np.array(rows, dtype=str), lines, header)


def _check_unique(header: list[str], path: str) -> None:
    """Columns are found by name (jmlp predict): two columns of one name are refused."""
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        at = [j for j, name in enumerate(header) if name == twice[0]]
        raise ValueError(
            f"{path!r}: the header repeats column names {twice} ({twice[0]!r} names columns "
            f"{at}); give each column its own name"
        )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _has_header(rows: list[list[str]]) -> bool:
    """A first row is a header when some cell is text above a number in the second row, or a
    number above a column of text (names "0", "1", "2" over labels); one row: when no cell is a
    number."""
    if len(rows) == 1:
        return not any(_is_number(cell) for cell in rows[0])
    for j, (a, b) in enumerate(zip(rows[0], rows[1])):
        if not _is_number(a) and _is_number(b):
            return True
        if _is_number(a) and not _is_number(b) and not any(_is_number(r[j]) for r in rows[1:]):
            return True
    return False


def _column_name(table: _Cells, j: int) -> str:
    return repr(table.header[j]) if table.header else str(j)


def _target_index(target: int | str, table: _Cells, path: str) -> int:
    header, n_cols = table.header, table.cells.shape[1]
    if isinstance(target, str):
        if header is None:
            raise ValueError(f"target={target!r} names a column, but {path!r} has no header row")
        if target not in header:
            raise ValueError(f"target: {target!r} is not a column of {path!r}; columns: {header}")
        return header.index(target)
    if not -n_cols <= target < n_cols:
        raise ValueError(f"target: column {target} out of range for {n_cols} columns in {path!r}")
    return target % n_cols


def _bad_cell(text: str) -> str | None:
    """Why a cell cannot be a number for training, or None if it can."""
    if not text:
        return "has an empty cell"
    if not _is_number(text):
        return f"is not numeric ({text!r})"
    return None if math.isfinite(float(text)) else f"holds {text!r}"


def _numbers(table: _Cells, columns: list[int], path: str, kind: str = "feature") -> np.ndarray:
    """Columns as float64 ``(n, len(columns))``. The first cell that is empty, not a number,
    NaN or inf is named by its column and file line (before any standardization spreads it)."""
    with contextlib.suppress(ValueError):
        x = table.cells[:, columns].astype(np.float64)
        if np.all(np.isfinite(x)):
            return x
    for j in columns:
        for i, cell in enumerate(table.cells[:, j].tolist()):
            if (why := _bad_cell(cell)) is not None:
                raise ValueError(
                    f"{path!r}: {kind} column {_column_name(table, j)} {why} at line "
                    f"{table.lines[i]}; fill it in or drop the row"
                )
    raise AssertionError("unreachable: a cell failed to convert but none is bad")


class _Parsed(NamedTuple):
    """A CSV file as training reads it: ``x (n, n_in)`` float64, ``y (n,)`` (float64 if every
    cell is a number, else text), the names of the feature columns and of the target (None
    without a header), how messages name the target column, and the file line of each row."""

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...] | None
    target: str | None
    column: str
    lines: list[int]


def _parse_csv(path: str, target: int | str, delimiter: str) -> _Parsed:
    """The training table of a CSV file (see :class:`_Parsed`)."""
    table = _read_csv(path, delimiter)
    if len(table.cells) < 2:
        raise ValueError(f"{path!r}: expected at least 2 data rows, got 1")
    n_cols = table.cells.shape[1]
    if n_cols < 2:
        seen = [d for d in ";\t| " if d in table.cells[0, 0]]
        hint = f" (its rows hold {seen[0]!r}: is that the delimiter?)" if seen else ""
        raise ValueError(
            f"{path!r}: expected feature columns and a target column, got 1 column{hint}"
        )
    t = _target_index(target, table, path)
    features = [j for j in range(n_cols) if j != t]
    x = _numbers(table, features, path)
    y = table.cells[:, t].tolist()
    if "" in y:
        raise ValueError(
            f"{path!r}: target column {_column_name(table, t)} has an empty cell at line "
            f"{table.lines[y.index('')]}; fill it in or drop the row"
        )
    numbers = [_is_number(c) for c in y]
    if all(numbers):
        y = _numbers(table, [t], path, "target")[:, 0]
    else:
        missing = [i for i, n in enumerate(numbers) if n and not math.isfinite(float(y[i]))]
        if missing:
            raise ValueError(
                f"{path!r}: target column {_column_name(table, t)} holds {y[missing[0]]!r} at "
                f"line {table.lines[missing[0]]}: a missing value, not a class; fill it in or "
                "drop the row"
            )
        y = table.cells[:, t]
    names = None if table.header is None else tuple(table.header[j] for j in features)
    target_name = None if table.header is None else table.header[t]
    return _Parsed(x, y, names, target_name, _column_name(table, t), table.lines)


def read_features(
    path: str | os.PathLike,
    preprocessing: Preprocessing,
    *,
    target: int | None = -1,
    delimiter: str = ",",
    keys: tuple[str, str] = ("x", "y"),
) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw feature rows of a CSV or NPZ file to predict on, and its targets if it has them.

    CSV with a header and a run whose features have names: the columns are found by name (in any
    order, others ignored; the target column by ``preprocessing.target``). Otherwise by
    position: ``n_in`` feature columns, or ``n_in + 1`` with the target at index ``target``
    (``None``: no target column is read), taken only if every cell of it is a target the run
    knows (one of its classes; a number for regression). NPZ: arrays ``keys`` (the targets
    optional).

    **Returns:** ``x (n, n_in)`` float64 and the target column ``(n,)`` as read (None if absent).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            if keys[0] not in archive:
                raise ValueError(f"{path!r}: no array {keys[0]!r}; has {list(archive.keys())}")
            return np.asarray(archive[keys[0]], np.float64), archive.get(keys[1])
    table = _read_csv(path, delimiter)
    features, t = _feature_columns(table, preprocessing, target, path)
    return _numbers(table, features, path), None if t is None else table.cells[:, t]


def _feature_columns(table: _Cells, prep: Preprocessing, target, path: str):
    """Indices of the feature columns and of the target column (None if absent). Without names,
    ``n_in + 1`` columns hold the target at index ``target`` (None: the run had no target
    column) only if its cells are targets the run knows; anything else is refused."""
    n_in, n_cols = int(np.prod(prep.x_mean.shape)), table.cells.shape[1]
    if table.header is not None and prep.features is not None:
        missing = [name for name in prep.features if name not in table.header]
        if missing:
            raise ValueError(
                f"{path!r}: no column {missing[0]!r} (one of the run's features "
                f"{list(prep.features)}); the file's columns: {table.header}"
            )
        t = table.header.index(prep.target) if prep.target in table.header else None
        return [table.header.index(name) for name in prep.features], t
    if n_cols == n_in:
        return list(range(n_in)), None
    expected = f"{path!r}: expected {n_in} feature columns"
    if n_cols != n_in + 1 or target is None:
        with_target = f" (or {n_in + 1} with the target)" if target is not None else ""
        raise ValueError(f"{expected}{with_target}, got {n_cols}")
    t = target % n_cols
    cells = table.cells[:, t].tolist()
    i = _first_unknown_target(cells, prep)
    if i is not None:
        known = f"one of the run's classes {list(prep.classes)}" if prep.classes else "a number"
        raise ValueError(
            f"{expected}, or {n_in + 1} with the target column at index {t}; got {n_cols}, "
            f"and column {_column_name(table, t)} holds {cells[i]!r} at line {table.lines[i]}, "
            f"not {known}"
        )
    return [j for j in range(n_cols) if j != t], t


def _first_unknown_target(cells: list[str], prep: Preprocessing) -> int | None:
    """Index of the first cell that is not one of the run's classes (as text, or the same
    number: "1.0" is class 1), or for regression not a finite number; None if all are known
    (or the run says neither)."""
    classes = prep.classes or ()
    texts = {str(c) for c in classes}
    numbers = {float(c) for c in classes if isinstance(c, (int, float))}

    def known(cell: str) -> bool:
        if prep.classes is not None:
            return cell in texts or (_is_number(cell) and float(cell) in numbers)
        if prep.y_mean is not None:
            return _is_number(cell) and math.isfinite(float(cell))
        return True

    return next((i for i, cell in enumerate(cells) if not known(cell)), None)


def load_table(
    path: str | os.PathLike,
    *,
    target: int | str = -1,
    task: str | None = None,
    delimiter: str = ",",
    test_size: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    dtype: DTypeLike = np.float32,
    keys: tuple[str, str] = ("x", "y"),
) -> Dataset:
    """A Dataset from a CSV file (one example a row) or an NPZ file (arrays ``keys = (x, y)``).

    CSV: ``target`` is the target column (index, or name when the file has a header row; a first
    row is a header when it holds text above numbers); the other columns are numeric features.
    Task, labels and standardization follow ``from_arrays``: string labels or integer-valued
    targets with at most 20 values are classes, coded ``0..k-1`` in sorted order.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_table: no such file: {path!r}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive]
            if missing:
                raise ValueError(f"{path!r}: no arrays {missing}; has {list(archive.keys())}")
            x, y = archive[keys[0]], archive[keys[1]]
        name = os.path.splitext(os.path.basename(path))[0]
        return from_arrays(
            x,
            y,
            task=task,
            name=name,
            test_size=test_size,
            seed=seed,
            standardize=standardize,
            dtype=dtype,
        )
    table = _parse_csv(path, target, delimiter)
    ds = _dataset(
        table.x,
        table.y,
        task,
        os.path.splitext(os.path.basename(path))[0],
        test_size,
        seed,
        standardize,
        dtype,
        columns=table.features,
        where=f"{path!r}: target column {table.column}",
        at=lambda i: f"line {table.lines[i]}",
    )
    prep = ds.preprocessing._replace(features=table.features, target=table.target)
    return ds._replace(preprocessing=prep)
