"""Smoke tests of experiments/: every script runs with --quick, writes its JSON and figures, and
the numbers it reports pass checks that do not depend on how long it trained."""

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest

import jmlp

pytestmark = pytest.mark.slow  # every experiment script run in its own process

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = {  # script: figures it must write
    "worked_examples": ["doc001_error_curve.png"],
    "doc002_iris_diabetes": ["curves.png"],
    "doc003_classification": ["loss_curve.png", "test_error_hist.png"],
    "digits": ["misclassified.png", "lr_sweep.png"],
    "doc004_figures": [
        "activations.png",
        "losses_outliers.png",
        "optimizer_paths.png",
        "optimizer_losses.png",
    ],
    "backprop_vs_autodiff": ["agreement.png", "time_ratio.png"],
    "edge_of_stability": ["sharpness.png"],
    "sklearn_comparison": ["accuracy.png"],
    "sweep": ["sweep.png"],
    "accelerator": [],  # a table, results.md (checked below), no figure
    "kfac": ["curves.png"],
}


def run(script: str, out: Path, *extra: str, env: dict | None = None) -> dict:
    """Run ``script --quick --out out`` in a fresh interpreter; return its results.json."""
    env = os.environ | {"JAX_NUMPY_RANK_PROMOTION": "raise", "JAX_PLATFORMS": "cpu"} | (env or {})
    flags = env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    env["XLA_FLAGS"] = flags.strip()  # compiles about twice as fast; fine for a smoke test
    cmd = [sys.executable, str(EXPERIMENTS / f"{script}.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(
        cmd + list(extra), check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads((out / "results.json").read_text())


def write_small_mnist(directory: Path) -> None:
    """The four MNIST IDX files (gzipped), 60 train and 20 test random 28 x 28 images."""
    rng = np.random.default_rng(0)
    for stem, n in (("train", 60), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        jmlp.data.write_idx(directory / f"{stem}-images-idx3-ubyte.gz", images)
        labels = (np.arange(n) % 10).astype(np.uint8)
        jmlp.data.write_idx(directory / f"{stem}-labels-idx1-ubyte.gz", labels)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Every script's results.json and output folder; the runs go in parallel (mostly compiling)."""
    idx = tmp_path_factory.mktemp("idx")
    write_small_mnist(idx)
    jobs = {name: (name, ()) for name in SCRIPTS} | {"mnist": ("digits", ("--mnist", str(idx)))}
    jobs["edge_of_stability_seed_7"] = ("edge_of_stability", ("--seed", "7"))
    outs = {name: tmp_path_factory.mktemp(name) for name in jobs}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(run, script, outs[name], *extra)
            for name, (script, extra) in jobs.items()
        }
        return {name: (future.result(), outs[name]) for name, future in futures.items()}


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_script_writes_results_and_figures(results, script):
    data, out = results[script]
    assert data["config"]
    for figure in SCRIPTS[script]:
        assert (out / figure).stat().st_size > 1000, figure


def test_worked_examples_match_documents(results):
    data, _ = results["worked_examples"]
    assert data["mismatches"] == []
    status = {(doc, r["quantity"]): r["status"] for doc in ("doc001", "doc004") for r in data[doc]}
    # the errata listed in shared/seeds/README.md: 001's w3 table entry, 004's printed L
    assert status["doc001", "w3 new"] == "ERRATUM"
    assert status["doc004", "L"] == "ERRATUM"
    assert status["doc004", "w1 new"] == "ok"
    # an independent numpy loop of 001's update rules reaches E <= 1e-6 after 20 updates
    assert data["doc001_iterations"]["updates_to_tol"] == 20


def test_doc002_gradients_agree(results):
    data, _ = results["doc002_iris_diabetes"]
    for name in ("iris", "diabetes"):
        assert data["gradcheck"][name]["max_rel_autodiff"] < 1e-10
        assert data["gradcheck"][name]["max_rel_fd"] < 1e-5
    assert 0 <= data["iris"]["summary"]["min"] <= data["iris"]["summary"]["max"] <= 1


def test_doc003_errors_are_counts_of_100_test_examples(results):
    data, _ = results["doc003_classification"]
    errors = np.array(data["doc"]["test_errors"])
    assert errors.shape == (4,)
    np.testing.assert_allclose(errors * 100, np.round(errors * 100), atol=1e-4)
    assert 0 <= data["better"]["ensemble_error"] <= 1


def test_doc004_derivatives_match_autodiff(results):
    data, _ = results["doc004_figures"]
    assert max(data["activation_max_abs_diff"].values()) < 1e-12
    assert set(data["lines"]) >= {"mse", "mae", "huber"}


def test_backprop_vs_autodiff_agreement(results):
    data, _ = results["backprop_vs_autodiff"]
    # the full run's worst over 108 networks (experiments/README.md): 2.6e-15 in float64 and
    # 8.3e-7 in float32 (max|hand - autodiff| / max|autodiff| per tensor); margins ~40 and ~12
    assert data["max_rel_f64"] < 1e-13
    assert data["max_rel_f32"] < 1e-5


def test_edge_of_stability_runs_share_their_start(results):
    data, _ = results["edge_of_stability"]
    cfg, runs = data["config"], data["runs"]
    assert len(runs) == len(cfg["nets"]) * len(cfg["etas"])
    for r in runs:
        assert len(r["losses"]) == cfg["steps"]
        assert len(r["sharpness"]) == cfg["steps"] // cfg["every"]
        assert all(np.isfinite(r["sharpness"])) and min(r["sharpness"]) > 0
        assert r["loss_last"] < r["loss_first"]  # even --quick's few steps lower the loss
    for net in cfg["nets"]:  # one initialization per network, shared by its step sizes
        assert len({r["loss_first"] for r in runs if r["net"] == net}) == 1


def test_edge_of_stability_draws_its_start_from_the_seed(results):
    """With --seed 7 each network starts from init_params(key(7)): its first loss is the loss
    of those params (computed here), not the default seed's."""
    data, _ = results["edge_of_stability_seed_7"]
    default, _ = results["edge_of_stability"]
    cfg = data["config"]
    ds = jmlp.data.load(cfg["data"], standardize=True)
    t = np.eye(ds.n_classes)[ds.y_train]
    for activation, init in cfg["nets"].items():
        net = jmlp.MLP((ds.x_train.shape[1], *cfg["hidden"], ds.n_classes), activation)
        params = jmlp.init_params(jax.random.key(7), net.sizes, weight_init=init)
        out = np.asarray(jmlp.forward(net, params, ds.x_train), np.float64)
        expected = np.mean(0.5 * np.sum((out - t) ** 2, axis=1))
        first = {r["loss_first"] for r in data["runs"] if r["net"] == activation}
        other = {r["loss_first"] for r in default["runs"] if r["net"] == activation}
        assert len(first) == 1 and first != other
        np.testing.assert_allclose(first.pop(), expected, rtol=1e-5)


def test_sklearn_comparison_scores_both_libraries(results):
    data, _ = results["sklearn_comparison"]
    for scores in data["sets"].values():
        for lib in ("jmlp", "scikit-learn"):
            assert len(scores[lib]["scores"]) == len(data["seeds"])
            assert all(0 <= s <= 1 for s in scores[lib]["scores"])


def test_sweep_jmlp_and_plain_jax_agree(results):
    """The same members (init keys, data orders, Adam) trained by jmlp and by hand-written JAX:
    the same test accuracy at the best validation epoch, to an example or two of rounding."""
    data, _ = results["sweep"]
    ours, plain = data["accuracy"]["jmlp"], data["accuracy"]["plain JAX + optax"]
    for width in ours:
        np.testing.assert_allclose(ours[width], plain[width], atol=0.01)


def test_kfac_experiment_trains_every_method_on_both_problems(results):
    data, _ = results["kfac"]
    assert set(data["results"]) == {"digits_autoencoder", "mnist1d"}
    for entry in data["results"].values():
        assert [s["method"] for s in entry["methods"]] == ["sgd", "adam", "kfac"]
        for s in entry["methods"]:
            assert np.all(np.isfinite(s["curves"])) and s["seconds_per_member_epoch"] > 0


def test_accelerator_kit_on_eight_simulated_devices(tmp_path):
    """--quick with 8 CPU devices: the sharded fit spans them and equals one device's."""
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    data = run("accelerator", tmp_path, env=env)
    assert data["device"]["count"] == 8 and data["sharded"]["devices"] == 8
    assert data["sharded"]["params_rel_difference"] < 1e-5  # float32, reordered sums
    assert data["gradients"][0]["hand_vs_autodiff"] < 1e-5
    assert data["gradients"][1]["hand_vs_autodiff"] < 8 * 2.0**-8  # bf16 compute: u = 2^-8
    text = (tmp_path / "results.md").read_text()
    assert "fit over 8 local devices" in text and "bf16 matmul" in text


def test_digits_reads_small_idx_files(results):
    """--mnist reads the four IDX files the fixture wrote."""
    data, _ = results["mnist"]
    assert data["data"] == "mnist" and data["n_train"] == 60
    assert len(data["rows"]) == 4
    assert all(0 <= r["test_accuracy"] <= 1 for r in data["rows"])


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_help(script, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(script, EXPERIMENTS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "--seed" in capsys.readouterr().out
