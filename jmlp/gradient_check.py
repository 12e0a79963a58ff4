"""A three-way gradient check: hand-written backward pass, autodiff and central differences.

For every layer and tensor it reports the largest absolute difference and the relative error
``max_i |a_i - b_i| / max_i |b_i|`` (relative to the tensor's largest reference entry, so entries
that are 0 do not blow up) of the hand-written gradient against autodiff and against central
finite differences ``(L(p + h e_i) - L(p - h e_i)) / 2h`` with ``h = eps^(1/3) max(1, |p_i|)``
(``eps`` the dtype's machine epsilon: ~6e-6 in float64). Finite differences are meaningful only
where the loss is smooth: a step that crosses a ReLU-type kink, the MAE/hinge corners or a clip
gives an honest but large difference that is not a bug.

With ``second_order=True`` it adds one line for the Hessian-vector product along a random unit
direction ``v``: :func:`jmlp.hvp` (the R-operator) against ``jax.jvp(jax.grad(loss))`` and against
central differences of the hand-written gradient, ``(g(p + h v) - g(p - h v)) / 2h``.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.backprop import autodiff, backprop
from jmlp.checks import param_dtype
from jmlp.curvature import hvp
from jmlp.forward import loss
from jmlp.init import Params
from jmlp.net import MLP


class GradCheckRow(NamedTuple):
    layer: int
    tensor: str
    abs_autodiff: float  # max |hand - autodiff|
    rel_autodiff: float  # max |hand - autodiff| / max |autodiff|
    abs_fd: float  # max |hand - finite differences| over the checked entries
    rel_fd: float
    worst_index: tuple[int, ...]  # entry of the largest |hand - autodiff|


class SecondOrderRow(NamedTuple):
    """H v along a random unit direction, whole pytree: hand (R-operator) vs autodiff and FD."""

    abs_autodiff: float  # max |Hv_hand - jax.jvp(jax.grad(loss))|
    rel_autodiff: float
    abs_fd: float  # max |Hv_hand - (g(p + h v) - g(p - h v)) / 2h|, g the hand-written gradient
    rel_fd: float


class GradCheckReport(NamedTuple):
    rows: tuple[GradCheckRow, ...]
    dtype: str
    fd_entries: int  # finite-difference entries checked per tensor (at most)
    second_order: SecondOrderRow | None = None

    def _all_rows(self) -> tuple:
        return self.rows + ((self.second_order,) if self.second_order else ())

    @property
    def max_rel_autodiff(self) -> float:
        """Largest relative error against autodiff (the second-order line included, if any)."""
        return max(r.rel_autodiff for r in self._all_rows())

    @property
    def max_rel_fd(self) -> float:
        return max(r.rel_fd for r in self._all_rows())

    def __str__(self) -> str:
        head = f"{'layer':>5} {'tensor':>6} {'|hand-auto|':>12} {'rel':>10} {'|hand-fd|':>12} {'rel':>10}  worst"
        lines = [
            f"gradient check ({self.dtype}, <= {self.fd_entries} finite-difference entries per tensor)",
            head,
        ]
        for r in self.rows:
            lines.append(
                f"{r.layer:>5} {r.tensor:>6} {r.abs_autodiff:12.3e} {r.rel_autodiff:10.2e} "
                f"{r.abs_fd:12.3e} {r.rel_fd:10.2e}  {r.worst_index}"
            )
        if (r := self.second_order) is not None:
            lines.append(
                f"{'H v':>12} {r.abs_autodiff:12.3e} {r.rel_autodiff:10.2e} "
                f"{r.abs_fd:12.3e} {r.rel_fd:10.2e}  (R-operator along a random unit v)"
            )
        return "\n".join(lines)

    def assert_close(self, rtol_autodiff: float = 1e-10, rtol_fd: float = 1e-6) -> None:
        """Raise AssertionError (with the table) if either relative error exceeds its bound."""
        if self.max_rel_autodiff > rtol_autodiff or self.max_rel_fd > rtol_fd:
            raise AssertionError(
                f"gradients disagree (bounds: autodiff {rtol_autodiff:g}, finite differences "
                f"{rtol_fd:g})\n{self}"
            )


def _relative(diff: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    largest = float(np.max(np.abs(reference), initial=0.0))
    worst = float(np.max(diff, initial=0.0))
    return worst, worst / largest if largest > 0 else worst


@partial(jax.jit, static_argnums=(0, 4, 5))
def finite_difference(
    net: MLP, params: Params, x, y, layer: int, tensor: str, flat_index, *, l2=0.0
):
    """Central differences of the loss for entries ``flat_index (k,)`` of ``params[layer][tensor]``."""
    leaf = params[layer][tensor]
    step = jnp.finfo(leaf.dtype).eps ** (1 / 3) * jnp.maximum(1, jnp.abs(leaf.ravel()[flat_index]))

    def loss_at(i, h):
        moved = leaf.ravel().at[i].add(h).reshape(leaf.shape)
        new = [dict(p) for p in params]
        new[layer][tensor] = moved
        return loss(net, new, x, y, l2=l2)

    def central(args):
        i, h = args
        return (loss_at(i, h) - loss_at(i, -h)) / (2 * h)

    return jax.lax.map(central, (flat_index, step), batch_size=64)


@partial(jax.jit, static_argnums=0)
def _second_order(net: MLP, params: Params, x, y, v: Params, l2):
    """``(H v by hand, by jax.jvp(jax.grad(loss)), by central differences of backprop)``."""
    hand = hvp(net, params, x, y, v, l2=l2)
    auto = jax.jvp(jax.grad(lambda p: loss(net, p, x, y, l2=l2)), (params,), (v,))[1]
    h = jnp.finfo(param_dtype(params)).eps ** (1 / 3)

    def grad_at(sign):
        moved = jax.tree.map(lambda p, d: p + sign * h * d, params, v)
        return backprop(net, moved, x, y, l2=l2)[1]

    fd = jax.tree.map(lambda a, b: (a - b) / (2 * h), grad_at(1), grad_at(-1))
    return hand, auto, fd


def second_order_row(net: MLP, params: Params, x, y, *, l2=0.0, key) -> SecondOrderRow:
    """Hessian-vector product along a random unit ``v`` (drawn with ``key``) by hand vs autodiff
    vs central differences of the hand-written gradient (step ``h = eps^(1/3)``)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    v = [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)]
    norm = jnp.sqrt(sum(jnp.sum(d * d) for d in v))
    v = jax.tree.unflatten(tree, [d / norm for d in v])
    hand, auto, fd = (
        np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])
        for t in _second_order(net, params, x, y, v, l2)
    )
    return SecondOrderRow(*_relative(np.abs(hand - auto), auto), *_relative(np.abs(hand - fd), fd))


def _sample(n: int, fd_entries: int, key) -> np.ndarray:
    """Indices of the entries checked by finite differences: all ``n`` if ``n <= fd_entries``,
    else ``fd_entries`` drawn with ``key`` without replacement."""
    if n <= fd_entries:
        return np.arange(n)
    return np.asarray(jax.random.choice(key, n, (fd_entries,), replace=False))


def _row(layer: int, tensor: str, h: np.ndarray, a: np.ndarray, idx, fd) -> GradCheckRow:
    """One tensor's line: hand ``h`` vs autodiff ``a`` (all entries), and vs the finite
    differences ``fd`` of entries ``idx``; the index of the largest disagreement with autodiff."""
    diff = np.abs(h - a)
    return GradCheckRow(
        layer,
        tensor,
        *_relative(diff, a),
        *_relative(np.abs(h.ravel()[idx] - fd), fd),
        tuple(int(i) for i in np.unravel_index(np.argmax(diff), h.shape)),
    )


def gradcheck(
    net: MLP,
    params: Params,
    x,
    y,
    *,
    l2=0.0,
    dtype="float64",
    fd_entries: int = 200,
    key=None,
    second_order: bool = False,
) -> GradCheckReport:
    """Compare :func:`jmlp.backprop` with :func:`jmlp.autodiff` and finite differences.

    Computed in ``dtype`` (float64 by default, switched on for the call). ``fd_entries``: entries
    per tensor checked by finite differences (all if the tensor is smaller; otherwise a random
    sample drawn with ``key``). ``second_order``: add the Hessian-vector product line
    (:func:`second_order_row`). Print the report for a table; ``report.assert_close()`` in tests.
    """
    with jax.enable_x64(jnp.dtype(dtype) == jnp.float64):
        cast = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
        x = jnp.asarray(x, dtype)
        y = np.asarray(y)
        y = jnp.asarray(y, dtype if np.issubdtype(y.dtype, np.floating) else np.int32)
        _, hand = jax.jit(backprop, static_argnums=0)(net, cast, x, y, l2=l2)
        _, auto = jax.jit(autodiff, static_argnums=0)(net, cast, x, y, l2=l2)
        key = jax.random.key(0) if key is None else key
        rows = []
        for layer, (h_layer, a_layer) in enumerate(zip(hand, auto)):
            for tensor in ("W", "b"):
                h, a = np.asarray(h_layer[tensor]), np.asarray(a_layer[tensor])
                idx = _sample(
                    h.size, fd_entries, jax.random.fold_in(key, 2 * layer + (tensor == "b"))
                )
                fd = finite_difference(net, cast, x, y, layer, tensor, jnp.asarray(idx), l2=l2)
                rows.append(_row(layer, tensor, h, a, idx, np.asarray(fd)))
        second = (
            second_order_row(net, cast, x, y, l2=l2, key=jax.random.fold_in(key, 2 * len(hand)))
            if second_order
            else None
        )
    return GradCheckReport(tuple(rows), jnp.dtype(dtype).name, fd_entries, second)
