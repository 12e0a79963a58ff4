"""Data sets and loaders: built-in toy sets, document 003's problem, MNIST IDX files, CSV/NPZ tables.

Everything here is numpy; nothing is downloaded. Features ``x`` come back as ``(n, n_in)`` floats
(float32 unless ``dtype`` says otherwise); class labels as ``(n,)`` int32 codes ``0..k-1``;
regression targets as ``(n, n_out)`` floats. Public names, one per line; the modules:

- ``preprocessing``: ``Preprocessing`` (training statistics, applied to raw rows and back),
  ``one_hot``, ``standardize``, ``train_val_split`` (seeded, stratified).
- ``dataset``: ``Dataset`` and ``from_arrays`` (task inferred, labels coded, split, scaled).
- ``builtin``: ``load(name)`` of ``DATASETS``, ``make_spirals``.
- ``mnist1d``: ``make_mnist1d`` (Greydanus 2020's procedural 1-D digits).
- ``idx``: ``load_idx``, ``write_idx``, ``load_mnist``.
- ``tables``: CSV and NPZ files: ``load_table`` for training, ``read_features`` to predict on.
"""

from jmlp.data.builtin import DATASETS as DATASETS
from jmlp.data.builtin import load as load
from jmlp.data.builtin import make_spirals as make_spirals
from jmlp.data.dataset import Dataset as Dataset
from jmlp.data.dataset import from_arrays as from_arrays
from jmlp.data.idx import load_idx as load_idx
from jmlp.data.idx import load_mnist as load_mnist
from jmlp.data.idx import write_idx as write_idx
from jmlp.data.mnist1d import make_mnist1d as make_mnist1d
from jmlp.data.preprocessing import Preprocessing as Preprocessing
from jmlp.data.preprocessing import one_hot as one_hot
from jmlp.data.preprocessing import standardize as standardize
from jmlp.data.preprocessing import train_val_split as train_val_split
from jmlp.data.tables import load_table as load_table
from jmlp.data.tables import read_features as read_features
