"""MNIST-1D: ten one-dimensional digit templates, randomly padded, stretched, scaled, shifted,
noised and sheared, then sampled at 40 points (Greydanus, "Scaling down deep learning", 2020).

Everything is drawn from one ``numpy`` generator seeded by ``seed``; nothing is downloaded. The
recipe and its default parameters follow the paper's; the code and the order of random draws are
this module's own, so the examples are not the paper's file, only drawn the same way.
"""

from __future__ import annotations

import numpy as np

# The ten digit templates, 12 points each: a 1-D outline of each digit's strokes.
_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)

# The paper's parameters.
PADDING = (36, 60)  # zeros appended to a template, uniform integer in [36, 60]
SCALE = 0.4  # amplitude factor 1 + SCALE (u - 1/2)
MAX_SHIFT = 48  # circular shift, uniform integer in [0, 48)
CORR_NOISE = 0.25  # std of the smoothed noise that fills the background
SMOOTHING = 2.0  # std (in points) of the Gaussian smoothing of that noise
IID_NOISE = 0.02  # std of the white noise added everywhere
SHEAR = 0.75  # subtracts c (s - 1/2), c = SHEAR (u - 1/2), s from 0 to 1 along the signal
N_POINTS = 40  # points per example after the final resampling


def templates() -> np.ndarray:
    """The ten templates, ``(10, 12)``: each z-scored, shifted to start at 0, divided by 6."""
    t = _TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)
    t = t / t.std(axis=1, keepdims=True)
    return (t - t[:, :1]) / 6.0


def _resample(x: np.ndarray, length: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of row ``i``'s first ``length[i]`` points at ``n`` evenly spaced
    positions from its first to its last point: ``(m, L) -> (m, n)``."""
    position = np.linspace(0.0, 1.0, n)[None, :] * (length[:, None] - 1)
    left = np.minimum(np.floor(position).astype(int), length[:, None] - 2)
    frac = position - left
    rows = np.arange(len(x))[:, None]
    return (1 - frac) * x[rows, left] + frac * x[rows, left + 1]


def _smooth(noise: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along each row (kernel cut at 4 sigma, mirrored edges)."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(noise, ((0, 0), (radius, radius)), mode="symmetric")
    width = noise.shape[1]
    return sum(k * padded[:, i : i + width] for i, k in enumerate(kernel))


def make_mnist1d(
    n_per_class: int = 500, seed: int = 0, eps: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``10 n_per_class`` MNIST-1D examples, classes in order.

    For each example of template ``t`` (12 points): append ``p ~ U{36..60}`` zeros, stretch the
    ``12 + p`` points to ``12 + 60 = 72`` by linear interpolation (short padding stretches the
    digit more), multiply by ``1 + 0.4 (u - 1/2)``, shift circularly by ``k ~ U{0..47}``, fill
    the background (the padded zeros) with Gaussian-smoothed noise of std 0.25 (smoothing std 2
    points), add white noise of std 0.02 everywhere, subtract the shear ``c (s - 1/2)`` with
    ``c = 0.75 (u - 1/2)`` and ``s`` from 0 to 1, and resample the 72 points at 40. Finally the
    whole array is centred and divided by its standard deviation (one scalar each).

    **Returns:** ``x (10 n_per_class, 40)`` float64 and ``y (10 n_per_class,)`` int32.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class: expected >= 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10, dtype=np.int32), n_per_class)
    n, width = len(y), 12 + PADDING[1]
    signal = np.zeros((n, width))
    signal[:, :12] = templates()[y] + eps  # eps keeps the digit apart from the zero padding
    pad = rng.integers(PADDING[0], PADDING[1] + 1, size=n)
    x = _resample(signal, 12 + pad, width)
    x *= 1 + SCALE * (rng.random(n)[:, None] - 0.5)
    shift = rng.integers(0, MAX_SHIFT, size=n)
    x = x[np.arange(n)[:, None], (np.arange(width)[None, :] - shift[:, None]) % width]
    background = _smooth(CORR_NOISE * rng.standard_normal((n, width)), SMOOTHING)
    x = np.where(x != 0, x, background) + IID_NOISE * rng.standard_normal((n, width))
    x -= SHEAR * (rng.random(n)[:, None] - 0.5) * np.linspace(-0.5, 0.5, width)
    x = _resample(x, np.full(n, width), N_POINTS)
    return (x - x.mean()) / x.std(), y
