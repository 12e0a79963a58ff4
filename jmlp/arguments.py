"""Checks of the arguments shared by ``fit`` and ``fit_many``: each error names the argument."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.forward import MLP, as_inputs, as_targets
from jmlp.init import Params

Array = jax.Array


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


def check_optimizer(optimizer: Any) -> None:
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "optimizer: expected an optax.GradientTransformation (init and update callables), "
            f"got {type(optimizer).__name__}"
        )


@jax.jit
def _count_non_finite(a: Array) -> Array:
    return jnp.sum(~jnp.isfinite(a))


def training_arrays(net: MLP, params: Params, x, y, names: tuple[str, str]) -> tuple[Array, Array]:
    """Checked ``x (N, n_in)`` and target rows ``t (N, n_out)``, on device, in params' dtype.
    ``names``: how errors name ``x`` and ``y`` (e.g. ``("validation[0] (x_val)", ...)``)."""
    given = (x, y)
    try:
        x, y = jnp.asarray(x), jnp.asarray(y)
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
            raise ValueError(f"{name}: contains {count} NaN/inf values")
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
