"""Training: ``fit`` runs each epoch as one compiled ``lax.scan``.

One epoch is one jitted call over the data already on device (passed as arguments):

    perm = permutation(fold_in(key, epoch), N)       (epoch = 0, 1, ...; no shuffle for one
                                                      full batch, which needs no key)
    S = ceil(N / B) steps; perm is padded to S * B and the pad masked by weights w_n in {0, 1},
    so every step has shape (B, ...) and L_s = sum_n w_n l_n / sum_n w_n (reduction "mean").
    for s = 1..S:  (L_s, g) = backprop(net, params, x[idx_s], t[idx_s], l2, weights=w_s)
                   updates, state = optimizer.update(g, state, params);  params += updates
    epoch loss = sum_s n_s L_s / N ("mean") or sum_s L_s ("sum"), n_s real examples of step s,
    each L_s taken at the params before step s; validation metrics at the params after the epoch.

The step indices come from a small jitted function of (key, epoch), compiled once per (N, B)
and shared by every net (the threefry permutation is slow to compile), handed to the epoch as
a device array. The epoch's loss and validation metrics reach the host as one small vector: one
transfer per epoch. The compiled epoch is cached per (net, optimizer, gradient, nan_policy) and
by jax per shape, so a second ``fit`` with the same shapes does not recompile.
"""

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jmlp.arguments import (
    check_choice,
    check_int,
    check_number,
    check_optimizer,
    training_arrays,
    validation_arrays,
)
from jmlp.backprop import autodiff, backprop
from jmlp.checkpoint import load_checkpoint, save_checkpoint
from jmlp.forward import MLP
from jmlp.init import Params
from jmlp.metrics import validation_metrics, validation_names

Array = jax.Array
GRADIENTS = {"backprop": backprop, "autodiff": autodiff}
NAN_POLICIES = ("stop", "skip")
_CACHE: dict = {}  # (id(optimizer), net, ...) -> (optimizer kept alive, jitted epoch)
_CACHE_SIZE = 64
_STATS = {"traces": 0}  # epoch functions traced (compiled) so far; the tests read it


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    - ``params``, ``opt_state``: after the last epoch (with ``patience``: of the best epoch).
    - ``history``: lists of Python floats, one entry per epoch: ``"loss"``; with validation
      ``"val_loss"`` and ``"val_accuracy"``, ``"val_error"`` (classifiers) or ``"val_r2"``;
      with ``nan_policy="skip"`` ``"skipped"`` (steps skipped).
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


# ----------------------------------------------------------------------------- one epoch


def _all_finite(tree: Any) -> Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


@partial(jax.jit, static_argnums=(0, 1))
def epoch_batches(n: int, batch: int, key: Array, epoch: Array) -> tuple[Array, Array | None]:
    """Indices ``(S, B)`` of the epoch's ``S = ceil(n / B)`` steps, from
    ``permutation(fold_in(key, epoch), n)`` padded with index 0, and the 0/1 weights of the
    padded last step (None if B divides n). Compiled apart from the epoch: once per (n, B).
    The data order of :func:`fit`; ``fit_many`` draws its members' orders with it too."""
    steps = -(-n // batch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    pad = steps * batch - n
    idx = jnp.concatenate([perm, jnp.zeros(pad, perm.dtype)]).reshape(steps, batch)
    mask = None if pad == 0 else (jnp.arange(steps * batch) < n).reshape(steps, batch)
    return idx, mask


def _step_fn(net, optimizer, grad_fn, x, t, l2, mode: str, split=None) -> Callable:
    """One optimizer step for ``lax.scan``. ``mode``: "fast" (no checks), "stop" (freeze at the
    first step whose loss, new params or new state is non-finite), "skip" (skip such steps).
    ``split``: a batch sharding; the step's mini-batch is split over its devices (data parallel)."""

    def step(carry, xs):
        params, state, ok_so_far = carry
        (xb, tb, w) = (x, t, None) if xs is None else (x[xs[0]], t[xs[0]], xs[1])
        if split is not None:
            xb, tb, w = jax.lax.with_sharding_constraint((xb, tb, w), split)
        value, grads = grad_fn(net, params, xb, tb, l2=l2, weights=w)
        updates, new_state = optimizer.update(grads, state, params)
        new_params = optax.apply_updates(params, updates)
        if mode == "fast":
            return (new_params, new_state, ok_so_far), (value, jnp.isfinite(value))
        ok = _all_finite((value, new_params, new_state)) & (ok_so_far if mode == "stop" else True)
        keep = partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
        return (keep(new_params, params), keep(new_state, state), ok), (value, ok)

    return step


def _epoch(net, optimizer, grad_fn, mode, split, params, opt_state, x, t, idx, weights, l2, val):
    """One epoch (traced once per shape): a scan over the steps' indices ``idx (S, B)`` and
    weights (or, with ``idx`` None, one full-batch step). Returns params, opt_state and the
    metric vector ``[loss, steps not ok, first step not ok (or -1), *validation metrics]``."""
    _STATS["traces"] += 1
    n = x.shape[0]
    step = _step_fn(net, optimizer, grad_fn, x, t, l2, mode, split)
    carry = (params, opt_state, jnp.array(True))
    if idx is None:  # one full-batch step (xs None: all of x)
        (params, opt_state, _), (value, ok) = step(carry, None)
        values, oks = value[None], ok[None]
    else:
        (params, opt_state, _), (values, oks) = jax.lax.scan(step, carry, (idx, weights))
    if mode == "fast":  # a non-finite update shows in the final state, if not in a later loss
        oks = oks.at[-1].set(oks[-1] & _all_finite((params, opt_state)))
    batch = n if idx is None else idx.shape[1]
    counts = jnp.asarray(np.minimum(batch, n - batch * np.arange(len(oks))), x.dtype)
    if net.reduction == "mean":
        counts = counts * oks
        loss = jnp.sum(jnp.where(oks, values, 0) * counts) / jnp.sum(counts)
    else:
        loss = jnp.sum(jnp.where(oks, values, 0))
    first_bad = jnp.where(jnp.all(oks), -1, jnp.argmin(oks))
    metrics = [loss, jnp.sum(~oks), first_bad]
    if val is not None:
        metrics += validation_metrics(net, params, val)
    return params, opt_state, jnp.stack([jnp.asarray(m, x.dtype) for m in metrics])


def _epoch_function(net, optimizer, gradient, mesh, mode: str) -> Callable:
    """The jitted epoch for these static settings, from the module cache (no recompile).

    "skip" donates params and optimizer state; "fast" (under ``nan_policy="stop"``) keeps them,
    as the state to replay the epoch from, step-checked ("stop"), if it ends non-finite."""
    cache_key = (id(optimizer), net, gradient, mesh, mode)
    if cache_key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        split = None if mesh is None else NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
        fn = partial(_epoch, net, optimizer, GRADIENTS[gradient], mode, split)
        donate = (0, 1) if mode == "skip" else ()
        _CACHE[cache_key] = (optimizer, jax.jit(fn, donate_argnums=donate))
    return _CACHE[cache_key][1]


# ----------------------------------------------------------------------------- input checks


def _check_settings(net, optimizer, epochs, gradient, nan_policy, opts: dict) -> None:
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a jmlp.MLP, got {type(net).__name__}")
    check_optimizer(optimizer)
    check_int("epochs", epochs, 1)
    check_choice("gradient", gradient, GRADIENTS)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    check_number("l2", opts["l2"])
    if opts["tol"] is not None:
        check_number("tol", opts["tol"])
    if opts["patience"] is not None:
        check_int("patience", opts["patience"], 1)
        if opts["validation"] is None:
            raise ValueError("patience: early stopping needs validation=(x_val, y_val)")
    if opts["callback"] is not None and not callable(opts["callback"]):
        raise TypeError(f"callback: expected a callable, got {type(opts['callback']).__name__}")
    _check_checkpointing(opts)


def _check_batch_key(batch_size: int | None, n: int, key: Any) -> bool:
    """Check ``batch_size`` against N and the key; True for one full batch (no shuffle)."""
    if batch_size is not None:
        check_int("batch_size", batch_size, 1, n)
    full = batch_size is None or batch_size == n
    if key is None and not full:
        raise TypeError(
            "key: mini-batch training shuffles every epoch; pass key=jax.random.key(...)"
        )
    if key is not None:
        try:
            jax.random.fold_in(key, 0)
        except (TypeError, ValueError) as err:
            raise TypeError(f"key: expected a jax.random.key, got {key!r:.60}") from err
    return full


def _check_mesh(mesh: Any, batch: int) -> None:
    if mesh is None:
        return
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise TypeError(
            f"mesh: expected a 1-D jax.sharding.Mesh (jmlp.data_mesh()), got {mesh!r:.80}"
        )
    if batch % mesh.size:
        raise ValueError(
            f"batch_size: expected a multiple of the mesh size {mesh.size} (each device takes "
            f"batch_size / {mesh.size} examples of every step), got {batch}"
        )


def _replicated_batches(batches: Callable, where: NamedSharding, epoch: int) -> tuple:
    """The epoch's step indices and weights, copied to every device of the mesh."""
    return jax.device_put(batches(epoch), where)


def _check_checkpointing(opts: dict) -> None:
    path, every = opts["checkpoint_path"], opts["checkpoint_every"]
    if every is not None:
        check_int("checkpoint_every", every, 1)
    if path is None and (every is not None or opts["resume"]):
        raise ValueError("checkpoint_path: needed by checkpoint_every / resume=True, got None")
    if path is not None and not Path(path).parent.is_dir():
        raise ValueError(f"checkpoint_path: directory {Path(path).parent} does not exist")


# ----------------------------------------------------------------------------- the loop


def history_names(net: MLP, validation: Any, nan_policy: str) -> list[str]:
    """Keys of :func:`fit`'s history, in the order of the epoch's metric vector."""
    names = ["loss"] + ([] if validation is None else validation_names(net))
    return names + (["skipped"] if nan_policy == "skip" else [])


def _key_bits(key: Array | None) -> np.ndarray | None:
    if key is None:
        return None
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    return np.asarray(jax.random.key_data(key) if typed else key)


def _resume(path, params, opt_state, key, keys: list[str]):
    """Params, opt_state, epoch and history from the checkpoint at ``path``."""
    ck = load_checkpoint(path, like_params=params, like_opt_state=opt_state)
    given, saved = _key_bits(key), _key_bits(ck.key)
    if given is not None and saved is not None and not np.array_equal(given, saved):
        raise ValueError(f"key: differs from the key saved in the checkpoint {path}")
    saved_history = ck.metadata.get("history", {}) if isinstance(ck.metadata, dict) else {}
    history = {k: list(saved_history.get(k, [math.nan] * ck.epoch))[: ck.epoch] for k in keys}
    return ck.params, ck.opt_state, ck.epoch, history


def _progress(show: bool, start: int, epochs: int):
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError as err:
        raise ImportError('progress=True needs tqdm: pip install "jmlp[experiments]"') from err
    return tqdm(total=epochs, initial=start, unit="epoch")


def _save(opts: dict, state: dict, key: Array | None) -> None:
    save_checkpoint(
        opts["checkpoint_path"],
        params=state["params"],
        opt_state=state["opt_state"],
        epoch=state["epochs_run"],
        key=key,
        metadata={"history": state["history"]},
    )
    state["saved"] = state["epochs_run"]


def _early_stop(state: dict, opts: dict, done: int) -> str | None:
    """Track the best ``val_loss`` (a device copy of its params and state); the stop reason."""
    val_loss = state["history"]["val_loss"][-1]
    if val_loss < state["best"][0]:
        state["best"] = (
            val_loss,
            done,
            jax.tree.map(jnp.copy, (state["params"], state["opt_state"])),
        )
    elif done - state["best"][1] >= opts["patience"]:
        patience = opts["patience"]
        return f"early stopping at epoch {done}: no val_loss improvement in {patience} epochs"
    return None


def _after_epoch(state: dict, opts: dict, key: Array | None, bar) -> str | None:
    """Progress, checkpoint, early stopping, tol and callback after an epoch; the stop reason."""
    done, history = state["epochs_run"], state["history"]
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4g}")
    if opts["checkpoint_every"] is not None and done % opts["checkpoint_every"] == 0:
        _save(opts, state, key)
    stop = None if opts["patience"] is None else _early_stop(state, opts, done)
    if opts["tol"] is not None and history["loss"][-1] <= opts["tol"]:
        stop = f"tol: loss {history['loss'][-1]:.6g} <= {opts['tol']} at epoch {done}"
    callback = opts["callback"]
    if callback is not None and callback(done, jax.tree.map(jnp.copy, state["params"]), history):
        stop = f"callback returned True at epoch {done}"
    return stop


def _one_epoch(runs: tuple, data: tuple, state: dict, epoch: int, key: Array | None) -> None:
    """Run epoch ``epoch`` (0-based) and record it. ``runs = (run, replay)``; ``replay`` (None
    under "skip") gives the step-checked epoch that finds the first non-finite step."""
    x, t, batches, l2, val = data
    idx, weights = (None, None) if batches is None else batches(epoch)
    args = (state["params"], state["opt_state"], x, t, idx, weights, l2, val)
    params, opt_state, metrics = runs[0](*args)
    metrics = np.asarray(metrics)  # the epoch's one host transfer
    history = state["history"]
    if metrics[1] > 0 and runs[1] is not None:
        params, opt_state, checked = runs[1]()(*args)
        checked = np.asarray(checked)
        step = int(checked[2]) + 1 if checked[1] > 0 else int(metrics[2]) + 1
        stopped = f"non-finite at epoch {epoch + 1}, step {step}"
        raise NonFiniteLossError(
            epoch + 1, step, FitResult(params, opt_state, history, epoch, stopped, key)
        )
    values = [metrics[0], *metrics[3:], metrics[1]]  # "skipped" last, when kept
    for name, value in zip(history, values):
        history[name].append(float(value))
    state.update(params=params, opt_state=opt_state, epochs_run=epoch + 1)


def _train(runs, data, state: dict, opts: dict, epochs: int, key, bar) -> FitResult:
    """The host loop: epochs, stopping, checkpoints, restoring the best epoch."""
    start, stopped = state["epochs_run"], f"max epochs ({epochs})"
    try:
        for epoch in range(start, epochs):
            _one_epoch(runs, data, state, epoch, key)
            stop = _after_epoch(state, opts, key, bar)
            if stop is not None:
                stopped = stop
                break
    finally:
        if bar is not None:
            bar.close()
    if opts["checkpoint_path"] is not None and state["saved"] != state["epochs_run"]:
        _save(opts, state, key)
    params, opt_state = state["params"], state["opt_state"]
    if state["best"][2] is not None:
        params, opt_state = state["best"][2]
        stopped += f"; restored the best epoch {state['best'][1]} (val_loss {state['best'][0]:.6g})"
    return FitResult(params, opt_state, state["history"], state["epochs_run"], stopped, key)


def fit(
    net: MLP,
    params: Params,
    optimizer: optax.GradientTransformation,
    x,
    y,
    *,
    epochs: int = 100,
    batch_size: int | None = None,
    key: Array | None = None,
    validation: tuple[Any, Any] | None = None,
    l2: float = 0.0,
    gradient: str = "backprop",
    tol: float | None = None,
    patience: int | None = None,
    progress: bool = False,
    callback: Callable[[int, Params, dict], Any] | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    nan_policy: str = "stop",
    mesh: Mesh | None = None,
    opt_state: Any = None,
) -> FitResult:
    """Train ``params`` on ``x (N, n_in)``, ``y`` (rows ``(N, n_out)`` or integer labels ``(N,)``).

    Each epoch is one compiled ``lax.scan`` over ``ceil(N / B)`` optimizer steps (module docstring).

    **Arguments:**
    - ``optimizer``: any ``optax.GradientTransformation`` (``jmlp.optim``'s or optax's).
    - ``epochs``: maximum number of epochs (int >= 1).
    - ``batch_size``: None or N: full-batch gradient descent (no shuffle, no key needed); 1: SGD;
      else mini-batches of ``B`` reshuffled every epoch, the last partial one masked.
    - ``key``: keyword-only ``jax.random.key``; required unless full batch.
      Epoch ``e`` (0-based) uses ``fold_in(key, e)``: the same key gives bitwise the same run.
    - ``validation``: ``(x_val, y_val)``; its metrics are computed after each epoch.
    - ``l2``: coupled L2 coefficient, ``L + l2/2 sum ||W||^2`` (weights only).
    - ``gradient``: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``).
    - ``tol``: stop once the epoch's training loss is ``<= tol`` (document 001's ``E <= 1e-6``).
    - ``patience``: early stopping: stop when ``val_loss`` has not improved for this many epochs;
      the returned params and optimizer state are always those of the best-``val_loss`` epoch.
    - ``progress``: a tqdm bar over epochs, showing the epoch loss (needs tqdm).
    - ``callback``: ``callback(epoch, params, history)`` after each epoch (1-based; ``params``
      a copy). It syncs host and device once per epoch (never per step). Returning True stops.
    - ``checkpoint_path``, ``checkpoint_every``: save params, optimizer state, epoch, key and
      history (:func:`jmlp.checkpoint.save_checkpoint`) every ``checkpoint_every`` epochs and
      after the last epoch. ``resume=True``: continue from that file if it exists (its key must
      equal ``key``); the result is bitwise that of an uninterrupted run. Early stopping's best
      epoch is not saved: with ``patience``, a resumed run tracks it from the resumed epoch on.
    - ``nan_policy``: a step is non-finite if its loss, new params or new optimizer state holds a
      NaN/inf. ``"stop"``: raise :class:`NonFiniteLossError` naming the epoch and step, carrying
      the state from before that step. (Epochs run unchecked, at full speed, and keep their
      input state; one that ends non-finite is replayed from it with per-step checks.)
      ``"skip"``: leave such steps out (as ``optax.apply_if_finite``), count them in
      ``history["skipped"]``; per-step checks and selects cost some speed; state is donated.
    - ``opt_state``: the optimizer state to start from (default ``optimizer.init(params)``), e.g.
      a previous result's ``opt_state`` to continue training.
    - ``mesh``: a 1-D ``jax.sharding.Mesh`` (``jmlp.data_mesh()``): data parallel. Data, params
      and optimizer state are replicated on its devices and each step's mini-batch is split
      over them (``batch_size``, or N for full batch, a multiple of the mesh size); the result
      equals one device's to float rounding (``jmlp.parallel``).

    **Returns:** :class:`FitResult` ``(params, opt_state, history, epochs_run, stopped, key)``.

    **Raises:** ValueError / TypeError on bad input (naming the argument), before compiling.
    """
    opts = {"l2": l2, "tol": tol, "patience": patience, "validation": validation}
    opts |= {"callback": callback, "checkpoint_path": checkpoint_path, "resume": resume}
    opts["checkpoint_every"] = checkpoint_every
    _check_settings(net, optimizer, epochs, gradient, nan_policy, opts)
    x, t = training_arrays(net, params, x, y, ("x", "y"))
    val = validation_arrays(net, params, validation)
    full = _check_batch_key(batch_size, x.shape[0], key)
    _check_mesh(mesh, x.shape[0] if full else batch_size)
    params = jax.tree.map(jnp.array, params)  # a copy: "skip" donates its working params
    opt_state = optimizer.init(params) if opt_state is None else jax.tree.map(jnp.array, opt_state)
    names = history_names(net, validation, nan_policy)
    history, start = {k: [] for k in names}, 0
    if resume and Path(checkpoint_path).is_file():
        params, opt_state, start, history = _resume(checkpoint_path, params, opt_state, key, names)
    state = {"params": params, "opt_state": opt_state, "history": history, "epochs_run": start}
    state |= {"saved": start, "best": (math.inf, start, None)}
    if mesh is not None:
        x, t, val, state["params"], state["opt_state"] = jax.device_put(
            (x, t, val, state["params"], state["opt_state"]), NamedSharding(mesh, PartitionSpec())
        )
    epoch_fn = partial(_epoch_function, net, optimizer, gradient, mesh)
    runs = (
        (epoch_fn("skip"), None)
        if nan_policy == "skip"
        else (epoch_fn("fast"), partial(epoch_fn, "stop"))
    )
    batches = None if full else partial(epoch_batches, x.shape[0], batch_size, key)
    if mesh is not None and batches is not None:
        batches = partial(_replicated_batches, batches, NamedSharding(mesh, PartitionSpec()))
    data = (x, t, batches, jnp.asarray(l2, x.dtype), val)
    return _train(runs, data, state, opts, epochs, key, _progress(progress, start, epochs))
