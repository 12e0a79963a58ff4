"""Atomic checkpoints: params, optimizer state, epoch and PRNG key in one ``.npz`` file.

File layout (format version 1): one numpy ``.npz`` archive holding

    "params/<path>"      one array per leaf of ``params``
    "opt_state/<path>"   one array per leaf of ``opt_state`` (absent when it has no leaves)
    "extra/<path>"       one array per leaf of ``extra`` (more state, e.g. the best epoch's params)
    "epoch"              int64 scalar
    "key"                the PRNG key's raw data, ``jax.random.key_data(key)`` (only if saved)
    "metadata"           0-d unicode array holding a JSON object, below

``<path>`` is the leaf's pytree path from ``jax.tree_util.tree_flatten_with_path``, its entries
joined by "/": a list or tuple index is its number, a dict key is the key, a NamedTuple field is
its name. With ``params = [{"W", "b"}, ...]`` and ``optax.adam``, whose state is
``(ScaleByAdamState(count, mu, nu), EmptyState())``, the names are "params/0/W", "params/0/b",
"opt_state/0/count", "opt_state/0/mu/1/b", ...

The metadata JSON is ``{"format": "jmlp-checkpoint", "version": 1, "treedef": str(treedef),
"leaves": {path: {"shape": [...], "dtype": "float32"}}, "key": null | {"kind": "typed", "impl":
"threefry2x32"} | {"kind": "raw"}, "user": <the metadata argument>}``. ``treedef`` is written for
people reading the file; loading checks leaf paths, shapes and dtypes against a template and takes
the tree structure from the template. Without a template, params made of lists and dicts (jmlp's
``[{"W", "b"}, ...]``) are rebuilt from the leaf paths, checked against ``treedef``; an optimizer
state (NamedTuples, which the paths do not name) needs its template,
``optimizer.init(params)`` of the optimizer that wrote the file. A "raw" key is a legacy
``jax.random.PRNGKey`` (uint32).

Dtypes are stored exactly. Dtypes that the ``.npy`` format cannot name (ml_dtypes' bfloat16,
float8_*, int4) are stored as the unsigned-integer view of the same width; "leaves" records the
real dtype and loading views the bits back.

Atomicity: the archive is written to a temporary file ``.<name>.<random>.tmp`` in the target's
directory, flushed and fsync'ed, moved onto the target with ``os.replace`` and the directory is
fsync'ed. So the target is always either the previous checkpoint or the new one, whole. On an
exception the temporary file is removed; a process killed mid-write (SIGKILL, power loss) can leave
one behind, which is never read and which `remove_temp_files` clears. `atomic_write` writes any
file this way.
"""

import contextlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = "jmlp-checkpoint"
VERSION = 1
_UMASK = os.umask(0o022)  # read the process umask (at import, so no later race) and restore it
os.umask(_UMASK)


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns: the pytrees rebuilt like the templates, with jax arrays."""

    params: Any
    opt_state: Any
    epoch: int
    key: jax.Array | None
    metadata: dict
    extra: Any = None


def _entry_name(entry: Any) -> str:
    """One path entry as text: DictKey.key, GetAttrKey.name, SequenceKey.idx."""
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _is_typed_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(tree: Any) -> tuple[dict[str, Any], Any]:
    """Leaves of ``tree`` keyed by their "/"-joined paths, in flatten order, and the treedef."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    named: dict[str, Any] = {}
    for path, leaf in leaves:
        name = "/".join(_entry_name(entry) for entry in path)
        if name in named:
            raise ValueError(f"two leaves share the checkpoint name {name!r}; rename a dict key")
        if _is_typed_key(leaf):
            raise TypeError(f"leaf {name!r} is a typed PRNG key; pass keys via key= instead")
        named[name] = leaf
    return named, treedef


def _spec(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an array, a ``jax.ShapeDtypeStruct`` or a Python scalar."""
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), np.dtype(leaf.dtype)
    arr = np.asarray(leaf)
    return arr.shape, arr.dtype


def _to_host(name: str, leaf: Any) -> np.ndarray:
    """Leaf as a numpy array the ``.npy`` format can hold (ml_dtypes as unsigned-int bits)."""
    arr = np.asarray(leaf)
    if arr.dtype == object:
        raise TypeError(f"leaf {name!r}: expected an array, received {type(leaf).__name__}")
    if arr.dtype.kind == "V":
        return arr.view(f"u{arr.dtype.itemsize}")
    return arr


def _encode_key(key: Any) -> tuple[np.ndarray | None, dict | None]:
    """Raw key data and its description: typed keys keep their impl name, legacy keys are raw."""
    if key is None:
        return None, None
    if _is_typed_key(key):
        return np.asarray(jax.random.key_data(key)), {
            "kind": "typed",
            "impl": str(jax.random.key_impl(key)),
        }
    data = np.asarray(key)
    if data.dtype != np.uint32:
        raise TypeError(
            f"key: expected a jax.random.key or a uint32 jax.random.PRNGKey, received dtype "
            f"{data.dtype}"
        )
    return data, {"kind": "raw"}


def _encode(
    params: Any, opt_state: Any, epoch: int, key: Any, metadata: dict | None, extra: Any = None
) -> dict[str, np.ndarray]:
    """Every array of the archive, "metadata" JSON included (see the module docstring)."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch: expected an int >= 0, received {epoch!r}")
    named, treedef = _flatten({"params": params, "opt_state": opt_state, "extra": extra})
    arrays = {name: np.asarray(leaf) for name, leaf in named.items()}
    leaves = {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()}
    arrays = {name: _to_host(name, a) for name, a in arrays.items()}
    key_data, key_info = _encode_key(key)
    if key_data is not None:
        arrays["key"] = key_data
    arrays["epoch"] = np.asarray(epoch, dtype=np.int64)
    meta = {"format": FORMAT, "version": VERSION, "treedef": str(treedef), "leaves": leaves}
    meta |= {"key": key_info, "user": {} if metadata is None else metadata}
    try:
        arrays["metadata"] = np.asarray(json.dumps(meta))
    except TypeError as err:
        raise TypeError(
            f"metadata: expected a JSON-serialisable dict, received {metadata!r}"
        ) from err
    return arrays


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX only; elsewhere a no-op)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# the names mkstemp(prefix=".<name>.", suffix=".tmp") makes
TEMP_FILE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def atomic_write(target: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write a file whole or not at all: ``write(f)`` fills a temporary file
    ``.<name>.<random>.tmp`` in the target's directory, which is flushed, fsync'ed and moved onto
    ``target`` with ``os.replace``; the directory is fsync'ed. On an exception the temporary file
    is removed (a process killed mid-write can leave one behind: :func:`remove_temp_files`).
    Returns the target.
    """
    target = Path(target)
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0o600; give the usual new-file mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return target


def remove_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``directory`` when its process was
    killed mid-write (names ``.<name>.<8 random characters>.tmp``); returns the removed paths.
    Only call it while no other process writes into ``directory``."""
    removed = []
    for path in sorted(Path(directory).iterdir()):
        if TEMP_FILE.fullmatch(path.name) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def save_checkpoint(
    path: str | os.PathLike,
    *,
    params: Any,
    opt_state: Any = None,
    epoch: int = 0,
    key: jax.Array | None = None,
    metadata: dict | None = None,
    extra: Any = None,
) -> Path:
    """Write params, optimizer state, epoch and PRNG key atomically to one ``.npz`` file.

    The file at ``path`` is replaced whole or not at all (layout and atomicity: module docstring).

    **Arguments:**
    - `path`: the target file (written exactly there; no suffix is added). Its directory must exist.
    - `params`: pytree of arrays, e.g. a list of ``{"W": (n_in, n_out), "b": (n_out,)}`` dicts.
    - `opt_state`: pytree of arrays, e.g. ``optimizer.init(params)``; ``None`` for none.
    - `epoch`: int >= 0, the number of epochs done.
    - `key`: a ``jax.random.key`` (any impl) or a legacy uint32 ``jax.random.PRNGKey``, or None.
    - `metadata`: JSON-serialisable dict, returned as ``Checkpoint.metadata`` on load.
    - `extra`: a pytree of arrays kept beside them (``jmlp.fit`` keeps its best epoch's state).

    **Returns:** the target path.
    """
    target = Path(path)
    arrays = _encode(params, opt_state, epoch, key, metadata, extra)
    atomic_write(target, lambda f: np.savez(f, **arrays))
    return target


def _open_npz(target: Path) -> Any:
    """``np.load`` the archive, with a ValueError if the file is not an ``.npz`` archive (checked
    first: numpy leaves the file open when the archive is damaged)."""
    if not zipfile.is_zipfile(target):
        with open(target, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        what = "a .npy array, not an .npz archive" if npy else "not an .npz archive, or cut short"
        raise ValueError(f"{target} is not a jmlp checkpoint: {what}")
    try:
        return np.load(target, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{target} is not a jmlp checkpoint (not an .npz archive): {err}") from err


def _read_metadata(npz: Any, target: Path) -> dict:
    """The metadata JSON object, checked for the format name and a readable version."""
    meta = None
    if "metadata" in npz.files:
        with contextlib.suppress(ValueError):
            meta = json.loads(str(npz["metadata"][()]))
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or not isinstance(meta.get("version"), int)
    ):
        raise ValueError(f"{target} is not a jmlp checkpoint: no {FORMAT!r} format version")
    if meta["version"] > VERSION:
        raise ValueError(
            f"{target}: checkpoint format version {meta['version']} is newer than this jmlp "
            f"reads (up to {VERSION})"
        )
    return meta


TEMPLATE_HELP = (
    "the templates must have the saved trees' structure: leave like_params out to rebuild jmlp "
    "params from the file; like_opt_state=optimizer.init(params) of the optimizer that wrote it "
    "(e.g. jmlp.optim.adam(lr) for `jmlp train --optimizer adam`, whose run folder "
    "jmlp.load_run reads; optax.adam(lr) for optax's own)"
)


def _check_leaves(template: dict[str, Any], stored: dict[str, dict], target: Path) -> None:
    """Same leaf paths, and each leaf's shape and dtype equal to the template's, or ValueError."""
    missing, extra = sorted(set(template) - set(stored)), sorted(set(stored) - set(template))
    if missing or extra:
        raise ValueError(
            f"{target}: leaf paths differ from the template: in the template but not the file "
            f"{missing}, in the file but not the template {extra}; {TEMPLATE_HELP}"
        )
    for name, leaf in template.items():
        shape, dtype = _spec(leaf)
        got_shape, got_dtype = tuple(stored[name]["shape"]), stored[name]["dtype"]
        if shape != got_shape or str(dtype) != got_dtype:
            raise ValueError(
                f"{target}: leaf {name!r}: expected shape {shape} dtype {dtype} (template), "
                f"received shape {got_shape} dtype {got_dtype} (file)"
            )


def _restore(name: str, arr: np.ndarray, like: Any, target: Path) -> jax.Array:
    """Stored array as a jax array with the template's dtype, on the template's sharding."""
    shape, dtype = _spec(like)
    if arr.dtype != dtype:
        arr = arr.view(dtype)
    if arr.shape != shape or arr.dtype != dtype:
        raise ValueError(f"{target}: leaf {name!r} disagrees with the file's own metadata")
    sharding = getattr(like, "sharding", None)
    return jax.device_put(arr, sharding)  # None: the default device (no program compiled)


def _decode_key(npz: Any, info: dict | None) -> jax.Array | None:
    """The saved key: typed keys rebuilt with ``jax.random.wrap_key_data``, legacy keys as uint32."""
    if info is None:
        return None
    data = jax.device_put(npz["key"])
    if info["kind"] == "typed":
        return jax.random.wrap_key_data(data, impl=info["impl"])
    return data


def _saved_tree(meta: dict, prefix: str, target: Path) -> Any:
    """A template of ``ShapeDtypeStruct`` leaves rebuilt from the file's leaf paths under
    ``prefix``: a numeric path entry is a list index, any other a dict key. ValueError if the
    file's ``treedef`` says the tree was built otherwise (tuples, NamedTuples...)."""
    tree: Any = {}
    for name, spec in meta["leaves"].items():
        if name.startswith(prefix + "/"):
            *parents, leaf = name.split("/")[1:]
            node = tree
            for entry in parents:
                node = node.setdefault(entry, {})
            node[leaf] = jax.ShapeDtypeStruct(tuple(spec["shape"]), _stored_dtype(spec["dtype"]))
    rebuilt = _as_lists(tree)
    if f"'{prefix}': {str(jax.tree.structure(rebuilt))[10:-1]}" not in meta["treedef"]:
        raise ValueError(
            f"{target}: the saved {prefix} are not plain lists and dicts, so they cannot be "
            f"rebuilt without a template; {TEMPLATE_HELP}"
        )
    return rebuilt


def _stored_dtype(name: str) -> np.dtype:
    return jnp.dtype(name)  # jnp knows ml_dtypes' names (bfloat16, ...) too


def _as_lists(node: Any) -> Any:
    """Dicts whose keys are exactly "0".."n-1" become lists, recursively."""
    if not isinstance(node, dict):
        return node
    children = {k: _as_lists(v) for k, v in node.items()}
    if sorted(children) == sorted(str(i) for i in range(len(children))) and children:
        return [children[str(i)] for i in range(len(children))]
    return children


def load_checkpoint(
    path: str | os.PathLike,
    *,
    like_params: Any = None,
    like_opt_state: Any = None,
    like_extra: Any = None,
) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`, rebuilt with the templates' structure.

    The templates give the tree structure (lists, dicts, optax NamedTuple states), and every leaf's
    path, shape and dtype must match the file's; leaves may be arrays or ``jax.ShapeDtypeStruct``.

    **Arguments:**
    - `path`: the checkpoint file.
    - `like_params`: template for params, e.g. freshly initialised params; None rebuilds them
      from the file when they are lists and dicts of arrays (jmlp's ``[{"W", "b"}, ...]``).
    - `like_opt_state`: template for the optimizer state: ``optimizer.init(params)`` of the
      optimizer that wrote the file (``jmlp.optim.adam(lr)``, ``optax.adam(lr)``, ...: their
      states differ); None skips the stored optimizer state (``Checkpoint.opt_state`` is None).
    - `like_extra`: template for the ``extra`` tree, or None to skip it.

    **Returns:** ``Checkpoint(params, opt_state, epoch, key, metadata)`` with jax array leaves.

    **Raises:** FileNotFoundError if there is no file at `path`; ValueError if it is not a jmlp
    checkpoint, or a leaf path, shape or dtype differs from the template (naming the leaf).
    """
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no checkpoint file at {target}")
    with _open_npz(target) as npz:
        meta = _read_metadata(npz, target)
        if like_params is None:
            like_params = _saved_tree(meta, "params", target)
        likes = {"params": like_params, "opt_state": like_opt_state, "extra": like_extra}
        template, treedef = _flatten(likes)
        prefixes = tuple(f"{k}/" for k, v in likes.items() if v is not None)
        stored = {n: v for n, v in meta["leaves"].items() if n.startswith(prefixes)}
        _check_leaves(template, stored, target)
        values = [_restore(n, npz[n], like, target) for n, like in template.items()]
        epoch, key = int(npz["epoch"]), _decode_key(npz, meta["key"])
    trees = jax.tree_util.tree_unflatten(treedef, values)
    return Checkpoint(trees["params"], trees["opt_state"], epoch, key, meta["user"], trees["extra"])
