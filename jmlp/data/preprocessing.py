"""Preprocessing: one-hot rows, z-scores with training statistics, seeded stratified splits, and
the :class:`Preprocessing` record that carries the statistics from training to prediction.

Splits are seeded and, for classification, stratified: class ``c`` with ``n_c`` of ``n`` examples
gets ``n_test * n_c / n`` test examples, rounded by largest remainder, ``n_test = ceil(test_size n)``.
Standardization uses the training statistics only: ``x' = (x - mean_train) / std_train``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


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
        dtype = float_dtype(dtype)
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


def check_fits(name: str, a: np.ndarray, dtype: np.dtype, columns: tuple | None) -> None:
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


def check_scaled(name: str, arrays: tuple, std: np.ndarray, columns: tuple | None) -> None:
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


def split_indices(
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
    train, val = split_indices(len(x), val_fraction, seed, y if labels else None)
    return x[train], y[train], x[val], y[val]


def float_dtype(dtype: DTypeLike) -> np.dtype:
    """``dtype`` as a numpy floating dtype; TypeError naming it otherwise."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    return dtype
