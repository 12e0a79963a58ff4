"""The ``jmlp`` command line, driven as a user drives it: ``python -m jmlp ...`` in a subprocess.

Runs are kept tiny (iris, a few epochs, small hidden layers). Expected values come from the
files the run writes, read back with numpy / json / jmlp.load_checkpoint, and from the data.
"""

import csv
import gc
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jmlp
import jmlp.cli
import jmlp.draw
from jmlp.runs import predict_raw

pytestmark = pytest.mark.slow  # the command line in fresh processes: the slow set

RUN_FILES = {"config.json", "preprocessing.json", "metrics.csv", "checkpoint.npz", "loss.png"}
TINY = ["--epochs", "3", "--hidden", "4", "--no-progress"]
GRADCHECK = ["gradcheck", "--sizes", "4,6,3", "--activation", "tanh", "--batch", "8"]


# Subprocess environment: CPU, and one persistent JAX compilation cache shared by this file's
# runs (set below), so a run that repeats an earlier one's programs (gradcheck twice, a train
# re-run) does not compile them again. XLA's optimization level 0, as tests/test_experiments.py's
# runs: the runs are mostly compiling, and it compiles about twice as fast; the numbers compared
# between runs come from runs alike, and the rounding it changes is far inside every check.
ENV = {
    **os.environ,
    "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip(),
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
    for name in ("train", "validation", "test", "accuracy", "time", str(out)):
        assert name in proc.stdout
    assert "epochs      3 of 3\n" in proc.stdout
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
    optimizer_state = jmlp.optim.adam(cfg["lr"]).init(template)  # the template the README shows
    ck = jmlp.load_checkpoint(out / "checkpoint.npz", like_opt_state=optimizer_state)
    assert ck.epoch == 3 and int(ck.opt_state.count) == 3 * 7  # 108 examples, batch 16: 7 steps
    assert ck.metadata["config"] == cfg
    net, params, prep = jmlp.load_run(out)
    assert net == jmlp.MLP(tuple(cfg["sizes"]), cfg["activation"], "softmax", "cross_entropy")
    assert prep.classes == ("setosa", "versicolor", "virginica")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ck.params)):
        np.testing.assert_array_equal(a, b)
    # the test accuracy printed in the table, recomputed from the checkpoint's params
    ds = jmlp.data.load("iris", test_size=cfg["test_split"], seed=cfg["seed"])
    predicted = np.argmax(np.asarray(jmlp.forward(net, ck.params, ds.x_test)), axis=1)
    test_row = next(line for line in proc.stdout.splitlines() if line.startswith("test"))
    np.testing.assert_allclose(
        float(test_row.split()[2]), np.mean(predicted == ds.y_test), rtol=0, atol=5e-5
    )


def write_csv(path: Path, header: list[str], columns: list, delimiter: str = ",") -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
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
    write_csv(
        path, ["a", target, "b", "c"], [a, price if task == "regression" else label, b, c], ";"
    )
    out = tmp_path / "run"
    proc = jmlp_cli(
        "train",
        "--data",
        path,
        "--target",
        target,
        "--task",
        task,
        *TINY,
        "--out",
        out,
        "--delimiter",
        ";",
    )
    assert proc.returncode == 0, proc.stderr
    assert score in proc.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["task"], cfg["target"], cfg["sizes"]) == (task, target, sizes)
    if task == "classification":
        assert cfg["classes"] == ["cat", "dog"]
    else:
        assert "units       loss of the standardized target (y - " in proc.stdout
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


# ----------------------------------------------------------------------------- predict, resume
# Driven in this process through jmlp.cli.main (the console script's function, tested below):
# the runs share this process's compiled programs, which keeps them fast.


def main(capsys, *args) -> tuple[int, str, str]:
    code = jmlp.cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """A CSV of two classes (by a linear rule) and a price in hundreds, with named columns."""
    rng = np.random.default_rng(1)
    a, b, noise = rng.normal(size=(3, 240))
    kind = np.where(a - b > 0, "cat", "dog")
    price = 500 + 200 * a + 100 * b + 5 * noise
    folder = tmp_path_factory.mktemp("pets")
    write_csv(folder / "pets.csv", ["weight", "age", "kind", "price"], [a, b, kind, price])
    # new rows: the columns in another order, one more column; the answers are known
    write_csv(
        folder / "new.csv",
        ["price", "id", "age", "kind", "weight"],
        [price[:40], range(40), b[:40], kind[:40], a[:40]],
    )
    return folder


@pytest.mark.parametrize("target", ["kind", "price"])
def test_predict_answers_in_the_data_s_own_names_and_units(pets, tmp_path, capsys, target):
    other = "price" if target == "kind" else "kind"
    table = tmp_path / "train.csv"  # the training file without the other target
    rows = read_rows(pets / "pets.csv")
    write_csv(
        table, ["weight", "age", target], [[r[k] for r in rows] for k in ("weight", "age", target)]
    )
    run = tmp_path / "run"
    settings = ["--hidden", "16", "--lr", "0.01", "--epochs", "40", "--no-progress", "--quiet"]
    assert (
        main(capsys, "train", "--data", table, "--target", target, *settings, "--out", run)[0] == 0
    )
    code, out, err = main(capsys, "predict", run, pets / "new.csv", "--out", tmp_path / "p.csv")
    assert code == 0 and out == ""
    answers = read_rows(tmp_path / "p.csv")
    truth = [r[target] for r in read_rows(pets / "new.csv")]
    assert len(answers) == 40 and other not in answers[0]
    if target == "kind":
        predicted = [r["prediction"] for r in answers]
        assert set(predicted) <= {"cat", "dog"}
        hits = sum(p == t for p, t in zip(predicted, truth))
        assert f"accuracy {hits / 40:.4f} ({hits} of 40)" in err and hits >= 36
        total = [float(r["p(cat)"]) + float(r["p(dog)"]) for r in answers]
        np.testing.assert_allclose(total, 1, atol=2e-7)  # two 7-digit numbers
    else:  # prices in their own units: R^2 against the true prices, computed here
        predicted = np.array([float(r["prediction"]) for r in answers])
        t = np.array(truth, dtype=float)
        r2 = 1 - np.sum((t - predicted) ** 2) / np.sum((t - t.mean()) ** 2)
        assert f"R^2 {r2:.4f}" in err and r2 > 0.9
    # the same answers from Python (jmlp.load_run) and on stdout
    loaded = jmlp.load_run(run)
    assert loaded.preprocessing.features == ("weight", "age")
    assert loaded.preprocessing.target == target
    values, _ = predict_raw(
        loaded, jmlp.data.read_features(pets / "new.csv", loaded.preprocessing)[0]
    )
    as_text = [str(v) if target == "kind" else f"{v[0]:.7g}" for v in values.tolist()]
    assert as_text == [r["prediction"] for r in answers]
    code, out, _ = main(capsys, "predict", run, pets / "new.csv")
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == as_text


def test_predict_errors_name_the_missing_column(pets, tmp_path, capsys):
    run = tmp_path / "run"
    main(capsys, "train", "--data", pets / "pets.csv", "--target", "kind", *TINY, "--out", run)
    write_csv(tmp_path / "bad.csv", ["weight", "kind"], [[1.0], ["cat"]])
    code, _, err = main(capsys, "predict", run, tmp_path / "bad.csv")
    assert code == 2 and "no column 'age'" in err and "Traceback" not in err


def test_resume_is_bitwise_an_uninterrupted_run(tmp_path, capsys):
    settings = ["--data", "iris", "--hidden", "4", "--seed", "2", "--no-progress", "--quiet"]
    assert main(capsys, "train", *settings, "--epochs", "2", "--out", tmp_path / "a")[0] == 0
    assert main(capsys, "train", "--resume", tmp_path / "a", "--epochs", "5", "--quiet")[0] == 0
    assert main(capsys, "train", *settings, "--epochs", "5", "--out", tmp_path / "b")[0] == 0
    resumed, whole = jmlp.load_run(tmp_path / "a"), jmlp.load_run(tmp_path / "b")
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params)):
        np.testing.assert_array_equal(a, b)
    metrics = [read_metrics(tmp_path / run / "metrics.csv") for run in ("a", "b")]
    assert [r["loss"] for r in metrics[0]] == [r["loss"] for r in metrics[1]]
    assert len(metrics[0]) == 5


def test_a_rule_is_recorded_and_resumed_with_its_feedback_matrices(tmp_path, capsys):
    settings = ["--data", "iris", "--hidden", "4", "--rule", "fa", "--no-progress", "--quiet"]
    assert main(capsys, "train", *settings, "--epochs", "2", "--out", tmp_path / "a")[0] == 0
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert (record["rule"], record["feedback_seed"]) == ("fa", 0)  # --seed's by default
    assert main(capsys, "train", "--resume", tmp_path / "a", "--epochs", "3", "--quiet")[0] == 0
    assert main(capsys, "train", *settings, "--epochs", "3", "--out", tmp_path / "b")[0] == 0
    resumed, whole = jmlp.load_run(tmp_path / "a"), jmlp.load_run(tmp_path / "b")
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)
    other = [*settings, "--feedback-seed", "5", "--epochs", "3", "--out", tmp_path / "c"]
    assert main(capsys, "train", *other)[0] == 0  # other matrices, another trajectory
    assert not np.array_equal(jmlp.load_run(tmp_path / "c").params[0]["W"], whole.params[0]["W"])


def test_a_run_folder_from_before_rules_resumes_as_backprop(tmp_path, capsys):
    settings = ["--data", "iris", "--hidden", "4", "--no-progress", "--quiet"]
    assert main(capsys, "train", *settings, "--epochs", "2", "--out", tmp_path / "old")[0] == 0
    assert "rule" not in json.loads((tmp_path / "old" / "training.json").read_text())
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["rule"], config["feedback_seed"]  # as such folders were written
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert main(capsys, "train", "--resume", tmp_path / "old", "--epochs", "3", "--quiet")[0] == 0
    assert main(capsys, "train", *settings, "--epochs", "3", "--out", tmp_path / "new")[0] == 0
    resumed, whole = jmlp.load_run(tmp_path / "old"), jmlp.load_run(tmp_path / "new")
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "old" / "config.json").read_text())["rule"] == "backprop"


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--data", "iris", "--rule", "dfa", "--gradient", "autodiff"], ["--rule dfa: runs its"]),
        (["--resume", "RUN", "--lr", "0.1"], ["only --epochs may change", "--lr"]),
        (["--resume", "RUN", "--epochs", "2"], ["the run already has 3 epochs"]),
        (["--data", "iris", "--delimiter", ";"], ["--delimiter: applies to a CSV/NPZ file"]),
        (["--data", "iris", "--delimiter", "ab"], ["expected one character or 'tab'"]),
    ],
)
def test_resume_and_delimiter_errors(iris_run, capsys, args, needles):
    args = [str(iris_run[0]) if a == "RUN" else a for a in args]
    code, _, err = main(capsys, "train", *args, "--no-progress")
    assert code == 2 and err.count("\n") == 1
    for needle in needles:
        assert needle in err


def test_mse_on_one_hot_targets_document_000s_recipe(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", "iris", "--loss", "mse", "--output-activation", "sigmoid", *TINY]
    code, text, _ = main(capsys, "train", *args, "--out", out)
    assert code == 0 and "accuracy" in text
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["loss"], cfg["output_activation"], cfg["sizes"]) == ("mse", "sigmoid", [4, 4, 3])
    assert (out / "confusion.png").is_file()


def test_figure_labels_and_the_accuracy_in_the_confusion_title():
    from jmlp.figures import confusion_figure, loss_figure

    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "val_r2": [0.2, 0.7]}
    fig = loss_figure(history)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["training loss", "validation loss"]
    assert fig.axes[1].get_ylabel() == "validation R^2"
    fig = confusion_figure(np.array([[5, 1], [2, 4]]), ("cat", "dog"))
    assert fig.axes[0].get_title() == "test set: accuracy 0.7500\n(9 of 12)"


@pytest.mark.parametrize("low, high", [(1e-5, 10.0), (0.29, 0.33), (300.0, 3000.0)])
def test_the_loss_figures_fixed_margins_hold_its_labels(low, high):
    """Every label (the log axis's 3.25x10^-1 of a narrow range too) lies inside the figure."""
    from jmlp.figures import loss_figure

    curve = list(np.geomspace(high, low, 50))
    fig = loss_figure(
        {"loss": curve, "val_loss": curve, "val_accuracy": list(np.linspace(0, 1, 50))}
    )
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, (ax.get_ylabel(), box, fig.bbox)
        assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1, (ax.get_ylabel(), box, fig.bbox)
    panels = sorted(ax.get_tightbbox(renderer).x0 for ax in fig.axes)
    assert fig.axes[0].get_tightbbox(renderer).x1 < panels[1]  # the panels do not overlap


# ----------------------------------------------------------------------------- a run is never lost
# The run folder's guarantees; kills at random points and signals: tests/test_kill.py.


def test_default_run_folders_never_collide(tmp_path, capsys, monkeypatch):
    """Two runs started in the same second with the default --out get two folders."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda *_: "20250101-120000")
    printed = [main(capsys, "train", "--data", "iris", *TINY, "--quiet")[1] for _ in range(2)]
    expected = ["runs/iris-20250101-120000", "runs/iris-20250101-120000-2"]
    assert [p.strip() for p in printed] == expected
    assert all((tmp_path / folder / "checkpoint.npz").is_file() for folder in expected)


def test_a_non_empty_out_folder_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(capsys, "train", "--data", "iris", *TINY, "--out", out)[0] == 0
    code, _, err = main(capsys, "train", "--data", "diabetes", *TINY, "--out", out)
    assert code == 2 and f"--out {out}: the folder is not empty" in err and "--overwrite" in err
    assert json.loads((out / "config.json").read_text())["data"] == "iris"  # left as it was
    assert main(capsys, "train", "--data", "diabetes", *TINY, "--out", out, "--overwrite")[0] == 0
    assert json.loads((out / "config.json").read_text())["data"] == "diabetes"
    assert not (out / "confusion.png").exists()  # no classifier's figure beside a regression


def test_every_file_of_the_run_folder_is_written_atomically(tmp_path, capsys, monkeypatch):
    """Each file arrives by os.replace of a whole temporary file, none is written in place."""
    replaced = []

    def replace(source, target):
        replaced.append(Path(target).name)
        return real(source, target)

    real = os.replace
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "run"
    assert main(capsys, "train", "--data", "iris", *TINY, "--out", out)[0] == 0
    names = {p.name for p in out.iterdir()}
    assert RUN_FILES | {"last.npz", "training.json", "confusion.png"} <= names
    assert names <= set(replaced)


def test_resume_rebuilds_a_truncated_metrics_csv_and_removes_temp_files(tmp_path, capsys):
    """metrics.csv cut mid-row (as a kill during a write in place left it) and a killed save's
    temporary file: the resumed run has every epoch's row, as an uninterrupted run's."""
    settings = ["--data", "iris", "--hidden", "4", "--seed", "2", "--no-progress"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(capsys, "train", *settings, "--epochs", "3", "--out", a)[0] == 0
    text = (a / "metrics.csv").read_text()
    (a / "metrics.csv").write_text(text[: text.index("\n2,") + 6])
    (a / ".last.npz.k2j4x9_q.tmp").write_bytes(b"PK\x03\x04")
    code, out, err = main(capsys, "train", "--resume", a, "--epochs", "5", "--no-progress")
    assert code == 0, err
    assert f"{a / 'metrics.csv'} had 1 of the 3 epochs' rows" in err
    assert f"resuming {a} from epoch 3 of 5" in err
    assert "epochs      5 of 5 (resumed from epoch 3)" in out
    assert not [p.name for p in a.iterdir() if p.name.endswith(".tmp")]
    assert main(capsys, "train", *settings, "--epochs", "5", "--out", b)[0] == 0
    resumed, whole = read_metrics(a / "metrics.csv"), read_metrics(b / "metrics.csv")
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]
    assert [r["epoch"] for r in resumed] == ["1", "2", "3", "4", "5"]
    assert [r["seconds"] == "" for r in resumed] == [False, True, True, False, False]


@pytest.fixture
def finished(tmp_path, capsys) -> Path:
    """A finished 3-epoch iris run (lr 0.01, the preset)."""
    out = tmp_path / "run"
    assert main(capsys, "train", "--data", "iris", *TINY, "--out", out)[0] == 0
    return out


def _edit_config(out: Path, **changes) -> None:
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, **changes}))


DAMAGE = {
    "no last.npz": lambda out: (out / "last.npz").unlink(),
    "bad last.npz": lambda out: (out / "last.npz").write_bytes(b"PK\x03\x04 cut short"),
    "config not JSON": lambda out: (out / "config.json").write_text('{"data": "iris", "lr"'),
    "config a list": lambda out: (out / "config.json").write_text("[1, 2]"),
    "config lr nonsense": lambda out: _edit_config(out, lr="fast"),
    "config hidden nonsense": lambda out: _edit_config(out, hidden=[4, -2]),
    "lr changed": lambda out: _edit_config(out, lr=0.5),
    "batch size changed": lambda out: _edit_config(out, batch_size=8),
}


@pytest.mark.parametrize(
    "damage, needles",
    [
        ("no last.npz", ["last.npz is missing", "--config", "config.json --out NEW_FOLDER"]),
        ("bad last.npz", ["last.npz is damaged", "--config", "config.json --out NEW_FOLDER"]),
        ("config not JSON", ["config.json is not readable JSON", "restore it"]),
        ("config a list", ["config.json holds a JSON list, not an object"]),
        ("config lr nonsense", ["config.json: 'lr' is 'fast'", "(as --lr)", "correct it"]),
        ("config hidden nonsense", ["config.json: 'hidden' is [4, -2]", "positive widths"]),
        ("lr changed", ["lr differs", "trained with lr 0.01", "config.json gives 0.5"]),
        ("batch size changed", ["batch_size differs", "with batch_size 16", "gives 8"]),
    ],
)
def test_a_damaged_or_changed_run_folder_names_the_file_and_the_fix(
    finished, capsys, damage, needles
):
    DAMAGE[damage](finished)
    code, _, err = main(capsys, "train", "--resume", finished, "--epochs", "5", "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err
    assert str(finished) in err


def test_resume_on_other_data_is_refused(pets, tmp_path, capsys):
    """One label changed: the same preprocessing (features, class names), other data."""
    table = tmp_path / "pets.csv"
    table.write_text((pets / "pets.csv").read_text())
    run = tmp_path / "run"
    assert main(capsys, "train", "--data", table, "--target", "kind", *TINY, "--out", run)[0] == 0
    rows = table.read_text().splitlines()
    swapped = (
        rows[1].replace(",cat,", ",dog,")
        if ",cat," in rows[1]
        else rows[1].replace(",dog,", ",cat,")
    )
    table.write_text("\n".join([rows[0], swapped, *rows[2:]]) + "\n")
    code, _, err = main(capsys, "train", "--resume", run, "--epochs", "5")
    assert code == 2 and "the training data differ from those the run was trained on" in err


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--seed", "99999999999999999999999"], ["--seed", "from 0 to 4294967295"]),
        (["--seed", "-1"], ["--seed", "from 0 to 4294967295"]),
        (["--val-split", "0.999"], ["--val-split 0.999", "give a smaller --val-split"]),
        (["--l2", "inf"], ["--l2", "expected a finite number >= 0"]),
        (["--lr", "nan"], ["--lr", "expected a number >= 0"]),
    ],
)
def test_bad_numbers_are_refused_naming_their_option(tmp_path, capsys, args, needles):
    code, _, err = main(capsys, "train", "--data", "iris", *TINY, *args, "--out", tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert "test_size" not in err and "diverged" not in err
    for needle in needles:
        assert needle in err


def test_the_two_training_losses_are_labelled(tmp_path, capsys):
    """The progress line's loss (mean over an epoch's steps) and the table's (after training,
    on the whole set) differ; each says which it is."""
    args = ["--data", "iris", "--epochs", "3", "--hidden", "4", "--out", tmp_path / "run"]
    code, out, err = main(capsys, "train", *args)
    assert code == 0
    assert "epoch 3/3  loss " in err and "(mean over the epoch's steps)" in err
    assert "losses      after training, on each whole set, without L2" in out


def test_the_time_line_says_where_the_time_went(tmp_path):
    began = time.perf_counter()
    proc = jmlp_cli("train", "--data", "iris", *TINY, "--out", tmp_path / "run")
    wall = time.perf_counter() - began
    assert proc.returncode == 0, proc.stderr
    line = next(row for row in proc.stdout.splitlines() if row.startswith("time "))
    parts = {name: float(s) for s, name in re.findall(r"(\d+\.\d) s ([a-z ]+?)(?:,| \()", line)}
    assert {"imports", "data", "compilation", "training", "evaluation", "writing"} <= set(parts)
    total = float(re.search(r"\((\d+\.\d) s in all\)", line).group(1))
    rounding = 0.05 * (len(parts) + 1)  # each figure is rounded to 0.1 s
    assert min(parts.values()) >= 0 and sum(parts.values()) <= total + rounding
    assert total <= wall + 0.05


def test_the_clock_takes_compilation_out_of_the_phase_it_happened_in():
    from jmlp.cli.clock import CACHE_EVENT, COMPILE_EVENTS, Clock

    clock = Clock(("data", "training"))
    with clock.phase("training"):
        t0 = time.time()
        time.sleep(0.3)
        clock._span(COMPILE_EVENTS[2], t0, t0 + 0.2)  # a backend compile with a trace in it,
        clock._span(COMPILE_EVENTS[0], t0 + 0.05, t0 + 0.1)  # counted once
        clock._span("/jax/some/other/event", t0, t0 + 0.3)  # not a compilation
        clock._duration(CACHE_EVENT, 0.05)  # a cache load that has just ended
    parts = clock.parts(imports=1.5)
    ((start, end),) = clock.phases["training"]
    assert list(parts) == ["imports", "data", "compilation", "cache load", "training"]
    assert parts["imports"] == 1.5 and parts["data"] == 0
    assert parts["compilation"] == pytest.approx(0.2, abs=1e-6)
    assert parts["cache load"] == pytest.approx(0.05, abs=1e-3)
    assert parts["training"] == pytest.approx(end - start - 0.25, abs=1e-3)


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
        ("predict", ["RUN_FOLDER", "--out", "p(CLASS)", "examples:"]),
        ("draw", ["--run", "--port", "--host", "--no-browser", "127.0.0.1", "examples:"]),
    ],
)
def test_help_of_each_verb(verb, words):
    proc = jmlp_cli(verb, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: jmlp {verb}")
    for word in words:
        assert word in proc.stdout


def test_the_console_script_runs_main_then_exits_at_once():
    """``jmlp`` (the installed script) calls ``jmlp.cli.console`` (``main``, then an exit
    without the interpreter's teardown), as ``python -m jmlp`` does (the tests run that)."""
    scripts = importlib.metadata.entry_points(group="console_scripts", name="jmlp")
    assert [s.load() for s in scripts] == [jmlp.cli.console]


def test_the_console_freezes_the_imports_runs_the_exit_handlers_and_exits_with_mains_status(
    monkeypatch,
):
    """Before ``main``, the objects of the imports are frozen out of the garbage collector's
    passes; after it, the exit handlers run and the process exits with ``main``'s status."""
    calls = []
    monkeypatch.setattr(jmlp.cli, "main", lambda: calls.append(gc.get_freeze_count()) or 3)
    monkeypatch.setattr(jmlp.cli.atexit, "_run_exitfuncs", lambda: calls.append("exit handlers"))

    def leave(status):
        raise SystemExit(status)

    monkeypatch.setattr(jmlp.cli.os, "_exit", leave)
    try:
        with pytest.raises(SystemExit) as leaving:
            jmlp.cli.console()
    finally:
        gc.unfreeze()
    assert calls[0] > 0 and calls[1:] == ["exit handlers"] and leaving.value.code == 3


# ----------------------------------------------------------------------------- no silent wrong answers
# Data that used to train or predict without a word, with a made-up answer.


def test_train_on_huge_values_writes_finite_statistics(tmp_path, capsys):
    """A feature near 1e19 (its square overflows float32) used to give x_scale inf, the feature
    all -0., and Infinity in preprocessing.json."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 60))
    table = tmp_path / "huge.csv"
    write_csv(table, ["a", "b", "y"], [1e19 * (3 + a), b, np.where(a > 0, "hi", "lo")])
    code, _, err = main(capsys, "train", "--data", table, *TINY, "--quiet", "--out", tmp_path / "r")
    assert code == 0, err
    text = (tmp_path / "r" / "preprocessing.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    scale = json.loads(text)["x_scale"]
    np.testing.assert_allclose(scale[0], 1e19 * np.std(3 + a), rtol=0.3)  # its train split's
    write_csv(table, ["a", "b", "y"], [1e39 * (3 + a), b, np.where(a > 0, "hi", "lo")])
    code, _, err = main(capsys, "train", "--data", table, *TINY, "--out", tmp_path / "r2")
    assert code == 2 and "column 'a' holds" in err and "beyond the range of float32" in err


def test_predict_refuses_non_finite_rows_of_an_npz(iris_run, tmp_path, capsys):
    x = np.array([[5.1, 3.5, 1.4, 0.2], [np.nan, 3.0, 1.4, 0.2], [6.0, 3.0, 4.5, 1.5]])
    np.savez(tmp_path / "new.npz", x=x)
    code, out, err = main(capsys, "predict", iris_run[0], tmp_path / "new.npz")
    assert code == 2 and out == ""
    assert "row 1 holds nan" in err and "Traceback" not in err


def test_predict_does_not_take_an_extra_column_for_labels(iris_run, tmp_path, capsys):
    """iris is a built-in set: the run has no target column, so a fifth column (an id here)
    is not its labels (that printed 'accuracy 0.0000' with exit 0)."""
    rows = [[5.1, 3.5, 1.4, 0.2, 7], [6.0, 3.0, 4.5, 1.5, 8]]
    (tmp_path / "new.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    code, _, err = main(capsys, "predict", iris_run[0], tmp_path / "new.csv")
    assert code == 2 and "accuracy" not in err
    assert "expected 4 feature columns, got 5" in err


def test_predict_raw_answers_one_row(iris_run):
    run = jmlp.load_run(iris_run[0])
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 3.0, 4.5, 1.5]])
    labels, proba = predict_raw(run, x)
    label, p = predict_raw(run, x[1])
    assert label.shape == () and label == labels[1]
    np.testing.assert_allclose(p, proba[1], rtol=1e-6)  # float32, another batch size
