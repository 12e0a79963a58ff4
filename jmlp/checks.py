"""Checks of the spec, the parameters and the data: each error names the argument, what was
expected and what was received (``ValueError`` for a wrong value or shape, ``TypeError`` for a
wrong type). The spec ``jmlp.MLP`` checks its fields here when built; the forward pass, the
losses, the backward pass, the metrics and training check their ``params``, ``x`` and ``y`` here.
"""

import warnings
from functools import partial
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY, unknown_name
from jmlp.data.preprocessing import one_hot
from jmlp.init import Params, check_sizes
from jmlp.losses import CLASSIFICATION, LOSSES, NON_NEGATIVE

if TYPE_CHECKING:  # the spec's module builds on this one
    from jmlp.net import MLP

Array = jax.Array
REDUCTIONS = ("mean", "sum")
PRECISIONS = ("default", "high", "highest")
# The output activation each loss needs, when none is given (identity for every other loss).
OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "poisson": "exp"}
PROBABILITY_OUTPUTS = ("softmax", "sigmoid")  # outputs in (0, 1) by construction
RATE_OUTPUTS = ("exp", "softplus")  # outputs > 0 by construction, unbounded
# The outputs a loss that takes the log of the output accepts (every other loss: any output).
OUTPUTS_FOR_LOSS = {
    "cross_entropy": PROBABILITY_OUTPUTS,
    "binary_cross_entropy": PROBABILITY_OUTPUTS,
    "poisson": RATE_OUTPUTS,
}
OPTIONS = ("leaky_relu_slope", "elu_alpha", "huber_delta")  # the spec's real-valued options


# ----------------------------------------------------------------------------- the spec


def spec_fields(net: "MLP") -> dict[str, Any]:
    """The fields of a spec, checked (each error names its field) and normalised: ``sizes`` a
    tuple of ints, a list of activations a tuple, ``output_activation`` resolved (None: what the
    loss needs, :data:`OUTPUT_FOR_LOSS`), the options Python floats, ``compute_dtype`` a dtype
    name."""
    sizes = check_sizes(net.sizes)
    activation = tuple(net.activation) if isinstance(net.activation, list) else net.activation
    _check_hidden(activation, sizes)
    _check_name("loss", net.loss, LOSSES)
    output = net.output_activation
    output = OUTPUT_FOR_LOSS.get(net.loss, "identity") if output is None else output
    _check_output(net.loss, output, sizes[-1])
    _check_name("reduction", net.reduction, REDUCTIONS)
    options = {option: _as_float(option, getattr(net, option)) for option in OPTIONS}
    if net.precision is not None:
        _check_name("precision", net.precision, PRECISIONS)
    compute_dtype = None if net.compute_dtype is None else _compute_dtype(net.compute_dtype)
    return dict(
        sizes=sizes,
        activation=activation,
        output_activation=output,
        **options,
        compute_dtype=compute_dtype,
    )


def _check_hidden(activation, sizes: tuple[int, ...]) -> None:
    """One known name, or one per hidden layer; none of them output-only (softmax)."""
    n_hidden = len(sizes) - 2
    if isinstance(activation, tuple) and len(activation) != n_hidden:
        raise ValueError(
            f"activation: expected one name or {n_hidden} names (one per hidden layer of "
            f"sizes={sizes}), got {len(activation)}: {activation!r}"
        )
    for name in hidden_names(activation, n_hidden):
        _check_name("activation", name, ACTIVATIONS)
        if name in OUTPUT_ONLY:
            raise ValueError(f"activation: {name!r} is allowed as output_activation only")


def hidden_names(activation: str | tuple[str, ...], n_hidden: int) -> tuple[str, ...]:
    """One activation name per hidden layer, from one name or a tuple of them."""
    return (activation,) * n_hidden if isinstance(activation, str) else tuple(activation)


def _check_output(loss: str, output, n_out: int) -> None:
    """A known output activation that fits the loss and the number of output units."""
    _check_name("output_activation", output, ACTIVATIONS)
    _check_log_loss_output(loss, output)
    if output == "softmax" and n_out == 1:
        raise ValueError(
            "output_activation: softmax over one output unit is always 1 (its gradient is 0); "
            "use 'sigmoid' for one unit, or two softmax units"
        )


def _as_float(argument: str, value) -> float:
    """A real number as a Python float: the spec stays hashable, and the number takes the dtype of
    the arrays it meets (a NumPy or JAX float64 scalar would promote float32 to float64)."""
    if isinstance(value, bool) or np.ndim(value) != 0 or not np.isrealobj(value):
        raise TypeError(f"{argument}: expected a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{argument}: expected a real number, got {value!r}") from None


def _compute_dtype(value) -> str:
    dtype = jnp.dtype(value)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"compute_dtype: expected a floating dtype, got {dtype}")
    return dtype.name


def _check_name(argument: str, name, known) -> None:
    if not isinstance(name, str) or name not in known:
        raise ValueError(unknown_name(argument, name, known))


def _check_log_loss_output(loss: str, output: str) -> None:
    """Refuse a log loss on an output that is not a probability (poisson: not a positive rate),
    where its log is undefined."""
    if output in OUTPUTS_FOR_LOSS.get(loss, (output,)):
        return
    if loss == "poisson":
        raise ValueError(
            f"output_activation: loss='poisson' takes the log of the output, a rate that must be "
            f"positive (exp or softplus), got {output!r}; write output_activation='exp' or leave "
            "it out (the default for poisson): the loss is then computed from z^L with the log "
            "link y = e^z, as scikit-learn's MLPRegressor(loss='poisson') does"
        )
    raise ValueError(
        f"output_activation: loss={loss!r} takes the log of the output, which must be a "
        f"probability (softmax or sigmoid), got {output!r}; write "
        f"output_activation={OUTPUT_FOR_LOSS[loss]!r} or leave it out (the default for "
        f"{loss}): the loss is then computed from the logits z^L, as PyTorch's "
        f"{'CrossEntropyLoss' if loss == 'cross_entropy' else 'BCEWithLogitsLoss'} does"
    )


# ----------------------------------------------------------------------------- the parameters


def param_dtype(params: Params) -> jnp.dtype:
    return jnp.result_type(params[0]["W"])


def check_params(net: "MLP", params: Params) -> None:
    """Raise ValueError/TypeError unless params is ``[{"W": (n_{l-1}, n_l), "b": (n_l,)}, ...]``."""
    if not isinstance(params, (list, tuple)) or len(params) != net.n_layers:
        got = (
            f"{type(params).__name__} of length {len(params)}"
            if hasattr(params, "__len__")
            else type(params).__name__
        )
        raise ValueError(
            f"params: expected a list of {net.n_layers} layer dicts for sizes={net.sizes}, got {got}"
        )
    for l, (layer, n_in, n_out) in enumerate(zip(params, net.sizes[:-1], net.sizes[1:])):
        if not isinstance(layer, dict) or set(layer) != {"W", "b"}:
            raise ValueError(
                f"params[{l}]: expected a dict with keys 'W' and 'b', got {layer!r:.80}"
            )
        for name, shape in (("W", (n_in, n_out)), ("b", (n_out,))):
            if jnp.shape(layer[name]) != shape:
                raise ValueError(
                    f"params[{l}][{name!r}]: expected shape {shape} for sizes={net.sizes}, "
                    f"got {jnp.shape(layer[name])}"
                )
            dtype = _dtype(layer[name])
            if not jnp.issubdtype(dtype, jnp.floating):
                raise TypeError(
                    f"params[{l}][{name!r}]: expected a floating dtype (float32, float64, ...), "
                    f"got {dtype}; cast the params, e.g. jax.tree.map(lambda a: a.astype(float), "
                    "params)"
                )


def _dtype(leaf) -> np.dtype:
    """The dtype of an array, tracer or nested list (without copying an array)."""
    dtype = getattr(leaf, "dtype", None)
    return np.asarray(leaf).dtype if dtype is None else jnp.dtype(dtype)


def n_members(net: "MLP", params: Params) -> int:
    """N, after checking ``params`` is a stack of N valid parameter lists (leading axis N)."""
    if not isinstance(params, (list, tuple)) or not params or not isinstance(params[0], dict):
        raise ValueError(
            f"params: expected stacked params (a list of layer dicts), got {params!r:.80}"
        )
    n = jnp.shape(params[0].get("W"))[0] if jnp.ndim(params[0].get("W")) == 3 else None
    leading = {jnp.shape(a)[:1] for a in jax.tree.leaves(params)}
    if n is None or leading != {(n,)}:
        raise ValueError(
            "params: expected stacked params, every leaf with the same leading axis N "
            f"(W (N, n_in, n_out)); got leading shapes {sorted(leading)}"
        )
    check_params(net, jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params))
    return n


# ----------------------------------------------------------------------------- the data


def check_numeric(name: str, a) -> None:
    """TypeError naming ``name`` unless ``a`` is dense numbers (or bools): a scipy sparse matrix,
    strings and object arrays (ragged or mixed rows) are refused, with the fix; ValueError for
    integers that JAX's integer type cannot hold (:func:`check_integer_range`)."""
    if hasattr(a, "toarray") and hasattr(a, "nnz"):
        raise TypeError(
            f"{name}: expected a dense array, got a sparse matrix ({type(a).__name__}); "
            f"pass {name}.toarray()"
        )
    if isinstance(a, (jax.Array, jax.core.Tracer)):
        return
    try:
        host = np.asarray(a)
    except ValueError as err:  # ragged nested lists
        raise TypeError(f"{name}: expected a rectangular array of numbers ({err})") from None
    dtype = host.dtype
    if not (dtype == np.bool_ or jnp.issubdtype(dtype, jnp.number)):
        if dtype.kind == "O":
            hint = f"mixed types or ragged rows; try np.asarray({name}, dtype=float)"
        elif name == "y":
            hint = "encode string labels as codes 0..k-1, e.g. np.unique(y, return_inverse=True)[1]"
        else:
            hint = "features must be numbers"
        raise TypeError(f"{name}: expected numbers, got an array of dtype {dtype} ({hint})")
    check_integer_range(name, host)


def check_integer_range(name: str, a: np.ndarray) -> None:
    """ValueError naming ``name`` if ``a`` holds integers beyond the range of the type JAX
    converts it to (int32 unless ``jax_enable_x64``), which would wrap (2**32 + 1 -> 1)."""
    if not np.issubdtype(a.dtype, np.integer) or a.size == 0:
        return
    target = jax.dtypes.canonicalize_dtype(a.dtype)
    low, high = np.iinfo(target).min, np.iinfo(target).max
    if a.min() >= low and a.max() <= high:
        return
    value = a.min() if a.min() < low else a.max()
    fix = (
        "class labels must be codes 0..k-1, e.g. np.unique(y, return_inverse=True)[1]"
        if name == "y"
        else f"give {name}.astype(float)"
    )
    raise ValueError(
        f"{name}: holds {value}, beyond the range of {target} ({low} to {high}), JAX's integer "
        f"type without jax_enable_x64; {fix}"
    )


def check_finite_rows(name: str, x, dtype=None) -> None:
    """ValueError naming the first row of ``x`` (``(B, ...)``, or one example ``(n,)``) that holds
    NaN or inf; with ``dtype``, values that overflow it (float64 beyond float32's range) count
    too. Skipped under tracing (``jit``, ``vmap``), where values are unknown."""
    rows = non_finite_rows(x, dtype)
    if rows.size == 0:
        return
    first = int(rows[0])
    where = f"row {first}" + (f" (and {rows.size - 1} more)" if rows.size > 1 else "")
    row = _as_rows(local_values(x))[first]
    value = row[~np.isfinite(_cast(row, dtype))][0].item()
    if np.isfinite(value):
        raise ValueError(
            f"{name}: {where} holds {value!r}, beyond the range of {jnp.dtype(dtype)} (the "
            "params' dtype); rescale it or use float64 params"
        )
    raise ValueError(f"{name}: {where} holds {value!r}; fill it in or drop the row")


def non_finite_rows(x, dtype=None) -> np.ndarray:
    """Indices of the rows of ``x`` (``(B, ...)``; one example ``(n,)`` is row 0) holding NaN or
    inf, in ``dtype`` if given (where a float64 beyond float32's range is inf). For a jax array
    the common case, none, is decided on the device; under tracing nothing is known: none."""
    if isinstance(x, jax.core.Tracer):
        return np.zeros(0, int)
    dtype = None if dtype is None else jnp.dtype(dtype)
    if isinstance(x, jax.Array) and bool(_all_finite(x, x.dtype if dtype is None else dtype)):
        return np.zeros(0, int)
    a = _as_rows(local_values(x))
    if a.dtype.kind not in "fc" and dtype is None:
        return np.zeros(0, int)
    return np.flatnonzero(~np.isfinite(_cast(a, dtype)).all(axis=1))


def _as_rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(1, -1) if a.ndim <= 1 else a.reshape(len(a), -1)


def _cast(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` in ``dtype`` (unchanged if None); overflow becomes inf without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return a if dtype is None else a.astype(dtype)


@partial(jax.jit, static_argnums=1)
def _all_finite(x: Array, dtype) -> Array:
    return jnp.all(jnp.isfinite(x.astype(dtype)))


def as_inputs(net: "MLP", params: Params, x) -> Array:
    """``x`` as a batch ``(B, n_in)`` in the parameters' dtype (one example gets B = 1)."""
    check_params(net, params)
    check_numeric("x", x)
    x = jnp.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] != net.sizes[0]:
        raise ValueError(
            f"x: expected shape (batch, {net.sizes[0]}) or ({net.sizes[0]},), got {x.shape}"
        )
    x = x if x.ndim == 2 else x[None]  # no copy of a batch that is already one
    return x if x.dtype == param_dtype(params) else x.astype(param_dtype(params))


def as_targets(net: "MLP", y, x_shape: tuple[int, ...], dtype) -> Array:
    """Targets as ``(B, n_out)`` rows of ``dtype``; integer labels become one-hot (cross-entropy)
    or a single column (binary cross-entropy, hinge with n_out = 1). 1-D float targets ``(B,)``
    are whole-valued labels (cross-entropy) or the one column of a net with one output."""
    check_numeric("y", y)
    y = jnp.asarray(y)
    batch, n_out = x_shape[:-1], net.sizes[-1]
    y = _one_column_targets(net, y, batch)
    if net.loss in CLASSIFICATION + NON_NEGATIVE and not isinstance(y, jax.core.Tracer):
        check_target_values(net, local_values(y))  # concrete only outside jit / vmap
    if y.dtype == jnp.bool_:
        y = y.astype(jnp.int32)
    if jnp.issubdtype(y.dtype, jnp.integer):
        if net.loss not in CLASSIFICATION:
            raise TypeError(
                f"y: integer labels need a classification loss {CLASSIFICATION}, got "
                f"loss={net.loss!r}; regression targets are floats: give y.astype(float)"
            )
        if y.shape != batch:
            raise ValueError(f"y: expected integer labels of shape {batch}, got {y.shape}")
        if net.loss == "cross_entropy":
            t = _one_hot(y, n_out, dtype)
        elif n_out == 1:
            t = y[..., None].astype(dtype)
        else:
            raise ValueError(
                f"y: integer labels for loss={net.loss!r} need n_out == 1, got {n_out}; give (batch, {n_out}) rows"
            )
    else:
        if y.shape != batch + (n_out,):
            raise ValueError(_target_shape_problem(net, y.shape, batch))
        t = y.astype(dtype)
    return t if t.ndim == 2 else t[None]


def _one_hot(y: Array, n: int, dtype) -> Array:
    """``jax.nn.one_hot(y, n, dtype=dtype)``, made on the host where ``y`` is concrete."""
    if isinstance(y, jax.core.Tracer) or not y.is_fully_addressable:
        return jax.nn.one_hot(y, n, dtype=dtype)
    labels = np.asarray(y)
    return jax.device_put(one_hot(labels.reshape(-1), n, dtype).reshape(labels.shape + (n,)))


def local_values(a) -> np.ndarray:
    """The values of ``a`` this process holds: all of them, unless ``a`` is a global array
    spread over several processes (then this process's rows)."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return np.concatenate([np.asarray(s.data) for s in a.addressable_shards])
    return np.asarray(a)


def _one_column_targets(net: "MLP", y: Array, batch: tuple[int, ...]) -> Array:
    """1-D float targets ``(B,)``: int labels for cross-entropy (checked whole where concrete),
    one column ``(B, 1)`` for a net with one output; anything else unchanged."""
    if y.shape != batch or not jnp.issubdtype(y.dtype, jnp.floating):
        return y
    if net.loss == "cross_entropy":
        if not isinstance(y, jax.core.Tracer):
            values = local_values(y)
            bad = ~np.isfinite(values) | (values != np.round(values))
            if np.any(bad):
                raise ValueError(
                    f"y: 1-D float labels for loss='cross_entropy' must be whole numbers (class "
                    f"indices 0..{net.sizes[-1] - 1}), got {int(np.sum(bad))} that are not, e.g. "
                    f"{values[bad][0].item()!r}"
                )
        return y.astype(jnp.int32)
    return y[..., None] if net.sizes[-1] == 1 else y


def _target_shape_problem(net: "MLP", shape: tuple[int, ...], batch: tuple[int, ...]) -> str:
    """The message for float targets of the wrong shape: what was expected, and why not."""
    n_out = net.sizes[-1]
    expected = batch + (n_out,)
    labels = f" (or labels {batch})" if net.loss in CLASSIFICATION else ""
    head = f"y: expected shape {expected}{labels}, got {shape}"
    if batch and shape[:1] != batch:
        return f"{head}: {shape[0] if shape else 'no'} rows for the {batch[0]} examples of x"
    if len(shape) == len(batch):
        return f"{head}: 1-D targets fit a net with one output, this net has {n_out} (sizes[-1])"
    if len(shape) == len(expected):
        hint = "; give class labels as a 1-D array" if net.loss == "cross_entropy" else ""
        return f"{head}: {shape[-1]} columns for {n_out} outputs (sizes[-1]){hint}"
    return f"{head}: {len(shape)} axes, expected {len(expected)}"


def check_target_values(net: "MLP", y: np.ndarray, name: str = "y") -> None:
    """Label / target values allowed by the loss (checked on the host with numpy): integer
    labels in [0, n_out) (cross-entropy), {0, 1} (binary cross-entropy), {-1, +1} (hinge);
    float rows in [0, 1] (cross-entropies), {-1, +1} (hinge) or >= 0 (poisson)."""
    n_out, integer = net.sizes[-1], not np.issubdtype(y.dtype, np.inexact)
    if net.loss == "cross_entropy" and integer:
        bad, allowed = (y < 0) | (y >= n_out), f"[0, {n_out})"
    elif net.loss in ("cross_entropy", "binary_cross_entropy"):
        bad, allowed = (y < 0) | (y > 1), "[0, 1]" if not integer else "{0, 1}"
    elif net.loss == "hinge":
        bad, allowed = (y != 1) & (y != -1), "{-1, +1}"
    elif net.loss in NON_NEGATIVE:
        bad, allowed = y < 0, "[0, inf) (counts or rates)"
    else:
        return
    if np.any(bad):
        kind = "integer labels" if integer else "targets"
        raise ValueError(
            f"{name}: {kind} for loss={net.loss!r} must be in {allowed}, got "
            f"{int(np.sum(bad))} outside, e.g. {y[bad][0].item()!r}"
        )
