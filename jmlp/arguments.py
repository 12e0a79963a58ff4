"""Checks of the arguments of training (``fit`` and ``fit_many``): each error names the argument."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jmlp.checks import (
    as_inputs,
    as_targets,
    check_numeric,
    non_finite_rows,
)
from jmlp.init import Params
from jmlp.metrics import validation_names
from jmlp.net import MLP

Array = jax.Array
# hparams that are step sizes (jmlp.optim's and optax's learning_rate, and the usual short
# names): a step size <= 0 climbs the loss instead of descending it
STEP_SIZES = ("learning_rate", "lr", "eta", "step_size")


def on_device(a) -> Array:
    """``a`` as a jax array: sent with ``jax.device_put`` (``jnp.asarray`` of a numpy array
    compiles a small program per shape)."""
    return a if isinstance(a, jax.Array) else jax.device_put(np.asarray(a))


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an int {span}, got {value!r}")


def check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")


def check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value >= 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")


def _is_transformation(optimizer: Any) -> bool:
    return callable(getattr(optimizer, "init", None)) and callable(
        getattr(optimizer, "update", None)
    )


def check_optimizer(optimizer: Any) -> None:
    if not _is_transformation(optimizer):
        raise TypeError(
            "optimizer: expected an optax.GradientTransformation (init and update callables), "
            f"got {type(optimizer).__name__}"
        )


def is_transformation_argument(optimizer: Any, names: tuple[str, ...]) -> bool:
    """Whether ``optimizer`` is a GradientTransformation (then no hparams ``names`` may be given)
    rather than a function of the hparams; TypeError if it is neither."""
    if callable(getattr(optimizer, "update", None)):
        check_optimizer(optimizer)
        if names:
            raise ValueError(
                f"hparams: {list(names)} given, but optimizer is a GradientTransformation that "
                "takes none; pass a function of them, e.g. lambda lr: optax.adam(lr)"
            )
        return True
    if not callable(optimizer):
        raise TypeError(
            "optimizer: expected an optax.GradientTransformation or a function of the hparams "
            f"returning one, got {type(optimizer).__name__}"
        )
    return False


def check_built_optimizer(built: Any) -> None:
    """TypeError unless what a function of the hparams returned is a GradientTransformation."""
    if not _is_transformation(built):
        raise TypeError(
            "optimizer: the function must return an optax.GradientTransformation, "
            f"got {type(built).__name__}"
        )


@jax.jit
def _count_non_finite(a: Array) -> Array:
    return jnp.sum(~jnp.isfinite(a))


def training_arrays(net: MLP, params: Params, x, y, names: tuple[str, str]) -> tuple[Array, Array]:
    """Checked ``x (N, n_in)`` and target rows ``t (N, n_out)``, on device, in params' dtype.
    ``names``: how errors name ``x`` and ``y`` (e.g. ``("validation[0] (x_val)", ...)``)."""
    given = (x, y)
    try:
        check_numeric("x", x)
        check_numeric("y", y)
        x, y = on_device(x), on_device(y)
        if x.ndim != 2:
            raise ValueError(f"x: expected shape (N, {net.sizes[0]}), got {x.shape}")
        xb = as_inputs(net, params, x)
        t = as_targets(net, y, xb.shape, xb.dtype)
    except (ValueError, TypeError) as err:
        message = str(err)
        for old, new in (("x:", names[0] + ":"), ("y:", names[1] + ":")):
            message = new + message[len(old) :] if message.startswith(old) else message
        raise type(err)(message) from None
    if xb.shape[0] == 0:
        raise ValueError(f"{names[0]}: expected at least one example, got shape {xb.shape}")
    for name, original, a in zip(names, given, (xb, t)):
        if count := _non_finite(original, a):
            first = non_finite_rows(original, a.dtype)[0]
            raise ValueError(f"{name}: contains {count} NaN/inf values (the first in row {first})")
    return xb, t


def _non_finite(original: Any, converted: Array) -> int:
    """NaN/inf entries of the data as trained on (in its dtype): counted on the host for host
    data (no program compiled per shape, no copy back), on the device for jax arrays."""
    if isinstance(original, jax.Array):
        return int(_count_non_finite(converted))
    host = np.asarray(original)
    if not np.issubdtype(host.dtype, np.inexact):
        return 0
    return int(np.sum(~np.isfinite(host.astype(converted.dtype))))


def validation_arrays(
    net: MLP, params: Params, validation, name: str = "validation"
) -> tuple[Array, Array] | None:
    """``validation = (x_val, y_val)`` (or None) checked as :func:`training_arrays`; errors
    name it ``name``."""
    if validation is None:
        return None
    if not isinstance(validation, (tuple, list)) or len(validation) != 2:
        raise TypeError(f"{name}: expected a pair (x, y), got {type(validation).__name__}")
    names = (
        (f"{name}[0] (x_val)", f"{name}[1] (y_val)")
        if name == "validation"
        else (f"{name}[0] (x)", f"{name}[1] (y)")
    )
    return training_arrays(net, params, *validation, names)


def _member_array(name: str, value: Any, n: int, kind: str) -> np.ndarray:
    """``value`` as a numpy array, one value for every member (shape ``()``) or one each
    (``(N,)``); ValueError naming ``name`` for any other shape."""
    a = np.asarray(value)
    if a.ndim not in (0, 1) or (a.ndim == 1 and a.shape != (n,)):
        raise ValueError(
            f"{name}: expected {kind} or an array of shape ({n},), got shape {a.shape}"
        )
    return a


def per_member(name: str, value: Any, n: int, dtype, *, integer: bool = False) -> Array:
    """A number >= 0, or an array ``(N,)`` of them, as an array ``(N,)`` of ``dtype``."""
    kind = "an int" if integer else "a number"
    a = _member_array(name, value, n, kind)
    real = np.issubdtype(a.dtype, np.integer if integer else np.floating) or (
        not integer and np.issubdtype(a.dtype, np.integer)
    )
    if a.dtype == bool or not real:
        raise TypeError(
            f"{name}: expected {kind} >= 0 (or an array ({n},) of them), got dtype {a.dtype}"
        )
    if not np.all(a >= 0):
        raise ValueError(
            f"{name}: expected {kind} >= 0 (or an array ({n},) of them), got {value!r:.60}"
        )
    return np.broadcast_to(np.asarray(a, dtype), (n,))


def check_sample_weight(sample_weight: Any, n: int, dtype) -> np.ndarray | None:
    """``sample_weight`` (None, or ``(n,)`` finite numbers >= 0, not all 0) as numpy ``dtype``;
    errors name the argument."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    real = np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)
    if w.dtype == bool or not real:
        raise TypeError(f"sample_weight: expected real numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), one weight per example of x, "
                         f"got shape {w.shape}")  # fmt: skip
    bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0)))
    if bad.size:
        raise ValueError(f"sample_weight: expected finite numbers >= 0, got {w[bad[0]].item()!r} "
                         f"(row {bad[0]})")  # fmt: skip
    if not np.any(w > 0):
        raise ValueError("sample_weight: expected at least one weight > 0, got all 0")
    return np.asarray(w, dtype)


def hparams_per_member(hparams: Any, n: int, dtype) -> dict[str, Array]:
    if hparams is None:
        return {}
    if not isinstance(hparams, Mapping):
        raise TypeError(
            f"hparams: expected a dict name -> number or array ({n},), got {type(hparams).__name__}"
        )
    out = {}
    for name, value in hparams.items():
        a = _member_array(f"hparams[{name!r}]", value, n, "a number")
        if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
            raise TypeError(f"hparams[{name!r}]: expected real numbers, got dtype {a.dtype}")
        if name in STEP_SIZES:
            _check_step_sizes(name, a)
        out[name] = np.broadcast_to(np.asarray(a, dtype), (n,))
    return out


def _check_step_sizes(name: str, a: np.ndarray) -> None:
    """ValueError naming the first member (of ``a (N,)``; a number is every member's) whose
    step size is not a finite number > 0."""
    bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)).reshape(-1))
    if bad.size:
        value = a.reshape(-1)[bad[0]].item()
        member = f"member {bad[0]}" if a.ndim else "every member"
        raise ValueError(
            f"hparams[{name!r}]: expected a finite step size > 0 (a step size <= 0 climbs the "
            f"loss), got {value!r} for {member}"
        )


def check_key(key: Any, n: int, full: bool, many: bool) -> str:
    """ "none", "one" (shared data order) or "each" (``(N,)`` keys, fit_many only)."""
    if key is None:
        if not full:
            raise TypeError(
                "key: mini-batch training shuffles every epoch; pass key=jax.random.key(...)"
            )
        return "none"
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not typed:
        try:
            jax.random.fold_in(key, 0)
        except (TypeError, ValueError) as err:
            raise TypeError(f"key: expected a jax.random.key, got {key!r:.60}") from err
        return "one"
    if key.shape == ():
        return "one"
    if many and key.shape == (n,):
        return "each"
    expected = f"one key (shape ()) or {n} keys (shape ({n},))" if many else "one key (shape ())"
    raise ValueError(f"key: expected {expected}, got shape {key.shape}")


def check_mesh(mesh: Any, batch: int | None) -> Mesh | None:
    """The mesh (or None); ``batch`` (fit: split over its devices) a multiple of its size."""
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise TypeError(
            f"mesh: expected a 1-D jax.sharding.Mesh (jmlp.data_mesh()), got {mesh!r:.80}"
        )
    if batch is not None and batch % mesh.size:
        raise ValueError(
            f"batch_size: expected a multiple of the mesh size {mesh.size} (each device takes "
            f"batch_size / {mesh.size} examples of every step), got {batch}"
        )
    return mesh


def evaluation_sets(net: MLP, params: Params, validation, evaluate) -> tuple[list[str], tuple]:
    """History names of the sets' metrics and the checked sets (validation first)."""
    names, sets = [], []
    if validation is not None:
        names += validation_names(net)
        sets.append(validation_arrays(net, params, validation))
    if evaluate is not None:
        if not isinstance(evaluate, Mapping):
            raise TypeError(
                f"evaluate: expected a dict name -> (x, y), got {type(evaluate).__name__}"
            )
        for name, pair in evaluate.items():
            if not isinstance(name, str) or not name.isidentifier() or name == "val":
                raise ValueError(f"evaluate: expected names like 'test', got {name!r}")
            checked = validation_arrays(net, params, pair, f"evaluate[{name!r}]")
            names += [name + m.removeprefix("val") for m in validation_names(net)]
            sets.append(checked)
    return names, tuple(sets)
