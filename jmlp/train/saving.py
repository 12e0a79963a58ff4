"""Checkpoints of a run: every member's params, optimizer state, stopping state and history,
written atomically and read back so that a resumed run is bitwise the uninterrupted one."""

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmlp import engine, parallel
from jmlp.checkpoint import load_checkpoint, save_checkpoint
from jmlp.engine import Members
from jmlp.train.programs import own
from jmlp.train.setup import Run, member_sharding

MEMBER_FIELDS = ("active", "code", "epochs_run", "best_loss", "best_epoch", "stale")
_NOT_SAVED = {
    "active": False,
    "code": engine.MAX_EPOCHS,
    "epochs_run": 0,
    "best_loss": np.inf,
    "best_epoch": 0,
    "stale": 0,
}  # the padding members' state


def save(path, run: Run, members: Members, history: np.ndarray, epoch: int) -> None:
    """Params, optimizer state, epoch, key, the history ``(E, K, M)`` and every member's stopping
    state, written by process 0 (the others wait until the file is complete)."""
    view = partial(own, n=run.n, single=run.single)
    host = parallel.gather(members)
    meta = {
        "history": {k: view(history[:, i, :].T).tolist() for i, k in enumerate(run.names)},
        "members": {f: getattr(host, f)[: run.n].tolist() for f in MEMBER_FIELDS},
    }
    best = None if host.best is None else {"params": view(host.best[0]),
                                           "opt_state": view(host.best[1])}  # fmt: skip
    if jax.process_index() == 0:
        save_checkpoint(path, params=view(host.params), opt_state=view(host.opt_state),
                        epoch=epoch, key=run.opts.key, metadata=meta, extra=best)  # fmt: skip
    parallel.sync("jmlp checkpoint written")


def _key_bits(key: Any) -> np.ndarray | None:
    if key is None:
        return None
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    return np.asarray(jax.random.key_data(key) if typed else key)


def _user_shapes(run: Run, tree: Any) -> Any:
    """The user's view of the padded members' leaves, as shapes."""
    lead = () if run.single else (run.n,)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(lead + a.shape[1:], a.dtype), tree)


def _read(path, run: Run):
    """The checkpoint at ``path``, checked to belong to this run (its key and history names)."""
    members = run.members
    best = None if members.best is None else {"params": _user_shapes(run, members.best[0]),
                                              "opt_state": _user_shapes(run, members.best[1])}  # fmt: skip
    ck = load_checkpoint(path, like_params=_user_shapes(run, members.params),
                         like_opt_state=_user_shapes(run, members.opt_state), like_extra=best)  # fmt: skip
    given, saved = _key_bits(run.opts.key), _key_bits(ck.key)
    if given is not None and saved is not None and not np.array_equal(given, saved):
        raise ValueError(f"key: differs from the key saved in the checkpoint {path}")
    meta = ck.metadata if isinstance(ck.metadata, dict) else {}
    if "members" not in meta:
        raise ValueError(
            f"checkpoint_path: {path} was not written by fit / fit_many (no member state)"
        )
    saved = list(meta.get("history", {}))
    if saved != run.names:
        raise ValueError(
            f"validation / evaluate: the checkpoint {path} holds the history {saved}, this call "
            f"records {run.names}; give the validation= and evaluate= (and nan_policy) of the run "
            "that wrote it, or another checkpoint_path"
        )
    return ck, meta


def _member_state(run: Run, saved: dict, size: int) -> dict:
    """Every field of :data:`MEMBER_FIELDS` ``(M,)`` on the device, padding members stopped."""
    saved = {f: np.asarray(v) for f, v in saved.items()}
    since_best = saved["epochs_run"] - saved["best_epoch"]  # older files: min_delta 0
    state = {}
    for f in MEMBER_FIELDS:
        values = np.full(size, _NOT_SAVED[f], getattr(run.members, f).dtype)
        values[: run.n] = saved.get(f, since_best)
        state[f] = jax.device_put(values)
    return state


def resume(path, run: Run) -> tuple[Members, np.ndarray, int]:
    """Members, history ``(E, K, M)`` and epochs done from the checkpoint at ``path``."""
    ck, meta = _read(path, run)
    size = run.members.active.shape[0]

    def padded(tree):
        if run.single:  # a member axis added on the host (no program compiled)
            tree = jax.device_put(jax.tree.map(lambda a: np.asarray(a)[None], tree))
        return engine.pad_members(tree, size)

    best = None if ck.extra is None else padded((ck.extra["params"], ck.extra["opt_state"]))
    state = _member_state(run, meta["members"], size)
    members = Members(padded(ck.params), padded(ck.opt_state), best=best, **state)
    if run.mesh is not None:
        members = parallel.place(members, member_sharding(run.plan, run.mesh))
    history = np.full((ck.epoch, len(run.names), size), np.nan)
    for i, name in enumerate(run.names):
        values = np.asarray(meta["history"].get(name, []), float).reshape(-1, ck.epoch)
        history[:, i, : run.n] = values.T
    return members, history, ck.epoch
