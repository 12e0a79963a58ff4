"""Where a ``jmlp train`` run's time went: imports, each phase, and JAX's compilations and
persistent-cache loads (heard through ``jax.monitoring``), for the time line after the table."""

import contextlib
import time
from collections.abc import Iterator
from typing import Self

import jax

import jmlp

COMPILE_EVENTS = (  # jax.monitoring's events of tracing, lowering and compiling a program
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",  # includes a persistent-cache load
)
CACHE_EVENT = "/jax/compilation_cache/cache_retrieval_time_sec"
_FIRST_RUN = [True]  # the imports are counted by the first run of the process only


def process_start() -> float:
    """When this process began importing jmlp (``time.time()``): the imports are counted from
    there (a shell that ``exec``s the command keeps its own start time, so /proc cannot say)."""
    return jmlp.IMPORT_STARTED


def import_seconds(started: float) -> float:
    """Seconds from the start of jmlp's import to ``started`` (``time.time()``) for the first run
    of the process; 0 for the runs after it, whose imports were done before."""
    began = process_start() if _FIRST_RUN[0] else started
    _FIRST_RUN[0] = False
    return started - began


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Time spans ``(start, end)`` merged where they overlap, sorted."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` covered by the merged ``spans``."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


class Clock:
    """Where a run's time went: phases timed with ``with clock.phase(name)``, and JAX's
    compilations and persistent-cache loads, heard through ``jax.monitoring`` while the clock
    runs (``with Clock() as clock``), taken out of the phase they happened in."""

    def __init__(self, phases: tuple[str, ...]) -> None:
        self.started = time.time()
        self.phases: dict[str, list[tuple[float, float]]] = {name: [] for name in phases}
        self.compiling: list[tuple[float, float]] = []
        self.loading: list[tuple[float, float]] = []

    def _span(self, event: str, start: float, end: float, **_) -> None:
        if event in COMPILE_EVENTS:
            self.compiling.append((start, end))

    def _duration(self, event: str, seconds: float, **_) -> None:
        if event == CACHE_EVENT:
            now = time.time()
            self.loading.append((now - seconds, now))

    def __enter__(self) -> Self:
        jax.monitoring.register_event_time_span_listener(self._span)
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        return self

    def __exit__(self, *_) -> None:
        jax.monitoring.unregister_event_time_span_listener(self._span)
        jax.monitoring.unregister_event_duration_listener(self._duration)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:
            self.phases[name].append((start, time.time()))

    def parts(self, imports: float) -> dict[str, float]:
        """Seconds: ``imports``, each phase less the compiling and loading in it, in order, with
        compilation and cache load (0 without one) after the first. They add up to at
        most the wall time since the process started."""
        loading = _merged(self.loading)
        either = _merged(self.compiling + self.loading)
        cached = _covered(loading, self.started, time.time())
        phases = {
            name: sum(b - a - _covered(either, a, b) for a, b in spans)
            for name, spans in self.phases.items()
        }
        compiled = _covered(either, self.started, time.time()) - cached
        first = dict(list(phases.items())[:1])
        return {
            "imports": imports,
            **first,
            "compilation": compiled,
            "cache load": cached,
            **phases,
        }


def format_time(parts: dict[str, float], total: float) -> str:
    """``time  0.9 s imports, 1.1 s compilation, ... (4.8 s in all)``; no cache load when none."""
    shown = [f"{s:.1f} s {k}" for k, s in parts.items() if k != "cache load" or s > 0]
    return f"time        {', '.join(shown)} ({total:.1f} s in all)"
