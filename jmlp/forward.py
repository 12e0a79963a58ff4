"""The network spec, the forward pass (with and without its cache) and the loss.

Layer l (1-based, as in the documents) computes ``z^l = h^{l-1} @ W^l + b^l`` and
``h^l = sigma_l(z^l)``, with ``h^0 = x``. The documents' column form ``z = W h + b`` uses the
transpose of our ``W`` (shape ``(n_in, n_out)``, batch-major).
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.activations import (
    ACTIVATIONS,
    OUTPUT_ONLY,
    PARAMETER,
    Activation,
    get_activation,
    unknown_name,
)
from jmlp.init import Params, check_sizes
from jmlp.losses import CLASSIFICATION, FUSED, LOSSES, FusedLoss, Loss, get_loss

Array = jax.Array
REDUCTIONS = ("mean", "sum")
PRECISIONS = ("default", "high", "highest")
# The output activation each loss needs, when none is given (identity for every other loss).
OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
PROBABILITY_OUTPUTS = ("softmax", "sigmoid")  # outputs in (0, 1) by construction


@dataclass(frozen=True)
class MLP:
    """Frozen, hashable description of a multi-layer perceptron (a valid static jit argument).

    **Arguments:**
    - ``sizes``: layer widths ``(n_in, n_1, ..., n_out)``.
    - ``activation``: one name for every hidden layer, or a tuple with one name per hidden layer
      (see ``jmlp.activations.ACTIVATIONS``; ``softmax`` is output-only).
    - ``output_activation``: activation of the last layer; by default what the loss needs:
      ``"softmax"`` for ``cross_entropy``, ``"sigmoid"`` for ``binary_cross_entropy``,
      ``"identity"`` otherwise (after construction the field holds the resolved name). The log
      losses take the log of the output, so they accept only ``softmax`` and ``sigmoid``.
    - ``loss``: name in ``jmlp.losses.LOSSES`` (default ``"mse"``).
    - ``reduction``: how per-example losses are combined over the batch: ``"mean"`` or ``"sum"``.
    - ``leaky_relu_slope``, ``elu_alpha``, ``huber_delta``: the options of those functions.
    - ``compute_dtype``: e.g. ``"bfloat16"``: matmul inputs are cast to it (accumulating in the
      parameters' dtype); parameters, activations and losses stay in the parameters' dtype.
    - ``precision``: matmul precision, ``"default"``, ``"high"`` or ``"highest"`` (``None``: JAX's
      ``jax_default_matmul_precision``).
    """

    sizes: tuple[int, ...]
    activation: str | tuple[str, ...] = "relu"
    output_activation: str | None = None
    loss: str = "mse"
    reduction: str = "mean"
    leaky_relu_slope: float = 0.01
    elu_alpha: float = 1.0
    huber_delta: float = 1.0
    compute_dtype: str | None = None
    precision: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "sizes", check_sizes(self.sizes))
        if isinstance(self.activation, list):
            object.__setattr__(self, "activation", tuple(self.activation))
        n_hidden = len(self.sizes) - 2
        if isinstance(self.activation, tuple) and len(self.activation) != n_hidden:
            raise ValueError(
                f"activation: expected one name or {n_hidden} names (one per hidden layer of "
                f"sizes={self.sizes}), got {len(self.activation)}: {self.activation!r}"
            )
        for name in self.hidden_activations:
            _check_name("activation", name, ACTIVATIONS)
            if name in OUTPUT_ONLY:
                raise ValueError(f"activation: {name!r} is allowed as output_activation only")
        _check_name("loss", self.loss, LOSSES)
        if self.output_activation is None:
            output = OUTPUT_FOR_LOSS.get(self.loss, "identity")
            object.__setattr__(self, "output_activation", output)
        _check_name("output_activation", self.output_activation, ACTIVATIONS)
        _check_log_loss_output(self.loss, self.output_activation)
        if self.output_activation == "softmax" and self.sizes[-1] == 1:
            raise ValueError(
                "output_activation: softmax over one output unit is always 1 (its gradient is 0); "
                "use 'sigmoid' for one unit, or two softmax units"
            )
        _check_name("reduction", self.reduction, REDUCTIONS)
        for option in ("leaky_relu_slope", "elu_alpha", "huber_delta"):
            object.__setattr__(self, option, _as_float(option, getattr(self, option)))
        if self.precision is not None:
            _check_name("precision", self.precision, PRECISIONS)
        if self.compute_dtype is not None:
            dtype = jnp.dtype(self.compute_dtype)
            if not jnp.issubdtype(dtype, jnp.floating):
                raise TypeError(f"compute_dtype: expected a floating dtype, got {dtype}")
            object.__setattr__(self, "compute_dtype", dtype.name)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def hidden_activations(self) -> tuple[str, ...]:
        if isinstance(self.activation, str):
            return (self.activation,) * (len(self.sizes) - 2)
        return tuple(self.activation)

    @property
    def activations(self) -> tuple[Activation, ...]:
        """The activation record of every layer, output layer last."""
        options = {"leaky_relu": self.leaky_relu_slope, "elu": self.elu_alpha}
        names = self.hidden_activations + (self.output_activation,)
        return tuple(get_activation(n, options.get(n) if n in PARAMETER else None) for n in names)

    @property
    def loss_fn(self) -> Loss:
        return get_loss(self.loss, self.huber_delta)

    @property
    def fused(self) -> FusedLoss | None:
        """The fused (output activation, loss) record, or None."""
        return FUSED.get((self.output_activation, self.loss))


def _as_float(argument: str, value) -> float:
    """A real number as a Python float: the spec stays hashable, and the number takes the dtype of
    the arrays it meets (a NumPy or JAX float64 scalar would promote float32 to float64)."""
    if isinstance(value, bool) or np.ndim(value) != 0 or not np.isrealobj(value):
        raise TypeError(f"{argument}: expected a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{argument}: expected a real number, got {value!r}") from None


def _check_name(argument: str, name, known) -> None:
    if not isinstance(name, str) or name not in known:
        raise ValueError(unknown_name(argument, name, known))


def _check_log_loss_output(loss: str, output: str) -> None:
    """Refuse a log loss on an output that is not a probability (its log is undefined)."""
    if loss in OUTPUT_FOR_LOSS and output not in PROBABILITY_OUTPUTS:
        raise ValueError(
            f"output_activation: loss={loss!r} takes the log of the output, which must be a "
            f"probability (softmax or sigmoid), got {output!r}; write "
            f"output_activation={OUTPUT_FOR_LOSS[loss]!r} or leave it out (the default for "
            f"{loss}): the loss is then computed from the logits z^L, as PyTorch's "
            f"{'CrossEntropyLoss' if loss == 'cross_entropy' else 'BCEWithLogitsLoss'} does"
        )


class Cache(NamedTuple):
    """Everything the backward pass needs: ``h = [h^0 = x, ..., h^L]``, ``z = [z^1, ..., z^L]``."""

    h: list[Array]
    z: list[Array]


class Layout(NamedTuple):
    """Where the batch axis (and a member axis) lives, and how each product of the forward and
    backward pass is taken there. The passes (:func:`forward_cache`, ``jmlp.backprop``'s delta
    rule) are written once over these helpers; :func:`batch_major` is the documented layout
    ``h (B, n)``, and ``jmlp.backprop.member_columns`` the ensemble layout ``h (G, n, B)``.

    - ``affine(h, layer)``: ``z^l = h^{l-1} W^l + b^l``
    - ``back(delta, layer)``: ``delta^l W^l^T`` (the delta rule's product, before ``sigma'``)
    - ``grads(h, delta)``: ``{"W": h^{l-1}^T delta^l, "b": sum_n delta^l_n}``
    - ``classes``: the axis of the output units in this layout's arrays (the axis the tables'
      softmax and losses reduce over)
    - ``examples(a)``: per-example data ``(B, ...)`` (targets, batch weights) arranged to
      broadcast against this layout's arrays
    - ``batch_sum(a)``: sum over the batch axis of per-example values
    """

    affine: Callable
    back: Callable
    grads: Callable
    classes: int
    examples: Callable
    batch_sum: Callable


def batch_major(net: "MLP") -> Layout:
    """The layout of the documents' batch form: ``h (B, n)``, ``W (n_in, n_out)``."""
    return Layout(
        affine=lambda h, layer: matmul(net, h, layer["W"]) + layer["b"][None, :],
        back=lambda delta, layer: matmul(net, delta, layer["W"].T),
        # h^T kept a real array: XLA:CPU runs the dot contracting both operands' axis 0 on a
        # slower path
        grads=lambda h, delta: {
            "W": matmul(net, jax.lax.optimization_barrier(h.T), delta),
            "b": jnp.sum(delta, axis=0),
        },
        classes=-1,
        examples=lambda a: a,
        batch_sum=lambda a: jnp.sum(a, axis=0),
    )


def matmul(net: MLP, a: Array, b: Array) -> Array:
    """``a @ b`` in the spec's compute dtype and precision, result in ``a``'s dtype."""
    if net.compute_dtype is None:
        return jnp.matmul(a, b, precision=net.precision)
    c = jnp.dtype(net.compute_dtype)
    out = jnp.matmul(
        a.astype(c), b.astype(c), precision=net.precision, preferred_element_type=a.dtype
    )
    return out.astype(a.dtype)


def check_params(net: MLP, params: Params) -> None:
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


def param_dtype(params: Params) -> jnp.dtype:
    return jnp.result_type(params[0]["W"])


def as_inputs(net: MLP, params: Params, x) -> Array:
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


def as_targets(net: MLP, y, x_shape: tuple[int, ...], dtype) -> Array:
    """Targets as ``(B, n_out)`` rows of ``dtype``; integer labels become one-hot (cross-entropy)
    or a single column (binary cross-entropy, hinge with n_out = 1). 1-D float targets ``(B,)``
    are whole-valued labels (cross-entropy) or the one column of a net with one output."""
    check_numeric("y", y)
    y = jnp.asarray(y)
    batch, n_out = x_shape[:-1], net.sizes[-1]
    y = _one_column_targets(net, y, batch)
    if net.loss in CLASSIFICATION and not isinstance(y, jax.core.Tracer):
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
            t = jax.nn.one_hot(y, n_out, dtype=dtype)
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


def local_values(a) -> np.ndarray:
    """The values of ``a`` this process holds: all of them, unless ``a`` is a global array
    spread over several processes (then this process's rows)."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return np.concatenate([np.asarray(s.data) for s in a.addressable_shards])
    return np.asarray(a)


def _one_column_targets(net: MLP, y: Array, batch: tuple[int, ...]) -> Array:
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


def _target_shape_problem(net: MLP, shape: tuple[int, ...], batch: tuple[int, ...]) -> str:
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


def check_target_values(net: MLP, y: np.ndarray, name: str = "y") -> None:
    """Label / target values allowed by the loss (checked on the host with numpy): integer
    labels in [0, n_out) (cross-entropy), {0, 1} (binary cross-entropy), {-1, +1} (hinge);
    float rows in [0, 1] (cross-entropies) or {-1, +1} (hinge)."""
    n_out, integer = net.sizes[-1], not np.issubdtype(y.dtype, np.inexact)
    if net.loss == "cross_entropy" and integer:
        bad, allowed = (y < 0) | (y >= n_out), f"[0, {n_out})"
    elif net.loss in ("cross_entropy", "binary_cross_entropy"):
        bad, allowed = (y < 0) | (y > 1), "[0, 1]" if not integer else "{0, 1}"
    elif net.loss == "hinge":
        bad, allowed = (y != 1) & (y != -1), "{-1, +1}"
    else:
        return
    if np.any(bad):
        kind = "integer labels" if integer else "targets"
        raise ValueError(
            f"{name}: {kind} for loss={net.loss!r} must be in {allowed}, got "
            f"{int(np.sum(bad))} outside, e.g. {y[bad][0].item()!r}"
        )


def forward_cache(net: MLP, params: Params, x: Array, layout: Layout | None = None) -> Cache:
    """Forward pass of a batch ``x (B, n_in)`` keeping every ``z^l (B, n_l)`` and ``h^l``, all in
    the parameters' dtype (``layout``: another arrangement of the same products, default
    :func:`batch_major`)."""
    layout = layout or batch_major(net)
    x = jnp.asarray(x, param_dtype(params))
    h, zs, hs = x, [], [x]
    for layer, act in zip(params, net.activations):
        z = layout.affine(h, layer)
        h = act.fn(z) if act.deriv is not None else act.fn(z, axis=layout.classes)
        zs.append(z)
        hs.append(h)
    return Cache(hs, zs)


def forward(net: MLP, params: Params, x) -> Array:
    """Network output ``h^L``: ``(B, n_out)`` for ``x (B, n_in)``, ``(n_out,)`` for ``x (n_in,)``."""
    out = forward_cache(net, params, as_inputs(net, params, x)).h[-1]
    return out[0] if jnp.ndim(x) == 1 else out


def per_example_loss(net: MLP, cache: Cache, t: Array, axis: int = -1) -> Array:
    """``l_n`` for every example, ``(B,)``; fused pairs are computed from ``z^L``. ``axis``: the
    class axis of ``h^L``, ``z^L`` and ``t`` (the last, in the batch-major layout)."""
    if net.fused is not None:
        return net.fused.value(cache.z[-1], t, axis=axis)
    return net.loss_fn.value(cache.h[-1], t, axis=axis)


def example_scale(net: MLP, batch: int, weights, dtype) -> Array:
    """``s_n`` with ``L = sum_n s_n l_n``: 1/B (mean), 1 (sum), or ``w_n / sum w`` / ``w_n``."""
    if weights is None:
        return jnp.full((batch,), 1 / batch if net.reduction == "mean" else 1, dtype)
    weights = jnp.asarray(weights, dtype)
    if weights.shape != (batch,):
        raise ValueError(f"weights: expected shape ({batch},), got {weights.shape}")
    return weights / jnp.sum(weights) if net.reduction == "mean" else weights


def l2_penalty(params: Params, l2) -> Array:
    """``l2 / 2 * sum_l ||W^l||^2`` (weights only; biases are not penalised), in the params' dtype.
    With ``l2 (G,)`` and stacked params ``W (G, n_in, n_out)``: one penalty per member, ``(G,)``."""
    l2 = jnp.asarray(l2, param_dtype(params))
    lead = jnp.ndim(l2)
    squares = [jnp.sum(p["W"] ** 2, axis=tuple(range(lead, p["W"].ndim))) for p in params]
    return 0.5 * l2 * sum(squares)


def loss(net: MLP, params: Params, x, y, *, l2=0.0, weights=None) -> Array:
    """Scalar loss ``L = sum_n s_n l(h^L_n, t_n) + l2/2 sum ||W||^2``.

    ``x``: ``(B, n_in)`` or ``(n_in,)``; ``y``: ``(B, n_out)`` rows, or integer labels ``(B,)`` for
    classification losses; ``s_n = 1/B`` (``reduction="mean"``) or 1 (``"sum"``), or the normalised
    ``weights (B,)``. Targets and inputs are cast to the parameters' dtype.
    """
    xb = as_inputs(net, params, x)
    t = as_targets(net, y, jnp.shape(x), xb.dtype)
    cache = forward_cache(net, params, xb)
    scale = example_scale(net, xb.shape[0], weights, xb.dtype)
    return jnp.sum(scale * per_example_loss(net, cache, t)) + l2_penalty(params, l2)
