"""The built-in data sets (``DATASETS``): scikit-learn's bundled sets and generators, the
spirals, MNIST-1D, and document 003's problem, each split and standardized by :func:`load`.

scikit-learn (``pip install "jmlp[experiments]"``) is needed only for its bundled sets and
generators: the bundled files of iris, digits, wine and breast_cancer are read without importing
it, the rest import it inside the functions that use it. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from jmlp.data.dataset import Dataset, make_dataset
from jmlp.data.mnist1d import make_mnist1d
from jmlp.data.preprocessing import Preprocessing, float_dtype, standardize

_SKLEARN_HINT = 'scikit-learn is needed for this data set: pip install "jmlp[experiments]"'


def make_spirals(
    n_per_arm: int = 300, n_arms: int = 3, noise: float = 0.05, turns: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n_arms`` interleaved 2-D spirals, arm ``k`` being class ``k``.

    Along arm ``k``, ``r = linspace(0.05, 1, n_per_arm)``, ``theta = 2 pi (k / n_arms + turns r)``
    and ``x = r (cos theta, sin theta) + noise * N(0, I)``.

    **Returns:** ``x (n_per_arm n_arms, 2)`` float64 and ``y (n_per_arm n_arms,)`` int32.
    """
    if n_per_arm < 1 or n_arms < 2:
        raise ValueError(f"n_per_arm >= 1 and n_arms >= 2 expected, got {n_per_arm}, {n_arms}")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1.0, n_per_arm), n_arms)
    y = np.repeat(np.arange(n_arms, dtype=np.int32), n_per_arm)
    theta = 2 * np.pi * (y / n_arms + turns * r)
    x = r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + noise * rng.standard_normal(x.shape), y


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError as error:
        raise ImportError(_SKLEARN_HINT) from error
    return datasets


def _bundled(loader_name: str):
    def read(seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
        bunch = getattr(_sklearn_datasets(), loader_name)()
        names = getattr(bunch, "target_names", None)
        return bunch.data, bunch.target, None if names is None else tuple(names.tolist())

    return read


def _bundled_csv(file: str, header: bool):
    """A reader of scikit-learn's bundled ``file`` (features, then the class in the last column;
    with a ``header`` line ``n, d, name_0, name_1, ...``), read without importing scikit-learn,
    whose import takes about a second: ``load_iris`` and the others return the same arrays."""

    def read(seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
        sklearn = importlib.util.find_spec("sklearn")
        if sklearn is None:
            raise ImportError(_SKLEARN_HINT)
        path = Path(sklearn.submodule_search_locations[0]) / "datasets" / "data" / file
        rows = np.loadtxt(path, delimiter=",", skiprows=int(header))
        x, y = rows[:, :-1], rows[:, -1].astype(int)
        names = tuple(range(y.max() + 1))
        if header:
            with open(path) as first:
                names = tuple(first.readline().strip().split(",")[2:])
        return x, y, names

    return read


def _moons(seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    x, y = _sklearn_datasets().make_moons(n_samples=1000, noise=0.2, random_state=seed)
    return x, y, (0, 1)


def _spirals(seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    x, y = make_spirals(seed=seed)
    return x, y, (0, 1, 2)


def _mnist1d(seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    x, y = make_mnist1d(seed=seed)
    return x, y, tuple(range(10))


# name -> (reader(seed) -> (x, y, classes or None), task)
_BUILTIN = {
    "iris": (_bundled_csv("iris.csv", header=True), "classification"),
    "digits": (_bundled_csv("digits.csv.gz", header=False), "classification"),
    "wine": (_bundled_csv("wine_data.csv", header=True), "classification"),
    "breast_cancer": (_bundled_csv("breast_cancer.csv", header=True), "classification"),
    "diabetes": (_bundled("load_diabetes"), "regression"),
    "moons": (_moons, "classification"),
    "spirals": (_spirals, "classification"),
    "mnist1d": (_mnist1d, "classification"),
}
DATASETS: tuple[str, ...] = (*_BUILTIN, "doc003")


def _doc003(test_size: float, seed: int, scale: bool, dtype: DTypeLike) -> Dataset:
    """Document 003, section 3: make_classification(...) then train_test_split(...), verbatim."""
    x, y = _sklearn_datasets().make_classification(
        n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3, random_state=7
    )
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed
    )
    dtype = float_dtype(dtype)
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    x_mean, x_scale = np.zeros(5, dtype), np.ones(5, dtype)
    if scale:
        x_train, x_test, x_mean, x_scale = standardize(x_train, x_test)
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    prep = Preprocessing(x_mean, x_scale, classes=(0, 1, 2))
    return Dataset(x_train, y_train, x_test, y_test, "classification", 3, "doc003", (0, 1, 2), prep)


def load(
    name: str,
    *,
    test_size: float = 0.2,
    seed: int | None = None,
    standardize: bool | None = None,
    dtype: DTypeLike = np.float32,
) -> Dataset:
    """Load a built-in data set (one of ``DATASETS``), split and (optionally) standardized.

    - ``iris`` (150 x 4, 3 classes), ``digits`` (1797 x 64, 10), ``wine`` (178 x 13, 3),
      ``breast_cancer`` (569 x 30, 2): scikit-learn's bundled copies.
    - ``diabetes`` (442 x 10): regression; y is ``(n, 1)`` and, when standardized, z-scored with
      the training mean and std (R^2 is unchanged by this affine rescaling).
    - ``moons`` (1000 x 2, 2): ``make_moons(1000, noise=0.2, random_state=seed)``.
    - ``spirals`` (900 x 2, 3): ``make_spirals(seed=seed)``.
    - ``mnist1d`` (5000 x 40, 10): ``make_mnist1d(seed=seed)``, the recipe and parameters of
      Greydanus (2020); its default split is the paper's 4000 / 1000.
    - ``doc003`` (500 x 5, 3): document 003's problem exactly: ``make_classification(
      n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3,
      random_state=7)`` then ``train_test_split(test_size=0.2, random_state=7)`` (not stratified),
      raw features. Its defaults differ: ``seed=None`` means 7 and ``standardize=None`` False.

    ``seed=None`` means 0 (7 for doc003); ``standardize=None`` means True (False for doc003).
    Other sets are split with a seeded stratified (classification) split of ``ceil(test_size n)``.
    """
    if name == "doc003":
        seed = 7 if seed is None else seed
        return _doc003(test_size, seed, bool(standardize), dtype)
    if name not in _BUILTIN:
        raise ValueError(f"name: expected one of {DATASETS}, got {name!r}")
    seed = 0 if seed is None else seed
    reader, task = _BUILTIN[name]
    x, y, classes = reader(seed)
    if task == "classification":
        y = y.astype(np.int32)
    else:
        classes, y = None, y.reshape(len(y), 1)
    scale = True if standardize is None else standardize
    return make_dataset(x, y, task, classes, name, test_size, seed, scale, dtype)
