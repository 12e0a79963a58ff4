"""Test-wide settings: float64 available, strict rank promotion, one table of tolerances."""

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
