"""The network spec: a frozen, hashable description of a multi-layer perceptron.

Layer l (1-based, as in the documents) computes ``z^l = h^{l-1} @ W^l + b^l`` and
``h^l = sigma_l(z^l)``, with ``h^0 = x``; the spec names the widths, the activations, the loss and
how the products are taken. Its fields are checked when it is built (``jmlp.checks``).
"""

from dataclasses import dataclass

from jmlp.activations import PARAMETER, Activation, get_activation
from jmlp.checks import hidden_names, spec_fields
from jmlp.losses import FUSED, FusedLoss, Loss, get_loss


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
        for field, value in spec_fields(self).items():
            object.__setattr__(self, field, value)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def hidden_activations(self) -> tuple[str, ...]:
        return hidden_names(self.activation, len(self.sizes) - 2)

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
