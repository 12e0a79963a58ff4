"""What training returns: the result records, the error of a non-finite step, and the reasons
for stopping in words."""

from typing import Any, NamedTuple

import jax
import numpy as np

from jmlp import engine
from jmlp.init import Params

Array = jax.Array


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    - ``params``, ``opt_state``: after the last epoch (with ``patience``: of the best epoch).
    - ``history``: lists of Python floats, one entry per epoch: ``"loss"``; with validation
      ``"val_loss"`` and ``"val_accuracy"``, ``"val_error"`` (classifiers) or ``"val_r2"``; for
      each ``evaluate`` set ``name`` the same with prefix ``name_``; with ``nan_policy="skip"``
      ``"skipped"`` (steps skipped).
    - ``epochs_run``: epochs done in all (a resumed run counts the checkpoint's epochs).
    - ``stopped``: why training stopped, in words.
    - ``key``: the key given (epoch e shuffles with ``fold_in(key, e)``; unused for full batch).
    """

    params: Params
    opt_state: Any
    history: dict[str, list[float]]
    epochs_run: int
    stopped: str
    key: Array | None


class EnsembleResult(NamedTuple):
    """What :func:`fit_many` returns: ``params`` and ``opt_state`` stacked (leading axis N);
    ``history`` name -> ``np.ndarray (N, E)``, E the epochs run by the longest member, NaN after
    a member stopped; ``epochs_run (N,)``; ``stopped``, one reason in words per member."""

    params: Params
    opt_state: Any
    history: dict[str, np.ndarray]
    epochs_run: np.ndarray
    stopped: list[str]


class NonFiniteLossError(FloatingPointError):
    """Raised by ``fit(..., nan_policy="stop")`` at the first step whose loss, new params or new
    optimizer state is NaN/inf. ``.epoch`` and ``.step`` (1-based) name it; ``.result`` is a
    :class:`FitResult` holding the params and optimizer state from just before that step."""

    def __init__(self, epoch: int, step: int, result: FitResult):
        super().__init__(
            f"non-finite loss or update at epoch {epoch}, step {step}: training stopped; the "
            "last finite params and optimizer state are in this error's .result"
        )
        self.epoch, self.step, self.result = epoch, step, result


def history_arrays(names: list[str], history: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """History ``(E, K, M)`` as name -> ``(N, E)`` for the ``n`` real members."""
    return {k: history[:, i, :n].T.copy() for i, k in enumerate(names)}


def _reason(code: int, m: int, host: dict, settings, monitor, epochs: int, loss: float) -> str:
    """Why member ``m`` stopped, in words (``loss``: its last epoch's training loss)."""
    done = int(host["epochs_run"][m])
    if code == engine.TOL:
        return f"tol: loss {loss:.6g} <= {float(settings.tol[m]):g} at epoch {done}"
    if code == engine.PATIENCE:
        waited, delta = int(settings.patience[m]), float(settings.min_delta[m])
        by = f" by more than {delta:g}" if delta else ""
        return f"early stopping at epoch {done}: no {monitor} improvement{by} in {waited} epochs"
    if code == engine.NON_FINITE:
        return f"non-finite loss or update in epoch {done + 1}; kept the params from before it"
    if code == engine.CALLBACK:
        return f"callback returned True at epoch {done}"
    return f"max epochs ({epochs})" if done >= epochs else f"stopped at epoch {done}"


def reasons(host: dict, n: int, settings, monitor, epochs: int, losses: np.ndarray) -> list[str]:
    """Why each of the ``n`` members stopped; ``host`` holds the members' fields ``(M,)``,
    ``losses (E, M)`` the training loss per epoch."""
    said = []
    for m, code in enumerate(host["code"][:n]):
        done = int(host["epochs_run"][m])
        loss = losses[done - 1, m] if done else np.nan
        said.append(_reason(int(code), m, host, settings, monitor, epochs, loss))
        if monitor == "val_loss" and host["best_loss"][m] < np.inf:
            best = f"epoch {host['best_epoch'][m]} (val_loss {host['best_loss'][m]:.6g})"
            said[m] += f"; restored the best {best}"
    return said
