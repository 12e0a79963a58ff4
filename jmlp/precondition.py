"""K-FAC (Martens & Grosse, 2015): the gradient preconditioned by Kronecker-factored curvature,
then handed to any optax optimizer, inside ``jmlp.fit`` and ``jmlp.fit_many``.

Layer ``l``'s parameters, batch-major, form the ``(n_in + 1, n_out)`` matrix ``[W; b]``; its
Gauss-Newton block, in the row-major order of ``[W; b]``, is approximated by ``kron(A, G)``
(:func:`jmlp.kfac_factors`). For a row-major ``M`` of that shape ``kron(A, G) vec(M) = vec(A M
G)`` (both symmetric), and ``kron(A, G)^-1 = kron(A^-1, G^-1)``, so the preconditioned gradient
is a product of two small matrices on either side:

    [dW; db]  <-  (A + pi gamma I)^-1 [dW; db] (G + gamma / pi I)^-1

Every step k = 0, 1, ... (``count``) of one member:

    A_k, G_k = the step batch's factors (the gradient's forward cache; kind "kfac": targets
               drawn with key fold_in(fold_in(key, KEY_SALT), k), key the member's run key)
    A <- eps A + (1 - eps) A_k,  G likewise,  eps = min(1 - 1/(k + 1), decay)
    every ``every`` steps (k mod every == 0): the damped inverses (LU), with the factored Tikhonov
        damping gamma = sqrt(damping + l2), pi = sqrt((tr A / (n_in + 1)) / (tr G / n_out))
    the preconditioned gradient -> the optimizer (its updates are the step)

The gradient preconditioned is the full one, ``L + l2/2 sum ||W||^2``; its curvature ``l2 I``
enters as damping (the paper's ``lambda + eta``). Damping and decay are per-member data; the
running factors, inverses and the optimizer's own state are the member's optimizer state
(:class:`KfacState`), so checkpoints hold them and a resumed run is the uninterrupted one.
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jmlp.backprop import cached_delta_rule, with_l2
from jmlp.forward import Cache, forward_cache
from jmlp.init import Params
from jmlp.layouts import batch_major, einsum, select
from jmlp.net import MLP
from jmlp.quantities import KINDS, cache_factors

Array = jax.Array
KEY_SALT = 0x6B666163  # "kfac": the draws' keys never meet the shuffles' fold_in(key, epoch)
DAMPING, DECAY, KEY = "kfac.damping", "kfac.decay", "kfac.key"  # per-member data, in hparams


class KfacPlan(NamedTuple):
    """The static settings (part of the compiled program)."""

    kind: str
    every: int
    samples: int


@dataclass(frozen=True, eq=False)
class Kfac:
    """The K-FAC preconditioner's settings (:func:`kfac`)."""

    damping: Any
    decay: Any
    every: int
    kind: str
    samples: int

    def __post_init__(self):
        _check_values("damping", self.damping, lambda a: a > 0, "numbers > 0")
        _check_values("decay", self.decay, lambda a: (a >= 0) & (a < 1), "numbers in [0, 1)")
        for name in ("every", "samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")

    @property
    def static(self) -> KfacPlan:
        return KfacPlan(self.kind, int(self.every), int(self.samples))


def _check_values(name: str, value: Any, ok, expected: str) -> None:
    a = np.asarray(value)
    if a.ndim > 1 or a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"{name}: expected a number or an array (N,) of {expected}, got {value!r}")
    if not np.all(ok(a)):
        raise ValueError(f"{name}: expected {expected}, got {value!r:.60}")


def kfac(
    damping=1e-3, *, decay=0.95, every: int = 10, kind: str = "kfac", samples: int = 1
) -> Kfac:
    """The K-FAC preconditioner of ``jmlp.fit(..., preconditioner=jmlp.kfac(...))`` (module
    docstring: the step, the damping, the running averages).

    **Arguments:**
    - ``damping``: lambda > 0, the Tikhonov damping (``gamma = sqrt(damping + l2)``); a number,
      or (``fit_many``) an array ``(N,)``, one per member. Data: new values never recompile.
    - ``decay``: the running averages' factor in [0, 1) (the paper's 0.95), number or ``(N,)``.
    - ``every``: refresh the damped inverses every this many steps (the paper's T).
    - ``kind``: ``"kfac"`` (``G`` from targets drawn from the model, ``samples`` per example;
      needs the run's ``key``) or ``"kflr"`` (the exact Gauss-Newton rows, ``n_out`` per example).

    **Returns:** a :class:`Kfac` record.
    """
    return Kfac(damping, decay, every, kind, samples)


class KfacState(NamedTuple):
    """A member's optimizer state under K-FAC (per layer lists, input to output)."""

    count: Array  # int32: steps taken
    A: list  # running A^l (n_in + 1, n_in + 1)
    G: list  # running G^l (n_out, n_out)
    A_inv: list  # (A^l + pi gamma I)^-1 at the last refresh
    G_inv: list  # (G^l + gamma / pi I)^-1
    inner: Any  # the optimizer's state


class StepBatch(NamedTuple):
    """What the step's factors are computed from: the gradient's forward cache, targets ``t (B,
    n_out)``, batch weights ``scale (B,)`` and the member's ``l2``."""

    cache: Cache
    t: Array
    scale: Array
    l2: Array


def gradient(net: MLP):
    """``(params, feedback, x, t, scale, l2) -> (L, (grads, StepBatch))``: the delta rule's loss
    and gradient (with L2), and the forward cache they came from."""

    def grads(params, feedback, x, t, scale, l2):
        cache = forward_cache(net, params, x)
        value, g, _ = cached_delta_rule(net, params, cache, t, scale, batch_major(net))
        value, g = with_l2(value, g, params, l2)
        return value, (g, StepBatch(cache, t, scale, l2))

    return grads


# --- one member's pieces ---------------------------------------------------------------------------
def averaged(old: Array, new: Array, count: Array, decay: Array) -> Array:
    """``eps old + (1 - eps) new``, ``eps = min(1 - 1/(count + 1), decay)``: the mean of the
    steps so far until it reaches the exponential average's ``decay``."""
    eps = jnp.minimum(1 - 1 / (count + 1).astype(old.dtype), decay.astype(old.dtype))
    return eps * old + (1 - eps) * new


def damped_inverses(A: Array, G: Array, gamma: Array) -> tuple[Array, Array]:
    """``(A + pi gamma I)^-1, (G + gamma / pi I)^-1``, ``pi = sqrt((tr A / dim A) / (tr G /
    dim G))`` (1 where a trace is not > 0)."""
    ta, tg = jnp.trace(A) / A.shape[0], jnp.trace(G) / G.shape[0]
    pi = jnp.where((ta > 0) & (tg > 0), jnp.sqrt(ta / jnp.where(tg > 0, tg, 1)), 1)
    return symmetric_inverse(A, pi * gamma), symmetric_inverse(G, gamma / pi)


def symmetric_inverse(M: Array, shift: Array) -> Array:
    """``(M + shift I)^-1`` (LU: definite or not; ``eigh`` costs several times more on a CPU)."""
    return jnp.linalg.inv(M + shift * jnp.eye(M.shape[0], dtype=M.dtype))


def preconditioned(net: MLP, grads: Params, A_inv: list, G_inv: list) -> Params:
    """Per layer ``A^-1 [dW; db] G^-1``, split back into ``{"W", "b"}``."""
    out = []
    for g, a_inv, g_inv in zip(grads, A_inv, G_inv):
        m = jnp.concatenate([g["W"], g["b"][None]])
        p = einsum(net, "...i,io->...o", einsum(net, "...i,io->...o", a_inv, m), g_inv)
        out.append({"W": p[:-1], "b": p[-1]})
    return out


def _running(net: MLP, plan: KfacPlan, state: KfacState, params, batch: StepBatch, h: dict):
    """The member's running ``A``, ``G`` after this step's factors."""
    key = None
    if plan.kind == "kfac":
        key = jax.random.fold_in(jax.random.fold_in(h[KEY], KEY_SALT), state.count)
    new = cache_factors(net, params, batch.cache, batch.t, batch.scale, plan.kind, key,
                        plan.samples)  # fmt: skip
    decay = h[DECAY]
    A = [averaged(a, f["A"], state.count, decay) for a, f in zip(state.A, new)]
    G = [averaged(g, f["G"], state.count, decay) for g, f in zip(state.G, new)]
    return A, G


def _inverses(A: list, G: list, gamma: Array) -> tuple[list, list]:
    pairs = [damped_inverses(a, g, gamma.astype(a.dtype)) for a, g in zip(A, G)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# --- the optimizer of the engine ------------------------------------------------------------------
class KfacSpec:
    """The engine's optimizer (as :class:`jmlp.optimizer_spec.OptimizerSpec`): ``make(h).init``
    gives a :class:`KfacState` around the inner optimizer's; :meth:`block_update` takes a block
    of members' steps at once (the inverses' refresh is one branch for the block, taken when
    some member is due)."""

    def __init__(self, inner: Any, net: MLP, plan: KfacPlan):
        self.inner, self.net, self.plan = inner, net, plan
        self.key = ("kfac", plan, inner.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KfacSpec) and other.key == self.key and other.net == self.net

    def __hash__(self) -> int:
        return hash(self.key)

    def _inner(self, h: dict) -> optax.GradientTransformation:
        return self.inner.make({k: v for k, v in h.items() if not k.startswith("kfac.")})

    def make(self, h: dict) -> optax.GradientTransformation:
        def init(params: Params) -> KfacState:
            A = [jnp.zeros((p["W"].shape[0] + 1,) * 2, p["W"].dtype) for p in params]
            G = [jnp.zeros((p["W"].shape[1],) * 2, p["W"].dtype) for p in params]
            return KfacState(jnp.zeros([], jnp.int32), A, G, A, G, self._inner(h).init(params))

        def update(grads, state, params=None):
            one = lambda a: jnp.asarray(a)[None]
            out = self.block_update(*jax.tree.map(one, (h, grads, state, params)))
            return jax.tree.map(lambda a: a[0], out)

        return optax.GradientTransformation(init, update)

    def block_update(self, h: dict, grads_batch, state: KfacState, params) -> tuple:
        """``(hparams (G,), (grads, StepBatch) (G, ...), state, params) -> (updates, state)``."""
        grads, batch = grads_batch
        net, plan = self.net, self.plan
        A, G = jax.vmap(lambda s, p, b, hm: _running(net, plan, s, p, b, hm))(
            state, params, batch, h
        )
        gamma = jnp.sqrt(h[DAMPING] + batch.l2.astype(h[DAMPING].dtype))
        due = state.count % plan.every == 0
        kept = (state.A_inv, state.G_inv)
        A_inv, G_inv = jax.lax.cond(
            jnp.any(due), lambda: select(due, jax.vmap(_inverses)(A, G, gamma), kept), lambda: kept
        )
        directions = jax.vmap(lambda g, a, b: preconditioned(net, g, a, b))(grads, A_inv, G_inv)
        updates, inner = jax.vmap(lambda hm, d, s, p: self._inner(hm).update(d, s, p))(
            h, directions, state.inner, params
        )
        return updates, KfacState(state.count + 1, A, G, A_inv, G_inv, inner)
