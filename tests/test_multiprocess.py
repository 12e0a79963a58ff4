"""Two processes on 127.0.0.1 (jax.distributed, gloo CPU collectives), each with two simulated
devices: one 4-device mesh. fit (data parallel), fit on data each process holds only its half
of, a checkpointed and resumed fit, and fit_many with its members spread over the devices, all
equal to one process on one device to float rounding, in both processes."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmlp

pytestmark = pytest.mark.slow  # two processes joined by jax.distributed

WORKER = textwrap.dedent(
    """
    import sys
    process, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process)
    import numpy as np, optax, jmlp
    sys.path.insert(0, sys.argv[4])
    from test_multiprocess import problem, KW, MANY_KEYS
    from jmlp.parallel import batch_sharding, gather

    net, params, stack, x, y = problem()
    mesh = jmlp.data_mesh()
    assert mesh.size == 4 and len(jax.local_devices()) == 2
    opt = optax.adam(0.05)
    out_arrays = {}
    whole = jmlp.fit(net, params, opt, x, y, mesh=mesh, **KW)
    out_arrays["fit"] = gather(whole.params[0]["W"])
    half = slice(process * 32, (process + 1) * 32)  # this process's rows only
    xl = jax.make_array_from_process_local_data(batch_sharding(mesh), x[half])
    yl = jax.make_array_from_process_local_data(batch_sharding(mesh), y[half])
    local = jmlp.fit(net, params, opt, xl, yl, mesh=mesh, **KW)
    out_arrays["local"] = gather(local.params[0]["W"])
    path = f"{out}/run.npz"
    jmlp.fit(net, params, opt, x, y, mesh=mesh, checkpoint_path=path, **(KW | {"epochs": 2}))
    resumed = jmlp.fit(net, params, opt, x, y, mesh=mesh, checkpoint_path=path, resume=True, **KW)
    out_arrays["resumed"] = gather(resumed.params[0]["W"])
    for mode, key in MANY_KEYS.items():
        many = jmlp.fit_many(net, opt, x, y, params=stack, mesh=mesh, **(KW | {"key": key}))
        out_arrays[mode] = gather(many.params[0]["W"])
        assert len(many.params[0]["W"].sharding.device_set) == 4
    np.savez(f"{out}/process{process}.npz", **out_arrays)
    print("done", process)
    """
)
KW = {"epochs": 4, "batch_size": 16, "key": jax.random.key(1)}
MANY = 6  # members: more than one device's share, not a multiple of the 4 devices
MANY_KEYS = {  # fit_many's key: one, one per member, or two repeating (the seeds of a grid)
    "one key": KW["key"],
    "keys": jax.random.split(KW["key"], MANY),
    "repeating keys": jax.random.split(KW["key"], 2)[np.arange(MANY) % 2],
}


def problem():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)), rng.integers(0, 3, 64)
    net = jmlp.MLP((3, 8, 3), "tanh", "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes, dtype=jnp.float64)
    stack = jmlp.init_many(jax.random.split(jax.random.key(2), MANY), net.sizes, dtype=jnp.float64)
    return net, params, stack, x, y


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def processes(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("processes")
    # XLA's optimization level 0 compiles about twice as fast (the workers mostly compile); it
    # changes the rounding only, far inside the float64 tolerance of the comparison
    env = os.environ | {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0",
        "JAX_PLATFORMS": "cpu",
    }
    port, tests = str(free_port()), os.path.dirname(__file__)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), port, str(out), tests],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:  # both killed on any failure or timeout
            p.kill()
    for p, (stdout, stderr) in zip(procs, logs):
        assert p.returncode == 0, stderr[-3000:]
    return [dict(np.load(out / f"process{i}.npz")) for i in range(2)]


def reference() -> dict:
    net, params, stack, x, y = problem()
    opt = optax.adam(0.05)
    one = jmlp.fit(net, params, opt, x, y, **KW).params[0]["W"]

    def member_key(key, m):
        return key if key.ndim == 0 else key[m]

    many = {
        mode: np.stack(
            [
                jmlp.fit(
                    net, jmlp.member(stack, m), opt, x, y, **(KW | {"key": member_key(k, m)})
                ).params[0]["W"]
                for m in range(MANY)
            ]
        )
        for mode, k in MANY_KEYS.items()
    }
    return {"fit": one, "local": one, "resumed": one, **many}


@pytest.mark.parametrize("name", ["fit", "local", "resumed", *MANY_KEYS])
def test_both_processes_equal_one_process(processes, name):
    expected = np.asarray(reference_cache()[name])
    for results in processes:
        np.testing.assert_allclose(results[name], expected, rtol=1e-10, atol=1e-12)


_REFERENCE: dict = {}


def reference_cache() -> dict:
    if not _REFERENCE:
        _REFERENCE.update(reference())
    return _REFERENCE


def test_the_multihost_script_runs_on_two_processes(tmp_path):
    """experiments/multihost.py as the README runs it on one machine: two processes, two
    simulated devices each; process 0 writes the results."""
    script = os.path.join(os.path.dirname(__file__), "..", "experiments", "multihost.py")
    port, env = str(free_port()), os.environ | {"JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--local-devices", "2"]
    procs = [
        subprocess.Popen(
            [sys.executable, script, *flags, "--process-id", str(i), "--quick", "--out", str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]  # fmt: skip
    try:
        logs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, stderr) in zip(procs, logs):
        assert p.returncode == 0, stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["processes"] == 2 and results["devices"] == 4
    assert 0 <= results["fit"]["test_accuracy"] <= 1 and results["fit_many"]["members"] == 4
    assert "fit, data parallel" in logs[0][0] and "fit, data parallel" not in logs[1][0]
