"""jmlp.metrics: predictions and metrics against hand-set outputs, scikit-learn and the loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import r2_score as sk_r2_score

import jmlp
from jmlp.metrics import validation_metrics, validation_names


def params_of(rng, sizes):
    return [
        {"W": jnp.asarray(rng.normal(size=(i, o)) / i**0.5), "b": jnp.asarray(rng.normal(size=o))}
        for i, o in itertools.pairwise(sizes)
    ]


@pytest.mark.parametrize(
    ("loss", "out_act", "outputs", "expected"),
    [
        ("cross_entropy", "softmax", [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [1, 0]),
        ("binary_cross_entropy", "sigmoid", [[0.7], [0.3]], [1, 0]),
        ("binary_cross_entropy", "sigmoid", [[0.7, 0.2], [0.3, 0.9]], [[1, 0], [0, 1]]),
        ("hinge", "identity", [[0.4], [-2.0]], [1, -1]),
    ],
)
def test_predict_and_accuracy(loss, out_act, outputs, expected):
    """A one-layer net with b = 0 and W chosen so that the output is ``outputs`` per example:
    x is one-hot per example, W holds the pre-activation rows."""
    n_out = len(outputs[0])
    inv = {"softmax": np.log, "sigmoid": lambda p: np.log(p) - np.log1p(-np.asarray(p))}
    z = inv.get(out_act, np.asarray)(np.asarray(outputs))
    net = jmlp.MLP((2, n_out), (), out_act, loss)
    params = [{"W": jnp.asarray(z), "b": jnp.zeros(n_out)}]
    x = np.eye(2)
    np.testing.assert_array_equal(jmlp.predict(net, params, x), expected)
    np.testing.assert_array_equal(jmlp.predict(net, params, x[1]), expected[1])
    np.testing.assert_allclose(jmlp.predict_proba(net, params, x), outputs, rtol=1e-12)
    y = np.asarray([expected[0], expected[0]])  # right on the first example only
    y = y.astype(float) if y.ndim == 2 else y  # multi-label targets are rows
    np.testing.assert_allclose(jmlp.accuracy(net, params, x, y), 0.5, rtol=1e-15)
    np.testing.assert_allclose(jmlp.error_rate(net, params, x, y), 0.5, rtol=1e-15)


def test_r2_score_against_sklearn():
    rng = np.random.default_rng(0)
    net = jmlp.MLP((3, 8, 2), "tanh", "identity", "mse")
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2)) * [1.0, 5.0]
    params = params_of(rng, net.sizes)
    y_hat = np.asarray(jmlp.predict(net, params, x))
    expected = sk_r2_score(y, y_hat, multioutput="variance_weighted")
    np.testing.assert_allclose(jmlp.r2_score(net, params, x, y), expected, rtol=1e-12)


def test_accuracy_needs_a_classifier():
    net = jmlp.MLP((3, 2), (), "identity", "mse")
    params = params_of(np.random.default_rng(0), net.sizes)
    with pytest.raises(ValueError, match="net: accuracy needs a classification loss"):
        jmlp.accuracy(net, params, np.zeros((2, 3)), np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("net", "metric"),
    [
        (jmlp.MLP((3, 8, 4), "tanh", "softmax", "cross_entropy"), jmlp.accuracy),
        (jmlp.MLP((3, 8, 2), "relu", "identity", "mse"), jmlp.r2_score),
    ],
)
def test_validation_metrics_equal_the_public_ones(net, metric):
    """``validation_metrics`` on target rows = [jmlp.loss, accuracy, error] or [jmlp.loss, r2]."""
    rng = np.random.default_rng(1)
    params = params_of(rng, net.sizes)
    x = jnp.asarray(rng.normal(size=(16, 3)))
    if net.loss == "cross_entropy":
        y = rng.integers(0, 4, size=16)
        t = jnp.eye(4)[y]
    else:
        y = t = jnp.asarray(rng.normal(size=(16, 2)))
    values = validation_metrics(net, params, (x, t))
    assert len(values) == len(validation_names(net))
    expected = [jmlp.loss(net, params, x, y), metric(net, params, x, y)]
    if net.loss == "cross_entropy":
        expected.append(1 - expected[1])
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_non_finite_rows_get_no_answer():
    """A NaN row used to be class 0 (argmax of NaNs) and count as right; a float64 row beyond
    float32's range gave plausible probabilities. Both are refused, naming the row."""
    rng = np.random.default_rng(0)
    net = jmlp.MLP((2, 4, 3), "tanh", loss="cross_entropy")
    params = [
        {k: v.astype(jnp.float32) for k, v in layer.items()} for layer in params_of(rng, net.sizes)
    ]
    x = np.array([[0.1, 0.2], [np.nan, 0.3]])
    calls = [jmlp.predict, jmlp.predict_proba]
    for fn in calls:
        with pytest.raises(ValueError, match=r"x: row 1 holds nan"):
            fn(net, params, x)
    with pytest.raises(ValueError, match=r"x: row 1 holds nan"):
        jmlp.accuracy(net, params, x, np.array([0, 0]))
    with pytest.raises(ValueError, match=r"x: row 0 holds 1e\+39, beyond the range of float32"):
        jmlp.predict_proba(net, params, np.array([[1e39, 0.0]]))
    with pytest.raises(ValueError, match=r"x: row 0 holds inf"):  # one example, 1-D
        jmlp.predict(net, params, np.array([np.inf, 0.0]))
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), params)
    with pytest.raises(ValueError, match=r"x: row 1 holds nan"):
        jmlp.predict(net, stacked, x)
    assert jmlp.predict(net, params, x[:1]).shape == (1,)  # finite rows still answer


@pytest.mark.parametrize(
    "loss, n_out",
    [("cross_entropy", 4), ("binary_cross_entropy", 1), ("binary_cross_entropy", 3),
     ("hinge", 1), ("hinge", 4), ("mse", 4)],
)  # fmt: skip
def test_decisions_of_numpy_rows_equal_those_of_jax_rows(loss, n_out):
    """Numpy rows are decided on the host (no program), with JAX's answers: ties to the first."""
    from jmlp.metrics import decide

    net = jmlp.MLP((2, n_out), "identity", None, loss)
    rows = np.random.default_rng(0).choice([-1.0, 0.0, 0.5, 1.0], size=(50, n_out))
    rows = rows.astype(np.float32)  # few values: many ties, and 0.5 / 0 on the thresholds
    on_host = decide(net, rows)
    assert isinstance(on_host, np.ndarray) and on_host.dtype == np.int32
    np.testing.assert_array_equal(on_host, np.asarray(decide(net, jnp.asarray(rows))))
