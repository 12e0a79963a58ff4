"""Ensembles and sweeps: stacked params, grids of members, ensemble predictions, summaries.

Training N networks is ``jmlp.fit_many`` (the training engine, ``jmlp.train``); this module
builds its members and reads its results:

    g = jmlp.grid(lr=[1e-3, 3e-3, 1e-2], seed=range(5))        # 15 members, lr x seed
    params = jmlp.init_many(g.keys(jax.random.key(0), "seed"), net.sizes)
    result = jmlp.fit_many(net, lambda lr: optax.adam(lr), x, y, params=params,
                           hparams=g.values("lr"), key=g.keys(jax.random.key(1), "seed"), ...)
    g.reshape(result.history["val_error"][:, -1])              # (3, 5): one row per lr
"""

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.checks import n_members
from jmlp.forward import forward
from jmlp.init import Params, check_sizes, init_params
from jmlp.losses import CLASSIFICATION
from jmlp.metrics import decide
from jmlp.net import MLP

Array = jax.Array


# ----------------------------------------------------------------------------- members


@partial(jax.jit, static_argnames=("sizes", "weight_init", "bias_init", "dtype"))
def _init_many(keys, weight_scale, *, sizes, weight_init, bias_init, dtype) -> Params:
    one = partial(
        init_params, sizes=sizes, weight_init=weight_init, bias_init=bias_init, dtype=dtype
    )
    return jax.vmap(lambda k, s: one(k, weight_scale=s))(keys, weight_scale)


def init_many(
    keys: Array,
    sizes: Sequence[int],
    *,
    weight_scale=1.0,
    weight_init: str = "he_normal",
    bias_init: float = 0.0,
    dtype=jnp.float32,
) -> Params:
    """``init_params`` for every key, one compiled call: ``keys (N,)`` -> params with a leading
    axis N (``W (N, n_in, n_out)``, ``b (N, n_out)``).

    ``weight_scale`` may be an array ``(N,)`` (one scale per member, for the ``"normal"`` and
    ``"uniform"`` schemes); other options as :func:`jmlp.init_params`.
    """
    keys = jnp.asarray(keys)
    if keys.ndim != 1 or not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        raise TypeError(
            f"keys: expected N jax.random keys (shape (N,)), got {keys.dtype}{keys.shape}"
        )
    dtype = jnp.dtype(dtype)
    scale = np.asarray(weight_scale)
    if scale.ndim not in (0, 1) or (scale.ndim == 1 and scale.shape != keys.shape):
        raise ValueError(
            f"weight_scale: expected a number or shape {keys.shape}, got shape {scale.shape}"
        )
    scale = jnp.broadcast_to(jnp.asarray(scale, dtype), keys.shape)
    return _init_many(keys, scale, sizes=check_sizes(sizes), weight_init=weight_init,
                      bias_init=float(bias_init), dtype=dtype)  # fmt: skip


def member(params: Params, m: int) -> Params:
    """Member ``m``'s params from stacked params (``W (N, n_in, n_out)`` -> ``(n_in, n_out)``)."""
    return jax.tree.map(lambda a: a[m], params)


class Grid(NamedTuple):
    """Members as every combination of named axes (the last axis varies fastest): member ``m``
    has the values at ``np.unravel_index(m, shape)``. Build with :func:`grid`."""

    axes: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def values(self, *names: str) -> dict[str, np.ndarray]:
        """``{name: (size,)}``: each member's value on those axes (default all), e.g. the
        ``hparams`` of ``jmlp.fit_many``."""
        index = np.indices(self.shape).reshape(len(self.shape), -1)
        position = {k: i for i, k in enumerate(self.axes)}
        unknown = [k for k in names if k not in position]
        if unknown:
            raise ValueError(f"names: unknown axes {unknown}; the grid has {list(self.axes)}")
        return {k: self.axes[k][index[position[k]]] for k in names or self.axes}

    def keys(self, key: Array, name: str = "seed") -> Array:
        """``(size,)`` keys ``fold_in(key, value)`` from the integer axis ``name``: members with
        the same seed get the same key, whatever the other axes. With ``name`` the last axis,
        the keys repeat with its length, and ``jmlp.fit_many`` trains the members of each seed
        on shared mini-batches (faster)."""
        seeds = self.values(name)[name]
        if not np.issubdtype(seeds.dtype, np.integer):
            raise TypeError(f"name: axis {name!r} must hold integers, got dtype {seeds.dtype}")
        return jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.asarray(seeds))

    def reshape(self, values: Any) -> np.ndarray:
        """An array with the member axis first, ``(size, ...)``, as ``(*shape, ...)``."""
        values = np.asarray(values)
        if values.shape[:1] != (self.size,):
            raise ValueError(
                f"values: expected a leading axis of {self.size} members, got shape {values.shape}"
            )
        return values.reshape(self.shape + values.shape[1:])


def grid(**axes: Iterable) -> Grid:
    """A :class:`Grid` of every combination of the named axes, e.g.
    ``grid(lr=[1e-3, 1e-2], seed=range(5))`` (10 members, lr x seed)."""
    if not axes:
        raise ValueError("axes: expected at least one named axis, e.g. grid(seed=range(5))")
    arrays = {k: np.asarray(list(v)) for k, v in axes.items()}
    empty = [k for k, v in arrays.items() if v.ndim != 1 or len(v) == 0]
    if empty:
        raise ValueError(f"axes: expected non-empty lists of numbers, got {empty}")
    return Grid(arrays)


# ----------------------------------------------------------------------------- using an ensemble


def ensemble_predict_proba(net: MLP, params: Params, x) -> Array:
    """Mean of the members' outputs, ``(1/N) sum_m h^L_m(x)``: ``(B, n_out)`` for ``x (B, n_in)``
    (averaged class probabilities for softmax / sigmoid outputs)."""
    n_members(net, params)
    return _mean_output(net, params, x)


@partial(jax.jit, static_argnums=0)
def _mean_output(net: MLP, params: Params, x) -> Array:
    return jnp.mean(jax.vmap(lambda p: forward(net, p, x))(params), axis=0)


def ensemble_predict(net: MLP, params: Params, x) -> Array:
    """Predictions from the averaged outputs: labels by :func:`jmlp.predict`'s rule for
    classifiers (``(B,)`` int32), the mean output ``(B, n_out)`` for regression."""
    proba = ensemble_predict_proba(net, params, x)
    if net.loss not in CLASSIFICATION:
        return proba
    d = decide(net, jnp.atleast_2d(proba))
    return d[0] if jnp.ndim(x) == 1 else d


def at_best(history: dict[str, np.ndarray], name: str, by: str = "val_loss") -> np.ndarray:
    """Each member's ``history[name]`` at its epoch of lowest ``history[by]`` (NaN ignored):
    e.g. the test accuracy at the best validation epoch, ``(N,)``."""
    for k in (name, by):
        if k not in history:
            raise KeyError(f"{k!r}: not in the history; it has {sorted(history)}")
    score = np.where(np.isnan(history[by]), np.inf, history[by])
    best = np.argmin(score, axis=1)
    return np.take_along_axis(np.asarray(history[name]), best[:, None], axis=1)[:, 0]


def summarize(values, axis: int = 0) -> dict[str, Any]:
    """``{"mean", "std", "min", "max"}`` over members (``axis``), e.g. of ``history["val_error"]
    (N, epochs)`` -> one curve each; plain floats for a 1-D input. ``std`` is the population
    standard deviation (ddof 0)."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 0 or v.shape[axis] == 0:
        raise ValueError(
            f"values: expected an array with members along axis {axis}, got shape {v.shape}"
        )
    stats = {"mean": v.mean(axis), "std": v.std(axis), "min": v.min(axis), "max": v.max(axis)}
    return {k: float(s) if np.ndim(s) == 0 else s for k, s in stats.items()}
