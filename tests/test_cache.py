"""jmlp.cache: a second identical process loads its compiled programs from the persistent cache."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, jax, numpy as np, optax, jmlp
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name))
folder = jmlp.use_compilation_cache()
net = jmlp.MLP((3, 4, 2), "tanh", "softmax", "cross_entropy")
params = jmlp.init_params(jax.random.key(0), net.sizes)
x = np.random.default_rng(0).normal(size=(10, 3)); y = np.arange(10) % 2
jmlp.fit(net, params, optax.sgd(0.1), x, y, epochs=2)
print(json.dumps({"folder": str(folder), "hits": hits.count("/jax/compilation_cache/cache_hits"),
                  "misses": hits.count("/jax/compilation_cache/cache_misses")}))
"""


def run(env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_process_hits_the_cache(tmp_path):
    env = os.environ | {"JMLP_CACHE_DIR": str(tmp_path / "xla")}
    first, second = run(env), run(env)
    assert first["folder"] == str(tmp_path / "xla") and any((tmp_path / "xla").iterdir())
    assert first["hits"] == 0 and first["misses"] > 0
    assert second["hits"] == first["misses"] and second["misses"] == 0


def test_empty_setting_turns_it_off(tmp_path):
    assert run(os.environ | {"JMLP_CACHE_DIR": ""})["folder"] == "None"
