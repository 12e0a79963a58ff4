"""The spec (MLP), the forward pass and the loss: against an independent numpy forward pass, under
jit, with reductions, weights, L2, mixed precision, and every documented input error."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TOL
from test_activations import NUMPY_ACTIVATIONS

import jmlp
from jmlp.activations import ACTIVATIONS, OUTPUT_ONLY
from jmlp.losses import LOSSES

HIDDEN = [name for name in ACTIVATIONS if name not in OUTPUT_ONLY]


def numpy_forward(params, x, hidden, output):
    """h^L by the documents' recursion z = h W + b, h = sigma(z), in float64 numpy."""
    h = np.asarray(x, np.float64)
    names = list(hidden) + [output]
    for layer, name in zip(params, names):
        h = NUMPY_ACTIVATIONS[name](h @ np.asarray(layer["W"], np.float64) + np.asarray(layer["b"]))
    return h


def numpy_mse(y_hat, t):
    return np.mean((y_hat - t) ** 2, axis=-1)


def problem(sizes=(3, 5, 4, 2), dtype=jnp.float64, batch=6, seed=0, **spec):
    net = jmlp.MLP(sizes, **spec)
    params = jmlp.init_params(jax.random.key(seed), sizes, bias_init=0.1, dtype=dtype)
    x = jax.random.normal(jax.random.key(seed + 1), (batch, sizes[0]), dtype)
    y = jax.random.normal(jax.random.key(seed + 2), (batch, sizes[-1]), dtype)
    return net, params, x, y


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# --- values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", list(ACTIVATIONS))
@pytest.mark.parametrize("hidden", HIDDEN)
def test_forward_matches_numpy(hidden, output):
    net, params, x, _ = problem(activation=hidden, output_activation=output)
    expected = numpy_forward(params, x, net.hidden_activations, output)
    np.testing.assert_allclose(jmlp.forward(net, params, x), expected, rtol=1e-12, atol=1e-14)


def test_mixed_activations_and_no_hidden_layer():
    net, params, x, _ = problem(activation=("tanh", "gelu_exact"), output_activation="softmax")
    expected = numpy_forward(params, x, ("tanh", "gelu_exact"), "softmax")
    np.testing.assert_allclose(jmlp.forward(net, params, x), expected, rtol=1e-12)
    net, params, x, _ = problem(sizes=(3, 2), output_activation="sigmoid")
    np.testing.assert_allclose(
        jmlp.forward(net, params, x), numpy_forward(params, x, (), "sigmoid"), rtol=1e-12
    )


def test_forward_cache_holds_every_layer():
    net, params, x, _ = problem(activation="tanh", output_activation="sigmoid")
    cache = jmlp.forward_cache(net, params, x)
    assert len(cache.h) == 4 and len(cache.z) == 3
    np.testing.assert_array_equal(cache.h[0], x)
    h = np.asarray(x)
    for l, layer in enumerate(params):
        z = h @ np.asarray(layer["W"]) + np.asarray(layer["b"])
        np.testing.assert_allclose(cache.z[l], z, rtol=1e-12, atol=1e-14)
        h = np.tanh(z) if l < 2 else NUMPY_ACTIVATIONS["sigmoid"](z)
        np.testing.assert_allclose(cache.h[l + 1], h, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("slope, alpha", [(0.2, 0.5), (0.01, 1.0)])
def test_activation_options_reach_the_forward_pass(slope, alpha):
    net, params, x, _ = problem(
        activation=("leaky_relu", "elu"), leaky_relu_slope=slope, elu_alpha=alpha
    )
    h = np.asarray(x)
    z1 = h @ np.asarray(params[0]["W"]) + np.asarray(params[0]["b"])
    h1 = np.where(z1 > 0, z1, slope * z1)
    z2 = h1 @ np.asarray(params[1]["W"]) + np.asarray(params[1]["b"])
    h2 = np.where(z2 > 0, z2, alpha * np.expm1(np.minimum(z2, 0)))
    expected = h2 @ np.asarray(params[2]["W"]) + np.asarray(params[2]["b"])
    np.testing.assert_allclose(jmlp.forward(net, params, x), expected, rtol=1e-12)


def test_loss_matches_numpy():
    net, params, x, y = problem(activation="tanh")
    y_hat = numpy_forward(params, x, net.hidden_activations, "identity")
    np.testing.assert_allclose(
        jmlp.loss(net, params, x, y), np.mean(numpy_mse(y_hat, np.asarray(y))), rtol=1e-13
    )


# --- single example, jit, the spec as a static argument --------------------------------------
@pytest.mark.parametrize("loss, output", [("mse", "identity"), ("cross_entropy", "softmax")])
def test_single_example_equals_its_row_of_the_batch_and_numpy(loss, output):
    # x (n_in,) gives (n_out,) and a scalar loss equal to row n of the batch's forward pass and to
    # the numpy forward pass of that row (the batch of 6 takes other matmul shapes than one row)
    net, params, x, y = problem(activation="tanh", output_activation=output, loss=loss)
    y = jax.nn.softmax(y) if loss == "cross_entropy" else y
    batch_out = jmlp.forward(net, params, x)
    expected = numpy_forward(params, x, net.hidden_activations, output)
    for n in range(x.shape[0]):
        out = jmlp.forward(net, params, x[n])
        assert out.shape == (2,)
        np.testing.assert_allclose(out, batch_out[n], rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(out, expected[n], rtol=1e-12)
        value = jmlp.loss(net, params, x[n], y[n])
        assert value.shape == ()
        t = np.asarray(y[n])
        exact = numpy_mse(expected[n], t) if loss == "mse" else -np.sum(t * np.log(expected[n]))
        np.testing.assert_allclose(value, exact, rtol=1e-12)


def test_jit_equals_no_jit():
    net, params, x, y = problem(activation="gelu", output_activation="softmax", loss="mse")
    fwd = jax.jit(jmlp.forward, static_argnums=0)
    lss = jax.jit(jmlp.loss, static_argnums=0)
    np.testing.assert_allclose(fwd(net, params, x), jmlp.forward(net, params, x), rtol=1e-14)
    np.testing.assert_allclose(lss(net, params, x, y), jmlp.loss(net, params, x, y), rtol=1e-14)


def test_mlp_is_frozen_hashable_and_a_static_argument():
    a = jmlp.MLP((3, 4, 2), ["tanh"], "softmax", "cross_entropy")
    b = jmlp.MLP((3, 4, 2), ("tanh",), "softmax", "cross_entropy")
    assert a == b and hash(a) == hash(b) and a.activation == ("tanh",)
    assert a.sizes == (3, 4, 2) and isinstance(a.sizes, tuple)
    assert a != jmlp.MLP((3, 4, 2), "relu", "softmax", "cross_entropy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.loss = "mse"
    traces = []

    def f(net, x):
        traces.append(net)
        return jnp.sum(x)

    g = jax.jit(f, static_argnums=0)
    g(a, jnp.ones(2))
    g(b, jnp.ones(2))  # equal spec: the cached trace is reused
    assert len(traces) == 1


# --- spec validation -------------------------------------------------------------------------
def _assert_lists_known(info, argument, bad, known):
    message = str(info.value)
    assert message.startswith(argument + ":"), message
    assert repr(bad) in message and all(repr(k) in message for k in known), message


@pytest.mark.parametrize(
    "argument, bad, known",
    [
        ("activation", "swish", ACTIVATIONS),
        ("output_activation", "swish", ACTIVATIONS),
        ("loss", "log_cosh", LOSSES),
        ("reduction", "max", ("mean", "sum")),
        ("precision", "fastest", ("default", "high", "highest")),
    ],
)
def test_unknown_names_list_the_known_ones(argument, bad, known):
    with pytest.raises(ValueError) as info:
        jmlp.MLP((3, 4, 2), **{argument: bad})
    _assert_lists_known(info, argument, bad, known)


def test_unknown_name_inside_an_activation_tuple():
    with pytest.raises(ValueError, match="activation: unknown name 'swish'"):
        jmlp.MLP((3, 4, 4, 2), ("tanh", "swish"))


@pytest.mark.parametrize("activation", [("tanh",), ("tanh", "relu", "relu"), ()])
def test_activation_tuple_length(activation):
    with pytest.raises(ValueError, match=r"activation: expected one name or 2 names .* got"):
        jmlp.MLP((3, 4, 4, 2), activation)


@pytest.mark.parametrize("activation", ["softmax", ("relu", "softmax")])
def test_softmax_is_output_only(activation):
    with pytest.raises(ValueError, match="activation: 'softmax' is allowed as output_activation"):
        jmlp.MLP((3, 4, 4, 2), activation)


@pytest.mark.parametrize("sizes", [(3,), (3, 0, 2), (3, 2.0), (3, -1)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes: expected"):
        jmlp.MLP(sizes)


def test_non_float_compute_dtype():
    with pytest.raises(TypeError, match="compute_dtype: expected a floating dtype"):
        jmlp.MLP((3, 2), compute_dtype="int8")


# --- input validation ------------------------------------------------------------------------
ALL_ENTRY_POINTS = [
    lambda net, p, x, y: jmlp.forward(net, p, x),
    jmlp.loss,
    jmlp.backprop,
    jmlp.autodiff,
]


@pytest.mark.parametrize("entry", ALL_ENTRY_POINTS)
@pytest.mark.parametrize("layer, name", [(0, "W"), (1, "W"), (2, "b")])
def test_params_shape_mismatch_names_the_leaf_and_both_shapes(entry, layer, name):
    net, params, x, y = problem()
    good = params[layer][name].shape
    bad = (good[0] + 1,) + good[1:]
    params[layer][name] = jnp.zeros(bad)
    expected = f"params[{layer}][{name!r}]: expected shape {good}"
    with pytest.raises(ValueError, match=re.escape(expected) + ".*" + re.escape(f"got {bad}")):
        entry(net, params, x, y)


def test_params_wrong_length_or_keys():
    net, params, x, _ = problem()
    with pytest.raises(ValueError, match="params: expected a list of 3 layer dicts"):
        jmlp.forward(net, params[:2], x)
    params[1] = {"W": params[1]["W"], "bias": params[1]["b"]}
    with pytest.raises(ValueError, match=r"params\[1\]: expected a dict with keys 'W' and 'b'"):
        jmlp.forward(net, params, x)


@pytest.mark.parametrize("shape", [(6, 4), (6, 2), (4,), (2, 6, 3), ()])
def test_x_wrong_width_or_rank(shape):
    net, params, _, y = problem()
    with pytest.raises(ValueError, match=re.escape("x: expected shape (batch, 3) or (3,), got")):
        jmlp.forward(net, params, jnp.ones(shape))
    with pytest.raises(ValueError, match="x: expected"):
        jmlp.loss(net, params, jnp.ones(shape), y)


@pytest.mark.parametrize("shape", [(6, 3), (5, 2), (6,), (2,), (6, 2, 1)])
def test_y_wrong_shape_or_batch(shape):
    net, params, x, _ = problem()
    for fn in (jmlp.loss, jmlp.backprop):
        with pytest.raises(ValueError, match=re.escape("y: expected shape (6, 2)")):
            fn(net, params, x, jnp.ones(shape))


@pytest.mark.parametrize("loss", ["mse", "half_sse", "mae", "huber"])
def test_integer_labels_with_a_regression_loss(loss):
    net, params, x, _ = problem(loss=loss)
    labels = jnp.arange(6) % 2
    for fn in (jmlp.loss, jmlp.backprop):
        with pytest.raises(TypeError, match="y: integer labels need a classification loss"):
            fn(net, params, x, labels)


def test_integer_labels_wrong_shape():
    net, params, x, _ = problem(output_activation="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match=r"y: expected integer labels of shape \(6,\)"):
        jmlp.loss(net, params, x, jnp.zeros((5,), jnp.int32))


@pytest.mark.parametrize("grad_fn", [jmlp.backprop, jmlp.autodiff])
def test_integer_labels_equal_one_hot_for_cross_entropy(grad_fn):
    net, params, x, _ = problem(
        activation="tanh", output_activation="softmax", loss="cross_entropy"
    )
    labels = jnp.array([0, 1, 1, 0, 1, 0])
    one_hot = np.eye(2)[np.asarray(labels)]
    v_int, g_int = grad_fn(net, params, x, labels)
    v_hot, g_hot = grad_fn(net, params, x, jnp.asarray(one_hot))
    y_hat = numpy_forward(params, x, net.hidden_activations, "softmax")
    expected = -np.mean(np.log(y_hat[np.arange(6), np.asarray(labels)]))
    np.testing.assert_allclose(v_int, expected, rtol=1e-12)
    np.testing.assert_allclose(v_hot, expected, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(g_int), jax.tree.leaves(g_hot)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)


def test_bool_labels_equal_integer_labels_single_column():
    net, params, x, _ = problem(
        sizes=(3, 4, 1), output_activation="sigmoid", loss="binary_cross_entropy"
    )
    labels = jnp.array([True, False, True, True, False, False])
    np.testing.assert_array_equal(
        jmlp.loss(net, params, x, labels), jmlp.loss(net, params, x, labels.astype(jnp.int32))
    )


def test_bool_labels_equal_integer_labels_for_cross_entropy():
    net, params, x, _ = problem(output_activation="softmax", loss="cross_entropy")
    labels = jnp.array([True, False, True, True, False, False])
    np.testing.assert_array_equal(
        jmlp.loss(net, params, x, labels), jmlp.loss(net, params, x, labels.astype(jnp.int32))
    )


@pytest.mark.parametrize("bad", [2, -1])
def test_out_of_range_labels_are_rejected(bad):
    net, params, x, _ = problem(output_activation="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match="y:"):
        jmlp.loss(net, params, x, jnp.array([0, 1, bad, 0, 1, 0]))


@pytest.mark.parametrize(
    "out, loss, labels",
    [
        ("sigmoid", "binary_cross_entropy", [0, 1, 1, 0, 1, 0]),
        ("tanh", "hinge", [-1, 1, 1, -1, 1, -1]),
    ],
)
def test_integer_labels_single_column(out, loss, labels):
    net, params, x, _ = problem(sizes=(3, 4, 1), output_activation=out, loss=loss)
    labels = jnp.array(labels)
    column = jnp.asarray(labels[:, None], jnp.float64)
    np.testing.assert_allclose(
        jmlp.loss(net, params, x, labels), jmlp.loss(net, params, x, column), rtol=1e-15
    )


# --- defaults and targets as users write them ---------------------------------------------------
@pytest.mark.parametrize(
    "loss, output",
    [
        ("cross_entropy", "softmax"),
        ("binary_cross_entropy", "sigmoid"),
        ("mse", "identity"),
        ("half_sse", "identity"),
        ("mae", "identity"),
        ("huber", "identity"),
        ("hinge", "identity"),
    ],
)
def test_output_activation_defaults_to_what_the_loss_needs(loss, output):
    net = jmlp.MLP((2, 3, 2), "tanh", loss=loss)
    assert net.output_activation == output
    explicit = jmlp.MLP((2, 3, 2), "tanh", output, loss)
    assert net == explicit and hash(net) == hash(explicit)


def test_default_cross_entropy_is_softmax_cross_entropy_of_the_logits():
    """PyTorch's habit: no output activation written, cross-entropy of raw outputs."""
    net, params, x, _ = problem(activation="tanh", loss="cross_entropy")
    labels = jnp.array([0, 1, 1, 0, 1, 0])
    z = numpy_forward(params, x, net.hidden_activations, "identity")
    log_softmax = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    expected = -np.mean(log_softmax[np.arange(6), np.asarray(labels)])
    np.testing.assert_allclose(jmlp.loss(net, params, x, labels), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "loss, output, advice",
    [
        ("cross_entropy", "identity", "output_activation='softmax'"),
        ("cross_entropy", "tanh", "output_activation='softmax'"),
        ("cross_entropy", "relu", "output_activation='softmax'"),
        ("binary_cross_entropy", "identity", "output_activation='sigmoid'"),
        ("binary_cross_entropy", "softplus", "output_activation='sigmoid'"),
        ("poisson", "identity", "output_activation='exp'"),
        ("poisson", "relu", "output_activation='exp'"),  # 0 is no rate
        ("poisson", "sigmoid", "output_activation='exp'"),
    ],
)
def test_log_loss_of_an_unbounded_output_is_refused(loss, output, advice):
    with pytest.raises(ValueError, match=f"output_activation: loss='{loss}' takes the log") as err:
        jmlp.MLP((2, 3, 2), "tanh", output, loss)
    assert advice in str(err.value) and f"got '{output}'" in str(err.value)


@pytest.mark.parametrize(
    "loss, output",
    [("cross_entropy", "sigmoid"), ("binary_cross_entropy", "softmax"), ("poisson", "softplus")],
)
def test_log_loss_of_any_probability_output_is_accepted(loss, output):
    assert jmlp.MLP((2, 3, 2), "tanh", output, loss).output_activation == output


def test_poisson_loss_is_half_the_deviance_of_an_exp_output():
    net, params, x, _ = problem(loss="poisson", activation="tanh")
    assert net.output_activation == "exp" and net.fused is not None
    t = np.random.default_rng(0).poisson(1.5, (6, 2)).astype(float)  # zeros included
    y_hat = numpy_forward(params, x, net.hidden_activations, "exp")
    with np.errstate(divide="ignore"):
        t_log_t = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0)
    expected = np.mean(np.sum(t_log_t - t * np.log(y_hat) - t + y_hat, axis=1))
    np.testing.assert_allclose(jmlp.loss(net, params, x, t), expected, rtol=1e-12)
    np.testing.assert_allclose(jmlp.forward(net, params, x), y_hat, rtol=1e-13)


def test_poisson_targets_must_not_be_negative():
    net, params, x, _ = problem(loss="poisson")
    t = np.ones((6, 2))
    t[2, 1] = -0.5
    message = r"y: targets for loss='poisson' must be in \[0, inf\) .*1 outside, e.g. -0.5"
    with pytest.raises(ValueError, match=message):
        jmlp.loss(net, params, x, t)
    with pytest.raises(ValueError, match=message):
        jmlp.fit(net, params, optax.sgd(0.1), x, t, epochs=1)
    with pytest.raises(TypeError, match=r"y: integer labels need a classification loss"):
        jmlp.loss(net, params, x, t.astype(int))  # counts as floats: the message says so


def test_exp_is_an_output_activation_only():
    with pytest.raises(ValueError, match="activation: 'exp' is allowed as output_activation only"):
        jmlp.MLP((2, 3, 2), "exp", loss="poisson")


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_softmax_over_one_unit_is_refused(loss):
    with pytest.raises(ValueError, match="softmax over one output unit is always 1"):
        jmlp.MLP((2, 3, 1), "tanh", "softmax", loss)
    assert jmlp.MLP((2, 3, 2), "tanh", "softmax", loss).sizes[-1] == 2


@pytest.mark.parametrize("loss", ["mse", "huber", "mae"])
def test_1d_float_targets_of_a_one_output_net_equal_the_column(loss):
    net, params, x, _ = problem(sizes=(3, 4, 1), loss=loss)
    y = jnp.linspace(-1.0, 1.0, 6)
    for fn in (jmlp.loss, jmlp.backprop):
        for a, b in zip(
            jax.tree.leaves(fn(net, params, x, y)), jax.tree.leaves(fn(net, params, x, y[:, None]))
        ):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "out, loss, labels",
    [
        ("softmax", "cross_entropy", [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]),
        ("sigmoid", "binary_cross_entropy", [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]),
        ("tanh", "hinge", [-1.0, 1.0, 1.0, -1.0, 1.0, -1.0]),
    ],
)
def test_whole_valued_float_labels_equal_integer_labels(out, loss, labels):
    n_out = 2 if loss == "cross_entropy" else 1
    net, params, x, _ = problem(sizes=(3, 4, n_out), output_activation=out, loss=loss)
    floats = jnp.array(labels)
    ints = floats.astype(jnp.int32)
    np.testing.assert_array_equal(
        jmlp.loss(net, params, x, floats), jmlp.loss(net, params, x, ints)
    )
    jitted = jax.jit(jmlp.loss, static_argnums=0)  # no value checks under jit; the same loss
    np.testing.assert_array_equal(jitted(net, params, x, floats), jitted(net, params, x, ints))


@pytest.mark.parametrize("bad", [0.5, np.nan])
def test_fractional_float_labels_are_named(bad):
    net, params, x, _ = problem(output_activation="softmax", loss="cross_entropy")
    with pytest.raises(
        ValueError, match="y: 1-D float labels for loss='cross_entropy' must be whole"
    ):
        jmlp.loss(net, params, x, jnp.array([0.0, 1.0, bad, 0.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    "loss, shape, reason",
    [
        ("mse", (6,), "1-D targets fit a net with one output, this net has 2 (sizes[-1])"),
        ("mse", (5, 2), "5 rows for the 6 examples of x"),
        ("mse", (6, 3), "3 columns for 2 outputs (sizes[-1])"),
        ("mse", (6, 2, 1), "3 axes, expected 2"),
        (
            "cross_entropy",
            (6, 1),
            "1 columns for 2 outputs (sizes[-1]); give class labels as a 1-D",
        ),
    ],
)
def test_target_shape_errors_say_what_is_wrong(loss, shape, reason):
    net, params, x, _ = problem(loss=loss)
    with pytest.raises(ValueError, match=re.escape(f"got {shape}: {reason}")):
        jmlp.loss(net, params, x, jnp.zeros(shape))


# --- reductions, weights, L2 -----------------------------------------------------------------
@pytest.mark.parametrize("grad_fn", [jmlp.backprop, jmlp.autodiff])
def test_sum_reduction_is_batch_times_mean(grad_fn):
    spec = {"activation": "tanh", "output_activation": "sigmoid", "loss": "binary_cross_entropy"}
    net_mean, params, x, _ = problem(**spec)
    net_sum = jmlp.MLP(net_mean.sizes, reduction="sum", **spec)
    y = (jnp.arange(12).reshape(6, 2) % 3 == 0).astype(jnp.float64)
    v_mean, g_mean = grad_fn(net_mean, params, x, y)
    v_sum, g_sum = grad_fn(net_sum, params, x, y)
    np.testing.assert_allclose(v_sum, 6 * v_mean, rtol=1e-14)
    for a, b in zip(jax.tree.leaves(g_sum), jax.tree.leaves(g_mean)):
        np.testing.assert_allclose(a, 6 * b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weights(reduction):
    net, params, x, y = problem(activation="relu", reduction=reduction)
    w = np.array([2.0, 1.0, 0.0, 3.0, 1.0, 0.5])
    per_example = numpy_mse(numpy_forward(params, x, net.hidden_activations, "identity"), y)
    expected = np.sum(w * per_example) / (np.sum(w) if reduction == "mean" else 1)
    np.testing.assert_allclose(jmlp.loss(net, params, x, y, weights=w), expected, rtol=1e-13)
    v_bp, g_bp = jmlp.backprop(net, params, x, y, weights=w)
    v_ad, g_ad = jmlp.autodiff(net, params, x, y, weights=w)
    np.testing.assert_allclose(v_bp, expected, rtol=1e-13)
    np.testing.assert_allclose(v_ad, expected, rtol=1e-13)
    for a, b in zip(jax.tree.leaves(g_bp), jax.tree.leaves(g_ad)):
        np.testing.assert_allclose(a, b, **TOL["float64"])


def test_integer_weights_equal_repeated_rows():
    net, params, x, y = problem(activation="tanh")
    w = np.array([2, 1, 0, 3, 1, 1])
    reps = np.repeat(np.arange(6), w)
    v_w, g_w = jmlp.backprop(net, params, x, y, weights=w)
    v_r, g_r = jmlp.backprop(net, params, x[reps], y[reps])
    np.testing.assert_allclose(v_w, v_r, rtol=1e-13)
    for a, b in zip(jax.tree.leaves(g_w), jax.tree.leaves(g_r)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_weights_wrong_shape():
    net, params, x, y = problem()
    with pytest.raises(ValueError, match=re.escape("weights: expected shape (6,), got (5,)")):
        jmlp.loss(net, params, x, y, weights=jnp.ones(5))


def test_l2_adds_half_l2_sum_of_squared_weights_not_biases():
    net, params, x, y = problem(activation="tanh")
    l2 = 0.3
    penalty = 0.5 * l2 * sum(np.sum(np.asarray(p["W"]) ** 2) for p in params)
    base = jmlp.loss(net, params, x, y)
    np.testing.assert_allclose(jmlp.loss(net, params, x, y, l2=l2) - base, penalty, rtol=1e-12)
    # biases are not penalised: moving them changes the penalised and plain losses alike
    moved = [{"W": p["W"], "b": p["b"] + 1.0} for p in params]
    diff = jmlp.loss(net, moved, x, y, l2=l2) - jmlp.loss(net, moved, x, y)
    np.testing.assert_allclose(diff, penalty, rtol=1e-12)
    for grad_fn in (jmlp.backprop, jmlp.autodiff):
        _, g0 = grad_fn(net, params, x, y)
        _, g1 = grad_fn(net, params, x, y, l2=l2)
        for a, b, p in zip(g1, g0, params):
            np.testing.assert_allclose(a["W"] - b["W"], l2 * p["W"], rtol=1e-10, atol=1e-14)
            np.testing.assert_array_equal(a["b"], b["b"])


# --- precision -------------------------------------------------------------------------------
def test_bfloat16_compute_dtype_is_within_bf16_tolerance_of_float32():
    spec = {"activation": "tanh", "output_activation": "softmax", "loss": "cross_entropy"}
    sizes = (16, 32, 32, 4)
    net32, params, x, _ = problem(sizes=sizes, dtype=jnp.float32, batch=8, **spec)
    net16 = jmlp.MLP(sizes, compute_dtype="bfloat16", **spec)
    assert net16.compute_dtype == "bfloat16"
    y = jnp.arange(8) % 4
    out16, out32 = jmlp.forward(net16, params, x), jmlp.forward(net32, params, x)
    assert out16.dtype == jnp.float32
    # bfloat16 keeps 8 significant bits: unit roundoff u = 2^-8 = 3.9e-3 (~2-3 decimal digits).
    # Each matmul rounds both inputs (error <= 2u per product, accumulated in float32), tanh and
    # softmax are 1-Lipschitz-ish, three layers: a few u normwise; 1e-2 ~ 2.5u (seen: 2.3e-3).
    # The lower bound shows bfloat16 is really used (float32 alone would differ by ~1e-7).
    assert 1e-4 < rel_err(out16, out32) < 1e-2
    v16, g16 = jmlp.backprop(net16, params, x, y)
    v32, g32 = jmlp.backprop(net32, params, x, y)
    assert abs(float(v16) - float(v32)) < 1e-2 * abs(float(v32))
    for a, b in zip(jax.tree.leaves(g16), jax.tree.leaves(g32)):
        assert a.dtype == jnp.float32  # parameters' dtype, not bfloat16
        # the backward pass adds its own bf16 matmuls: twice the budget (seen: <= 8e-3)
        assert rel_err(a, b) < 2e-2
    _, g_ad = jmlp.autodiff(net16, params, x, y)
    for a, b in zip(jax.tree.leaves(g_ad), jax.tree.leaves(g32)):
        assert a.dtype == jnp.float32 and rel_err(a, b) < 2e-2


@pytest.mark.parametrize("precision", ["highest", "high", "default", None])
def test_precision_is_accepted(precision):
    net64, params64, x64, _ = problem(activation="tanh")
    net = jmlp.MLP(net64.sizes, activation="tanh", precision=precision)
    params = jax.tree.map(lambda a: a.astype(jnp.float32), params64)
    out = jax.jit(jmlp.forward, static_argnums=0)(net, params, x64.astype(jnp.float32))
    assert out.dtype == jnp.float32
    expected = numpy_forward(params64, x64, ("tanh", "tanh"), "identity")
    # float32 everywhere on CPU; "default" on an accelerator may use bf16 passes (not here)
    tol = 1e-5 if precision == "highest" else 1e-2
    assert rel_err(out, expected) < tol


def test_inputs_and_targets_take_the_parameters_dtype():
    net, params, x, y = problem(dtype=jnp.float32)
    assert jmlp.forward(net, params, np.asarray(x, np.float64)).dtype == jnp.float32
    assert jmlp.loss(net, params, np.asarray(x, np.float64), np.asarray(y)).dtype == jnp.float32


# --- inputs that cannot give a right answer -----------------------------------------------------
def test_integer_params_are_refused_naming_the_leaf():
    """Integer weights would make every z an integer and softmax uniform: refused, not computed."""
    net = jmlp.MLP((2, 3, 2), "tanh", loss="cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    params[1]["b"] = jnp.zeros(2, jnp.int32)
    x, y = np.ones((2, 2)), np.array([0, 1])
    for call in (lambda: jmlp.forward(net, params, x), lambda: jmlp.loss(net, params, x, y)):
        with pytest.raises(
            TypeError, match=r"params\[1\]\['b'\]: expected a floating dtype.*int32"
        ):
            call()


def test_sparse_and_non_numeric_inputs_say_what_to_do():
    sparse = pytest.importorskip("scipy.sparse")
    net = jmlp.MLP((2, 3, 1), "tanh")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    with pytest.raises(TypeError, match=r"x: expected a dense array.*pass x\.toarray\(\)"):
        jmlp.forward(net, params, sparse.csr_matrix(np.eye(2)))
    with pytest.raises(TypeError, match=r"x: expected numbers, got an array of dtype object"):
        jmlp.forward(net, params, np.array([[1.0, "a"]], dtype=object))


def test_integers_that_32_bits_would_wrap_are_refused():
    """Without x64, JAX holds integers as int32: 2**32 + 1 would become 1, a valid label."""
    net = jmlp.MLP((2, 3, 2), "tanh", loss="cross_entropy")
    params = jmlp.init_params(jax.random.key(0), net.sizes)
    x, labels = np.zeros((2, 2)), np.array([0, 2**32 + 1])
    with jax.enable_x64(False):
        params32 = jax.tree.map(lambda a: a.astype(np.float32), params)
        with pytest.raises(ValueError, match=r"y: holds 4294967297, beyond the range of int32"):
            jmlp.loss(net, params32, x, labels)
        with pytest.raises(ValueError, match=r"y: holds 4294967297, .*codes 0\.\.k-1"):
            jmlp.fit(net, params32, optax.sgd(0.1), x, labels, epochs=1)
        with pytest.raises(ValueError, match=r"x: holds -2147483649, .*give x\.astype\(float\)"):
            jmlp.forward(net, params32, np.array([[-(2**31) - 1, 0]]))
        jmlp.forward(net, params32, np.array([[-(2**31), 2**31 - 1]]))  # int32's own range
    with pytest.raises(ValueError, match=r"y: integer labels .* must be in \[0, 2\)"):
        jmlp.loss(net, params, x, labels)  # int64 under x64: out of range, not wrapped


def test_a_misspelt_name_gets_the_closest_known_one():
    with pytest.raises(ValueError, match=r"activation: unknown name 'rleu'; did you mean 'relu'\?"):
        jmlp.MLP((2, 3, 1), "rleu")
    with pytest.raises(ValueError, match=r"loss: unknown name 'cross_entropie'; did you mean "):
        jmlp.MLP((2, 3, 1), loss="cross_entropie")
    with pytest.raises(ValueError, match=r"activation: unknown name 'tnah'; did you mean 'tanh'"):
        jmlp.activations.get_activation("tnah")
    with pytest.raises(ValueError, match=r"unknown name 'qqqq'; known: \["):  # nothing close
        jmlp.MLP((2, 3, 1), "qqqq")


@pytest.mark.parametrize(
    ("x", "dtype", "message"),
    [
        ([[1.0, 2.0], [np.nan, 0.0], [np.inf, 1.0]], None, r"x: row 1 \(and 1 more\) holds nan;"),
        ([1.0, -np.inf], None, r"x: row 0 holds -inf;"),
        (
            [[1.0, 2.0], [0.0, 1e39]],
            np.float32,
            r"x: row 1 holds 1e\+39, beyond the range of float32",
        ),
    ],
)
def test_check_finite_rows_names_the_first_bad_row(x, dtype, message):
    from jmlp.checks import check_finite_rows

    with pytest.raises(ValueError, match=message):
        check_finite_rows("x", np.asarray(x), dtype)
    if dtype is None:  # a jax array: the same answer
        with pytest.raises(ValueError, match=message):
            check_finite_rows("x", jnp.asarray(x), dtype)


def test_check_finite_rows_passes_finite_data_and_tracers():
    from jmlp.checks import check_finite_rows

    check_finite_rows("x", np.array([[1e38, -1e38]]), np.float32)
    check_finite_rows("x", np.array([[1, 2]]))  # integers are finite
    jax.jit(lambda a: check_finite_rows("x", a) or a)(jnp.array([np.nan]))  # unknown: passes
