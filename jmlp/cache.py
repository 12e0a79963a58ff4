"""JAX's persistent compilation cache: compiled programs kept on disk between processes.

``import jmlp`` turns it on (:func:`default_cache`): a second process doing the same work (a
script, a notebook, an estimator's fit, ``jmlp train``) loads its compiled programs instead of
compiling them. The folder is ``~/.cache/jmlp/xla``, or ``$JMLP_CACHE_DIR``; an empty
``JMLP_CACHE_DIR=`` turns it off, and a cache folder already given to JAX
(``jax_compilation_cache_dir``) is kept. Processes may share the folder: with a size limit set,
JAX reads and writes its entries under a file lock.

:func:`jit` compiles jmlp's programs of one network with :data:`FAST_COMPILE` on a CPU.
"""

import functools
import os
from pathlib import Path

import jax
import numpy as np

ENVIRONMENT = "JMLP_CACHE_DIR"  # set to "" (empty) to turn the cache off
MAX_BYTES = 2**30  # the least recently used programs are dropped beyond 1 GiB


def cache_dir() -> Path | None:
    """``$JMLP_CACHE_DIR`` if set (None when empty), else ``~/.cache/jmlp/xla``."""
    value = os.environ.get(ENVIRONMENT)
    if value is not None:
        return Path(value) if value else None
    return Path.home() / ".cache" / "jmlp" / "xla"


def use_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`cache_dir`).

    Every compiled program is written there and read back by later processes with the same
    program, jax version and device. Returns the folder, or None if the cache is off.
    """
    folder = Path(path) if path is not None else cache_dir()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # entries under a file lock
    return folder


def default_cache() -> Path | None:
    """The cache ``import jmlp`` turns on: JAX's folder if one was set, else
    :func:`use_compilation_cache`'s (None if ``$JMLP_CACHE_DIR`` is empty or the folder cannot be
    made: then every process compiles, nothing else changes)."""
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    try:
        return use_compilation_cache()
    except OSError:
        return None


FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}
"""XLA:CPU's LLVM emitters of element-wise kernels instead of its MLIR ones: one network's
training program compiles in about 0.6 of the time and runs as fast (docs/performance.md)."""


@functools.cache
def compiler_options() -> dict | None:
    """:data:`FAST_COMPILE` on a CPU whose XLA has these options, else None (XLA's defaults)."""
    if jax.default_backend() != "cpu":
        return None
    try:  # an XLA without the option refuses it by name (a RuntimeError)
        jax.jit(lambda a: a, compiler_options=FAST_COMPILE).lower(np.float32(0)).compile()
    except RuntimeError:
        return None
    return FAST_COMPILE


def jit(fun, **kwargs):
    """``jax.jit(fun, **kwargs)`` compiled with :func:`compiler_options`, made at its first call
    (the options depend on the backend, which an import must not start)."""

    @functools.cache
    def jitted():
        return jax.jit(fun, compiler_options=compiler_options(), **kwargs)

    @functools.wraps(fun)
    def call(*args, **kw):
        return jitted()(*args, **kw)

    return call
