"""Mutation testing: plausible one-line bugs, each of which named tests must catch.

    python tests/mutants.py                 # every mutant (about 10-15 minutes on 2 cores)
    python tests/mutants.py --only NAME ... # some of them (names as in the table)
    python tests/mutants.py --list          # the mutants and their tests, nothing run

For each mutant: the repository's files (``git ls-files``: tracked and untracked, not ignored,
as they are in the working tree) are copied into a temporary folder, the one line is changed
there (the original text must occur exactly once, else the mutant is reported as STALE), and
``python -m pytest -x -q -n 0 -p no:cacheprovider TESTS`` runs in that folder with the copy's
``jmlp`` first on ``PYTHONPATH``; a small plugin records ``jmlp.__file__`` so the tool can check
that the copy was the one tested, not an installed jmlp. Before the mutants, the union of their
tests runs once on an unchanged copy (``--no-baseline`` skips it): a test that fails there would
"catch" every mutant.

A mutant is *caught* when pytest reports a failing test, *SURVIVED* when its tests pass. The
table ends with the counts; the exit status is 0 when every mutant was caught, 1 otherwise
(survivors, stale text, a baseline or setup failure).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PYTEST = ("-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", "-p", "mutant_guard")
GUARD = """
import os, sys

def pytest_sessionfinish(session, exitstatus):
    module = sys.modules.get("jmlp")
    with open(os.environ["MUTANT_GUARD_OUT"], "w") as f:
        f.write(getattr(module, "__file__", "") or "")
"""


class Mutant(NamedTuple):
    """One plausible bug: ``original`` (exactly once in ``path``) becomes ``replacement``; any of
    ``tests`` (pytest node ids, relative to the repository root) must then fail."""

    name: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]


T = "tests/"
MUTANTS = [
    # --- the delta rule -------------------------------------------------------------------------
    Mutant(
        "backprop: output delta without the batch weights s_n",
        "jmlp/backprop.py",
        "g = scale * net.loss_fn.grad(h, t, axis=axis)",
        "g = net.loss_fn.grad(h, t, axis=axis)",
        (T + "test_backprop.py::test_l2_weights_and_reduction_equal_autodiff",),
    ),
    Mutant(
        "backprop: L2 added to the bias gradients too",
        "jmlp/backprop.py",
        '"b": g["b"]} for g, p in zip(grads, params)]',
        '"b": add(g["b"], p["b"])} for g, p in zip(grads, params)]',
        (T + "test_backprop.py::test_l2_weights_and_reduction_equal_autodiff",),
    ),
    Mutant(
        "backprop: custom_vjp's l2 cotangent is ||W||^2, not ||W||^2 / 2",
        "jmlp/backprop.py",
        'dl2 = 0.5 * sum(jnp.sum(p["W"] ** 2) for p in params)',
        'dl2 = sum(jnp.sum(p["W"] ** 2) for p in params)',
        (
            T + "test_backprop.py::test_custom_vjp_loss_l2_keyword_and_vmap",
            T + "test_backprop.py::test_custom_vjp_loss_passes_check_grads",
            T + "test_backprop.py::test_custom_vjp_loss_l2_cotangent_is_half_the_squared_weights",
        ),
    ),
    Mutant(
        "layouts: the bias gradient is the mean over the batch, not the sum",
        "jmlp/layouts.py",
        '"b": jnp.sum(delta, axis=0),',
        '"b": jnp.mean(delta, axis=0),',
        (T + "test_backprop.py::test_l2_weights_and_reduction_equal_autodiff",),
    ),
    # --- losses ---------------------------------------------------------------------------------
    Mutant(
        "losses: mse's derivative without the factor 2",
        "jmlp/losses.py",
        "return 2 * (y - t) / y.shape[axis]",
        "return (y - t) / y.shape[axis]",
        (T + "test_losses.py::test_grad_equals_autodiff_float64",),
    ),
    Mutant(
        "losses: huber's derivative beyond the threshold ignores delta",
        "jmlp/losses.py",
        "return jnp.where(r * jnp.sign(r) <= delta, r, delta * jnp.sign(r)) / y.shape[axis]",
        "return jnp.where(r * jnp.sign(r) <= delta, r, jnp.sign(r)) / y.shape[axis]",
        (
            T + "test_losses.py::test_huber_delta_is_honoured",
            T + "test_losses.py::test_grad_equals_autodiff_float64",
        ),
    ),
    Mutant(
        "losses: huber's second derivative is 0 at |r| = delta",
        "jmlp/losses.py",
        "return (r * jnp.sign(r) <= delta).astype(y.dtype) / y.shape[axis]",
        "return (r * jnp.sign(r) < delta).astype(y.dtype) / y.shape[axis]",
        (T + "test_losses.py::test_hess_at_ties_is_autodiffs",),
    ),
    Mutant(
        "losses: sigmoid + binary cross-entropy delta as the cancelling h - t",
        "jmlp/losses.py",
        "return (1 - t) * h - t * jax.nn.sigmoid(-z)",
        "return h - t",
        (
            T + "test_losses.py::test_fused_value_and_delta_keep_relative_precision",
            T + "test_losses.py::test_saturated_sigmoid_delta_with_exact_labels_keeps_its_digits",
        ),
    ),
    Mutant(
        "losses: poisson as t (e^u - 1 - u) for every u (e^u = e^z / t overflows for small t)",
        "jmlp/losses.py",
        "value = jnp.where(near, t1 * (jnp.expm1(jnp.where(near, u, 0)) - u), y - t1 * (1 + u))",
        "value = t1 * (jnp.expm1(u) - u)",
        (T + "test_losses.py::test_fused_value_and_delta_keep_relative_precision",),
    ),
    Mutant(
        "losses: exp + poisson hvp with the target's rate t in place of e^z",
        "jmlp/losses.py",
        "lambda z, h, t, v, axis=-1: h * v",
        "lambda z, h, t, v, axis=-1: t * v",
        (T + "test_losses.py::test_fused_hvp_equals_autodiff_wrt_z",),
    ),
    Mutant(
        "losses: softmax + cross-entropy delta h - t (targets assumed to sum to 1)",
        "jmlp/losses.py",
        "return jnp.where(dominant, t_others - total * h_others, h * total - t)",
        "return jnp.where(dominant, t_others - total * h_others, h - t)",
        (T + "test_losses.py::test_fused_delta_equals_autodiff_wrt_z",),
    ),
    Mutant(
        "losses: softmax + cross-entropy Hessian product without sum(t)",
        "jmlp/losses.py",
        "return jnp.sum(t, axis=axis, keepdims=True) * h * (v - jnp.sum(h * v, axis=axis, "
        "keepdims=True))",
        "return h * (v - jnp.sum(h * v, axis=axis, keepdims=True))",
        (T + "test_losses.py::test_fused_hvp_equals_autodiff_wrt_z",),
    ),
    Mutant(
        "losses: binary cross-entropy derivative with a sign error",
        "jmlp/losses.py",
        "return jnp.where(_inside_clip(y), (1 - t) / (1 - p) - t / p, 0)",
        "return jnp.where(_inside_clip(y), (1 - t) / (1 - p) + t / p, 0)",
        (T + "test_losses.py::test_grad_equals_autodiff_float64",),
    ),
    # --- activations ----------------------------------------------------------------------------
    Mutant(
        "activations: sigmoid' as the cancelling h (1 - h)",
        "jmlp/activations.py",
        "    e = jnp.exp(-jnp.abs(z))\n    return e / (1 + e) ** 2",
        "    return h * (1 - h)",
        (T + "test_activations.py::test_full_relative_precision_over_the_range",),
    ),
    Mutant(
        "activations: tanh' as the cancelling 1 - h^2",
        "jmlp/activations.py",
        "return 4 * e / (1 + e) ** 2",
        "return 1 - h * h",
        (T + "test_activations.py::test_full_relative_precision_over_the_range",),
    ),
    Mutant(
        "activations: relu'(0) = 1",
        "jmlp/activations.py",
        "return (z > 0).astype(z.dtype)",
        "return (z >= 0).astype(z.dtype)",
        (T + "test_activations.py::test_derivative_at_the_kink_is_autodiffs",),
    ),
    Mutant(
        "activations: elu'' with alpha fixed at 1",
        "jmlp/activations.py",
        "return jnp.where(z > 0, jnp.zeros_like(z), h + alpha)",
        "return jnp.where(z > 0, jnp.zeros_like(z), h + 1)",
        (
            T + "test_activations.py::test_deriv2_equals_autodiff_float64",
            T + "test_curvature.py::test_hvp_equals_autodiff",
        ),
    ),
    Mutant(
        "activations: softmax's second-order term without its last product",
        "jmlp/activations.py",
        "return ds * centred - h * jnp.sum(g * ds, axis=axis, keepdims=True)",
        "return ds * centred",
        (T + "test_activations.py::test_softmax_second_order_term_equals_jax_jvp_of_its_vjp",),
    ),
    # --- optimizers -----------------------------------------------------------------------------
    Mutant(
        "optim: Adam's second bias correction uses b1",
        "jmlp/optim.py",
        "c1, c2 = 1 - b1**state.count, 1 - b2**state.count",
        "c1, c2 = 1 - b1**state.count, 1 - b1**state.count",
        (T + "test_optim.py::test_100_steps_equal_optax_twin",),
    ),
    Mutant(
        "optim: Adam's bias correction counts from t = 2",
        "jmlp/optim.py",
        "c1, c2 = 1 - b1**state.count, 1 - b2**state.count",
        "c1, c2 = 1 - b1 ** (state.count + 1), 1 - b2 ** (state.count + 1)",
        (T + "test_optim.py::test_100_steps_equal_optax_twin",),
    ),
    Mutant(
        "optim: momentum without the learning rate on g",
        "jmlp/optim.py",
        "lambda v, g: _like(gamma, v) * v + _like(eta, g) * g, state.velocity, grads",
        "lambda v, g: _like(gamma, v) * v + g, state.velocity, grads",
        (T + "test_optim.py::test_100_steps_equal_optax_twin",),
    ),
    Mutant(
        "optim: Nesterov steps along v, not g + gamma v (heavy ball)",
        "jmlp/optim.py",
        "lambda v, g: -_like(eta, g) * (g + _like(gamma, v) * v), velocity, grads",
        "lambda v, g: -_like(eta, g) * v, velocity, grads",
        (T + "test_optim.py::test_100_steps_equal_optax_twin",),
    ),
    Mutant(
        "optim: eps inside and outside the root swapped",
        "jmlp/optim.py",
        "return (eps, 0.0) if eps_inside_sqrt else (0.0, eps)",
        "return (0.0, eps) if eps_inside_sqrt else (eps, 0.0)",
        (
            T + "test_optim.py::test_100_steps_equal_optax_twin",
            T + "test_optim.py::test_steps_match_hand_arithmetic",
        ),
    ),
    Mutant(
        "optim: AdamW's decay not scaled by the learning rate",
        "jmlp/optim.py",
        "lambda d, p: -_like(eta, d) * (d + _like(weight_decay, p) * p), direction, params",
        "lambda d, p: -_like(eta, d) * d - _like(weight_decay, p) * p, direction, params",
        (T + "test_optim.py::test_100_steps_equal_optax_twin",),
    ),
    Mutant(
        "optim: schedules called with the step count after the increment",
        "jmlp/optim.py",
        "return learning_rate(count) if callable(learning_rate) else learning_rate",
        "return learning_rate(count + 1) if callable(learning_rate) else learning_rate",
        (T + "test_optim.py::test_schedule_gives_twin_trajectory",),
    ),
    # --- checkpoints ----------------------------------------------------------------------------
    Mutant(
        "checkpoint: a leaf's dtype not checked against the template",
        "jmlp/checkpoint.py",
        "if shape != got_shape or str(dtype) != got_dtype:",
        "if shape != got_shape:",
        (T + "test_checkpoint.py::test_template_mismatch_names_the_leaf",),
    ),
    Mutant(
        "checkpoint: a typed key reloaded with the default implementation",
        "jmlp/checkpoint.py",
        'return jax.random.wrap_key_data(data, impl=info["impl"])',
        "return jax.random.wrap_key_data(data)",
        (T + "test_checkpoint.py",),
    ),
    Mutant(
        "checkpoint: written in place, not through a temporary file",
        "jmlp/checkpoint.py",
        'fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)',
        "fd, tmp = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), target",
        (T + "test_checkpoint.py::test_failed_save_keeps_previous_checkpoint",),
    ),
    Mutant(
        "checkpoint: files of the current version refused as newer",
        "jmlp/checkpoint.py",
        'if meta["version"] > VERSION:',
        'if meta["version"] >= VERSION:',
        (T + "test_checkpoint.py::test_round_trip_params_adam_epoch_key",),
    ),
    # --- the engine's stopping rules and NaN policy ---------------------------------------------
    Mutant(
        "engine: tol stops only below the tolerance, not at it",
        "jmlp/engine.py",
        "reached = keep & (loss <= settings.tol)",
        "reached = keep & (loss < settings.tol)",
        (T + "test_train.py::test_tol_stops_when_the_loss_equals_it",),
    ),
    Mutant(
        "engine: a tie with the best val_loss counts as an improvement",
        "jmlp/engine.py",
        "improved = keep & (value < best_loss - settings.min_delta)",
        "improved = keep & (value <= best_loss - settings.min_delta)",
        (T + "test_train.py::test_a_val_loss_equal_to_the_best_is_no_improvement",),
    ),
    Mutant(
        "engine: patience waits one epoch more",
        "jmlp/engine.py",
        "waited = keep & (stale >= settings.patience)",
        "waited = keep & (stale > settings.patience)",
        (T + "test_train.py::test_early_stopping_restores_best_params",),
    ),
    Mutant(
        "engine: a non-finite epoch is kept (NaN policy ignored)",
        "jmlp/engine.py",
        "keep = members.active & finite",
        "keep = members.active",
        (T + "test_train.py::test_non_finite_loss_stops_naming_the_epoch_with_last_finite_state",),
    ),
    # --- estimators, curvature, fingerprints, key period, draw server ---------------------------
    Mutant(
        "sklearn: the two-class probabilities' columns swapped",
        "jmlp/sklearn/estimators.py",
        "return np.hstack([1 - out, out]) if out.shape[1] == 1 else out",
        "return np.hstack([out, 1 - out]) if out.shape[1] == 1 else out",
        (T + "test_sklearn.py::test_two_classes_use_one_sigmoid_output",),
    ),
    Mutant(
        "curvature: sharpness runs one Lanczos step fewer than asked",
        "jmlp/curvature.py",
        "min(iters, flat.size), key, flat.dtype)",
        "min(iters - 1, flat.size), key, flat.dtype)",
        (
            T + "test_curvature.py::test_sharpness_of_one_step_is_the_rayleigh_quotient",
            T + "test_curvature.py::test_sharpness_of_few_steps_is_the_top_ritz_value",
        ),
    ),
    Mutant(
        "curvature: Lanczos scans one step fewer than its basis holds",
        "jmlp/curvature.py",
        "jax.lax.scan(step, carry, jnp.arange(steps))",
        "jax.lax.scan(step, carry, jnp.arange(steps - 1))",
        (T + "test_curvature.py::test_sharpness_of_few_steps_is_the_top_ritz_value",),
    ),
    Mutant(
        "curvature: the Hessian product's L2 term on the product, not the direction",
        "jmlp/curvature.py",
        'return [{"W": g["W"] + l2 * dv["W"], "b": g["b"]} for g, dv in zip(products, v)]',
        'return [{"W": g["W"] + l2 * g["W"], "b": g["b"]} for g, dv in zip(products, v)]',
        (T + "test_curvature.py::test_l2_weights_and_reduction",),
    ),
    Mutant(
        "fingerprint: arrays compared by dtype and shape only",
        "jmlp/fingerprint.py",
        'return ("array", a.dtype.str, a.shape, a.tobytes())',
        'return ("array", a.dtype.str, a.shape)',
        (T + "test_fingerprint.py",),
    ),
    Mutant(
        "fingerprint: closed-over values ignored",
        "jmlp/fingerprint.py",
        "tuple(_walk(cell.cell_contents, seen) for cell in fn.__closure__ or ()),",
        "(),",
        (T + "test_fingerprint.py",),
    ),
    Mutant(
        "train: key period from the first word of each key only",
        "jmlp/train/setup.py",
        "data = np.asarray(jax.random.key_data(keys)).reshape(len(keys), -1)",
        "data = np.asarray(jax.random.key_data(keys)).reshape(len(keys), -1)[:, :1]",
        (T + "test_train.py::test_key_period_of_keys_from_seeds",),
    ),
    Mutant(
        "train: the ensemble layout (backprop's pass) for every learning rule",
        "jmlp/train/setup.py",
        'hand = opts.gradient == "backprop" and opts.rule == "backprop"',
        'hand = opts.gradient == "backprop"',
        (T + "test_feedback_training.py::test_fit_many_members_train_with_their_own_feedback",),
    ),
    Mutant(
        "engine: the alignment angles counting the padded rows",
        "jmlp/engine.py",
        "scale = example_scale(plan.net, size, buckets.row_mask(data.n, size, dtype), dtype)",
        "scale = example_scale(plan.net, size, None, dtype)",
        (
            T
            + "test_feedback_training.py::test_history_angles_are_jmlp_alignment_at_the_epoch_end_params",
        ),
    ),
    Mutant(
        "engine: the alignment angles at the epoch's first params",
        "jmlp/engine.py",
        "metrics.append(epoch_alignment(plan, data, params, feedback, l2))",
        "metrics.append(epoch_alignment(plan, data, block[0], feedback, l2))",
        (
            T
            + "test_feedback_training.py::test_history_angles_are_jmlp_alignment_at_the_epoch_end_params",
        ),
    ),
    Mutant(
        "buckets: the first padded row drawn into the permutation",
        "jmlp/buckets.py",
        "real = order < n",
        "real = order <= n",
        (T + "test_buckets.py::test_the_padded_permutation_is_jax_s_permutation_of_the_real_rows",),
    ),
    Mutant(
        "engine: the first padded row weighted in the last mini-batch",
        "jmlp/engine.py",
        "return idx, positions < n",
        "return idx, positions <= n",
        (T + "test_train.py::test_partial_last_batch_matches_python_loop",),
    ),
    Mutant(
        "engine: the examples' weights left out of a step",
        "jmlp/engine.py",
        "return jnp.broadcast_to(mask, w.shape) * w",
        "return jnp.broadcast_to(mask, w.shape)",
        (T + "test_sample_weight.py::test_full_batch_fit_equals_steps_on_the_weighted_loss",),
    ),
    Mutant(
        "engine: a step on a batch whose weights are all 0 taken",
        "jmlp/engine.py",
        "taken = jnp.broadcast_to(jnp.sum(weights, -1) > 0, (members,))",
        "taken = jnp.broadcast_to(jnp.sum(weights, -1) >= 0, (members,))",
        (
            T + "test_sample_weight.py::"
            "test_mini_batch_fit_equals_the_loop_and_skips_a_batch_of_zero_weight",
        ),
    ),
    Mutant(
        "metrics: the first padded row counted in a set's metrics",
        "jmlp/metrics.py",
        "weights = (jnp.arange(x.shape[0]) < (val[2]",
        "weights = (jnp.arange(x.shape[0]) <= (val[2]",
        (T + "test_buckets.py::test_metrics_of_a_padded_set_are_those_of_its_rows",),
    ),
    Mutant(
        "engine: min_delta ignored by patience",
        "jmlp/engine.py",
        "improved = keep & (value < best_loss - settings.min_delta)",
        "improved = keep & (value < best_loss)",
        (T + "test_train.py::test_patience_without_validation_watches_the_training_loss",),
    ),
    Mutant(
        "draw: the saved mean added, not subtracted, before the network",
        "jmlp/data/preprocessing.py",
        "return (x - self.x_mean.astype(dtype)) / self.x_scale.astype(dtype)",
        "return (x + self.x_mean.astype(dtype)) / self.x_scale.astype(dtype)",
        (T + "test_draw.py::test_the_input_is_the_image_less_the_mean_over_the_std",),
    ),
    Mutant(
        "draw: negative ink accepted",
        "jmlp/draw.py",
        "if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:",
        "if not np.all(np.isfinite(a)) or a.max() > 1:",
        (T + "test_draw.py::test_bad_ink_is_named",),
    ),
    Mutant(
        "draw: NaN ink accepted",
        "jmlp/draw.py",
        "if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:",
        "if a.min() < 0 or a.max() > 1:",
        (T + "test_draw.py::test_bad_ink_is_named",),
    ),
    Mutant(
        "draw: empty ink accepted",
        "jmlp/draw.py",
        "if a.ndim != 2 or a.size == 0:",
        "if a.ndim != 2:",
        (T + "test_draw.py::test_bad_ink_is_named",),
    ),
]


def repository_files(root: Path) -> list[str]:
    """The files of the working tree git knows or would add (tracked, untracked not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return sorted({name for name in out.decode().split("\0") if name})


def copy_repository(root: Path, files: list[str], target: Path) -> None:
    """``files`` of ``root`` copied to ``target`` (a file deleted in the working tree skipped)."""
    for name in files:
        source = root / name
        if not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)


def apply(folder: Path, mutant: Mutant) -> str | None:
    """Change the mutant's line in ``folder``; None, or why it could not be done."""
    path = folder / mutant.path
    if not path.is_file():
        return f"{mutant.path} not found"
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        return f"original text found {count} times in {mutant.path}, expected once"
    path.write_text(text.replace(mutant.original, mutant.replacement))
    return None


def run_tests(folder: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    """``(pytest's exit status, its output)`` for ``tests`` in ``folder``; raises RuntimeError
    unless the jmlp that pytest imported lies in ``folder``."""
    guard = folder.parent / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "mutant_guard.py").write_text(GUARD)
    record = guard / "jmlp_file.txt"
    record.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(guard)]),
               MUTANT_GUARD_OUT=str(record), PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, *PYTEST, *tests], check=False, cwd=folder, env=env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    imported = record.read_text() if record.is_file() else ""
    if done.returncode in (0, 1) and not Path(imported).resolve().is_relative_to(folder.resolve()):
        raise RuntimeError(f"pytest imported jmlp from {imported!r}, not from the copy {folder}")
    return done.returncode, done.stdout + done.stderr


def verdict(status: int) -> str:
    """pytest's exit status as the mutant's fate."""
    return {0: "SURVIVED", 1: "caught", 5: "NO TESTS RAN", -1: "TIMED OUT"}.get(
        status, f"ERROR (pytest exit {status})"
    )


def summary(output: str) -> str:
    """The first failing test of pytest's short summary, else pytest's last line."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return (failed or lines or [""])[0 if failed else -1][:160]


def run_mutant(root: Path, files: list[str], mutant: Mutant | None, tests, timeout) -> tuple:
    """``(verdict, detail, seconds)`` of one mutant (None: the unchanged baseline)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jmlp-mutant-") as tmp:
        folder = Path(tmp) / "repo"
        copy_repository(root, files, folder)
        problem = apply(folder, mutant) if mutant is not None else None
        if problem is not None:
            return "STALE", problem, time.monotonic() - started
        status, output = run_tests(folder, tests, timeout)
    return verdict(status), summary(output), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="mutants whose name contains NAME"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unchanged run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(w in m.name for w in args.only)]
    if not chosen:
        parser.error(f"--only: no mutant name contains any of {args.only}")
    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.path}: {m.original!r}\n    -> {m.replacement!r}\n"
                  f"    tests: {' '.join(m.tests)}")  # fmt: skip
        return 0
    files = repository_files(ROOT)
    if not args.no_baseline:
        union = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        fate, detail, seconds = run_mutant(ROOT, files, None, union, args.timeout)
        print(f"baseline (no mutation, {len(union)} test selections): {detail} [{seconds:.0f} s]")
        if fate != "SURVIVED":  # every test must pass on the unchanged code
            print("the tests fail without any mutation: fix them first", file=sys.stderr)
            return 1
    width = max(len(m.name) for m in chosen)
    print(f"{'mutant':<{width}}  {'result':<12} seconds  first failure (or pytest's last line)")
    results = []
    for m in chosen:
        fate, detail, seconds = run_mutant(ROOT, files, m, m.tests, args.timeout)
        results.append(fate)
        print(f"{m.name:<{width}}  {fate:<12} {seconds:7.0f}  {detail}", flush=True)
    counts = {fate: results.count(fate) for fate in dict.fromkeys(results)}
    print(", ".join(f"{n} {fate}" for fate, n in counts.items()), f"of {len(results)} mutants")
    return 0 if all(fate == "caught" for fate in results) else 1


if __name__ == "__main__":
    sys.exit(main())
