"""Parameter initialisation: shapes and dtypes, the document-000 scheme, every fan-based scheme's
empirical spread against its formula, determinism, and argument errors."""

import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmlp
from jmlp.init import WEIGHT_INITS, _weight_std

N_IN, N_OUT = 800, 300  # a large, non-square layer: fan_in != fan_avg, 240000 draws per W

# Standard error of a sample standard deviation s of N draws: sd(s) / sigma = sqrt((k - 1) / (4 N))
# with k the kurtosis (3 normal, 9/5 uniform). We allow 5 standard errors (two-sided tail
# probability 6e-7), and 5 standard errors sigma / sqrt(N) for the sample mean.
KURTOSIS = {"normal": 3.0, "uniform": 9 / 5}
N_SIGMA = 5.0


def expected_std(scheme, n_in, n_out, weight_scale=1.0):
    """The table of jmlp/init.py's docstring, written out by hand."""
    table = {
        "normal": weight_scale,
        "uniform": weight_scale / math.sqrt(3),  # U(-a, a) has std a / sqrt(3)
        "lecun_normal": math.sqrt(1 / n_in),
        "lecun_uniform": math.sqrt(1 / n_in),
        "glorot_normal": math.sqrt(2 / (n_in + n_out)),
        "glorot_uniform": math.sqrt(2 / (n_in + n_out)),
        "he_normal": math.sqrt(2 / n_in),
        "he_uniform": math.sqrt(2 / n_in),
    }
    return table[scheme]


def assert_spread(W, sigma, form):
    W = np.asarray(W, dtype=np.float64).ravel()
    n = W.size
    se_std = sigma * math.sqrt((KURTOSIS[form] - 1) / (4 * n))
    assert abs(W.std() - sigma) < N_SIGMA * se_std, (W.std(), sigma, se_std)
    assert abs(W.mean()) < N_SIGMA * sigma / math.sqrt(n), (W.mean(), sigma)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("sizes", [(3, 1), (5, 50, 3), (2, 4, 4, 1), [7, 3, 2]])
def test_shapes_and_dtypes(sizes, dtype):
    params = jmlp.init_params(jax.random.key(0), sizes, dtype=dtype)
    assert isinstance(params, list) and len(params) == len(sizes) - 1
    for layer, n_in, n_out in zip(params, sizes[:-1], sizes[1:]):
        assert set(layer) == {"W", "b"}
        assert layer["W"].shape == (n_in, n_out) and layer["b"].shape == (n_out,)
        assert layer["W"].dtype == dtype and layer["b"].dtype == dtype


# Numbers as a user may write them: each must leave every leaf in ``dtype`` (a NumPy float64
# scalar, or a float64 scale traced by vmap, would promote float32 W to float64; a float32 scale
# must not round a float64 std). tests/test_properties.py draws JAX scalars too.
NUMBERS = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64])
@pytest.mark.parametrize("scheme", ["normal", "uniform", "he_normal"])
@pytest.mark.parametrize("number", NUMBERS, ids=["np.float64", "np.float32"])
def test_dtype_kept_whatever_the_type_of_the_numbers(number, scheme, dtype):
    key, sizes = jax.random.key(4), (3, 5, 2)
    got = jmlp.init_params(
        key,
        sizes,
        weight_init=scheme,
        weight_scale=number(0.5),
        bias_init=number(0.25),
        dtype=dtype,
    )
    scale, bias = float(number(0.5)), float(number(0.25))
    expected = jmlp.init_params(
        key, sizes, weight_init=scheme, weight_scale=scale, bias_init=bias, dtype=dtype
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtype_kept_under_vmap_over_float64_scales(dtype):
    # one scale per member, as jmlp.init_many passes them: a float64 array traced by vmap
    keys = jax.random.split(jax.random.key(5), 3)
    scales = np.array([0.1, 1.0, 2.0])
    stacked = jax.vmap(
        lambda k, s: jmlp.init_params(k, (3, 2), weight_init="normal", weight_scale=s, dtype=dtype)
    )(keys, scales)
    assert {a.dtype for a in jax.tree.leaves(stacked)} == {jnp.dtype(dtype)}
    for k, s, W in zip(keys, scales, stacked[0]["W"]):
        one = jmlp.init_params(k, (3, 2), weight_init="normal", weight_scale=float(s), dtype=dtype)
        np.testing.assert_array_equal(W, one[0]["W"])


def test_default_dtype_is_float32():
    params = jmlp.init_params(jax.random.key(0), (3, 2))
    assert params[0]["W"].dtype == jnp.float32 and params[0]["b"].dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_scheme_of_document_000(dtype):
    params = jmlp.init_params(
        jax.random.key(0),
        (N_IN, N_OUT, 7),
        weight_init="normal",
        weight_scale=0.1,
        bias_init=0.05,
        dtype=dtype,
    )
    for layer in params:
        np.testing.assert_array_equal(layer["b"], np.asarray(0.05, dtype))  # exactly 0.05
    assert_spread(params[0]["W"], 0.1, "normal")
    # the second layer is small (300 x 7): only a loose check that it is the same scale
    assert 0.08 < float(jnp.std(params[1]["W"])) < 0.12


@pytest.mark.parametrize("scheme", WEIGHT_INITS)
def test_empirical_std_matches_formula(scheme):
    params = jmlp.init_params(
        jax.random.key(1), (N_IN, N_OUT), weight_init=scheme, weight_scale=0.3
    )
    sigma = expected_std(scheme, N_IN, N_OUT, weight_scale=0.3)
    assert_spread(params[0]["W"], sigma, scheme.rsplit("_", 1)[-1])
    np.testing.assert_array_equal(params[0]["b"], 0.0)  # default bias 0


def test_every_scheme_is_covered():
    assert set(WEIGHT_INITS) == {
        "normal",
        "uniform",
        "lecun_normal",
        "lecun_uniform",
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
    }


@pytest.mark.parametrize("scheme", [s for s in WEIGHT_INITS if s.endswith("uniform")])
def test_uniform_bounds_respected(scheme):
    W = jmlp.init_params(jax.random.key(2), (N_IN, N_OUT), weight_init=scheme, weight_scale=0.3)
    W = np.asarray(W[0]["W"])
    bound = math.sqrt(3) * expected_std(scheme, N_IN, N_OUT, weight_scale=0.3)
    assert np.all(np.abs(W) <= bound * (1 + 1e-6))  # float32 rounding of the bound
    # 240000 uniform draws: the extremes come within bound * 1e-4 of the bound w.p. ~1 - e^-24
    assert W.max() > bound * (1 - 1e-4) and W.min() < -bound * (1 - 1e-4)


def test_default_scheme_is_he_normal():
    W = jmlp.init_params(jax.random.key(3), (N_IN, N_OUT))[0]["W"]
    assert_spread(W, math.sqrt(2 / N_IN), "normal")


def test_same_key_same_params_jitted_or_not():
    sizes = (4, 6, 2)
    a = jmlp.init_params(jax.random.key(7), sizes)
    b = jmlp.init_params(jax.random.key(7), sizes)
    c = jax.jit(lambda k: jmlp.init_params(k, sizes))(jax.random.key(7))
    d = jmlp.init_params(jax.random.key(8), sizes)
    for u, v, w in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(c)):
        np.testing.assert_array_equal(u, v)
        # same random bits under jit, but XLA fuses the normal transform differently: 1 ulp
        np.testing.assert_allclose(u, w, rtol=2.5e-7, atol=0)
    assert not np.array_equal(a[0]["W"], d[0]["W"])


def test_layers_get_independent_draws():
    params = jmlp.init_params(jax.random.key(0), (5, 5, 5), weight_init="normal")
    assert not np.array_equal(params[0]["W"], params[1]["W"])


@pytest.mark.parametrize(
    "sizes, error",
    [
        ((3,), ValueError),
        ((), ValueError),
        ((3, 0), ValueError),
        ((3, -2), ValueError),
        ((3, 2.5), ValueError),
        ((3, True), ValueError),
        ((3, "4"), ValueError),
        ("34", TypeError),
        (5, TypeError),
    ],
)
def test_bad_sizes_name_the_argument(sizes, error):
    with pytest.raises(error, match=r"sizes: expected .*got"):
        jmlp.init_params(jax.random.key(0), sizes)


@pytest.mark.parametrize(
    "key, got",
    [
        (0, "got int"),
        (None, "got NoneType"),
        (jax.random.split(jax.random.key(0), 2), "got an array (2,) of key<fry>"),
    ],
)
def test_a_non_key_is_named(key, got):
    with pytest.raises(TypeError, match=rf"key: expected one jax.random key.*{re.escape(got)}"):
        jmlp.init_params(key, (3, 2))


def test_numpy_integer_sizes_are_accepted():
    params = jmlp.init_params(jax.random.key(0), np.array([3, 2]))
    assert params[0]["W"].shape == (3, 2) and type(params[0]["W"].shape[0]) is int


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ValueError, match="weight_init") as info:
        jmlp.init_params(jax.random.key(0), (3, 2), weight_init="xavier")
    assert "'xavier'" in str(info.value) and all(s in str(info.value) for s in WEIGHT_INITS)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, "int8"])
def test_non_float_dtype_is_rejected(dtype):
    with pytest.raises(TypeError, match="dtype: expected a floating dtype"):
        jmlp.init_params(jax.random.key(0), (3, 2), dtype=dtype)


@pytest.mark.parametrize("scheme", ["he_normal", "glorot_uniform", "normal", "uniform"])
def test_each_layer_is_its_own_draw(scheme):
    """Layer l's weights are exactly ``jax.random.normal(split(key)[l], shape)`` times the scale
    (or ``uniform(..., minval=-a, maxval=a)``), though all layers are drawn in one program."""
    key, sizes = jax.random.key(5), (7, 13, 4, 9)
    params = jmlp.init_params(key, sizes, weight_init=scheme, weight_scale=0.3)
    for layer, k, (n_in, n_out) in zip(params, jax.random.split(key, 3), itertools.pairwise(sizes)):
        std = jnp.float32(_weight_std(scheme, n_in, n_out, jnp.float32(0.3)))
        if scheme.endswith("uniform"):
            a = std * 3**0.5
            expected = jax.random.uniform(k, (n_in, n_out), jnp.float32, minval=-a, maxval=a)
        else:
            expected = std * jax.random.normal(k, (n_in, n_out), jnp.float32)
        np.testing.assert_array_equal(layer["W"], expected)
