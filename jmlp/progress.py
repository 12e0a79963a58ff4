"""A progress line for training: epochs done, the loss, the rate and the time left.

On a terminal the line is redrawn in place (at most ten times a second); written to a file or a
pipe it prints a line at about every tenth of the run, so a log holds ~10 lines, not one per
epoch. The rate and the time left count only the epochs after the first report, which carries
the compilation, so they are not skewed by it.
"""

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Progress:
    """``Progress(total, start)``; ``update(epoch, text)`` after each report; ``close()``.

    ``epoch`` is the number of epochs done, ``text`` what to show beside it (e.g. the loss).
    """

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None):
        self.total, self.stream = total, stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.first: tuple[float, int] | None = None  # (time, epoch) of the first report
        self.shown, self.last_draw, self.line = start, 0.0, ""
        self.width = 0

    def rate(self, epoch: int, now: float) -> float | None:
        """Epochs per second since the first report (None until there is a second one)."""
        if self.first is None or epoch <= self.first[1] or now <= self.first[0]:
            return None
        return (epoch - self.first[1]) / (now - self.first[0])

    def format(self, epoch: int, text: str, now: float) -> str:
        rate = self.rate(epoch, now)
        speed = (
            ""
            if rate is None
            else f"  {rate:.4g} epoch/s, {_clock((self.total - epoch) / rate)} left"
        )
        return f"epoch {epoch}/{self.total}  {text}{speed}"

    def update(self, epoch: int, text: str = "") -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, epoch)
        self.line = self.format(epoch, text, now)
        if self.terminal and (now - self.last_draw >= 0.1 or epoch == self.total):
            self.stream.write("\r" + self.line.ljust(self.width))
            self.width, self.last_draw = len(self.line), now
            self.stream.flush()
        elif not self.terminal and (epoch - self.shown) * 10 >= self.total:
            self.stream.write(self.line + "\n")
            self.shown = epoch

    def close(self) -> None:
        """End the line (terminal) or print the last report if it was not printed yet."""
        if self.terminal:
            self.stream.write("\r" + self.line.ljust(self.width) + "\n")
        elif self.line and not self.line.startswith(f"epoch {self.shown}/"):
            self.stream.write(self.line + "\n")
        self.stream.flush()
