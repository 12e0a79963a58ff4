"""jmlp.ensemble: the ensemble backward pass against vmapped autodiff, every member of fit_many
against jmlp.fit of that member alone, predictions, summaries, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TOL

import jmlp
from jmlp.ensemble import ensemble_predict, ensemble_predict_proba, init_many, member, summarize
from jmlp.train import fit_many

N = 4
CLS = jmlp.MLP((3, 6, 3), "tanh", "softmax", "cross_entropy")
REG = jmlp.MLP((3, 5, 4, 2), "relu", "identity", "mse", reduction="sum")
ADAM = optax.adam(0.05)
F64 = {"rtol": 1e-10, "atol": 1e-12}  # the same float64 sums, reordered, through a few epochs


def data(n=20, n_in=3, n_out=3, seed=0, labels=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in))
    y = rng.integers(0, n_out, n) if labels else rng.normal(size=(n, n_out))
    return x, y


def stacked(net, n=N, seed=0, dtype=jnp.float64):
    return init_many(jax.random.split(jax.random.key(seed), n), net.sizes, dtype=dtype)


def assert_trees(a, b, **tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jnp.shape(u) == jnp.shape(v)
        np.testing.assert_allclose(u, v, **tol)


# --- fit_many member by member against fit ------------------------------------------------------


def fit_member(net, params, m, optimizer, x, y, key, **kw):
    return jmlp.fit(net, member(params, m), optimizer, x, y, key=key, **kw)


@pytest.mark.parametrize("gradient", ["backprop", "autodiff"])
@pytest.mark.parametrize("shared", [True, False], ids=["one-key", "N-keys"])
def test_members_equal_fit(gradient, shared):
    """N = 20, B = 6: a partial last batch; l2 per member; validation metrics per epoch."""
    x, y = data()
    val = data(9, seed=3)
    params, l2 = stacked(CLS), np.array([0.0, 0.01, 0.0, 0.05])
    key = jax.random.key(7) if shared else jax.random.split(jax.random.key(7), N)
    kw = {"epochs": 3, "batch_size": 6, "validation": val}
    result = fit_many(
        CLS, ADAM, x, y, params=params, key=key, l2=l2, gradient=gradient, block_size=3, **kw
    )
    assert set(result.history) == {"loss", "val_loss", "val_accuracy", "val_error"}
    for m in range(N):
        k = key if shared else key[m]
        ref = fit_member(CLS, params, m, ADAM, x, y, k, l2=float(l2[m]), gradient=gradient, **kw)
        assert_trees(member(result.params, m), ref.params, **F64)
        for name, values in ref.history.items():
            assert result.history[name].shape == (N, 3)
            np.testing.assert_allclose(result.history[name][m], values, **F64)


def test_learning_rate_sweep_with_optimizer_function():
    x, y = data(12, n_out=2, labels=False)
    lrs = np.array([0.01, 0.3])
    params, key = stacked(REG, 2), jax.random.key(2)
    result = fit_many(
        REG,
        lambda h: optax.sgd(h["lr"], momentum=0.9),
        x,
        y,
        params=params,
        hparams={"lr": lrs},
        epochs=2,
        batch_size=5,
        key=key,
    )
    for m, lr in enumerate(lrs):
        ref = fit_member(
            REG, params, m, optax.sgd(lr, momentum=0.9), x, y, key, epochs=2, batch_size=5
        )
        assert_trees(member(result.params, m), ref.params, **F64)
        np.testing.assert_allclose(result.history["loss"][m], ref.history["loss"], **F64)


def test_full_batch_needs_no_key_float32_stays_float32_and_state_is_stacked():
    x, y = data(10)
    params = stacked(CLS, 2, dtype=jnp.float32)
    result = fit_many(CLS, ADAM, x, y, params=params, epochs=4)
    assert result.params[0]["W"].dtype == jnp.float32
    counts = [leaf for leaf in jax.tree.leaves(result.opt_state) if leaf.dtype == jnp.int32]
    np.testing.assert_array_equal(counts[0], [4, 4])  # Adam's step count, one per member
    for m in range(2):
        ref = jmlp.fit(CLS, member(params, m), ADAM, x, y, epochs=4)
        assert_trees(member(result.params, m), ref.params, **TOL["float32"])
        np.testing.assert_allclose(result.history["loss"][m], ref.history["loss"], **TOL["float32"])


def test_fit_many_takes_fits_argument_order_or_params_by_keyword():
    x, y = data(10)
    params = stacked(CLS, 2)
    in_order = fit_many(CLS, params, ADAM, x, y, epochs=3)
    by_keyword = fit_many(CLS, ADAM, x, y, params=params, epochs=3)
    assert_trees(in_order.params, by_keyword.params, rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"fit_many: expected \(net, params, optimizer, x, y\)"):
        fit_many(CLS, params, ADAM, x, y, params=params)
    with pytest.raises(TypeError, match="fit_many: expected"):
        fit_many(CLS, ADAM, x, y)


# --- building and using an ensemble ----------------------------------------------------------


def test_init_many_with_a_scale_per_member():
    keys, scales = jax.random.split(jax.random.key(0), 3), jnp.array([0.1, 1.0, 2.0])
    params = init_many(keys, (4, 3, 2), weight_init="normal", weight_scale=scales, bias_init=0.05)
    init = jax.jit(
        lambda k, s: jmlp.init_params(
            k, (4, 3, 2), weight_init="normal", weight_scale=s, bias_init=0.05
        )
    )
    for m in range(3):
        expected = init(keys[m], scales[m])
        assert_trees(member(params, m), expected, rtol=1e-6, atol=0)


def test_ensemble_prediction_averages_probabilities():
    params = stacked(CLS, 3)
    x, _ = data(5)
    forward = jax.jit(jmlp.forward, static_argnums=0)
    outputs = [forward(CLS, member(params, m), x) for m in range(3)]
    mean = (outputs[0] + outputs[1] + outputs[2]) / 3
    np.testing.assert_allclose(ensemble_predict_proba(CLS, params, x), mean, **TOL["float64"])
    np.testing.assert_array_equal(ensemble_predict(CLS, params, x), np.argmax(mean, axis=1))
    np.testing.assert_array_equal(ensemble_predict(CLS, params, x[0]), np.argmax(mean[0]))


def test_summarize_matches_numpy():
    values = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])  # 3 members, 2 epochs
    s = summarize(values)
    np.testing.assert_allclose(s["mean"], [3.0, 4.0])
    np.testing.assert_allclose(s["std"], [np.sqrt(8 / 3), np.sqrt(8 / 3)])
    np.testing.assert_allclose(s["min"], [1.0, 2.0])
    np.testing.assert_allclose(s["max"], [5.0, 6.0])
    final = summarize(values[:, -1])  # one number per statistic: plain floats, as printed
    assert final == {"mean": 4.0, "std": np.sqrt(8 / 3), "min": 2.0, "max": 6.0}
    assert all(type(v) is float for v in final.values())


# --- bad input --------------------------------------------------------------------------------

BAD = [  # (keyword overrides, error type, match)
    ({"key": jax.random.split(jax.random.key(0), 3)}, ValueError, "key: expected one key"),
    ({"key": 3}, TypeError, "key:"),
    ({"key": None}, TypeError, "key: mini-batch"),
    ({"hparams": {"lr": np.ones(3)}}, ValueError, r"hparams\['lr'\]"),
    ({"hparams": [1.0]}, TypeError, "hparams:"),
    ({"l2": np.ones(5)}, ValueError, "l2:"),
    ({"l2": -1.0}, ValueError, "l2:"),
    ({"gradient": "numeric"}, ValueError, "gradient:"),
    ({"epochs": 0}, ValueError, "epochs:"),
    ({"block_size": 0}, ValueError, "block_size:"),
    ({"batch_size": 99}, ValueError, "batch_size:"),
    ({"validation": (1,)}, TypeError, "validation:"),
]


@pytest.mark.parametrize("override, error, match", BAD)
def test_bad_input_names_the_argument(override, error, match):
    x, y = data()
    kw = {"params": stacked(CLS), "epochs": 1, "batch_size": 6, "key": jax.random.key(0)}
    with pytest.raises(error, match=match):
        fit_many(CLS, ADAM, x, y, **(kw | override))


def test_bad_params_and_optimizer():
    x, y = data()
    with pytest.raises(ValueError, match="params: expected stacked"):
        fit_many(CLS, ADAM, x, y, params=jmlp.init_params(jax.random.key(0), CLS.sizes))
    with pytest.raises(ValueError, match="params"):
        fit_many(CLS, ADAM, x, y, params=stacked(REG))
    with pytest.raises(TypeError, match="optimizer:"):
        fit_many(CLS, 0.1, x, y, params=stacked(CLS))
    with pytest.raises(TypeError, match="optimizer:"):
        fit_many(CLS, lambda h: 0.1, x, y, params=stacked(CLS))
    with pytest.raises(ValueError, match="x:"):
        fit_many(CLS, ADAM, x[:, :2], y, params=stacked(CLS))
