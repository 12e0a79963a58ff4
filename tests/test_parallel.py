"""Data parallel fit on 8 simulated CPU devices, in a subprocess (XLA_FLAGS must be set before
jax is imported), against the same fit on one device; plus the mesh helpers in this process."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jmlp.parallel import batch_sharding, data_mesh, replicate, replicated, shard_batch

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jax.numpy as jnp, numpy as np, optax
    import jmlp
    from jmlp.parallel import data_mesh, shard_batch, replicate

    def diff(a, b):
        return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    out = {"devices": len(jax.devices())}
    mesh = data_mesh()
    net = jmlp.MLP((4, 16, 3), "relu", "softmax", "cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    y = rng.integers(0, 3, 100)
    p = jmlp.init_params(jax.random.key(0), net.sizes)
    kw = dict(epochs=4, batch_size=16, key=jax.random.key(1), validation=(x[:24], y[:24]))
    one = jmlp.fit(net, p, optax.adam(0.01), x, y, **kw)  # 7 steps, the last 4 of 16 real
    many = jmlp.fit(net, p, optax.adam(0.01), x, y, mesh=mesh, **kw)
    out["minibatch_params"] = diff(one.params, many.params)
    out["minibatch_history"] = {k: [one.history[k], many.history[k]] for k in one.history}
    out["params_devices"] = len(many.params[0]["W"].sharding.device_set)
    full1 = jmlp.fit(net, p, optax.sgd(0.1), x[:96], y[:96], epochs=3)
    full8 = jmlp.fit(net, p, optax.sgd(0.1), x[:96], y[:96], epochs=3, mesh=mesh)
    out["full_batch_params"] = diff(full1.params, full8.params)
    try:
        jmlp.fit(net, p, optax.sgd(0.1), x, y, epochs=1, batch_size=12, key=jax.random.key(0), mesh=mesh)
    except ValueError as err:
        out["bad_batch"] = str(err)
    xs, ys = shard_batch(mesh, x[:96], y[:96])
    out["shard_rows"] = sorted({s.data.shape[0] for s in xs.addressable_shards})
    try:
        shard_batch(mesh, x)
    except ValueError as err:
        out["bad_shard"] = str(err)
    rp = replicate(mesh, p)
    out["replicated_rows"] = sorted({s.data.shape for s in rp[0]["W"].addressable_shards})
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def eight_devices() -> dict:
    env = os.environ | {"JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_seen(eight_devices):
    assert eight_devices["devices"] == 8
    assert eight_devices["params_devices"] == 8


def test_sharded_fit_equals_one_device(eight_devices):
    # float32: the batch sums are added per device, then across devices: reordered rounding.
    assert eight_devices["minibatch_params"] < 1e-5
    assert eight_devices["full_batch_params"] < 1e-5
    for name, (one, many) in eight_devices["minibatch_history"].items():
        np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6, err_msg=name)


def test_batch_must_divide_over_devices(eight_devices):
    assert "batch_size: expected a multiple of the mesh size 8" in eight_devices["bad_batch"]
    assert "divisible by the mesh size 8" in eight_devices["bad_shard"]


def test_shard_batch_and_replicate_place_rows(eight_devices):
    assert eight_devices["shard_rows"] == [12]  # 96 rows / 8 devices
    assert eight_devices["replicated_rows"] == [[4, 16]]  # the whole W on every device


def test_helpers_on_this_process():
    mesh = data_mesh()
    assert mesh.axis_names == ("batch",) and mesh.size == len(jax.devices())
    assert batch_sharding(mesh).spec == jax.sharding.PartitionSpec("batch")
    assert replicated(mesh).spec == jax.sharding.PartitionSpec()
    (a,) = shard_batch(mesh, np.ones((4, 2)))
    np.testing.assert_array_equal(a, np.ones((4, 2)))
    np.testing.assert_array_equal(replicate(mesh, {"W": np.eye(2)})["W"], np.eye(2))
    with pytest.raises(TypeError, match="mesh:"):
        batch_sharding("batch")
    with pytest.raises(TypeError, match="devices:"):
        data_mesh([])
    with pytest.raises(ValueError, match=r"arrays\[0\]"):
        shard_batch(mesh, np.float32(1.0))
