"""jmlp.cache: on at import; a second identical process loads its compiled programs from the
persistent cache, processes sharing the folder at once included; ``JMLP_CACHE_DIR=`` turns it off."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # fresh processes sharing a compilation cache

SCRIPT = """
import json, jax, numpy as np, optax, jmlp
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name))
folder = jax.config.jax_compilation_cache_dir or None  # set by import jmlp
net = jmlp.MLP((3, 4, 2), "tanh", "softmax", "cross_entropy")
params = jmlp.init_params(jax.random.key(0), net.sizes)
x = np.random.default_rng(0).normal(size=(10, 3)); y = np.arange(10) % 2
jmlp.fit(net, params, optax.sgd(0.1), x, y, epochs=2)
print(json.dumps({"folder": str(folder), "hits": hits.count("/jax/compilation_cache/cache_hits"),
                  "misses": hits.count("/jax/compilation_cache/cache_misses")}))
"""


def start(env: dict) -> subprocess.Popen:
    command = [sys.executable, "-c", SCRIPT]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def run(env: dict) -> dict:
    return result(start(env))


def test_second_process_hits_the_cache(tmp_path):
    env = os.environ | {"JMLP_CACHE_DIR": str(tmp_path / "xla")}
    first, second = run(env), run(env)
    assert first["folder"] == str(tmp_path / "xla") and any((tmp_path / "xla").iterdir())
    assert first["hits"] == 0 and first["misses"] > 0
    assert second["hits"] == first["misses"] and second["misses"] == 0


def test_empty_setting_turns_it_off(tmp_path):
    assert run(os.environ | {"JMLP_CACHE_DIR": ""})["folder"] == "None"


def test_processes_sharing_the_folder_at_once_fill_it_whole(tmp_path):
    env = os.environ | {"JMLP_CACHE_DIR": str(tmp_path / "xla")}
    together = [result(p) for p in [start(env), start(env)]]
    after = run(env)  # every entry whole and readable: all hits, nothing compiled
    assert after["misses"] == 0 and after["hits"] > 0
    assert all(r["hits"] + r["misses"] == after["hits"] for r in together)
