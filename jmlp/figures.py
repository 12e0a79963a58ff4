"""The figures of a training run, drawn with matplotlib: the learning curves and the test set's
confusion matrix (where they are written: ``jmlp.runs``).

This file imports nothing of jmlp: a :class:`Painter` runs it alone in a second Python process,
which imports matplotlib while the training runs and then draws the figures, so that neither
(about 1 s of Python) holds the training process's lock.
"""

import io
import json
import os
import subprocess
import sys
from typing import Self

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of class ``i`` predicted as class ``j``."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    return counts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _warm_up() -> None:
    """matplotlib imported, a small figure with TeX drawn (its fonts found, its TeX parser built)
    and dropped."""
    _pyplot()
    from matplotlib.figure import Figure  # not pyplot's: no figure of its registry

    fig = Figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "$10^{-1}$")
    fig.savefig(io.BytesIO(), format="png")


CURVE_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "val_r2": "validation R^2",
}


LOSS_MARGINS = (1.15, 0.15, 0.55, 0.15, 0.9)  # inches: left (room for 3.25x10^-1), right,
# bottom, top, between the panels


def loss_figure(history: dict[str, list[float]]):
    """The learning curves: training (and validation) loss per epoch, log scale; the validation
    score beside. Its labels are fixed, so are its margins (no layout pass to find them)."""
    plt = _pyplot()
    extra = [k for k in history if k in ("val_accuracy", "val_r2")]
    n, (width, height) = 1 + len(extra), (5 + 4 * len(extra), 3.6)
    left, right, bottom, top, between = LOSS_MARGINS
    panel = (width - left - right - between * (n - 1)) / n
    box = {"left": left / width, "right": 1 - right / width, "wspace": between / panel}
    box.update(bottom=bottom / height, top=1 - top / height)
    fig, axes = plt.subplots(1, n, figsize=(width, height), squeeze=False, gridspec_kw=box)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for name in ("loss", "val_loss"):
        if name in history:
            axes[0, 0].plot(epochs, history[name], label=CURVE_LABELS[name])
    axes[0, 0].set(xlabel="epoch", ylabel="loss", yscale="log")
    axes[0, 0].legend()
    for ax, name in zip(axes[0, 1:], extra):
        ax.plot(epochs, history[name], color="C1")
        ax.set(xlabel="epoch", ylabel=CURVE_LABELS[name])
    return fig


def confusion_figure(counts: np.ndarray, classes: tuple | None):
    """The test set's confusion matrix, counts written in, accuracy on top."""
    plt = _pyplot()
    counts = np.asarray(counts)
    k = len(counts)
    names = [str(c) for c in (classes or range(k))]
    fig, ax = plt.subplots(figsize=(2.5 + 0.45 * k, 1.6 + 0.45 * k))
    ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        color = "white" if c > counts.max() / 2 else "black"
        count = ax.text(j, i, str(c), ha="center", va="center", color=color, fontsize=8)
        count.set_in_layout(False)  # inside the axes: the layout need not measure it
    correct, total = int(np.trace(counts)), int(counts.sum())
    title = f"test set: accuracy {correct / total:.4f}\n({correct} of {total})"
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticklabels(names)
    fig.tight_layout()  # room for the class names, whatever their length
    return fig


def png_bytes(fig) -> bytes:
    """``fig`` as the bytes of a PNG file; the figure is closed."""
    out = io.BytesIO()
    try:
        fig.savefig(out, format="png", dpi=110)
    finally:
        _pyplot().close(fig)
    return out.getvalue()


FIGURES = {"loss": loss_figure, "confusion": confusion_figure}


def draw_pngs(jobs: list) -> list[bytes]:
    """The PNG bytes of each job ``(figure name, its arguments)``, drawn in this process."""
    return [png_bytes(FIGURES[name](*args)) for name, args in jobs]


_SERVE = (  # the painter's program: interrupts are the parent's to handle (ignored here); this
    # file loaded alone, without "" (the working folder) on the path
    "import signal, sys, importlib.util as u; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "del sys.path[0]; s = u.spec_from_file_location('jmlp_figures', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); m.serve()"
)
TIMEOUT = 300  # seconds a painter may take (a first import of matplotlib builds its font cache)


class Painter:
    """A second Python process, started now, that readies matplotlib and draws the figures
    asked of it (:meth:`draw_pngs`): the PNG bytes, or where it cannot, those drawn here. An
    unused painter ends when closed (``with Painter() as painter: ...``)."""

    def __init__(self) -> None:
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVE, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self.process = None

    def draw_pngs(self, jobs: list) -> list[bytes]:
        """:func:`draw_pngs` of ``jobs`` by the painter (once), else in this process."""
        request = json.dumps(jobs, default=_plain).encode()
        process, self.process = self.process, None
        if process is not None:
            try:
                out, _ = process.communicate(request, TIMEOUT)
                pngs = _unpacked(out) if process.returncode == 0 else []
                if len(pngs) == len(jobs):
                    return pngs
            except (OSError, ValueError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        return draw_pngs(jobs)

    def close(self) -> None:
        """End an unused painter (it has written nothing)."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.communicate()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _plain(value):
    """numpy arrays and scalars as JSON's lists and numbers."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"figures: cannot send a {type(value).__name__} to the painter")


def _unpacked(data: bytes) -> list[bytes]:
    """The PNGs of :func:`serve`'s output: each an 8-byte little-endian length, then its bytes."""
    pngs = []
    while data:
        size = int.from_bytes(data[:8], "little")
        pngs.append(data[8 : 8 + size])
        if len(pngs[-1]) != size:
            raise ValueError("figures: the painter's output ends early")
        data = data[8 + size :]
    return pngs


def serve() -> None:
    """The painter process: readies matplotlib, reads the jobs (JSON) from standard input, writes
    their PNGs (:func:`_unpacked`'s format) to standard output, and exits."""
    _warm_up()
    out = sys.stdout.buffer
    for png in draw_pngs(json.loads(sys.stdin.buffer.read())):
        out.write(len(png).to_bytes(8, "little") + png)
    out.flush()
    os._exit(0)  # without the teardown of matplotlib's modules
