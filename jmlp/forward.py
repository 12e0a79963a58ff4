"""The network spec, the forward pass (with and without its cache) and the loss.

Layer l (1-based, as in the documents) computes ``z^l = h^{l-1} @ W^l + b^l`` and
``h^l = sigma_l(z^l)``, with ``h^0 = x``. The documents' column form ``z = W h + b`` uses the
transpose of our ``W`` (shape ``(n_in, n_out)``, batch-major).
"""

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY, PARAMETER, Activation, get_activation
from jmlp.init import Params, check_sizes
from jmlp.losses import CLASSIFICATION, FUSED, LOSSES, FusedLoss, Loss, get_loss

Array = jax.Array
REDUCTIONS = ("mean", "sum")
PRECISIONS = ("default", "high", "highest")


@dataclass(frozen=True)
class MLP:
    """Frozen, hashable description of a multi-layer perceptron (a valid static jit argument).

    **Arguments:**
    - ``sizes``: layer widths ``(n_in, n_1, ..., n_out)``.
    - ``activation``: one name for every hidden layer, or a tuple with one name per hidden layer
      (see ``jmlp.activations.ACTIVATIONS``; ``softmax`` is output-only).
    - ``output_activation``: activation of the last layer (default ``"identity"``).
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
    output_activation: str = "identity"
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
        _check_name("output_activation", self.output_activation, ACTIVATIONS)
        _check_name("loss", self.loss, LOSSES)
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
        raise ValueError(f"{argument}: unknown name {name!r}; known: {sorted(known)}")


class Cache(NamedTuple):
    """Everything the backward pass needs: ``h = [h^0 = x, ..., h^L]``, ``z = [z^1, ..., z^L]``."""

    h: list[Array]
    z: list[Array]


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


def param_dtype(params: Params) -> jnp.dtype:
    return jnp.result_type(params[0]["W"])


def as_inputs(net: MLP, params: Params, x) -> Array:
    """``x`` as a batch ``(B, n_in)`` in the parameters' dtype (one example gets B = 1)."""
    check_params(net, params)
    x = jnp.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] != net.sizes[0]:
        raise ValueError(
            f"x: expected shape (batch, {net.sizes[0]}) or ({net.sizes[0]},), got {x.shape}"
        )
    return jnp.atleast_2d(x).astype(param_dtype(params))


def as_targets(net: MLP, y, x_shape: tuple[int, ...], dtype) -> Array:
    """Targets as ``(B, n_out)`` rows of ``dtype``; integer labels become one-hot (cross-entropy)
    or a single column (binary cross-entropy, hinge with n_out = 1)."""
    y = jnp.asarray(y)
    batch, n_out = x_shape[:-1], net.sizes[-1]
    if net.loss in CLASSIFICATION and not isinstance(y, jax.core.Tracer):
        check_target_values(net, np.asarray(y))  # values are concrete only outside jit / vmap
    if y.dtype == jnp.bool_:
        y = y.astype(jnp.int32)
    if jnp.issubdtype(y.dtype, jnp.integer):
        if net.loss not in CLASSIFICATION:
            raise TypeError(
                f"y: integer labels need a classification loss {CLASSIFICATION}, got loss={net.loss!r}"
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
            raise ValueError(
                f"y: expected shape {batch + (n_out,)} (or integer labels {batch}), got {y.shape}"
            )
        t = y.astype(dtype)
    return jnp.atleast_2d(t)


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


def forward_cache(net: MLP, params: Params, x: Array) -> Cache:
    """Forward pass of a batch ``x (B, n_in)`` keeping every ``z^l (B, n_l)`` and ``h^l``, all in
    the parameters' dtype."""
    x = jnp.asarray(x, param_dtype(params))
    h, zs, hs = x, [], [x]
    for layer, act in zip(params, net.activations):
        z = matmul(net, h, layer["W"]) + layer["b"][None, :]
        h = act.fn(z)
        zs.append(z)
        hs.append(h)
    return Cache(hs, zs)


def forward(net: MLP, params: Params, x) -> Array:
    """Network output ``h^L``: ``(B, n_out)`` for ``x (B, n_in)``, ``(n_out,)`` for ``x (n_in,)``."""
    out = forward_cache(net, params, as_inputs(net, params, x)).h[-1]
    return out[0] if jnp.ndim(x) == 1 else out


def per_example_loss(net: MLP, cache: Cache, t: Array) -> Array:
    """``l_n`` for every example, ``(B,)``; fused pairs are computed from ``z^L``."""
    if net.fused is not None:
        return net.fused.value(cache.z[-1], t)
    return net.loss_fn.value(cache.h[-1], t)


def example_scale(net: MLP, batch: int, weights, dtype) -> Array:
    """``s_n`` with ``L = sum_n s_n l_n``: 1/B (mean), 1 (sum), or ``w_n / sum w`` / ``w_n``."""
    if weights is None:
        return jnp.full((batch,), 1 / batch if net.reduction == "mean" else 1, dtype)
    weights = jnp.asarray(weights, dtype)
    if weights.shape != (batch,):
        raise ValueError(f"weights: expected shape ({batch},), got {weights.shape}")
    return weights / jnp.sum(weights) if net.reduction == "mean" else weights


def l2_penalty(params: Params, l2) -> Array:
    """``l2 / 2 * sum_l ||W^l||^2`` (weights only; biases are not penalised), in the params' dtype."""
    l2 = jnp.asarray(l2, param_dtype(params))
    return 0.5 * l2 * sum(jnp.sum(layer["W"] ** 2) for layer in params)


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
