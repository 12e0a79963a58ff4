"""Parameter initialisation: ``list`` of ``{"W": (n_in, n_out), "b": (n_out,)}``, input to output.

Weight schemes (``fan_in = n_in``, ``fan_avg = (n_in + n_out) / 2``):

=============== ============================================================
normal          W ~ N(0, 1) * weight_scale            (document 000: 0.1)
uniform         W ~ U(-1, 1) * weight_scale
lecun_normal    W ~ N(0, 1 / fan_in)                  (003: randn / sqrt(fan_in))
lecun_uniform   W ~ U(-a, a), a = sqrt(3 / fan_in)
glorot_normal   W ~ N(0, 1 / fan_avg)
glorot_uniform  W ~ U(-a, a), a = sqrt(3 / fan_avg)
he_normal       W ~ N(0, 2 / fan_in)
he_uniform      W ~ U(-a, a), a = sqrt(6 / fan_in)
=============== ============================================================

(The normal forms are untruncated Gaussians.) Biases are the constant ``bias_init`` (0 by default;
document 000 uses 0.05).
"""

import itertools
from collections.abc import Sequence
from functools import partial
from numbers import Integral

import jax
import jax.numpy as jnp

Params = list[dict[str, jax.Array]]

_VARIANCE_FAN = {  # scheme -> (variance numerator, which fan)
    "lecun": (1.0, "in"),
    "glorot": (1.0, "avg"),
    "he": (2.0, "in"),
}
WEIGHT_INITS = ("normal", "uniform") + tuple(
    f"{name}_{form}" for name in _VARIANCE_FAN for form in ("normal", "uniform")
)


def _weight_std(scheme: str, n_in: int, n_out: int, weight_scale: jax.Array) -> jax.Array | float:
    """Standard deviation of W for ``scheme`` (the uniform forms match it: a = sqrt(3) std);
    ``weight_scale`` a scalar array in the params' dtype."""
    if scheme == "normal":
        return weight_scale
    if scheme == "uniform":  # a division of its own, as outside jit (XLA would multiply by 1/c)
        return weight_scale / jax.lax.optimization_barrier(jnp.asarray(3**0.5, weight_scale.dtype))
    numerator, fan = _VARIANCE_FAN[scheme.rsplit("_", 1)[0]]
    return (numerator / (n_in if fan == "in" else (n_in + n_out) / 2)) ** 0.5


def init_params(
    key: jax.Array,
    sizes: Sequence[int],
    *,
    weight_init: str = "he_normal",
    weight_scale: float = 1.0,
    bias_init: float = 0.0,
    dtype: jnp.dtype = jnp.float32,
) -> Params:
    """Draw MLP parameters for layer widths ``sizes = (n_0, ..., n_L)``.

    **Arguments:**
    - ``key``: a ``jax.random`` key; one sub-key per layer is split from it.
    - ``sizes``: positive ints, input width first, at least two.
    - ``weight_init``: one of :data:`WEIGHT_INITS` (table above). Default ``"he_normal"``.
    - ``weight_scale``: multiplier of the ``"normal"`` / ``"uniform"`` schemes (ignored by the
      fan-based ones).
    - ``bias_init``: constant bias value.
    - ``dtype``: floating dtype of every leaf (whatever the types of the numbers above).

    **Returns:** ``[{"W": (n_{l-1}, n_l), "b": (n_l,)} for l = 1..L]``.
    """
    k_shape, k_dtype = getattr(key, "shape", None), getattr(key, "dtype", None)
    typed = k_dtype is not None and jax.dtypes.issubdtype(k_dtype, jax.dtypes.prng_key)
    if not ((typed and k_shape == ()) or (k_dtype == jnp.uint32 and k_shape == (2,))):
        got = type(key).__name__ if k_dtype is None else f"an array {k_shape} of {k_dtype}"
        raise TypeError(f"key: expected one jax.random key, e.g. jax.random.key(0), got {got}")
    sizes = check_sizes(sizes)
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init: unknown scheme {weight_init!r}; known: {WEIGHT_INITS}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype!r}")
    return _draw_params(key, weight_scale, bias_init, sizes, weight_init, jnp.dtype(dtype))


@partial(jax.jit, static_argnums=(3, 4, 5))
def _draw_params(key, weight_scale, bias_init, sizes, weight_init, dtype) -> Params:
    """:func:`init_params` as one compiled program (not one per operation and layer)."""
    # the scale in ``dtype``, whatever its type (np.float64, a float64 array under vmap, ...)
    weight_scale = jnp.asarray(weight_scale, dtype)
    shapes = list(itertools.pairwise(sizes))
    stds = [jnp.asarray(_weight_std(weight_init, i, o, weight_scale), dtype) for i, o in shapes]
    uniform = weight_init.endswith("uniform")
    bounds = jnp.stack(stds) * 3**0.5 if uniform else None  # U(-a, a) has std a / sqrt(3)
    draws = _draws(jax.random.split(key, len(shapes)), shapes, bounds, dtype)
    # the draws as a draw alone makes them: no scaling fused into their last operations
    draws = jax.lax.optimization_barrier(draws)
    params = []
    for draw, std, (n_in, n_out) in zip(draws, stds, shapes):
        W = draw[: n_in * n_out].reshape(n_in, n_out)
        params.append({"W": W if uniform else std * W, "b": jnp.full((n_out,), bias_init, dtype)})
    return params


def _draws(keys: jax.Array, shapes: list, bounds: jax.Array | None, dtype) -> jax.Array:
    """Row l: layer l's draw, ``normal(keys[l], (n_in, n_out))`` or ``uniform(keys[l], (n_in,
    n_out), minval=-a_l, maxval=a_l)`` with ``a = bounds``, flattened and padded to the largest
    layer. One vmapped draw for every layer (one program to compile, not one per shape): with
    counter-based keys the first ``n`` entries of a longer draw are the draw of ``n``, so each
    layer gets exactly its own numbers."""
    largest = (max(i * o for i, o in shapes),)
    if bounds is None:
        return jax.vmap(lambda k: jax.random.normal(k, largest, dtype))(keys)
    draw = lambda k, a: jax.random.uniform(k, largest, dtype, minval=-a, maxval=a)
    return jax.vmap(draw)(keys, bounds)


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"sizes: expected a sequence of positive ints, got {sizes!r}")
    sizes = tuple(sizes)
    bad = [s for s in sizes if isinstance(s, bool) or not isinstance(s, Integral) or s < 1]
    if len(sizes) < 2 or bad:
        raise ValueError(
            f"sizes: expected at least two positive ints (n_in, ..., n_out), got {sizes!r}"
        )
    return tuple(int(s) for s in sizes)
