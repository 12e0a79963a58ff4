"""Run folders: what ``jmlp train`` writes, read back to predict with (or to continue training).

A run folder holds ``config.json`` (the settings), ``preprocessing.json``, ``metrics.csv``,
``checkpoint.npz`` (the trained model), ``last.npz`` (``jmlp.fit``'s training state after the
last epoch, which ``jmlp train --resume`` continues), ``loss.png`` and, for classifiers,
``confusion.png``. ``checkpoint.npz`` is self-contained: besides params (with early stopping, the
best epoch's), optimizer state, epoch and key, its metadata holds ``"net"`` (the spec),
``"preprocessing"``, ``"config"`` and ``"history"``, so :func:`load_run` needs no other file and
no template.
"""

import dataclasses
import os
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jmlp.checkpoint import load_checkpoint
from jmlp.data import Preprocessing
from jmlp.forward import MLP, check_params, forward, param_dtype
from jmlp.init import Params
from jmlp.metrics import decide


class Run(NamedTuple):
    """A trained network with what it needs to answer on raw data: ``net, params, preprocessing =
    jmlp.load_run(folder)``."""

    net: MLP
    params: Params
    preprocessing: Preprocessing


def net_to_dict(net: MLP) -> dict[str, Any]:
    """The spec as a JSON-ready dict (:func:`net_from_dict` is its inverse)."""
    return dataclasses.asdict(net)


def net_from_dict(saved: dict[str, Any]) -> MLP:
    return MLP(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def run_metadata(net: MLP, preprocessing: Preprocessing, **more: Any) -> dict[str, Any]:
    """Checkpoint metadata that makes a run self-contained: net spec, preprocessing, ``more``."""
    return {"net": net_to_dict(net), "preprocessing": preprocessing.to_dict(), **more}


def load_run(folder: str | os.PathLike) -> Run:
    """The net, params and preprocessing of a run folder (or of its ``checkpoint.npz``).

    **Returns:** :class:`Run` ``(net, params, preprocessing)``: ``preprocessing.inputs(x_raw)``
    gives the network's inputs, :func:`predict_raw` the answers in original units and names.

    **Raises:** FileNotFoundError without a checkpoint; ValueError if the checkpoint was not
    written by ``jmlp train`` (load it with ``jmlp.load_checkpoint``).
    """
    path = Path(folder)
    path = path / "checkpoint.npz" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no run folder or checkpoint at {folder}: no {path}")
    ck = load_checkpoint(path)
    missing = [k for k in ("net", "preprocessing") if k not in ck.metadata]
    if missing:
        raise ValueError(
            f"{path}: no {missing} in its metadata, so not a run's checkpoint; read it with "
            "jmlp.load_checkpoint"
        )
    net = net_from_dict(ck.metadata["net"])
    check_params(net, ck.params)
    return Run(net, ck.params, Preprocessing.from_dict(ck.metadata["preprocessing"]))


@partial(jax.jit, static_argnums=0)
def _forward(net: MLP, params: Params, x: jax.Array) -> jax.Array:
    return forward(net, params, x)


def class_codes(net: MLP, out: np.ndarray) -> np.ndarray:
    """Class codes ``0..k-1`` ``(n,)`` from outputs ``(n, n_out)``: the loss's decision (argmax;
    ``> 0.5`` for one sigmoid; sign for one hinge output, -1 -> 0), argmax for a regression loss
    trained on one-hot rows."""
    codes = np.asarray(decide(net, np.asarray(out)))
    return (codes + 1) // 2 if net.loss == "hinge" and out.shape[1] == 1 else codes


def class_probabilities(net: MLP, out: np.ndarray) -> np.ndarray | None:
    """``(n, k)`` class probabilities where the output is one (softmax; one sigmoid unit p gives
    ``[1 - p, p]``), else None."""
    if net.output_activation == "softmax":
        return out
    if net.output_activation == "sigmoid" and out.shape[1] == 1:
        return np.hstack([1 - out, out])
    return None


def predict_raw(run: Run, x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Answers for raw feature rows ``(n, n_in)``: class labels ``(n,)`` and probabilities
    ``(n, k)`` (None if the output is not one), or regression values ``(n, n_out)`` in the
    original units and None."""
    x = run.preprocessing.inputs(x_raw, param_dtype(run.params))
    out = np.asarray(_forward(run.net, run.params, x), np.float64)
    if run.preprocessing.classes is None:
        return run.preprocessing.outputs(out), None
    labels = run.preprocessing.labels(class_codes(run.net, out))
    return labels, class_probabilities(run.net, out)
