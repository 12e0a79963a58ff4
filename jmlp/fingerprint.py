"""Fingerprints of functions by what they compute: code, defaults, closed-over values, globals.

``fingerprint(optax.adam(1e-3))`` equals ``fingerprint(optax.adam(1e-3))`` of a fresh object and
differs from ``fingerprint(optax.adam(2e-3))``: a fresh but equal optimizer can share a compiled
training loop, at the cost of walking its closures (microseconds), not of tracing it.

What counts: a function's code object, its defaults, the values in its closure cells and the
current values of the globals its code names (recursively); numbers, strings and other
immutable values by value, jax arrays by their bytes. Functions and classes of libraries (jax,
optax, numpy, ...) count by identity: their code does not change while a program runs. Anything
whose value could change unseen (a list, a dict, a numpy array, an object of a user class)
makes the fingerprint None, and the caller falls back to a sound but slower key.
"""

import sys
import types
from typing import Any

import jax
import numpy as np

LIBRARIES = ("jax", "jaxlib", "optax", "chex", "numpy", "jmlp", "builtins", "math", "functools")
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


class Unknown(Exception):
    """A value the fingerprint cannot vouch for."""


def _library(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in LIBRARIES


def _walk(obj: Any, seen: dict) -> Any:
    if isinstance(obj, _PLAIN):
        return (type(obj).__name__, obj)
    if id(obj) in seen:  # a cycle (a recursive function): its place in the walk
        return ("seen", seen[id(obj)])
    seen[id(obj)] = len(seen)
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if isinstance(obj, tuple):  # NamedTuples (optax's GradientTransformation) included
        return (type(obj).__qualname__, tuple(_walk(v, seen) for v in obj))
    if isinstance(obj, frozenset):
        return ("frozenset", frozenset(_walk(v, seen) for v in obj))
    if isinstance(obj, (np.generic, jax.Array)):  # a tracer fails here, as it should
        a = np.asarray(obj)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    if _named(obj) and (isinstance(obj, type) or (_library(obj) and not _closure(obj))):
        return ("object", id(obj))  # a module's class or library function: lives as long
    if isinstance(obj, types.FunctionType):
        return _function(obj, seen)
    if isinstance(obj, types.MethodType):
        return ("method", _walk(obj.__func__, seen), _walk(obj.__self__, seen))
    raise Unknown(type(obj).__name__)


def _named(obj: Any) -> bool:
    """True for an object its module holds under its name (a module-level function or class,
    a builtin), which therefore lives as long as the program: its identity is a safe key."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    qualname = getattr(obj, "__qualname__", "")
    if module is None or "<" in qualname:
        return False
    found = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


def _closure(obj: Any) -> bool:
    return isinstance(obj, types.FunctionType) and bool(obj.__closure__)


def _function(fn: types.FunctionType, seen: dict) -> tuple:
    code = fn.__code__
    names = [n for n in _names(code) if n in fn.__globals__]
    return (
        "function",
        code,
        _walk(fn.__defaults__, seen),
        _walk(tuple(sorted((fn.__kwdefaults__ or {}).items())), seen),
        tuple(_walk(cell.cell_contents, seen) for cell in fn.__closure__ or ()),
        tuple((n, _walk(fn.__globals__[n], seen)) for n in names),
    )


def _names(code: types.CodeType) -> set[str]:
    """The global names a code object (and the code of functions nested in it) may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def fingerprint(obj: Any) -> Any:
    """A hashable fingerprint of ``obj`` (module docstring), or None where none is sound."""
    try:
        key = _walk(obj, {})
        hash(key)
    except (Unknown, TypeError):
        return None
    return key
