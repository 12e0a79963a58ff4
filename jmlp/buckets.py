"""Row counts rounded up to a few sizes, so that data of a new length reuses a compiled program.

The engine and the estimators pad every set of examples (training, validation, evaluation,
prediction) with rows of zeros up to :func:`bucket` ``(n)`` and carry the real count ``n`` as
data: the padded rows have weight zero, and an epoch's order is a permutation of the real rows
only (:func:`permutation`, equal to ``jax.random.permutation(key, n)``). Training sets get room
for a quarter more rows (:func:`roomy`), so the folds of a 5-fold split and the refit on all rows
share one program.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
SMALLEST = 8
UINT32_MAX = np.iinfo(np.uint32).max


def bucket(n: int) -> int:
    """The least size ``>= n`` of the form ``2**k`` or ``3 * 2**k``, at least 8: padding adds
    less than half of ``n`` (``n > 8``)."""
    if n <= SMALLEST:
        return SMALLEST
    k = math.ceil(math.log2(n))
    three = 3 * 2 ** (k - 2)
    return three if three >= n else 2**k


def roomy(n: int) -> int:
    """``bucket(n + n // 4 + 1)``: room for the rows of a refit on all ``k >= 5`` folds of a
    k-fold split whose training part has ``n`` (``k n / (k - 1) <= n + n // 4 + 1``)."""
    return bucket(n + n // 4 + 1)


def pad_rows(a: np.ndarray, size: int) -> np.ndarray:
    """``a (n, ...)`` with rows of zeros appended: ``(size, ...)``."""
    a = np.asarray(a)
    return np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])


def _rounds(n: int) -> int:
    """The sorting rounds of ``jax.random.permutation(key, n)``: ``ceil(3 ln n / ln(2^32 - 1))``."""
    return int(np.ceil(3 * np.log(max(1, n)) / np.log(UINT32_MAX)))


def _first_count(rounds: int, size: int) -> int:
    """The least ``n <= size`` whose permutation takes more than ``rounds`` rounds."""
    low, high = 1, size
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if _rounds(mid) <= rounds else (low, mid)
    return low


def permutation(key: Array, n: Array, size: int) -> Array:
    """``(size,)``: a permutation of ``0..n-1`` followed by ``n..size-1`` in order, for a traced
    ``n <= size``; its first ``n`` entries equal ``jax.random.permutation(key, n)``.

    jax shuffles by stable sorts on random 32-bit words, one word per position, drawn afresh in
    each of its rounds; here the padded positions sort last (the largest word), and a round is
    applied only where ``n`` needs it."""
    order = jnp.arange(size)
    real = order < n
    for r in range(_rounds(size)):
        key, sub = jax.random.split(key)
        words = jnp.where(real, jax.random.bits(sub, (size,), jnp.uint32), jnp.uint32(UINT32_MAX))
        shuffled = jax.lax.sort_key_val(words, order)[1]
        order = shuffled if r == 0 else jnp.where(n >= _first_count(r, size), shuffled, order)
    return order


def row_mask(n: Array, size: int, dtype) -> Array:
    """``(size,)``: 1 for the real rows ``< n``, 0 for the padding."""
    return (jnp.arange(size) < n).astype(dtype)
