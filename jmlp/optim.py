"""Hand-written optimizers, each an ``optax.GradientTransformation(init, update)``.

``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``, where
``updates`` are what to *add* to the parameters (the minus sign of descent included), so
``optax.apply_updates(params, updates)`` takes the step and these optimizers and optax's own are
interchangeable in the same loop. Notation: theta the parameters, g the gradient, eta the
learning rate, t = count + 1 the step number (1 at the first update).

Every ``learning_rate`` is a number or an optax schedule (a function of the step count, called
with ``count`` = 0 at the first update). Hyper-parameters may be Python numbers or jax arrays (a
``jax.vmap`` over learning rates works); each is cast to the dtype of the leaf it scales, so
float32 parameters keep float32 state and updates, float64 likewise. Python numbers are checked
when the optimizer is built; arrays are not (they may be tracers).

Each docstring names its optax twin: the optax expression that takes the same steps, which the
tests hold equal over 100 steps.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Params = Any  # a pytree of arrays, e.g. jmlp's list of {"W": (n_in, n_out), "b": (n_out,)}
ScalarOrSchedule = optax.ScalarOrSchedule  # a number, an array, or a function of the step count


class SgdState(NamedTuple):
    count: Array  # int32 (), updates taken so far


class MomentumState(NamedTuple):
    count: Array
    velocity: Params  # like params


class EmaMomentumState(NamedTuple):
    count: Array
    mu: Params  # first moment m, like params


class RmspropState(NamedTuple):
    count: Array
    nu: Params  # second moment s (003's "cache"), like params


class AdamState(NamedTuple):
    count: Array
    mu: Params  # first moment m
    nu: Params  # second moment v


class _Same:
    """A setting compared by identity (an array, a schedule): equal only to itself."""

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


class Transform(optax.GradientTransformation):
    """An ``optax.GradientTransformation(init, update)`` that also keeps the settings it was built
    from: two transformations built with equal settings compare equal and hash alike, so
    ``jmlp.fit`` reuses its compiled loop for a fresh but equal optimizer. Settings that are
    Python numbers, strings or bools compare by value; arrays and schedules by identity."""

    def __new__(cls, init, update, settings: tuple):
        self = super().__new__(cls, init, update)
        plain = (bool, int, float, str, type(None))
        self.settings = tuple(v if isinstance(v, plain) else _Same(v) for v in settings)
        return self

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.settings == self.settings

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.settings)


# ---------------------------------------------------------------------------------------------
# Checks and small helpers


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_learning_rate(learning_rate: Any) -> None:
    if callable(learning_rate):
        return
    array = isinstance(learning_rate, (jax.Array, np.ndarray, np.generic))
    if isinstance(learning_rate, bool) or not (_is_number(learning_rate) or array):
        raise TypeError(
            "learning_rate: expected a positive number, an array or an optax schedule "
            f"(callable of the step count), got {type(learning_rate).__name__}"
        )
    if _is_number(learning_rate) and not 0 < learning_rate < float("inf"):
        raise ValueError(f"learning_rate: expected a positive finite number, got {learning_rate!r}")


def _check_decay(name: str, value: Any) -> None:
    """A decay rate (b1, b2, gamma, beta, decay) must lie in [0, 1)."""
    if _is_number(value) and not 0 <= value < 1:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")


def _check_nonnegative(name: str, value: Any) -> None:
    if _is_number(value) and not 0 <= value < float("inf"):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")


def _check_eps_fits(eps: Any, params: Params) -> None:
    """A number eps > 0 that rounds to 0 in a leaf's dtype (1e-8 in float16) would let
    g / (sqrt(v) + eps) divide by 0 wherever v underflows: refused, naming the dtype."""
    if not _is_number(eps) or eps <= 0:
        return
    for leaf in jax.tree.leaves(params):
        dtype = jnp.dtype(leaf.dtype)
        if np.asarray(eps, dtype) == 0:
            raise ValueError(
                f"eps: {eps!r} rounds to 0 in {dtype} (the params' dtype), so the update divides "
                f"by 0 wherever v underflows (NaN/inf at step 1); pass an eps {dtype} holds, e.g. "
                f"eps={float(jnp.finfo(dtype).tiny):.1e} (its smallest normal number), or use "
                "float32 params"
            )


def _eta(learning_rate: ScalarOrSchedule, count: Array) -> Any:
    """The learning rate of the update whose step count (before increment) is ``count``."""
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _like(x: Any, leaf: Array) -> Array:
    """A hyper-parameter (or a quantity computed from it, like 1 - beta) in ``leaf``'s dtype."""
    return jnp.asarray(x, dtype=leaf.dtype)


def _zeros(params: Params) -> Params:
    return jax.tree.map(jnp.zeros_like, params)


def _count0() -> Array:
    return jnp.zeros([], jnp.int32)


def _need_params(params: Params | None, name: str) -> None:
    if params is None:
        raise ValueError(f"params: {name}.update needs the current params, got None")


# ---------------------------------------------------------------------------------------------
# Gradient descent and momentum


def sgd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """Gradient descent, as in every document: theta <- theta - eta g.

    **Arguments:** ``learning_rate`` eta, a number > 0 or a schedule.

    **Returns:** a GradientTransformation with state ``SgdState(count)``; update = -eta g.
    optax twin: ``optax.sgd(learning_rate)``.
    """
    _check_learning_rate(learning_rate)

    def init(params: Params) -> SgdState:
        return SgdState(count=_count0())

    def update(
        grads: Params, state: SgdState, params: Params | None = None
    ) -> tuple[Params, SgdState]:
        eta = _eta(learning_rate, state.count)
        updates = jax.tree.map(lambda g: -_like(eta, g) * g, grads)
        return updates, SgdState(count=optax.safe_increment(state.count))

    return Transform(init, update, ("sgd", learning_rate))


def momentum(learning_rate: ScalarOrSchedule, gamma: float = 0.9) -> optax.GradientTransformation:
    """Momentum in the form of document 004 (the learning rate inside the velocity):

        v <- gamma v + eta g,    theta <- theta - v.

    **Arguments:** ``learning_rate`` eta (number > 0 or schedule); ``gamma`` in [0, 1).

    **Returns:** a GradientTransformation with state ``MomentumState(count, velocity=v)``.
    optax twin: ``optax.chain(optax.scale_by_learning_rate(eta), optax.trace(gamma))``, whose
    trace is -v. With a constant eta this is also ``optax.sgd(eta, momentum=gamma)`` (whose trace
    is v / eta); with a schedule the two differ, because here each g is scaled by the eta of its
    own step, there the whole trace by the current eta (see :func:`nesterov`).
    """
    _check_learning_rate(learning_rate)
    _check_decay("gamma", gamma)

    def init(params: Params) -> MomentumState:
        return MomentumState(count=_count0(), velocity=_zeros(params))

    def update(
        grads: Params, state: MomentumState, params: Params | None = None
    ) -> tuple[Params, MomentumState]:
        eta = _eta(learning_rate, state.count)
        velocity = jax.tree.map(
            lambda v, g: _like(gamma, v) * v + _like(eta, g) * g, state.velocity, grads
        )
        updates = jax.tree.map(jnp.negative, velocity)
        return updates, MomentumState(optax.safe_increment(state.count), velocity)

    return Transform(init, update, ("momentum", learning_rate, gamma))


def ema_momentum(
    learning_rate: ScalarOrSchedule, beta: float = 0.9
) -> optax.GradientTransformation:
    """Momentum as a moving average, the form of document 003 (its eq. 48, Adam's first moment):

        m <- beta m + (1 - beta) g,    theta <- theta - eta m.

    **Arguments:** ``learning_rate`` eta (number > 0 or schedule); ``beta`` in [0, 1).

    **Returns:** a GradientTransformation with state ``EmaMomentumState(count, mu=m)``. No bias
    correction (003 adds it only in Adam). optax twin:
    ``optax.chain(optax.ema(beta, debias=False), optax.scale_by_learning_rate(eta))``.
    With a constant eta it is 004's momentum with eta' = eta (1 - beta).
    """
    _check_learning_rate(learning_rate)
    _check_decay("beta", beta)

    def init(params: Params) -> EmaMomentumState:
        return EmaMomentumState(count=_count0(), mu=_zeros(params))

    def update(
        grads: Params, state: EmaMomentumState, params: Params | None = None
    ) -> tuple[Params, EmaMomentumState]:
        eta = _eta(learning_rate, state.count)
        mu = jax.tree.map(lambda m, g: _like(beta, m) * m + _like(1 - beta, g) * g, state.mu, grads)
        updates = jax.tree.map(lambda m: -_like(eta, m) * m, mu)
        return updates, EmaMomentumState(optax.safe_increment(state.count), mu)

    return Transform(init, update, ("ema_momentum", learning_rate, beta))


def nesterov(learning_rate: ScalarOrSchedule, gamma: float = 0.9) -> optax.GradientTransformation:
    """Nesterov momentum in the form of ``optax.sgd(eta, momentum=gamma, nesterov=True)``:

        v <- gamma v + g,    theta <- theta - eta (g + gamma v)   (v already updated).

    The velocity v is in gradient units (eta outside it, unlike :func:`momentum`). Stepping along
    g + gamma v instead of v is the usual rewriting of Nesterov's look-ahead gradient (Sutskever
    et al., 2013), the one PyTorch and optax use.

    **Arguments:** ``learning_rate`` eta (number > 0 or schedule); ``gamma`` in [0, 1).

    **Returns:** a GradientTransformation with state ``MomentumState(count, velocity=v)``.
    optax twin: ``optax.sgd(learning_rate, momentum=gamma, nesterov=True)``.
    """
    _check_learning_rate(learning_rate)
    _check_decay("gamma", gamma)

    def init(params: Params) -> MomentumState:
        return MomentumState(count=_count0(), velocity=_zeros(params))

    def update(
        grads: Params, state: MomentumState, params: Params | None = None
    ) -> tuple[Params, MomentumState]:
        eta = _eta(learning_rate, state.count)
        velocity = jax.tree.map(lambda v, g: g + _like(gamma, v) * v, state.velocity, grads)
        updates = jax.tree.map(
            lambda v, g: -_like(eta, g) * (g + _like(gamma, v) * v), velocity, grads
        )
        return updates, MomentumState(optax.safe_increment(state.count), velocity)

    return Transform(init, update, ("nesterov", learning_rate, gamma))


def velocity_sgd(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, nesterov: bool = True
) -> optax.GradientTransformation:
    """scikit-learn's SGD (``sklearn.neural_network``'s ``SGDOptimizer``), eta inside the velocity:

        v <- mu v - eta_t g,    theta <- theta + v          (nesterov=False)
                                theta <- theta + mu v - eta_t g   (nesterov=True, v updated)

    With ``momentum`` 0 both are gradient descent. With a constant eta the first is
    :func:`momentum` and the second :func:`nesterov`; with a schedule they differ from those,
    because here each g is scaled by the eta of its own step (as scikit-learn's).

    **Arguments:** ``learning_rate`` eta (number > 0 or schedule, e.g.
    :func:`inverse_scaling_by_epoch`); ``momentum`` mu in [0, 1]; ``nesterov`` a bool.

    **Returns:** a GradientTransformation with state ``MomentumState(count, velocity=v)``.
    """
    _check_learning_rate(learning_rate)
    if _is_number(momentum) and not 0 <= momentum <= 1:
        raise ValueError(f"momentum: expected a number in [0, 1], got {momentum!r}")
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov: expected a bool, got {nesterov!r}")

    def init(params: Params) -> MomentumState:
        return MomentumState(count=_count0(), velocity=_zeros(params))

    def update(
        grads: Params, state: MomentumState, params: Params | None = None
    ) -> tuple[Params, MomentumState]:
        eta = _eta(learning_rate, state.count)

        def step(v: Array, g: Array) -> Array:
            return _like(momentum, v) * v - _like(eta, g) * g

        velocity = jax.tree.map(step, state.velocity, grads)
        updates = jax.tree.map(step, velocity, grads) if nesterov else velocity
        return updates, MomentumState(optax.safe_increment(state.count), velocity)

    return Transform(init, update, ("velocity_sgd", learning_rate, momentum, nesterov))


def inverse_scaling_by_epoch(
    learning_rate: Any,
    power_t: Any,
    steps_per_epoch: Any,
    samples_per_epoch: Any,
    samples_first: Any = 0,
    samples_before: Any = 0,
) -> Callable[[Array], Array]:
    """scikit-learn's ``learning_rate="invscaling"``: constant within an epoch, set at its start
    from the samples t seen so far,

        eta = eta_0 / (t + 1)^power_t,   t = samples_first (epoch 0),
                                         t = samples_before + e * samples_per_epoch (epoch e >= 1),

    epoch e = count // steps_per_epoch. A fresh optimizer has ``samples_first`` 0 (eta_0 in its
    first epoch) whatever ``samples_before`` a warm start brings; one continuing an earlier run
    (partial_fit) has ``samples_first = samples_before``. Every argument may be an array.

    **Returns:** an optax schedule, ``count -> eta`` (a float32 or float64 scalar).
    """

    def schedule(count: Array) -> Array:
        epoch = count // steps_per_epoch
        later = samples_before + epoch * jnp.asarray(samples_per_epoch, jnp.result_type(float))
        t = jnp.where(epoch == 0, samples_first, later)
        return learning_rate / (t + 1) ** power_t

    return schedule


# ---------------------------------------------------------------------------------------------
# Adaptive learning rates


def _epsilons(eps: Any, eps_inside_sqrt: bool) -> tuple[Any, Any]:
    """(eps inside the root, eps outside it): the denominator is sqrt(s + eps_in) + eps_out."""
    if not isinstance(eps_inside_sqrt, bool):
        raise TypeError(f"eps_inside_sqrt: expected a bool, got {eps_inside_sqrt!r}")
    return (eps, 0.0) if eps_inside_sqrt else (0.0, eps)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    eps_inside_sqrt: bool = False,
) -> optax.GradientTransformation:
    """RMSprop (Hinton, 2012), as written in document 003 (eqs. 49 and 55):

        s <- decay s + (1 - decay) g^2              (s starts at 0, no bias correction)
        theta <- theta - eta g / (sqrt(s) + eps)    eps_inside_sqrt=False (003 eq. 55, PyTorch)
        theta <- theta - eta g / sqrt(s + eps)      eps_inside_sqrt=True  (003 eq. 49)

    **Arguments:** ``learning_rate`` eta (number > 0 or schedule); ``decay`` in [0, 1);
    ``eps`` >= 0; ``eps_inside_sqrt`` where eps goes.

    **Returns:** a GradientTransformation with state ``RmspropState(count, nu=s)``. optax twin:
    ``optax.rmsprop(eta, decay=decay, eps=eps, eps_in_sqrt=eps_inside_sqrt)`` (optax's default
    is eps_in_sqrt=True; this one's default is eps outside).
    """
    _check_learning_rate(learning_rate)
    _check_decay("decay", decay)
    _check_nonnegative("eps", eps)
    eps_in, eps_out = _epsilons(eps, eps_inside_sqrt)

    def init(params: Params) -> RmspropState:
        _check_eps_fits(eps, params)
        return RmspropState(count=_count0(), nu=_zeros(params))

    def scaled(g: Array, s: Array, eta: Any) -> Array:
        return -_like(eta, g) * (g / (jnp.sqrt(s + _like(eps_in, s)) + _like(eps_out, s)))

    def update(
        grads: Params, state: RmspropState, params: Params | None = None
    ) -> tuple[Params, RmspropState]:
        eta = _eta(learning_rate, state.count)
        nu = jax.tree.map(
            lambda s, g: _like(decay, s) * s + _like(1 - decay, g) * g**2, state.nu, grads
        )
        updates = jax.tree.map(lambda g, s: scaled(g, s, eta), grads, nu)
        return updates, RmspropState(optax.safe_increment(state.count), nu)

    return Transform(init, update, ("rmsprop", learning_rate, decay, eps, eps_inside_sqrt))


def _adam_moments(grads: Params, state: AdamState, b1: Any, b2: Any) -> AdamState:
    """m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  count <- count + 1."""
    mu = jax.tree.map(lambda m, g: _like(b1, m) * m + _like(1 - b1, g) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: _like(b2, v) * v + _like(1 - b2, g) * g**2, state.nu, grads)
    return AdamState(optax.safe_increment(state.count), mu, nu)


def _adam_direction(state: AdamState, b1: Any, b2: Any, eps_in: Any, eps_out: Any) -> Params:
    """m_hat / (sqrt(v_hat + eps_in) + eps_out), m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t).

    ``state`` is the updated one, so t = state.count. The corrections 1 - b^t are computed in
    the precision of b (as optax does) and only then cast, so 1 - 0.999^1 is not rounded away.
    """
    c1, c2 = 1 - b1**state.count, 1 - b2**state.count

    def direction(m: Array, v: Array) -> Array:
        m_hat, v_hat = m / _like(c1, m), v / _like(c2, v)
        return m_hat / (jnp.sqrt(v_hat + _like(eps_in, v)) + _like(eps_out, v))

    return jax.tree.map(direction, state.mu, state.nu)


def _check_adam(learning_rate: Any, b1: Any, b2: Any, eps: Any) -> None:
    _check_learning_rate(learning_rate)
    _check_decay("b1", b1)
    _check_decay("b2", b2)
    _check_nonnegative("eps", eps)


def _adam_init(eps: Any) -> Callable[[Params], AdamState]:
    """Adam's ``init``: zero moments, after checking that ``eps`` holds in the params' dtype."""

    def init(params: Params) -> AdamState:
        _check_eps_fits(eps, params)
        return AdamState(count=_count0(), mu=_zeros(params), nu=_zeros(params))

    return init


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_inside_sqrt: bool = False,
) -> optax.GradientTransformation:
    """Adam with bias correction (Kingma & Ba, 2015, Algorithm 1; document 003, eq. 59):

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   (t = 1, 2, ...)
        m_hat = m / (1 - b1^t),   v_hat = v / (1 - b2^t),
        theta <- theta - eta m_hat / (sqrt(v_hat) + eps)   eps_inside_sqrt=False (the paper)
        theta <- theta - eta m_hat / sqrt(v_hat + eps)     eps_inside_sqrt=True (003's code)

    **Arguments:** ``learning_rate`` eta (number > 0 or schedule); ``b1``, ``b2`` in [0, 1);
    ``eps`` >= 0; ``eps_inside_sqrt`` where eps goes. 003 trains with b1 = 0.99.

    **Returns:** a GradientTransformation with state ``AdamState(count=t, mu=m, nu=v)``. optax
    twins: ``optax.adam(eta, b1, b2, eps)`` (eps outside) and
    ``optax.adam(eta, b1, b2, eps=0.0, eps_root=eps)`` (eps inside: optax's denominator is
    sqrt(v_hat + eps_root) + eps).
    """
    _check_adam(learning_rate, b1, b2, eps)
    eps_in, eps_out = _epsilons(eps, eps_inside_sqrt)

    def update(
        grads: Params, state: AdamState, params: Params | None = None
    ) -> tuple[Params, AdamState]:
        eta = _eta(learning_rate, state.count)
        state = _adam_moments(grads, state, b1, b2)
        direction = _adam_direction(state, b1, b2, eps_in, eps_out)
        return jax.tree.map(lambda d: -_like(eta, d) * d, direction), state

    return Transform(_adam_init(eps), update, ("adam", learning_rate, b1, b2, eps, eps_inside_sqrt))


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    eps_inside_sqrt: bool = False,
) -> optax.GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as optax.adamw:

        theta <- theta - eta (m_hat / (sqrt(v_hat) + eps) + weight_decay theta)

    with m_hat, v_hat those of :func:`adam` (the decay term never enters m or v). The decay is
    applied to every leaf, biases included, as optax does by default; eta multiplies it.

    **Arguments:** as :func:`adam`, plus ``weight_decay`` >= 0.

    **Returns:** a GradientTransformation with state ``AdamState(count, mu, nu)``; its update
    needs ``params``. optax twin: ``optax.adamw(eta, b1, b2, eps, weight_decay=weight_decay)``
    (eps_inside_sqrt=True: add ``eps=0.0, eps_root=eps``).
    """
    _check_adam(learning_rate, b1, b2, eps)
    _check_nonnegative("weight_decay", weight_decay)
    eps_in, eps_out = _epsilons(eps, eps_inside_sqrt)

    def update(
        grads: Params, state: AdamState, params: Params | None = None
    ) -> tuple[Params, AdamState]:
        _need_params(params, "adamw")
        eta = _eta(learning_rate, state.count)
        state = _adam_moments(grads, state, b1, b2)
        direction = _adam_direction(state, b1, b2, eps_in, eps_out)
        updates = jax.tree.map(
            lambda d, p: -_like(eta, d) * (d + _like(weight_decay, p) * p), direction, params
        )
        return updates, state

    return Transform(
        _adam_init(eps),
        update,
        ("adamw", learning_rate, b1, b2, eps, weight_decay, eps_inside_sqrt),
    )


# ---------------------------------------------------------------------------------------------
# Regularisation, chained before an optimizer


def _is_weight(path: tuple) -> bool:
    """True for a leaf stored under the dict key "W" (jmlp's weight matrices)."""
    return bool(path) and getattr(path[-1], "key", None) == "W"


def add_l2(reg: float) -> optax.GradientTransformation:
    """Coupled L2 regularisation as in document 003: g <- g + reg W, for the weights only.

    Applied to every leaf whose dict key is "W"; biases ("b") and any other leaf pass unchanged.
    (003's code also adds reg * b to the bias gradients; jmlp follows the usual convention of
    leaving biases unregularised.) It is the gradient of reg / 2 sum W^2, so it enters the
    moments of any optimizer chained after it, e.g.
    ``optax.chain(jmlp.optim.add_l2(1e-3), jmlp.optim.adam(1e-3))``.

    **Arguments:** ``reg`` >= 0.

    **Returns:** a stateless GradientTransformation (``optax.EmptyState()``); its update needs
    ``params``. optax twin: ``optax.add_decayed_weights(reg, mask=<True for "W", False for
    "b">)``.
    """
    _check_nonnegative("reg", reg)

    def init(params: Params) -> optax.EmptyState:
        return optax.EmptyState()

    def add(path: tuple, g: Array, p: Array) -> Array:
        return g + _like(reg, p) * p if _is_weight(path) else g

    def update(
        grads: Params, state: optax.EmptyState, params: Params | None = None
    ) -> tuple[Params, optax.EmptyState]:
        _need_params(params, "add_l2")
        return jax.tree_util.tree_map_with_path(add, grads, params), state

    return Transform(init, update, ("add_l2", reg))
