"""IDX files (the format MNIST ships in), read and written, and MNIST's four files as a Dataset."""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from jmlp.data.dataset import Dataset
from jmlp.data.preprocessing import Preprocessing, float_dtype

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
    dtype = float_dtype(dtype)
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
