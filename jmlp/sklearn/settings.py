"""The estimators' settings: scikit-learn's parameter constraints, its initial weights, and the
``jmlp.optim`` transformation each solver and learning-rate schedule trains with."""

import itertools
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.utils._param_validation import Interval, Options, StrOptions

from jmlp import optim
from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY

ACTIVATION_ALIASES = {"logistic": "sigmoid"}  # scikit-learn's name -> jmlp's
HIDDEN_ACTIVATIONS = {name for name in ACTIVATIONS if name not in OUTPUT_ONLY} | {"logistic"}
# scikit-learn's loss names -> jmlp's; the others are jmlp's own regression losses. Its
# squared error steps along 1/2 sum_k r_k^2 (its delta is y - t) and reports 1/2 mean_k r_k^2;
# its poisson is jmlp's, half the Poisson deviance summed over outputs, on an exp output.
REGRESSION_LOSSES = {"squared_error": "half_sse", "poisson": "poisson"}
JMLP_REGRESSION_LOSSES = ("mse", "half_sse", "mae", "huber")

CONSTRAINTS: dict = {  # scikit-learn 1.9's, with jmlp's activations and its gradient option
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(HIDDEN_ACTIVATIONS)],
    "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    "max_fun": [Interval(Integral, 1, None, closed="left")],
    "gradient": [StrOptions({"backprop", "autodiff"})],
}


def hidden_sizes(value: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple: an int is one layer; each must be > 0 (scikit-learn's
    message)."""
    sizes = list(value) if hasattr(value, "__iter__") else [value]
    if np.any(np.array(sizes) <= 0):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
    return tuple(int(n) for n in sizes)


def glorot_params(rng: np.random.RandomState, sizes: tuple[int, ...], logistic: bool) -> list:
    """scikit-learn's initialisation (Glorot & Bengio 2010), drawn in its order from ``rng``:
    for each layer ``W (n_in, n_out)`` then ``b (n_out,)`` from ``U(-a, a)``,
    ``a = sqrt(f / (n_in + n_out))`` with ``f = 2`` for a logistic activation, else 6; float32.
    The same ``random_state`` gives scikit-learn's initial weights, and no program to compile."""
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        a = np.sqrt((2.0 if logistic else 6.0) / (n_in + n_out))
        W, b = rng.uniform(-a, a, (n_in, n_out)), rng.uniform(-a, a, n_out)
        params.append(
            {"W": jax.device_put(W.astype(np.float32)), "b": jax.device_put(b.astype(np.float32))}
        )
    return params


def make_optimizer(
    solver: str, momentum: float, nesterov: bool, b1: float, b2: float, eps: float
) -> Callable[..., optax.GradientTransformation]:
    """A function of the hyper-parameters (data for ``jmlp.fit``, so other values reuse the
    compiled loop) returning the ``jmlp.optim`` transformation.

    ``"adam"``: Adam with bias correction, eps outside the root (scikit-learn's and Kingma &
    Ba's); a function of ``learning_rate``. ``"sgd"``: :func:`jmlp.optim.velocity_sgd`
    (scikit-learn's momentum and Nesterov) at the rate of
    :func:`jmlp.optim.inverse_scaling_by_epoch` (``power_t`` 0: constant), a function of
    ``learning_rate, power_t, steps, samples, samples_first, samples_before``."""
    if solver == "adam":

        def adam(learning_rate):
            return optim.adam(jnp.asarray(learning_rate), b1, b2, eps)

        return adam

    def sgd(learning_rate, power_t, steps, samples, samples_first, samples_before):
        eta = optim.inverse_scaling_by_epoch(
            learning_rate, power_t, steps, samples, samples_first, samples_before
        )
        return optim.velocity_sgd(eta, momentum, nesterov)

    return sgd
