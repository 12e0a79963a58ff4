"""``python -m jmlp`` runs the ``jmlp`` command line (see :mod:`jmlp.cli`)."""

from jmlp.cli import console

console()
