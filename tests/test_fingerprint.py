"""jmlp.fingerprint: equal for functions that compute the same, different otherwise, None where
a value could change unseen."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmlp
from jmlp.fingerprint import fingerprint


def make(lr):
    return optax.adam(lr, b1=0.95)


RATE = 0.3


def uses_global(lr):
    return optax.sgd(RATE)


@pytest.mark.parametrize(
    ("build", "same"),
    [
        (lambda: optax.adam(1e-3), True),
        (lambda: optax.chain(jmlp.optim.add_l2(1e-3), optax.sgd(0.1, momentum=0.9)), True),
        (lambda: optax.adam(optax.cosine_decay_schedule(1e-3, 100)), True),
        (lambda: optax.adam(jnp.float32(1e-3)), True),
        (lambda: make, True),
    ],
)
def test_fresh_equal_objects_share_a_fingerprint(build, same):
    a, b = fingerprint(build()), fingerprint(build())
    assert a is not None and (a == b) == same and hash(a) == hash(b)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (lambda: optax.adam(1e-3), lambda: optax.adam(2e-3)),
        (lambda: optax.adam(1e-3), lambda: optax.adamw(1e-3)),
        (lambda: optax.adam(optax.cosine_decay_schedule(1e-3, 100)),
         lambda: optax.adam(optax.cosine_decay_schedule(1e-3, 101))),
        (lambda: optax.adam(jnp.float32(1e-3)), lambda: optax.adam(jnp.float64(1e-3))),
        # an array-valued setting counts by its value, not only its dtype and shape
        (lambda: optax.sgd(jnp.float32(0.1)), lambda: optax.sgd(jnp.float32(0.5))),
        (lambda: optax.adam(jnp.array([1e-3])[0]), lambda: optax.adam(jnp.array([2e-3])[0])),
    ],
)  # fmt: skip
def test_different_settings_differ(one, other):
    assert fingerprint(one()) != fingerprint(other())


def test_a_global_counts_by_its_current_value():
    global RATE
    before = fingerprint(uses_global)
    RATE = 0.4
    try:
        assert fingerprint(uses_global) != before
    finally:
        RATE = 0.3
    assert fingerprint(uses_global) == before


def test_values_that_could_change_unseen_give_none():
    rates = [0.1]
    assert fingerprint(lambda lr: optax.sgd(rates[0])) is None  # a list in the closure
    assert fingerprint(lambda lr: optax.sgd(np.array([0.1])[0])) is not None  # built anew
    default = np.zeros(2)
    assert fingerprint(lambda lr, a=default: optax.sgd(lr)) is None  # a mutable default
