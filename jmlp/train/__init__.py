"""Training: :func:`fit` (one network) and :func:`fit_many` (N networks), on one engine.

How the host side is laid out, in the order a call runs through it:

- ``options``: the keyword arguments, checked once into a frozen :class:`Options`;
- ``setup``: the checked data, the blocks of members, the static ``Plan`` and per-member
  ``Settings`` (:mod:`jmlp.engine`), placed on the devices;
- ``programs``: the jitted programs, one per static plan (equal work never recompiles);
- ``loop``: compiled chunks of epochs, with the callback, progress line and checkpoints between;
- ``saving``: checkpoints written and resumed bitwise;
- ``results``: what ``fit`` / ``fit_many`` return, and why each member stopped;
- ``api``: ``fit`` and ``fit_many`` themselves.
"""

from jmlp.checks import n_members
from jmlp.train.api import fit, fit_many
from jmlp.train.options import Options
from jmlp.train.results import EnsembleResult, FitResult, NonFiniteLossError

__all__ = ["EnsembleResult", "FitResult", "NonFiniteLossError", "Options", "fit", "fit_many",
           "n_members"]  # fmt: skip
