"""The run's figures drawn by a painter process: the very bytes this process draws, and this
process's drawing wherever the painter cannot (not started, gone)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jmlp import figures

HISTORY = {
    "loss": list(np.geomspace(2.0, 0.01, 30)),
    "val_loss": np.geomspace(2.5, 0.2, 30),  # numpy values travel too
    "val_accuracy": list(np.linspace(0.3, 0.95, 30)),
}
JOBS = [
    ("loss", (HISTORY,)),
    ("confusion", (np.array([[7, 1, 0], [2, 5, 1], [0, 0, 9]]), (np.str_("a"), "b", "c"))),
]


@pytest.fixture(scope="module")
def drawn_here():
    return figures.draw_pngs(JOBS)


def nothing_drawn_here(monkeypatch):
    """From now on this process draws nothing: the PNGs can only be the painter's."""

    def refuse(jobs):
        raise AssertionError("drawn in the test's process, not by the painter")

    monkeypatch.setattr(figures, "draw_pngs", refuse)


def test_the_painter_draws_the_bytes_this_process_draws(drawn_here, monkeypatch):
    assert all(png.startswith(b"\x89PNG") for png in drawn_here)
    with figures.Painter() as painter:
        nothing_drawn_here(monkeypatch)
        assert painter.draw_pngs(JOBS) == drawn_here
        assert painter.process is None  # used once


def test_without_a_painter_process_the_figures_are_drawn_here(drawn_here, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(figures.subprocess, "Popen", refuse)
    with figures.Painter() as painter:
        assert painter.process is None
        assert painter.draw_pngs(JOBS) == drawn_here


def test_the_figures_of_a_painter_that_died_are_drawn_here(drawn_here):
    with figures.Painter() as painter:
        painter.process.kill()
        painter.process.wait()
        assert painter.draw_pngs(JOBS) == drawn_here


def ignores_interrupts(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    return bool(mask & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_an_interrupt_is_left_to_the_parent(drawn_here, monkeypatch):
    """Ctrl-C reaches the whole process group; the painter goes on and draws what it is asked."""
    with figures.Painter() as painter:
        deadline = time.monotonic() + 60
        while not ignores_interrupts(painter.process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(painter.process.pid, signal.SIGINT)
        nothing_drawn_here(monkeypatch)
        assert painter.draw_pngs(JOBS) == drawn_here


def test_an_unused_painter_ends_when_closed():
    painter = figures.Painter()
    process = painter.process
    painter.close()
    assert process.poll() is not None and painter.process is None
    painter.close()  # twice is harmless


def test_the_painter_loads_the_figures_file_alone():
    """Its program loads this file alone: no module of jmlp, no JAX (most of a second to import)."""
    report = "print(m.__name__, sorted(n for n in sys.modules if n.startswith(('jmlp', 'jax'))))"
    code = figures._SERVE.replace("m.serve()", report)
    done = subprocess.run([sys.executable, "-c", code, figures.__file__], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "jmlp_figures []"
