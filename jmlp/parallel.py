"""Devices and processes with ``jax.sharding``: a mesh over devices, data and state placed on it.

    mesh = jmlp.data_mesh()                      # all devices, one axis named "batch"
    jmlp.fit(net, params, optimizer, x, y, batch_size=256, key=key, mesh=mesh)   # data parallel
    jmlp.fit_many(net, optimizer, x, y, params=stack, key=key, mesh=mesh)       # members split

``fit(..., mesh=mesh)`` places the data, params and optimizer state replicated on the mesh and
constrains every step's mini-batch ``x[idx] (B, n_in)`` to be split along its batch axis (B a
multiple of the mesh size): each device runs the forward and backward pass on ``B / D``
examples; the gradient ``dL/dW = h^T delta`` sums over the batch, so XLA inserts one all-reduce
per step, and every device applies the same update to its copy of the params. The result equals
one device's to float rounding (the sums are added in another order). ``fit_many(...,
mesh=mesh)`` splits its members over the devices instead (:func:`member_sharding`): no
communication at all.

**Simulated devices (tests, laptops).** ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
must be set before jax is imported (it splits the CPU into 8 devices).

**Several processes.** Each process calls ``jax.distributed.initialize()`` first; ``jax.devices()``
then lists every device of every process and ``data_mesh()`` spans them all. Host values passed
to ``fit`` (numpy arrays, or arrays on this process's devices) must be the same in every process
and are placed piece by piece (:func:`place`); data that lives on each process are global arrays
built from its own rows with ``jax.make_array_from_process_local_data(batch_sharding(mesh),
rows)``, kept where they are. Results that span processes are gathered with :func:`gather`, and
files are written by process 0 (``jax.process_index() == 0``), the others waiting (:func:`sync`).
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D ``Mesh`` with axis ``"batch"`` over ``devices`` (default: ``jax.devices()``, every
    device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(
            f"devices: expected a non-empty sequence of jax devices, got {devices!r:.80}"
        )
    return Mesh(np.array(devices), (BATCH_AXIS,))


def _check_mesh(mesh: Any) -> Mesh:
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise TypeError(f"mesh: expected a 1-D jax.sharding.Mesh (data_mesh()), got {mesh!r:.80}")
    return mesh


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split over the mesh: an array ``(B, ...)`` holds ``B / D`` rows per device."""
    return NamedSharding(_check_mesh(mesh), PartitionSpec(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(_check_mesh(mesh), PartitionSpec())


def shard_batch(mesh: Mesh, *arrays) -> tuple[jax.Array, ...]:
    """Place each array ``(B, ...)`` split by rows over the mesh (B a multiple of its size)."""
    size = _check_mesh(mesh).size
    out = []
    for i, a in enumerate(arrays):
        if np.ndim(a) == 0 or np.shape(a)[0] % size:
            raise ValueError(
                f"arrays[{i}]: expected a leading (batch) axis divisible by the mesh size {size}, "
                f"got shape {np.shape(a)}"
            )
        out.append(jax.device_put(a, batch_sharding(mesh)))
    return tuple(out)


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Every array leaf of ``tree`` (params, optimizer state) copied to every device of the mesh."""
    return place(tree, replicated(mesh))


def _place_leaf(a: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return a if a.sharding == sharding else jax.jit(lambda v: v, out_shardings=sharding)(a)
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        data = _place_leaf(jax.random.key_data(a), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(a))
    if jax.process_count() == 1:
        return jax.device_put(a, sharding)
    host = np.asarray(a)  # the same values in every process
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place(tree: Any, sharding: NamedSharding, keep_global: bool = False) -> Any:
    """Every leaf of ``tree`` as a global array with ``sharding``, in one or several processes:
    host values (numpy, or arrays on this process's devices), which every process must pass
    alike, are placed piece by piece; global arrays (``jax.make_array_from_process_local_data``)
    are resharded, or kept as they are (``keep_global``: data that lives on each process)."""

    def one(a):
        if keep_global and isinstance(a, jax.Array) and not a.is_fully_addressable:
            return a
        return _place_leaf(a, sharding)

    return jax.tree.map(one, tree)


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Stacked members ``(M, ...)`` split over the mesh: ``M / D`` members per device."""
    return batch_sharding(mesh)


def gather(tree: Any) -> Any:
    """Every leaf of ``tree`` as a numpy array holding all its values, in every process (leaves
    spread over several processes are all-gathered)."""

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable and not a.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(one, tree)


def sync(name: str) -> None:
    """Wait until every process reaches this point (a no-op in one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
