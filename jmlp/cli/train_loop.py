"""The training of a ``jmlp train`` run: the network and optimizer its configuration names, and
the fit itself, in chunks of about ``--save-every`` seconds, each continuing the run folder's
training state and saving it with the metrics (``jmlp.runs``)."""

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jmlp import data, runs
from jmlp.cli.train_data import loss_targets
from jmlp.cli.train_options import OPTIMIZERS
from jmlp.feedback import feedback_shapes, init_feedback
from jmlp.init import init_params
from jmlp.losses import CLASSIFICATION
from jmlp.net import MLP
from jmlp.progress import Progress
from jmlp.train import FitResult, fit


def build_net(cfg: dict[str, Any], ds: data.Dataset) -> MLP:
    """The MLP for the data: loss and output activation from the task when not given. A
    regression loss on classes (document 000's sigmoid + MSE) trains on one-hot rows."""
    classes = ds.task == "classification"
    name = cfg["loss"] or ("cross_entropy" if classes else "mse")
    if not classes and name in CLASSIFICATION:
        raise ValueError(f"--loss {name}: a classification loss; the data is regression")
    single = name in ("binary_cross_entropy", "hinge")
    if single and ds.n_classes != 2:
        raise ValueError(f"--loss {name}: needs 2 classes, the data has {ds.n_classes}")
    n_out = (1 if single else ds.n_classes) if classes else ds.y_train.shape[1]
    sizes = (ds.x_train.shape[1], *cfg["hidden"], n_out)
    net = MLP(sizes, cfg["activation"], cfg["output_activation"], name)
    cfg.update(loss=name, output_activation=net.output_activation)
    return net


def make_optimizer(cfg: dict[str, Any]):
    """The jmlp.optim transformation named by ``cfg["optimizer"]`` at learning rate ``lr``."""
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ValueError(
            f"--optimizer: expected one of {tuple(OPTIMIZERS)}, got {cfg['optimizer']!r}"
        )
    return OPTIMIZERS[cfg["optimizer"]](cfg["lr"])


def run_training(
    cfg: dict[str, Any], net: MLP, parts: dict, n_classes: int, out, options: dict
) -> dict[str, Any]:
    """Fit from ``options["state"]`` (epochs done and their seconds) up to ``cfg["epochs"]``,
    in chunks of about ``options["save_every"]`` seconds: each chunk is one ``jmlp.fit`` that
    continues the folder's training state (last.npz) and saves it at its end (bitwise as if never
    stopped), and metrics.csv is written before that save, so it never has fewer rows than
    last.npz. Stops after the chunk in which ``options["stop"]`` is set. Returns the last
    FitResult, the per-epoch seconds, the epoch it started from and the key."""
    key_init, key_fit = _run_keys(np.uint32(cfg["seed"]))
    params = init_params(key_init, net.sizes)
    feedback = make_feedback(cfg, net)
    first, seconds = options["state"]["epoch"], options["state"]["seconds"]
    bar = Progress(cfg["epochs"], first) if options["progress"] else None
    elapsed, chunk_end = _stopwatch(seconds), [first]
    targets = {
        p: (x, loss_targets(net, y, n_classes)) for p, (x, y) in parts.items() if p != "test"
    }

    def after_epoch(epoch: int, _params, history: dict) -> None:
        seconds[epoch - 1 :] = [elapsed()]
        if bar is not None:
            bar.update(epoch, _progress_text(history))
        if epoch == chunk_end[0]:  # before fit saves last.npz
            runs.write_metrics(out, history, seconds)

    def fit_to(epochs: int) -> FitResult:
        chunk_end[0] = epochs
        return _fit(cfg, net, (params, feedback), targets, key_fit, epochs, after_epoch, out)

    try:
        result = _fit_in_chunks(fit_to, cfg["epochs"], first, seconds, elapsed, options, out)
    finally:
        if bar is not None:
            bar.close()
    return {"result": result, "seconds": seconds, "first": first, "key": key_fit}


def make_feedback(cfg: dict[str, Any], net: MLP) -> list | None:
    """The rule's fixed matrices, ``init_feedback(key(feedback_seed), sizes, rule)`` (the same
    on every resume); None for the rules without (backprop, sign)."""
    if not feedback_shapes(net.sizes, cfg["rule"]):
        return None
    return init_feedback(jax.random.key(cfg["feedback_seed"]), net.sizes, cfg["rule"])


@jax.jit
def _run_keys(seed: np.uint32) -> tuple[jax.Array, jax.Array]:
    """``split(key(seed))``: the keys of the init and of the data order, in one compiled call."""
    return tuple(jax.random.split(jax.random.key(seed)))


def _stopwatch(seconds: list[float | None]) -> Callable[[], float]:
    """The training seconds so far: the last known of the epochs before (``seconds``), plus
    those of this process from now on."""
    offset = next((t for t in reversed(seconds) if t is not None), 0.0)
    start = time.perf_counter()
    return lambda: offset + time.perf_counter() - start


def _fit(cfg, net, start: tuple, targets: dict, key, epochs: int, callback, out) -> FitResult:
    """One ``jmlp.fit`` up to ``epochs`` that continues the run's training state (if any) and
    saves it at its end; ``start``: the initial params and the rule's feedback matrices;
    ``targets``: the parts ``(x, t)`` with ``t`` as the loss wants it."""
    (x, t), (params, feedback) = targets["train"], start
    return fit(
        net,
        params,
        make_optimizer(cfg),
        x,
        t,
        epochs=epochs,
        batch_size=cfg["batch_size"],
        key=key,
        validation=targets.get("validation"),
        l2=cfg["l2"],
        gradient=cfg["gradient"],
        rule=cfg["rule"],
        feedback=feedback,
        patience=cfg["patience"] or None,
        callback=callback,
        checkpoint_path=runs.state_path(out),
        resume=True,
    )


def _fit_in_chunks(fit_to, epochs: int, done: int, seconds: list, elapsed, options, out):
    """``fit_to(end)`` for chunks of epochs from ``done``, each about ``options["save_every"]``
    seconds long, with metrics.csv written after each, until ``epochs``, an early stop or a
    signal (``options["stop"]``). Returns the last FitResult."""
    length = 1
    while True:
        began = time.perf_counter()
        result = fit_to(min(epochs, done + length))
        ran, done = result.epochs_run - done, result.epochs_run
        seconds[done:] = []  # an early stop's last epoch gets no callback: its time now
        seconds += [elapsed()] * (done - len(seconds))
        runs.write_metrics(out, result.history, seconds)
        if (
            done >= epochs
            or not result.stopped.startswith("max epochs")
            or options["stop"].signum is not None
        ):
            return result
        length = _next_length(length, ran, time.perf_counter() - began, options["save_every"])


def _next_length(length: int, epochs: int, seconds: float, save_every: float) -> int:
    """Epochs in the next chunk: about ``save_every`` seconds at the last chunk's rate
    (``epochs`` in ``seconds``), at most 4 times the last ``length`` (its rate may include the
    compilation)."""
    if save_every <= 0 or epochs <= 0:
        return 1
    return max(1, min(4 * length, int(save_every * epochs / max(seconds, 1e-9))))


def _progress_text(history: dict[str, list[float]]) -> str:
    """The progress line's text: the epoch's loss (the mean over its steps) and val_loss."""
    text = f"loss {history['loss'][-1]:.4g} (mean over the epoch's steps)"
    return text + (f"  val_loss {history['val_loss'][-1]:.4g}" if "val_loss" in history else "")
