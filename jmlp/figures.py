"""The figures of a training run, drawn with matplotlib: the learning curves and the test set's
confusion matrix (where they are written: ``jmlp.runs``)."""

import io
import threading

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of examples of class ``i`` predicted as class ``j``."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    return counts


_PRELOADS: list[threading.Thread] = []


def _pyplot():
    for thread in _PRELOADS:  # the figures are drawn after the preload, never beside it
        if thread is not threading.current_thread():
            thread.join()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def preload() -> None:
    """Import matplotlib and draw a throwaway figure (its fonts found, its TeX parser built) in
    a background thread, while XLA compiles and trains (which release Python's lock): the
    figures are then drawn without waiting for either."""
    _PRELOADS[:] = [t for t in _PRELOADS if t.is_alive()]
    _PRELOADS.append(threading.Thread(target=_warm_up, daemon=True))
    _PRELOADS[-1].start()


def _warm_up() -> None:
    """matplotlib imported, a small figure with TeX drawn (and dropped)."""
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
    k = len(counts)
    names = [str(c) for c in (classes or range(k))]
    fig, ax = plt.subplots(figsize=(2.5 + 0.45 * k, 1.6 + 0.45 * k))
    ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        color = "white" if c > counts.max() / 2 else "black"
        ax.text(j, i, str(c), ha="center", va="center", color=color, fontsize=8)
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
