"""SIGINT and SIGTERM while training: the first asks training to stop after the current chunk
of epochs (which is then saved), a second stops at once."""

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """A second SIGINT / SIGTERM: stop at once (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Stop:
    """The first SIGINT or SIGTERM received while training (``signum``; None: none yet)."""

    signum: int | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """While inside: the first SIGINT / SIGTERM sets ``stop.signum`` (training ends after the
    chunk of epochs it is in, which is then saved); a second raises :class:`Interrupted`."""
    stop = Stop()

    def handle(signum: int, frame) -> None:
        if stop.signum is not None:
            raise Interrupted(signum)
        stop.signum = signum
        name = signal.Signals(signum).name
        message = (
            f"\njmlp: {name}: stopping after this chunk of epochs (at most a few seconds) and "
            "saving the run; send it again to stop at once\n"
        )
        os.write(2, message.encode())  # unbuffered: safe while the main thread prints

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
