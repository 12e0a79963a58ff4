"""User tables: CSV files (one example a row, a header row optional) and NPZ archives, read for
training (:func:`load_table`) and for prediction (:func:`read_features`).

A first row is a header when it holds text above numbers; columns are then found by name as well
as by index. Every bad cell (empty, not a number, NaN or inf) is named by its column and file line.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

from jmlp.data.dataset import Dataset, encode_target, from_arrays, make_dataset
from jmlp.data.preprocessing import Preprocessing


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
    standardize_targets: bool = True,
) -> Dataset:
    """A Dataset from a CSV file (one example a row) or an NPZ file (arrays ``keys = (x, y)``).

    CSV: ``target`` is the target column (index, or name when the file has a header row; a first
    row is a header when it holds text above numbers); the other columns are numeric features.
    Task, labels and standardization follow ``from_arrays``: string labels or integer-valued
    targets with at most 20 values are classes, coded ``0..k-1`` in sorted order;
    ``standardize_targets=False`` keeps regression targets as they are (counts for poisson).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_table: no such file: {path!r}")
    name = os.path.splitext(os.path.basename(path))[0]
    if path.endswith(".npz"):
        x, y = _npz_arrays(path, keys)
        return from_arrays(
            x,
            y,
            task=task,
            name=name,
            test_size=test_size,
            seed=seed,
            standardize=standardize,
            dtype=dtype,
            standardize_targets=standardize_targets,
        )
    table = _parse_csv(path, target, delimiter)
    where = f"{path!r}: target column {table.column}"
    y, task, classes = encode_target(table.y, task, where, lambda i: f"line {table.lines[i]}")
    ds = make_dataset(
        table.x,
        y,
        task,
        classes,
        name,
        test_size,
        seed,
        standardize,
        dtype,
        table.features,
        standardize_targets,
    )
    prep = ds.preprocessing._replace(features=table.features, target=table.target)
    return ds._replace(preprocessing=prep)


def _npz_arrays(path: str, keys: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``keys = (x, y)`` of an NPZ archive; ValueError naming the missing ones."""
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in keys if k not in archive]
        if missing:
            raise ValueError(f"{path!r}: no arrays {missing}; has {list(archive.keys())}")
        return archive[keys[0]], archive[keys[1]]
