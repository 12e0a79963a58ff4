"""What makes two optimizers the same, for the compiled training loop's cache.

The loop is compiled once per optimizer *key*: its settings for :mod:`jmlp.optim`'s
transformations (equal settings, equal key); for optax transformations and optimizer functions
of hyper-parameters, a fingerprint of what they compute (:mod:`jmlp.fingerprint`: code,
closed-over values, globals) or, where none is sound, the jaxprs of ``init`` and ``update``
traced at the params' shapes with their constants. So a fresh but equal ``optax.adam(1e-3)``
reuses the compiled loop and ``optax.adam(2e-3)`` does not.
"""

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmlp.arguments import check_built_optimizer, is_transformation_argument
from jmlp.fingerprint import fingerprint
from jmlp.init import Params
from jmlp.optim import Transform

_KEYS: dict = {}  # (id(optimizer), shapes) -> (optimizer, key): an optimizer's key, memoised


class OptimizerSpec:
    """An optimizer as the engine uses it: ``make(hparams) -> GradientTransformation`` (traced
    per member inside ``jax.vmap``), equal to another exactly when their keys are equal."""

    def __init__(self, make: Callable, key: Any):
        self.make, self.key = make, key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptimizerSpec) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _maker(optimizer: Any, names: tuple[str, ...]) -> Callable:
    """``hparams -> GradientTransformation`` for a transformation (hparams unused) or a function,
    called with the hparams as keywords (``lambda lr: optax.adam(lr)``, ``optax.adam`` with
    ``hparams={"learning_rate": ...}``) or, failing that, as one dict (``lambda h: ...``)."""
    if is_transformation_argument(optimizer, names):
        return lambda h: optimizer
    try:
        signature = inspect.signature(optimizer)
    except (TypeError, ValueError):  # a builtin without a signature: try keywords
        return lambda h: optimizer(**h)
    for call, bind in ((lambda h: optimizer(**h), lambda: signature.bind(**dict.fromkeys(names))),
                       (lambda h: optimizer(h), lambda: signature.bind({}))):  # fmt: skip
        try:
            bind()
            return call
        except TypeError:
            continue
    raise TypeError(
        f"optimizer: a function of the hparams must take them as keywords ({', '.join(names)}) "
        f"or as one dict; {getattr(optimizer, '__name__', optimizer)}{signature} takes neither"
    )


def _traced_key(make: Callable, hparams: dict, params: Params) -> tuple:
    """The jaxprs of ``init`` and ``update`` at these shapes, with digests of their constants."""
    h = {k: jax.ShapeDtypeStruct((), v.dtype) for k, v in hparams.items()}
    p = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), params)
    init, state = jax.make_jaxpr(lambda h, p: make(h).init(p), return_shape=True)(h, p)
    update, out = jax.make_jaxpr(lambda h, g, s, p: make(h).update(g, s, p), return_shape=True)(
        h, p, state, p
    )
    digest = hashlib.sha256()
    for jaxpr in (init, update):
        digest.update(str(jaxpr).encode())
        for c in jaxpr.consts:
            a = np.asarray(c)
            digest.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
    return digest.hexdigest(), str(jax.tree.structure(state)), str(jax.tree.structure(out))


def optimizer_spec(optimizer: Any, hparams: dict, params: Params) -> OptimizerSpec:
    """The engine's :class:`OptimizerSpec` for ``optimizer`` and one member's ``params``."""
    make = _maker(optimizer, tuple(hparams))
    try:
        built = make({k: v[0] for k, v in hparams.items()})
    except Exception as err:
        raise TypeError(
            f"optimizer: calling it with the hparams {list(hparams)} of one member failed: {err}"
        ) from err
    check_built_optimizer(built)
    names = tuple((k, v.dtype.name) for k, v in hparams.items())
    if isinstance(optimizer, Transform):
        return OptimizerSpec(make, ("value", names, optimizer))
    fingerprinted = fingerprint(optimizer)
    if fingerprinted is not None:
        return OptimizerSpec(make, ("fingerprint", names, fingerprinted))
    shapes = names
    shapes += (str(jax.tree.structure(params)),)
    shapes += tuple((jnp.shape(a), jnp.result_type(a).name) for a in jax.tree.leaves(params))
    memo = (id(optimizer), shapes)
    if memo not in _KEYS or _KEYS[memo][0] is not optimizer:
        if len(_KEYS) >= 256:
            _KEYS.pop(next(iter(_KEYS)))
        _KEYS[memo] = (optimizer, ("traced", shapes, _traced_key(make, hparams, params)))
    return OptimizerSpec(make, _KEYS[memo][1])
