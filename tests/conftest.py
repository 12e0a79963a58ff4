"""Test-wide settings: float64 available, strict rank promotion, one table of tolerances."""

import contextlib
import os

import jax

# Tests compile their programs afresh: no persistent compilation cache in ~/.cache (the CLI and
# the experiment scripts turn it on; tests/test_cache.py checks it in a folder of its own).
os.environ["JMLP_CACHE_DIR"] = ""

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Tolerances for comparing two gradients of the same function (hand-written vs autodiff).
# float64: both are exact up to rounding; 1e-10 relative leaves room for ~1e3 roundings of 1e-16.
# float32: eps = 1.2e-7; sums over a few hundred terms and chained layers lose ~2-3 digits.
TOL = {
    "float64": {"rtol": 1e-10, "atol": 1e-12},
    "float32": {"rtol": 2e-4, "atol": 2e-6},
}

# (output activation, loss) pairs that the per-pair matrices run only in the slow set (CI time):
# the exp output's unfused pairs and softplus + poisson, whose rows the default set meets
# elsewhere (exp's derivatives in test_activations, poisson's in test_losses, both by finite
# differences in test_backprop, each loss on the other outputs); exp + poisson runs by default.
SLOW_PAIRS = {("exp", loss) for loss in ("mse", "half_sse", "mae", "huber", "hinge")} | {
    ("softplus", "poisson")
}


@contextlib.contextmanager
def compiled():
    """The names of the programs XLA compiles inside the block (JAX's monitoring events; a list
    filled as it runs): ``"jit(run_chunk)"`` is a training loop."""
    names: list[str] = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name", ""))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
