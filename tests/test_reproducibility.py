"""The same key gives bitwise-identical params across runs and across processes; jit and eager
agree within float tolerance."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmlp

SCRIPT = """
import sys, jax, numpy as np, jmlp
net = jmlp.MLP((4, 16, 3), "tanh", "softmax", "cross_entropy")
x = jax.random.normal(jax.random.key(1), (60, 4))
y = jax.random.randint(jax.random.key(2), (60,), 0, 3)
params = jmlp.init_params(jax.random.key(0), net.sizes)
result = jmlp.fit(net, params, jmlp.optim.adam(1e-2), x, y, epochs=5, batch_size=16,
                  key=jax.random.key(3))
np.savez(sys.argv[1], *[np.asarray(a) for a in jax.tree.leaves(result.params)])
"""


def run_in_fresh_process(path):
    subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=True, timeout=120)
    with np.load(path) as saved:
        return [saved[k] for k in sorted(saved.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow  # two fresh processes
def test_same_key_is_bitwise_identical_across_processes(tmp_path):
    first = run_in_fresh_process(tmp_path / "a.npz")
    second = run_in_fresh_process(tmp_path / "b.npz")
    assert len(first) == 4
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_jit_and_eager_gradients_agree():
    net = jmlp.MLP((4, 8, 3), "relu", "softmax", "cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)  # float32
    x = jax.random.normal(jax.random.key(1), (10, 4), jnp.float32)
    y = jnp.arange(10) % 3
    eager = jmlp.backprop(net, params, x, y)
    jitted = jax.jit(jmlp.backprop, static_argnums=0)(net, params, x, y)
    # XLA may fuse and reorder the float32 sums: agreement to a few float32 roundings.
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
