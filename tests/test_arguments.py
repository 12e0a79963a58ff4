"""jmlp.arguments: each bad argument is named in the error, with what was expected."""

import jax
import numpy as np
import optax
import pytest

import jmlp
from jmlp.arguments import (
    STEP_SIZES,
    check_built_optimizer,
    check_choice,
    check_int,
    check_number,
    check_optimizer,
    hparams_per_member,
    is_transformation_argument,
    per_member,
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


def test_optimizer_is_a_transformation_or_a_function_of_the_hparams():
    assert is_transformation_argument(optax.sgd(0.1), ())
    assert not is_transformation_argument(lambda lr: optax.sgd(lr), ("lr",))
    with pytest.raises(ValueError, match=r"hparams: \['lr'\] given, but optimizer is a Gradient"):
        is_transformation_argument(optax.sgd(0.1), ("lr",))
    with pytest.raises(TypeError, match=r"or a function of the hparams returning one, got float"):
        is_transformation_argument(0.1, ())
    half = type("Half", (), {"update": lambda self, g, s: (g, s)})()  # no init
    with pytest.raises(TypeError, match=r"\(init and update callables\), got Half"):
        is_transformation_argument(half, ())


def test_a_function_of_the_hparams_must_return_a_transformation():
    check_built_optimizer(optax.sgd(0.1))
    with pytest.raises(TypeError, match=r"optimizer: the function must return an optax.Gradient"):
        check_built_optimizer(0.1)
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    many = jmlp.init_many(jax.random.split(jax.random.key(0), 2), NET.sizes)
    with pytest.raises(TypeError, match=r"optimizer: the function must return .*, got float"):
        jmlp.fit_many(NET, lambda lr: lr, x, y, params=many, hparams={"lr": [0.1, 0.2]}, epochs=1)
    with pytest.raises(ValueError, match=r"hparams: \['lr'\] given, but optimizer is a Gradient"):
        jmlp.fit(NET, PARAMS, optax.sgd(0.1), x, y, epochs=1, hparams={"lr": 0.1})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: per_member("l2", np.zeros(2), 3, float), r"l2: expected a number or an array"),
        (lambda: per_member("patience", np.ones((3, 1), int), 3, int, integer=True), r"an int or"),
        (lambda: hparams_per_member({"lr": np.ones(2)}, 3, float), r"hparams\['lr'\]: expected"),
    ],
)
def test_per_member_values_have_one_value_or_one_per_member(call, message):
    with pytest.raises(ValueError, match=message + r".*of shape \(3,\), got shape \("):
        call()
    np.testing.assert_array_equal(per_member("l2", 0.5, 3, np.float32), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(per_member("l2", [0, 1, 2], 3, float), [0.0, 1.0, 2.0])


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


# --- data of the wrong kind, step sizes that climb -----------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "error", "message"),
    [
        (np.zeros((4, 3)), np.array(["a", "b", "a", "b"]), TypeError, r"y: expected numbers.*<U1"),
        (
            np.zeros((4, 3), object),
            np.array([0, 1, 1, 0]),
            TypeError,
            r"x: expected numbers.*object",
        ),
    ],
)
def test_training_arrays_refuse_strings_and_objects(x, y, error, message):
    with pytest.raises(error, match=message):
        training_arrays(NET, PARAMS, x, y, ("x", "y"))


def test_training_arrays_refuse_sparse_x():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"x: expected a dense array.*x\.toarray\(\)"):
        training_arrays(NET, PARAMS, sparse.csr_matrix(np.eye(4, 3)), np.zeros(4, int), ("x", "y"))


def test_training_arrays_name_the_first_non_finite_row():
    x = np.zeros((4, 3))
    x[2, 1] = x[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"x: contains 2 NaN/inf values \(the first in row 2\)"):
        training_arrays(NET, PARAMS, x, np.zeros(4, int), ("x", "y"))


@pytest.mark.parametrize("name", STEP_SIZES)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.1, r"got -0\.1 for every member"),
        (0.0, r"got 0\.0 for every member"),
        (np.array([0.1, 0.2, -1.0]), r"got -1\.0 for member 2"),
        (np.array([0.1, np.nan, 0.1]), r"got nan for member 1"),
    ],
)
def test_step_sizes_must_be_positive(name, value, message):
    with pytest.raises(ValueError, match=rf"hparams\['{name}'\]: expected a finite step size > 0"):
        hparams_per_member({name: value}, 3, np.float32)
    with pytest.raises(ValueError, match=message):
        hparams_per_member({name: value}, 3, np.float32)


def test_other_hparams_may_be_zero_or_negative():
    out = hparams_per_member(
        {"b1": 0.0, "weight_decay": np.array([0.0, 1e-4]), "lr": 0.1}, 2, float
    )
    np.testing.assert_array_equal(out["b1"], [0.0, 0.0])
    np.testing.assert_array_equal(out["lr"], [0.1, 0.1])


def test_fit_refuses_a_negative_learning_rate_in_hparams():
    """Given to jmlp.optim.adam the value is refused; given as hparams data it used to train
    upward without a word."""
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    with pytest.raises(ValueError, match=r"hparams\['learning_rate'\].*got -0\.1"):
        jmlp.fit(NET, PARAMS, jmlp.optim.sgd, x, y, epochs=1, hparams={"learning_rate": -0.1})
