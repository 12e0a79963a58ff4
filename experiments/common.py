"""Shared helpers of the experiment scripts: the command line, tables, JSON and figures."""

import argparse
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; figures go to PNG files
import matplotlib.pyplot as plt
import numpy as np


def parse_args(doc: str, script: str, argv=None, extra=()) -> argparse.Namespace:
    """``--seed``, ``--out DIR`` (default ``runs/<script>``), ``--quick`` and ``extra``
    (``(flags, kwargs)`` pairs); the out folder is created."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    parser.add_argument("--out", default=f"runs/{script}", help="output folder (runs/%(prog)s)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    for flags, kwargs in extra:
        parser.add_argument(*flags, **kwargs)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return args


def table(headers, rows) -> str:
    """A plain-text table; floats in ``%.4g`` unless already strings."""
    cells = [[c if isinstance(c, str) else f"{c:.4g}" for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(f"{h:>{w}}" for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _plain(obj):
    """JSON-ready copy: numpy / jax scalars and arrays become Python numbers and lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return np.asarray(obj).tolist()
    return obj


def save_json(out: str, results: dict, name: str = "results.json") -> Path:
    path = Path(out) / name
    path.write_text(json.dumps(_plain(results), indent=1, allow_nan=True) + "\n")
    return path


def save_figure(fig, out: str, name: str) -> Path:
    path = Path(out) / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(values) -> dict:
    """mean, std, min, max, median of a 1-D sample."""
    v = np.asarray(values, dtype=np.float64)
    stats = {
        "mean": v.mean(),
        "std": v.std(),
        "min": v.min(),
        "max": v.max(),
        "median": np.median(v),
    }
    return {k: float(s) for k, s in stats.items()}
