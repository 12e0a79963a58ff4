"""The results of a ``jmlp train`` run: loss and accuracy (or R^2) of each part, the final table,
and the test set's confusion counts."""

import re
import signal
from functools import partial
from pathlib import Path

import jax
import numpy as np

from jmlp import buckets, cache, data, runs
from jmlp.checks import param_dtype
from jmlp.cli.signals import Stop
from jmlp.cli.train_data import loss_targets, target_rows
from jmlp.figures import confusion_matrix
from jmlp.forward import forward
from jmlp.metrics import validation_metrics
from jmlp.net import MLP
from jmlp.runs import class_codes


@partial(cache.jit, static_argnums=0)
def _loss_outputs_r2(net: MLP, params, x, t, n) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Loss (without L2), the outputs and R^2 of a part's first ``n`` rows of ``x (P, n_in)``,
    ``t (P, n_out)`` (the rest padding)."""
    metrics = validation_metrics(net, params, (x, t, n))
    return metrics[0], forward(net, params, x), metrics[-1]


def part_outputs(
    net: MLP, params, x, y, n_classes: int, size: int
) -> tuple[float, np.ndarray, float]:
    """Loss (without L2), outputs ``(n, n_out)`` and R^2 of a part, its rows padded to ``size``
    (one compiled call for every part: :func:`parts_size`)."""
    t, n = target_rows(net, loss_targets(net, y, n_classes)), len(x)
    padded = [buckets.pad_rows(np.asarray(a, param_dtype(params)), size) for a in (x, t)]
    value, out, r2 = _loss_outputs_r2(net, params, *padded, n)
    return float(value), np.asarray(out)[:n], float(r2)


def parts_size(parts: dict) -> int:
    """The bucket size that holds the largest part's rows."""
    return buckets.bucket(max(len(x) for x, _ in parts.values()))


def evaluate(net: MLP, params, parts: dict, n_classes: int) -> dict[str, dict[str, float]]:
    """``{part: {"loss", "score"}}``: loss (without L2) and accuracy or R^2 of each part."""
    scores, size = {}, parts_size(parts)
    for part, (x, y) in parts.items():
        value, out, r2 = part_outputs(net, params, x, y, n_classes, size)
        score = np.mean(class_codes(net, out) == y) if n_classes else r2
        scores[part] = {"loss": value, "score": float(score)}
    return scores


def _epochs_line(run: dict, max_epochs: int, stop: Stop) -> str:
    """``epochs 30 of 30``, why it stopped when that is not the epoch limit, and where a
    resumed run started."""
    result = run["result"]
    reason = re.sub(r"^max epochs \(\d+\)(; )?", "", result.stopped)
    if stop.signum is not None and result.epochs_run < max_epochs and not reason:
        reason = f"interrupted by {signal.Signals(stop.signum).name}"
    if run["first"]:
        reason = f"resumed from epoch {run['first']}" + (f"; {reason}" if reason else "")
    return f"epochs      {result.epochs_run} of {max_epochs}" + (f" ({reason})" if reason else "")


def format_table(scores: dict, run: dict, cfg: dict, ds: data.Dataset, out: Path) -> str:
    """The final table: loss and accuracy (or R^2) per part, what the losses are, then epochs
    and folder."""
    score = "accuracy" if ds.task == "classification" else "R^2"
    lines = [f"{'':<12}{'loss':>10}{score:>10}"]
    for part, s in scores.items():
        lines.append(f"{part:<12}{s['loss']:>10.4f}{s['score']:>10.4f}")
    lines.append(
        "losses      after training, on each whole set, without L2 (the progress line's loss "
        "is the mean over an epoch's steps)"
    )
    prep = ds.preprocessing
    if prep.y_mean is not None and np.any(prep.y_scale != 1):
        where = (
            f"(y - {prep.y_mean[0]:.6g}) / {prep.y_scale[0]:.6g}"
            if prep.y_mean.size == 1
            else f"(y - mean) / scale, per column ({runs.PREPROCESSING})"
        )
        lines.append(f"units       loss of the standardized target {where}")
    lines.append(_epochs_line(run, cfg["epochs"], run["stop"]))
    lines.append(f"run folder  {out}")
    return "\n".join(lines)


def confusion_counts(net: MLP, params, parts: dict, ds: data.Dataset) -> np.ndarray | None:
    """The test set's confusion counts ``(k, k)`` for a classifier; None for regression."""
    if ds.task != "classification":
        return None
    x, y = parts["test"]
    outputs = part_outputs(net, params, x, y, ds.n_classes, parts_size(parts))[1]
    predicted = class_codes(net, outputs)
    return confusion_matrix(y, predicted, ds.n_classes)
