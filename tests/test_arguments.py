"""jmlp.arguments: each bad argument is named in the error, with what was expected."""

import jax
import numpy as np
import optax
import pytest

import jmlp
from jmlp.arguments import (
    check_choice,
    check_int,
    check_number,
    check_optimizer,
    training_arrays,
    validation_arrays,
)

NET = jmlp.MLP((3, 4, 2), "tanh", "softmax", "cross_entropy")
PARAMS = jmlp.init_params(jax.random.key(0), NET.sizes)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int("epochs", 0, 1), r"epochs: expected an int >= 1, got 0"),
        (lambda: check_int("epochs", True, 1), r"epochs: expected an int >= 1, got True"),
        (lambda: check_int("batch_size", 9, 1, 8), r"batch_size: expected an int in \[1, 8\]"),
        (lambda: check_choice("gradient", "fd", ("backprop",)), r"gradient: expected one of"),
        (lambda: check_number("l2", -1.0), r"l2: expected a number >= 0, got -1.0"),
        (lambda: check_number("tol", float("nan")), r"tol: expected a number >= 0, got nan"),
    ],
)
def test_bad_values_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_good_values_pass():
    check_int("epochs", np.int64(3), 1)
    check_choice("gradient", "backprop", ("backprop", "autodiff"))
    check_number("l2", 0)
    check_optimizer(optax.sgd(0.1))


def test_optimizer_must_be_a_gradient_transformation():
    with pytest.raises(TypeError, match="optimizer: expected an optax.GradientTransformation"):
        check_optimizer(lambda g: g)


def test_training_arrays_name_the_arguments():
    x, y = np.zeros((4, 3)), np.array([0, 1, 1, 0])
    xb, t = training_arrays(NET, PARAMS, x, y, ("x", "y"))
    assert xb.shape == (4, 3) and t.shape == (4, 2)
    np.testing.assert_array_equal(t, np.eye(2)[y])
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\)"):
        training_arrays(NET, PARAMS, x[0], y, ("x", "y"))
    x_bad = x.copy()
    x_bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x: contains 1 NaN/inf values"):
        training_arrays(NET, PARAMS, x_bad, y, ("x", "y"))
    with pytest.raises(ValueError, match=r"validation\[0\] \(x_val\): expected at least one"):
        validation_arrays(NET, PARAMS, (np.zeros((0, 3)), np.zeros(0, int)))
    with pytest.raises(TypeError, match="validation: expected a pair"):
        validation_arrays(NET, PARAMS, {"x": x})
    assert validation_arrays(NET, PARAMS, None) is None
