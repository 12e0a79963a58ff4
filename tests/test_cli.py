"""The ``jmlp`` command line, driven as a user drives it: ``python -m jmlp ...`` in a subprocess.

Runs are kept tiny (iris, a few epochs, small hidden layers). Expected values come from the
files the run writes, read back with numpy / json / jmlp.load_checkpoint, and from the data.
"""

import csv
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jmlp
import jmlp.draw

RUN_FILES = {"config.json", "metrics.csv", "checkpoint.npz", "loss.png"}
TINY = ["--epochs", "3", "--hidden", "4", "--no-progress"]
GRADCHECK = ["gradcheck", "--sizes", "4,6,3", "--activation", "tanh", "--batch", "8"]


# Subprocess environment: CPU, and one persistent JAX compilation cache shared by this file's
# runs (set below), so a run that repeats an earlier one's programs (gradcheck twice, a train
# re-run) does not compile them again.
ENV = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
}


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    ENV["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))


def jmlp_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """``python -m jmlp ARGS`` with the test's interpreter; text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "jmlp", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=ENV,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2 and exactly one stderr line ``jmlp: error: ...`` holding each needle."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("jmlp: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- train


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("runs") / "iris"
    proc = jmlp_cli("train", "--data", "iris", *TINY, "--seed", "3", "--out", out)
    return out, proc


def test_train_iris_writes_the_run_folder(iris_run):
    out, proc = iris_run
    assert proc.returncode == 0, proc.stderr
    assert RUN_FILES | {"confusion.png"} <= {p.name for p in out.iterdir()}
    for name in ("train", "validation", "test", "accuracy", "epochs", "time", str(out)):
        assert name in proc.stdout
    assert "Traceback" not in proc.stderr


def test_train_metrics_has_one_row_per_epoch(iris_run):
    out, _ = iris_run
    rows = read_metrics(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"loss", "val_loss", "val_accuracy", "seconds"} <= set(rows[0])
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)


def test_train_config_round_trips(iris_run, tmp_path):
    out, _ = iris_run
    cfg = json.loads((out / "config.json").read_text())
    given = {"data": "iris", "epochs": 3, "hidden": [4], "seed": 3, "optimizer": "adam"}
    assert {k: cfg[k] for k in given} == given
    assert cfg["task"] == "classification"
    assert cfg["sizes"] == [4, 4, 3]  # iris: 4 features, 3 classes
    assert (cfg["loss"], cfg["output_activation"]) == ("cross_entropy", "softmax")
    # the same config, run again, gives the same training losses (same seed, same program)
    again = jmlp_cli("train", "--config", out / "config.json", "--no-progress", "--out", tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "config.json").read_text()) == {**cfg, "out": str(tmp_path)}
    first, second = read_metrics(out / "metrics.csv"), read_metrics(tmp_path / "metrics.csv")
    assert [r["loss"] for r in first] == [r["loss"] for r in second]


def test_train_checkpoint_loads_and_reproduces_the_table(iris_run):
    out, proc = iris_run
    cfg = json.loads((out / "config.json").read_text())
    template = jmlp.init_params(jax.random.key(0), cfg["sizes"])
    ck = jmlp.load_checkpoint(out / "checkpoint.npz", like_params=template)
    assert ck.epoch == 3
    assert ck.metadata["config"] == cfg
    # the test accuracy printed in the table, recomputed from the checkpoint's params
    ds = jmlp.data.load("iris", test_size=cfg["test_split"], seed=cfg["seed"])
    net = jmlp.MLP(tuple(cfg["sizes"]), cfg["activation"], cfg["output_activation"], cfg["loss"])
    predicted = np.argmax(np.asarray(jmlp.forward(net, ck.params, ds.x_test)), axis=1)
    test_row = next(line for line in proc.stdout.splitlines() if line.startswith("test"))
    np.testing.assert_allclose(
        float(test_row.split()[2]), np.mean(predicted == ds.y_test), rtol=0, atol=5e-5
    )


def write_csv(path: Path, header: list[str], columns: list) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(zip(*columns))


@pytest.mark.parametrize(
    "task, target, score, sizes",
    [
        ("regression", "price", "R^2", [3, 4, 1]),
        ("classification", "label", "accuracy", [3, 4, 2]),
    ],
)
def test_train_on_a_user_csv(tmp_path, task, target, score, sizes):
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 120))
    price = 2 * a - b + 0.1 * rng.normal(size=120)
    label = np.where(a + b > 0, "cat", "dog")
    # the target column sits in the middle: it is found by name
    path = tmp_path / "table.csv"
    write_csv(path, ["a", target, "b", "c"], [a, price if task == "regression" else label, b, c])
    out = tmp_path / "run"
    proc = jmlp_cli(
        "train", "--data", path, "--target", target, "--task", task, *TINY, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    assert score in proc.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["task"], cfg["target"], cfg["sizes"]) == (task, target, sizes)
    if task == "classification":
        assert cfg["classes"] == ["cat", "dog"]
    expected = RUN_FILES | ({"confusion.png"} if task == "classification" else set())
    assert expected <= {p.name for p in out.iterdir()}


def test_train_on_mnist_idx_files(tmp_path):
    # 60 train and 20 test random 28 x 28 images in the four IDX files (gzipped) of MNIST
    rng = np.random.default_rng(0)
    sets = {}
    for stem, n in (("train", 60), ("t10k", 20)):
        sets[stem] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10
        jmlp.data.write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", sets[stem][0])
        jmlp.data.write_idx(
            tmp_path / f"{stem}-labels-idx1-ubyte.gz", sets[stem][1].astype(np.uint8)
        )
    out = tmp_path / "run"
    proc = jmlp_cli("train", "--data", f"mnist:{tmp_path}", *TINY, "--out", out)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["data"], cfg["sizes"], cfg["classes"]) == (
        f"mnist:{tmp_path}",
        [784, 4, 10],
        list(range(10)),
    )
    # the printed test accuracy is that of MNIST's own test images, pixels / 255
    template = jmlp.init_params(jax.random.key(0), cfg["sizes"])
    params = jmlp.load_checkpoint(out / "checkpoint.npz", like_params=template).params
    net = jmlp.MLP((784, 4, 10), "relu", "softmax", "cross_entropy")
    images, labels = sets["t10k"]
    x = images.reshape(20, 784).astype(np.float32) / 255
    predicted = np.argmax(np.asarray(jmlp.forward(net, params, x)), axis=1)
    test_row = next(line for line in proc.stdout.splitlines() if line.startswith("test"))
    assert float(test_row.split()[2]) == pytest.approx(np.mean(predicted == labels), abs=5e-5)
    # and jmlp draw reads the run as a 28 x 28 model
    assert jmlp.draw.load_run_model(out).side == 28


# ----------------------------------------------------------------------------- gradcheck


def test_gradcheck_passes_for_a_smooth_net():
    proc = jmlp_cli(*GRADCHECK, "--second-order")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("PASS")
    assert sum(line.split()[1:2] in (["W"], ["b"]) for line in lines) == 4  # 2 layers x W, b
    assert lines[-2].split()[:2] == ["H", "v"]  # the Hessian-vector product line


def test_gradcheck_exits_1_when_a_bound_is_not_met():
    # No smooth net makes honest gradients disagree, so the failure is shown with a bound no
    # finite difference can meet: rounding alone leaves a relative error far above 1e-30.
    proc = jmlp_cli(*GRADCHECK, "--fd-rtol", "1e-30")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("FAIL")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "--data", "iris", "--epochs", "zero"], ["--epochs", "zero"]),
        (["train", "--data", "iris", "--bogus"], ["--bogus"]),
        (["train", "--data", "iris", "--activation", "softmax"], ["softmax"]),  # jmlp's error
        (["frobnicate"], ["frobnicate"]),
        (["draw", "--run", "/nonexistent/run"], ["/nonexistent/run", "not a jmlp run folder"]),
    ],
)
def test_bad_options_give_one_line_and_exit_2(args, needles):
    assert_one_line_error(jmlp_cli(*args), *needles)


def test_unknown_data_name_lists_the_built_in_sets():
    proc = jmlp_cli("train", "--data", "irsi")
    assert_one_line_error(proc, "irsi", *jmlp.data.DATASETS)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.csv"
    assert_one_line_error(jmlp_cli("train", "--data", missing), str(missing))


def test_non_numeric_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("x1,x2,y\n1.0,2.0,0\n3.0,oops,1\n5.0,6.0,0\n")
    assert_one_line_error(jmlp_cli("train", "--data", path, *TINY), str(path), "x2", "oops")


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    "verb, words",
    [
        ("train", ["--data", "--hidden", "--optimizer", "--patience", "examples:", "digits"]),
        ("gradcheck", ["--sizes", "--dtype", "--fd-rtol", "examples:"]),
        ("bench", ["--quick", "--out", "examples:"]),
        ("draw", ["--run", "--port", "--host", "--no-browser", "127.0.0.1", "examples:"]),
    ],
)
def test_help_of_each_verb(verb, words):
    proc = jmlp_cli(verb, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: jmlp {verb}")
    for word in words:
        assert word in proc.stdout


def test_console_script_runs_the_same_main():
    """``jmlp`` (the installed script) and ``python -m jmlp`` both call ``jmlp.cli.main``."""
    import jmlp.cli

    scripts = importlib.metadata.entry_points(group="console_scripts", name="jmlp")
    assert [s.load() for s in scripts] == [jmlp.cli.main]
