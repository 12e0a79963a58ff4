"""The user-facing gradient check: it passes on correct gradients and catches a wrong one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmlp
import jmlp.gradient_check as gc


def problem(activation="tanh", output="softmax", loss="cross_entropy"):
    net = jmlp.MLP((3, 6, 4), activation, output, loss)
    params = jmlp.init_params(jax.random.key(0), net.sizes, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (10, 3))
    y = (
        jnp.arange(10) % 4
        if loss == "cross_entropy"
        else jax.random.normal(jax.random.key(2), (10, 4))
    )
    return net, params, x, y


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "gelu"])
def test_smooth_nets_pass_in_float64(activation):
    report = gc.gradcheck(*problem(activation), l2=0.01)
    assert len(report.rows) == 4 and report.dtype == "float64"
    # autodiff: same function, rounding only; finite differences: truncation O(h^2) ~ 1e-10 plus
    # rounding eps / h ~ 1e-11 relative to the loss, so 1e-6 relative to the gradient is generous.
    report.assert_close(rtol_autodiff=1e-10, rtol_fd=1e-6)
    assert "layer" in str(report) and "float64" in str(report)


def test_float32_report_is_within_float32_precision():
    report = gc.gradcheck(*problem(), dtype="float32")
    assert report.dtype == "float32"
    assert report.max_rel_autodiff < 1e-5  # a few float32 roundings (eps 1.2e-7)
    # central differences in float32: h = eps^(1/3) ~ 5e-3, error ~ eps^(2/3) ~ 2.4e-5 of the loss
    assert report.max_rel_fd < 5e-3


def test_finite_differences_match_a_known_gradient():
    # identity net, half_sse, one example: dL/dW = x^T (x W - t) exactly
    net = jmlp.MLP((2, 1), "identity", "identity", "half_sse")
    params = [{"W": jnp.array([[0.5], [-1.0]]), "b": jnp.zeros(1)}]
    x, t = jnp.array([[2.0, 3.0]]), jnp.array([[1.0]])
    fd = gc.finite_difference(net, params, x, t, 0, "W", jnp.arange(2))
    residual = 2.0 * 0.5 + 3.0 * -1.0 - 1.0  # -3
    np.testing.assert_allclose(fd, [2.0 * residual, 3.0 * residual], rtol=1e-9)


def test_a_wrong_gradient_is_reported(monkeypatch):
    def broken(net, params, x, y, *, l2=0.0, weights=None):
        value, grads = jmlp.backprop(net, params, x, y, l2=l2)
        grads[0]["W"] = grads[0]["W"].at[1, 2].multiply(1.01)
        return value, grads

    monkeypatch.setattr(gc, "backprop", broken)
    report = gc.gradcheck(*problem())
    assert report.rows[0].worst_index == (1, 2)
    assert report.rows[0].rel_autodiff > 1e-4 and report.rows[0].rel_fd > 1e-4
    with pytest.raises(AssertionError, match="gradients disagree"):
        report.assert_close()


def test_large_tensors_are_sampled():
    net = jmlp.MLP((30, 20, 2), "tanh", "identity", "mse")
    params = jmlp.init_params(jax.random.key(0), net.sizes, dtype=jnp.float64)
    x, y = (
        jax.random.normal(jax.random.key(1), (5, 30)),
        jax.random.normal(jax.random.key(2), (5, 2)),
    )
    report = gc.gradcheck(net, params, x, y, fd_entries=50)  # W1 has 600 entries: 50 are checked
    report.assert_close()


def test_second_order_line():
    report = gc.gradcheck(*problem("softplus"), l2=0.01, second_order=True)
    row = report.second_order
    assert row is not None and "H v" in str(report).splitlines()[-1]
    # autodiff: the same second derivative, rounding only. Central differences of the gradient
    # along a unit v with h = eps^(1/3) ~ 6e-6: truncation h^2 |d^3 L| / 6 ~ 1e-11 and rounding
    # eps |g| / h ~ 1e-11, relative to |Hv| ~ 0.1: 1e-6 is generous.
    assert row.rel_autodiff < 1e-12 and row.rel_fd < 1e-6
    assert report.max_rel_autodiff >= row.rel_autodiff
    report.assert_close()
    assert gc.gradcheck(*problem("softplus")).second_order is None


def test_a_wrong_hessian_vector_product_is_reported(monkeypatch):
    def broken(net, params, x, y, v, *, l2=0.0, weights=None):
        hv = jmlp.hvp(net, params, x, y, v, l2=l2)
        hv[1]["b"] = hv[1]["b"] * 1.01
        return hv

    monkeypatch.setattr(gc, "hvp", broken)
    report = gc.gradcheck(*problem("sigmoid"), second_order=True)  # a net not compiled before
    assert report.second_order.rel_autodiff > 1e-4 and report.second_order.rel_fd > 1e-4
    with pytest.raises(AssertionError, match="gradients disagree"):
        report.assert_close()
