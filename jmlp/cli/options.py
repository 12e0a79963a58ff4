"""Option types and shared settings of the ``jmlp`` command line."""

import argparse
import math
import re


class UsageError(Exception):
    """A bad command line (argparse's own errors), reported in one line with exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        verb = self.prog.removeprefix("jmlp").strip()
        raise UsageError(f"{verb + ': ' if verb else ''}{message} (see {self.prog} --help)")


def int_list(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> ``(64, 64)``; ``""`` or ``"none"`` -> ``()`` (no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return widths


def names(text: str) -> str | tuple[str, ...]:
    """``"relu"`` -> ``"relu"``; ``"relu,tanh"`` -> ``("relu", "tanh")`` (one per hidden layer)."""
    parts = tuple(n.strip() for n in text.split(","))
    return parts[0] if len(parts) == 1 else parts


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def finite_non_negative(text: str) -> float:
    """A number >= 0 that is finite (``inf`` and ``nan`` refused)."""
    value = non_negative(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seeds, JAX's keys all take 0..2**32-1


def seed(text: str) -> int:
    """An int in ``[0, SEED_MAX]``."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an int from 0 to {SEED_MAX}, got {text!r}")
    return value


def fraction(text: str) -> float:
    value = non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def column(text: str) -> int | str:
    """A column index (``"3"``, ``"-1"``) or a column name."""
    return int(text) if re.fullmatch(r"-?\d+", text.strip()) else text


def delimiter(text: str) -> str:
    """One character; ``"tab"`` or ``"\\t"`` for a tab."""
    text = "\t" if text in ("tab", "\\t") else text
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character or 'tab', got {text!r}")
    return text
