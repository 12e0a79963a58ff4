"""Row counts padded to buckets: the padded computation equals the plain one, and new lengths of
one bucket reuse the compiled program (compilations counted by JAX's own monitoring events)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compiled

import jmlp
from jmlp import buckets
from jmlp.metrics import validation_metrics


def test_buckets_are_powers_of_two_and_three_halves_of_them():
    sizes = [buckets.bucket(n) for n in range(1, 5000)]
    assert sizes[:8] == [8] * 8 and sizes == sorted(sizes)
    for n, size in enumerate(sizes, start=1):
        k = size.bit_length() - 1
        assert size >= n and size in (2**k, 3 * 2 ** (k - 1))
        assert n <= 8 or size < 1.5 * n  # padding adds less than half
    expected = {2**k for k in range(3, 13)} | {3 * 2**k for k in range(2, 12)}
    assert set(sizes) == expected  # 8, 12, 16, 24, ..., 4096, 6144: 20 programs for 1..4999 rows


@pytest.mark.parametrize("n", [1, 2, 7, 340, 341, 1625, 1626, 3000])
def test_the_padded_permutation_is_jax_s_permutation_of_the_real_rows(n):
    size = buckets.bucket(n)
    permute = jax.jit(buckets.permutation, static_argnums=2)
    for seed in range(3):
        key = jax.random.fold_in(jax.random.key(seed), 11)
        order = np.asarray(permute(key, jnp.int32(n), size))
        np.testing.assert_array_equal(order[:n], jax.random.permutation(key, n))
        np.testing.assert_array_equal(order[n:], np.arange(n, size))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_metrics_of_a_padded_set_are_those_of_its_rows(loss):
    rng = np.random.default_rng(0)
    out = "softmax" if loss == "cross_entropy" else "identity"
    net = jmlp.MLP((4, 6, 3), "tanh", out, loss)
    params = jmlp.init_params(jax.random.key(0), net.sizes, dtype=jnp.float64)
    x = rng.normal(size=(13, 4))
    t = np.eye(3)[rng.integers(0, 3, 13)] if loss == "cross_entropy" else rng.normal(size=(13, 3))
    padded = [jnp.asarray(buckets.pad_rows(a, 16)) for a in (x, t)]
    got = validation_metrics(net, params, (*padded, jnp.int32(13)))
    want = validation_metrics(net, params, (jnp.asarray(x), jnp.asarray(t)))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert float(want[0]) == pytest.approx(float(jmlp.loss(net, params, x, t)), rel=1e-13)


def test_folds_and_the_refit_compile_the_training_once():
    rng = np.random.default_rng(1)
    net = jmlp.MLP((5, 7, 3), "relu", "softmax", "cross_entropy")
    x, y = rng.normal(size=(512, 5)), rng.integers(0, 3, 512)
    opt = optax.adam(0.0123)  # a rate no other test uses: nothing compiled before
    params = jmlp.init_params(jax.random.key(2), net.sizes)

    def chunks(parts):
        with compiled() as names:
            for rows, val in parts:
                jmlp.fit(net, params, opt, x[:rows], y[:rows], epochs=2, batch_size=50,
                         key=jax.random.key(rows), validation=(x[-val:], y[-val:]))  # fmt: skip
        return sum("run_chunk" in name for name in names)

    assert chunks([(340, 86), (341, 85), (426, 86)]) == 1  # 5 folds of 426 rows, then the refit
    assert chunks([(380, 46)]) == 1  # 46 validation rows would waste the 128 rows: a new size


@pytest.mark.parametrize("k", [5, 7, 10])
def test_the_folds_of_any_k_fold_split_and_its_refit_share_their_row_sizes(k):
    """For every n, the training parts of a k-fold split (``n - ceil(n/k)`` to ``n - n // k``
    rows, largest or smallest first) and then all ``n`` rows are given one padded size."""
    from jmlp.train import programs

    for n in range(10, 3000, 7):
        parts = sorted({n - -(-n // k), n - n // k})
        for order in (parts, parts[::-1]):
            plan = (n, k, len(order))  # a fresh key: no earlier run's sizes
            sizes = {programs.row_sizes(plan, (rows,)) for rows in [*order, n]}
            assert len(sizes) == 1, (n, k, order, sizes)
            assert n <= sizes.pop()[0] < 2 * n
