"""``fit`` (one network) and ``fit_many`` (N networks): one engine, ``fit`` its one-member case.

The data order, masking, stopping rules (``tol``, ``patience``), NaN policy, validation and
evaluation metrics, callbacks, checkpoints and the device mesh are the same code for both, and
member m of ``fit_many`` is ``fit`` of member m alone. Hyper-parameters passed as data
(``hparams``, ``l2``, ``tol``, ``patience``, ``min_delta``) never recompile.
"""

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jmlp import engine, parallel
from jmlp.arguments import check_int, check_number
from jmlp.checks import check_params, n_members
from jmlp.init import Params
from jmlp.net import MLP
from jmlp.precondition import Kfac
from jmlp.train import programs
from jmlp.train.loop import train
from jmlp.train.options import Options, check_net
from jmlp.train.results import (
    EnsembleResult,
    FitResult,
    NonFiniteLossError,
    history_arrays,
    reasons,
)
from jmlp.train.saving import MEMBER_FIELDS
from jmlp.train.setup import Run, prepare

Array = jax.Array


def _options(given: dict) -> Options:
    """The :class:`Options` among a caller's keyword arguments (checked as they are built)."""
    return Options(
        **{f.name: given[f.name] for f in dataclasses.fields(Options) if f.name in given}
    )


def _finish(run: Run, members, history: np.ndarray) -> tuple:
    """Params and opt_state to return (the best epoch's with patience on val_loss), the
    members' fields on the host and each member's reason for stopping."""
    params, state = programs.finisher(run.plan, run.n, run.single)(members)
    host = parallel.gather({f: getattr(members, f) for f in MEMBER_FIELDS})
    said = reasons(host, run.n, run.settings, run.plan.monitor, run.opts.epochs, history[:, 0])
    return params, state, host, said


def _fit_history(run: Run, history: np.ndarray) -> dict[str, list[float]]:
    return {k: [float(v) for v in h[0]] for k, h in history_arrays(run.names, history, 1).items()}


def fit(
    net: MLP,
    params: Params,
    optimizer: optax.GradientTransformation | Callable,
    x,
    y,
    *,
    epochs: int = 100,
    batch_size: int | None = None,
    key: Array | None = None,
    validation: tuple[Any, Any] | None = None,
    evaluate: Mapping[str, tuple[Any, Any]] | None = None,
    l2: float = 0.0,
    hparams: Mapping[str, float] | None = None,
    gradient: str = "backprop",
    rule: str = "backprop",
    feedback: list | None = None,
    alignment: bool = False,
    tol: float | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    progress: bool = False,
    callback: Callable[[int, Params, dict], Any] | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    nan_policy: str = "stop",
    mesh: Mesh | None = None,
    opt_state: Any = None,
    shuffle: bool = True,
    sample_weight: Any = None,
    preconditioner: Kfac | None = None,
) -> FitResult:
    """Train ``params`` on ``x (N, n_in)``, ``y`` (rows ``(N, n_out)`` or integer labels ``(N,)``).

    Mini-batch epochs in one compiled loop (:mod:`jmlp.engine`): ``ceil(N / B)`` optimizer
    steps per epoch, the data reshuffled by ``fold_in(key, epoch)``.

    **Arguments:**
    - ``optimizer``: any ``optax.GradientTransformation`` (``jmlp.optim``'s or optax's), or a
      function of ``hparams`` returning one (``lambda lr: optax.adam(lr)``, ``optax.adam`` with
      ``hparams={"learning_rate": 1e-3}``): the hyper-parameters are then data, and a loop over
      their values compiles once.
    - ``epochs``: maximum number of epochs (int >= 1).
    - ``batch_size``: None or N: full-batch gradient descent (no shuffle, no key needed); 1: SGD;
      else mini-batches of ``B`` reshuffled every epoch, the last partial one masked.
    - ``key``: keyword-only ``jax.random.key``; required unless full batch.
      Epoch ``e`` (0-based) uses ``fold_in(key, e)``: the same key gives bitwise the same run.
    - ``validation``: ``(x_val, y_val)``; its metrics are computed after each epoch.
    - ``evaluate``: ``{name: (x, y)}``, more sets evaluated after each epoch (``name_loss``, ...).
    - ``l2``: coupled L2 coefficient, ``L + l2/2 sum ||W||^2`` (weights only).
    - ``hparams``: ``{name: number}`` handed to an optimizer function.
    - ``gradient``: ``"backprop"`` (hand-written) or ``"autodiff"`` (``jax.value_and_grad``).
    - ``rule``: the learning rule carrying the error back (:mod:`jmlp.feedback`): ``"backprop"``,
      feedback alignment ``"fa"``, direct feedback alignment ``"dfa"`` or sign symmetry
      ``"sign"``; ``feedback``: fa's and dfa's fixed matrices (:func:`jmlp.init_feedback`), given
      again to resume.
    - ``alignment``: with a rule other than backprop, add to the history after every epoch,
      per layer, the angle in degrees between the rule's update and the true gradient
      (``update_angle_1``, ..., ``update_angle_L``) and for fa between ``W^l`` and ``B^l``
      (``feedback_angle_2``, ...): :func:`jmlp.alignment` on the whole training set at the
      epoch's end params. Off by default (it costs two passes over the training set an epoch).
    - ``tol``: stop once the epoch's training loss is ``<= tol`` (document 001's ``E <= 1e-6``).
    - ``patience``: early stopping: stop after this many epochs in a row without improvement of
      ``val_loss`` (with ``validation``; the params and optimizer state returned are then those
      of the least ``val_loss``), else of the training loss (the last epoch's params returned).
    - ``min_delta``: an epoch improves when its loss is below the least so far minus
      ``min_delta`` (default 0). ``patience=n_iter_no_change + 1, min_delta=tol`` without
      validation is scikit-learn's ``tol`` / ``n_iter_no_change`` rule.
    - ``progress``: a progress line (epochs, loss, rate, time left) on stderr.
    - ``callback``: ``callback(epoch, params, history)`` after each epoch (1-based; ``params`` a
      copy; the epochs then run one per compiled call). Returning True stops.
    - ``checkpoint_path``, ``checkpoint_every``: save params, optimizer state, epoch, key, history
      and the stopping state (the best epoch's params with ``patience``) every
      ``checkpoint_every`` epochs and after the last. ``resume=True``: continue from that file
      if it exists (its key must equal ``key``); the result is bitwise that of an uninterrupted
      run.
    - ``nan_policy``: a step is non-finite if its loss, new params or new optimizer state holds a
      NaN/inf. ``"stop"``: raise :class:`NonFiniteLossError` naming the epoch and step, carrying
      the state from before that step (epochs run unchecked at full speed; one that ends
      non-finite is replayed with per-step checks). ``"skip"``: leave such steps out (as
      ``optax.apply_if_finite``), counted in ``history["skipped"]``.
    - ``mesh``: a 1-D ``jax.sharding.Mesh`` (``jmlp.data_mesh()``): data parallel; each step's
      mini-batch is split over its devices (``batch_size``, or N for full batch, a multiple of
      the mesh size), params replicated; equal to one device's result to float rounding.
    - ``opt_state``: the optimizer state to start from (default ``optimizer.init(params)``).
    - ``shuffle``: False keeps the examples in their order, every epoch (no key needed), as
      document 003's code does.
    - ``sample_weight``: ``(N,)`` finite numbers >= 0, not all 0: example n weighs ``w_n`` in
      every loss it enters, as :func:`jmlp.loss`'s ``weights``: a step on the rows ``I`` descends
      ``sum_{n in I} s_n l_n + l2/2 sum ||W||^2`` with ``s_n = w_n / sum_I w`` (mean; no step
      where ``sum_I w = 0``) or ``w_n`` (sum); the epoch's loss is ``sum_I (sum_I w) L_I /
      sum w`` (mean) or ``sum_I L_I`` (sum). Validation and evaluation metrics are unweighted.
      The weights are data (new values do not recompile); give them again to resume.
    - ``preconditioner``: ``jmlp.kfac(damping, decay=, every=, kind=)``: each step's gradient
      (L2 included) preconditioned per layer by K-FAC, ``A^-1 [dW; db] G^-1``, before the
      optimizer (:mod:`jmlp.precondition`); ``opt_state`` is then a ``KfacState`` holding the
      running factors, their inverses and the optimizer's state. Backprop's gradient only.

    **Returns:** :class:`FitResult` ``(params, opt_state, history, epochs_run, stopped, key)``.

    **Raises:** ValueError / TypeError on bad input (naming the argument), before compiling.
    """
    check_net(net)
    opts = _options(locals())
    if tol is not None:
        check_number("tol", tol)
    if patience is not None:
        check_int("patience", patience, 1)
    check_number("min_delta", min_delta)
    check_params(net, params)
    run = prepare(net, optimizer, x, y, params, opts, 1, single=True)
    members, history, done = train(run)
    if int(parallel.gather(members.code)[0]) == engine.NON_FINITE:
        _raise_non_finite(run, members, history)
    params, state, _, said = _finish(run, members, history)
    return FitResult(params, state, _fit_history(run, history), done, said[0], key)


def _raise_non_finite(run: Run, members, history: np.ndarray) -> None:
    """Replay the failed epoch with every step checked and raise :class:`NonFiniteLossError`."""
    bad = int(members.epochs_run[0])  # 0-based index of the failed epoch = epochs completed
    params, state, first_bad = programs.replay(run.plan)(
        members, run.settings, run.data, jnp.int32(bad)
    )
    steps = 1 if run.plan.batch is None else -(-int(run.data.n) // run.plan.batch)
    step = int(first_bad[0]) + 1 if int(first_bad[0]) >= 0 else steps
    own = programs.own((params, state), 1, True)
    result = FitResult(*own, _fit_history(run, history), bad,
                       f"non-finite at epoch {bad + 1}, step {step}", run.opts.key)  # fmt: skip
    raise NonFiniteLossError(bad + 1, step, result)


def _ensemble_arguments(arrays: tuple, params: Params | None) -> tuple:
    """``(params, optimizer, x, y)`` from ``fit_many``'s positional arguments: the order of
    :func:`fit`, or ``(optimizer, x, y)`` with ``params=`` given by keyword."""
    if params is not None and len(arrays) == 3:
        return (params, *arrays)
    if params is None and len(arrays) == 4:
        return arrays
    raise TypeError(
        "fit_many: expected (net, params, optimizer, x, y) or (net, optimizer, x, y, "
        f"params=...), got {1 + len(arrays)} positional arguments"
        + (" and params=" if params is not None else "")
    )


def fit_many(
    net: MLP,
    *arrays: Any,
    params: Params | None = None,
    epochs: int = 100,
    batch_size: int | None = None,
    key: Array | None = None,
    validation: tuple[Any, Any] | None = None,
    evaluate: Mapping[str, tuple[Any, Any]] | None = None,
    l2=0.0,
    hparams: Mapping[str, Any] | None = None,
    gradient: str = "backprop",
    rule: str = "backprop",
    feedback: list | None = None,
    alignment: bool = False,
    tol=None,
    patience=None,
    min_delta=0.0,
    progress: bool = False,
    callback: Callable[[int, Params, dict], Any] | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    nan_policy: str = "stop",
    mesh: Mesh | None = None,
    opt_state: Any = None,
    block_size: int | None = None,
    shuffle: bool = True,
    sample_weight: Any = None,
    preconditioner: Kfac | None = None,
) -> EnsembleResult:
    """Train N networks (an ensemble, a sweep over hyper-parameters or seeds) in one engine:
    ``fit_many(net, params, optimizer, x, y, ...)``, the arguments of :func:`fit` in its order
    (``fit_many(net, optimizer, x, y, params=params, ...)`` is the same call).

    Member ``m`` is :func:`fit` of that member alone: ``fit(net, member(params, m),
    optimizer_m, x, y, key=key (or key[m]), l2=l2[m], tol=tol[m], patience=patience[m], ...)``,
    to float rounding; it stops by its own ``tol`` / ``patience`` / NaN policy and is then
    frozen; the call ends when every member has stopped or at ``epochs``.

    **Arguments** (the rest as :func:`fit`, each working per member):
    - ``params``: stacked params, leading axis N (:func:`jmlp.init_many`).
    - ``optimizer``: an ``optax.GradientTransformation`` shared by all, or a function of one
      member's hyper-parameters returning one, called inside ``jax.vmap`` with that member's
      scalars: as keywords (``lambda lr: optax.adam(lr)``, or ``optax.adam`` with
      ``hparams={"learning_rate": lrs}``), or as one dict (``lambda h: optax.adam(h["lr"])``).
    - ``key``: one ``jax.random.key``: every member sees the same mini-batches (epoch ``e`` uses
      ``fold_in(key, e)``); or ``N`` keys (shape ``(N,)``): one data order per member. None:
      full batch. Keys that repeat with a period (``key[m] == key[m % p]``, as
      ``jmlp.grid(..., seed=...).keys()`` gives with the seed axis last) let the members that
      share a key train in blocks of their own, on shared mini-batches.
    - ``feedback``: one set of the rule's matrices shared by all, or a stack (leading axis N).
    - ``preconditioner``: as :func:`fit`; ``jmlp.kfac``'s ``damping`` and ``decay`` may be arrays
      ``(N,)``, one per member (data: new values never recompile).
    - ``hparams``: dict name -> number or array ``(N,)``; ``l2``, ``tol``, ``patience``,
      ``min_delta``: a number or an array ``(N,)``.
    - ``nan_policy``: ``"stop"``: a member whose epoch turns non-finite stops with the params
      from before that epoch (the others go on); ``"skip"``: as :func:`fit`.
    - ``callback``: ``callback(epoch, params, history)`` with stacked params and history arrays
      ``(N, epoch)``; returning True stops every member.
    - ``mesh``: a 1-D mesh (``jmlp.data_mesh()``): the members split over its devices (each
      block padded to a multiple of the mesh size), the data replicated.
    - ``opt_state``: stacked optimizer states to start from (default ``optimizer(h_m).init``).
    - ``sample_weight``: one weight per row of ``x``, shared by every member (a stack of
      weights per member is not taken).
    - ``block_size``: members trained together (blocks run one after another in the same call);
      default: on a CPU as many as keep a block's activations near the cache size, else all.

    **Returns:** :class:`EnsembleResult` ``(params, opt_state, history, epochs_run, stopped)``.
    """
    params, optimizer, x, y = _ensemble_arguments(arrays, params)
    check_net(net)
    opts = _options(locals())
    n = n_members(net, params)
    run = prepare(net, optimizer, x, y, params, opts, n, single=False)
    members, history, _ = train(run)
    params, state, host, said = _finish(run, members, history)
    history = history_arrays(run.names, history, n)
    return EnsembleResult(params, state, history, host["epochs_run"][:n].copy(), said)
