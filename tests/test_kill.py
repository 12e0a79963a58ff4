"""``jmlp train`` never loses a run: killed at any point (SIGINT, SIGTERM or SIGKILL), its folder
is whole, and ``--resume`` until done gives bitwise the params of an uninterrupted run.

Each run is ``python -m jmlp train`` in a subprocess, as a user runs it, on iris with a small net
and frequent saves (``--save-every``); the subprocesses share one JAX compilation cache, so only
the first compiles. The expected values come from an uninterrupted run of the same command.
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jmlp
from jmlp.checkpoint import TEMP_FILE

pytestmark = pytest.mark.slow  # jmlp train killed and resumed in its own processes

EPOCHS = 600
TRAIN = ["train", "--data", "iris", "--hidden", "4", "--seed", "5", "--epochs", str(EPOCHS)]
QUICK = ["--no-progress", "--save-every", "0.1"]
PNG_END = b"IEND\xaeB`\x82"  # the last chunk of a whole PNG file


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("jax_cache")
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JMLP_CACHE_DIR": str(cache)}


def start(env: dict, *args) -> subprocess.Popen:
    command = [sys.executable, "-m", "jmlp", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for ``proc``; its exit status and stderr."""
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def params_of(path: Path) -> list:
    return jax.tree.leaves(jmlp.load_checkpoint(path).params)


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory) -> tuple[Path, float]:
    """An uninterrupted run's folder, and its wall time with its programs compiled already (a
    first, one-epoch run compiles them into the cache), as the runs killed later take."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, err = finish(start(env, *TRAIN[:-1], "1", *QUICK, "--out", out.with_name("warm")))
    assert code == 0, err
    began = time.perf_counter()
    code, err = finish(start(env, *TRAIN, *QUICK, "--out", out))
    assert code == 0, err
    return out, time.perf_counter() - began


def assert_whole(folder: Path) -> None:
    """Every file of the folder is whole: JSON parses, checkpoints load, metrics.csv has full,
    consecutive rows, never fewer than last.npz's epochs, figures end as a PNG ends. Only
    temporary files of an interrupted write may be partial."""
    for path in folder.iterdir():
        if TEMP_FILE.fullmatch(path.name):
            continue
        if path.suffix == ".json":
            assert isinstance(json.loads(path.read_text()), dict), path
        elif path.suffix == ".npz":
            assert jmlp.load_checkpoint(path).epoch <= EPOCHS
        elif path.suffix == ".png":
            assert path.read_bytes().endswith(PNG_END), path
        else:
            assert path.name == "metrics.csv", path
    if (folder / "metrics.csv").exists():
        rows = read_rows(folder / "metrics.csv")
        assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
        assert all(None not in r.values() and "" not in r.values() for r in rows)
        if (folder / "last.npz").exists():
            assert len(rows) >= jmlp.load_checkpoint(folder / "last.npz").epoch


def assert_same_as(folder: Path, reference: Path) -> None:
    """The finished folder: the reference's params and losses bitwise, one metrics row per
    epoch, no temporary file left, the settings files readable and equal to the reference's."""
    for a, b in zip(params_of(folder / "checkpoint.npz"), params_of(reference / "checkpoint.npz")):
        np.testing.assert_array_equal(a, b)
    rows, expected = read_rows(folder / "metrics.csv"), read_rows(reference / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert [r["loss"] for r in rows] == [r["loss"] for r in expected]
    assert [r["val_loss"] for r in rows] == [r["val_loss"] for r in expected]
    assert jmlp.load_checkpoint(folder / "last.npz").epoch == EPOCHS
    assert not [p.name for p in folder.iterdir() if TEMP_FILE.fullmatch(p.name)]
    for name in ("training.json", "preprocessing.json"):
        assert json.loads((folder / name).read_text()) == json.loads((reference / name).read_text())
    config = json.loads((folder / "config.json").read_text())
    assert config == {**json.loads((reference / "config.json").read_text()), "out": str(folder)}
    assert jmlp.load_run(folder).preprocessing.classes == ("setosa", "versicolor", "virginica")


def resume_command(out: Path) -> list:
    """--resume once the run wrote its config.json; before that, the run started again."""
    if (out / "config.json").exists():
        return ["train", "--resume", out, *QUICK]
    return [*TRAIN, *QUICK, "--out", out, "--overwrite"]


def epochs_saved(out: Path) -> int:
    last = out / "last.npz"
    return jmlp.load_checkpoint(last).epoch if last.exists() else 0


def wait_for_training(proc: subprocess.Popen, out: Path) -> None:
    """Until the run in ``out`` has saved one more epoch (or ``proc`` has ended)."""
    before, deadline = epochs_saved(out), time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and epochs_saved(out) <= before:
        time.sleep(0.05)


def test_killed_anywhere_the_run_resumes_to_the_uninterrupted_result(env, reference, tmp_path):
    """Five kills of the run and its resumes: each at a random time after the process starts
    (in its imports, data loading, compilation, ...) or after its training is under way (in
    training or writing), seeded; then --resume until it succeeds."""
    ref, seconds = reference
    rng = random.Random(7)
    kills = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL, signal.SIGINT]
    rng.shuffle(kills)
    out = tmp_path / "run"
    command, finished = [*TRAIN, *QUICK, "--out", out], False
    for signum in kills:
        proc = start(env, *command)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.3, seconds))
        else:
            wait_for_training(proc, out)
            time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signum)
        code, err = finish(proc)
        assert "Traceback" not in err or signum == signal.SIGINT, err  # SIGINT while importing
        if code in (130, 143):  # handled: saved, and said how to continue
            assert code == 128 + signum and f"jmlp train --resume {out}" in err, err
        if out.exists():
            assert_whole(out)
        finished = code == 0
        command = resume_command(out)
    for _ in range(3):
        if finished:
            break
        code, err = finish(start(env, *resume_command(out)))
        assert code == 0, err
        finished = True
    assert_same_as(out, ref)


def interrupt_while_training(env: dict, out: Path, signum: int, *args) -> int:
    """Start ``jmlp ARGS``, send ``signum`` once it has saved an epoch more than the folder
    held, check the exit status, the message and the folder; the epochs done."""
    before = epochs_saved(out)
    proc = start(env, *args)
    wait_for_training(proc, out)
    proc.send_signal(signum)
    code, err = finish(proc)
    assert code == 128 + signum, err
    name = signal.Signals(signum).name
    assert f"jmlp: interrupted by {name}" in err and f"jmlp train --resume {out}" in err
    # the run folder, written as far as training went: the same epochs in each file
    done = epochs_saved(out)
    assert before < done < EPOCHS
    assert f"after epoch {done} of {EPOCHS}" in err
    assert jmlp.load_checkpoint(out / "checkpoint.npz").epoch == done
    assert len(read_rows(out / "metrics.csv")) == done
    assert {"loss.png", "confusion.png", "config.json"} <= {p.name for p in out.iterdir()}
    return done


def test_a_signal_while_training_saves_the_epochs_done(env, reference, tmp_path):
    out = tmp_path / "run"
    done = interrupt_while_training(env, out, signal.SIGINT, *TRAIN, *QUICK, "--out", out)
    resume = ["train", "--resume", out, *QUICK]
    again = interrupt_while_training(env, out, signal.SIGTERM, *resume)
    assert again > done
    code, err = finish(start(env, *resume))
    assert code == 0, err
    assert f"resuming {out} from epoch {again} of {EPOCHS}" in err
    assert_same_as(out, reference[0])
