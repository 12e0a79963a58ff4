"""jmlp.cache: on at import; a second identical process loads its compiled programs from the
persistent cache, processes sharing the folder at once included; ``JMLP_CACHE_DIR=`` turns it off.
One network's programs compile with the quicker options on a CPU and train to the same result."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import jmlp
from jmlp import cache
from jmlp.train import programs

slow = pytest.mark.slow  # fresh processes sharing a compilation cache

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


@slow
def test_second_process_hits_the_cache(tmp_path):
    env = os.environ | {"JMLP_CACHE_DIR": str(tmp_path / "xla")}
    first, second = run(env), run(env)
    assert first["folder"] == str(tmp_path / "xla") and any((tmp_path / "xla").iterdir())
    assert first["hits"] == 0 and first["misses"] > 0
    assert second["hits"] == first["misses"] and second["misses"] == 0


@slow
def test_empty_setting_turns_it_off(tmp_path):
    assert run(os.environ | {"JMLP_CACHE_DIR": ""})["folder"] == "None"


@slow
def test_processes_sharing_the_folder_at_once_fill_it_whole(tmp_path):
    env = os.environ | {"JMLP_CACHE_DIR": str(tmp_path / "xla")}
    together = [result(p) for p in [start(env), start(env)]]
    after = run(env)  # every entry whole and readable: all hits, nothing compiled
    assert after["misses"] == 0 and after["hits"] > 0
    assert all(r["hits"] + r["misses"] == after["hits"] for r in together)


def test_quick_options_on_a_cpu_and_none_elsewhere():
    expected = cache.FAST_COMPILE if jax.default_backend() == "cpu" else None
    assert cache.compiler_options() == expected


def test_an_xla_without_the_options_gets_its_defaults(monkeypatch):
    monkeypatch.setattr(cache, "FAST_COMPILE", {"xla_cpu_no_such_option": True})
    cache.compiler_options.cache_clear()
    try:
        assert cache.compiler_options() is None
    finally:
        monkeypatch.undo()
        cache.compiler_options.cache_clear()


def test_quick_options_train_as_the_defaults_do(monkeypatch):
    """The same fit compiled both ways agrees to float32 rounding: the kernels may order or fuse
    their multiply-adds differently (a few ulps, 1e-7 here after 80 Adam steps)."""
    net = jmlp.MLP((4, 16, 3), "tanh", "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)

    def trained():
        programs._PROGRAMS.clear()
        fit = jmlp.fit(net, params, optax.adam(1e-2), x, y, epochs=20, batch_size=16,
                       key=jax.random.key(1))  # fmt: skip
        return fit.params, fit.history["loss"]

    quick = trained()
    monkeypatch.setattr(cache, "compiler_options", lambda: None)
    default = trained()
    programs._PROGRAMS.clear()
    for a, b in zip(jax.tree.leaves(quick), jax.tree.leaves(default)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
