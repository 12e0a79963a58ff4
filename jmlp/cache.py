"""JAX's persistent compilation cache: compiled programs kept on disk between processes.

A second identical ``jmlp train`` (or experiment script) then loads its compiled training loop
instead of compiling it again. In a script of your own:

    import jmlp
    jmlp.use_compilation_cache()              # ~/.cache/jmlp/xla, or $JMLP_CACHE_DIR

which is the same as setting ``jax_compilation_cache_dir`` (and caching every program, however
quick to compile) with ``jax.config.update``.
"""

import os
from pathlib import Path

import jax

ENVIRONMENT = "JMLP_CACHE_DIR"  # set to "" (empty) to turn the cache off


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
    return folder
