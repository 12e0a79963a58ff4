"""Tests for jmlp.data: built-in sets, document 003's problem, splits, IDX/MNIST, CSV/NPZ tables."""

import gzip
import json
import math
import struct
import sys

import numpy as np
import pytest
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split

from jmlp import data

# name -> (n examples, n features, n classes or 0, task); sizes from scikit-learn's documentation.
BUILTIN = {
    "iris": (150, 4, 3, "classification"),
    "digits": (1797, 64, 10, "classification"),
    "wine": (178, 13, 3, "classification"),
    "breast_cancer": (569, 30, 2, "classification"),
    "diabetes": (442, 10, 0, "regression"),
    "moons": (1000, 2, 2, "classification"),
    "spirals": (900, 2, 3, "classification"),
    "mnist1d": (5000, 40, 10, "classification"),
    "doc003": (500, 5, 3, "classification"),
}
RAW = {  # independent copies of the raw data, straight from scikit-learn
    "iris": lambda: skd.load_iris(return_X_y=True),
    "wine": lambda: skd.load_wine(return_X_y=True),
    "diabetes": lambda: skd.load_diabetes(return_X_y=True),
    "digits": lambda: skd.load_digits(return_X_y=True),
    "breast_cancer": lambda: skd.load_breast_cancer(return_X_y=True),
}


def sorted_rows(a):
    a = np.asarray(a).reshape(len(a), -1)
    return a[np.lexsort(a.T[::-1])]


# ----------------------------------------------------------------------------- built-in sets


def test_names_table_matches_datasets():
    assert set(data.DATASETS) == set(BUILTIN)


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_shapes_dtypes_classes(name):
    n, n_in, k, task = BUILTIN[name]
    d = data.load(name)
    n_test = math.ceil(0.2 * n)
    assert (d.task, d.n_classes, d.name) == (task, k, name)
    assert d.x_train.shape == (n - n_test, n_in) and d.x_test.shape == (n_test, n_in)
    assert d.x_train.dtype == d.x_test.dtype == np.float32
    if task == "classification":
        assert d.y_train.shape == (n - n_test,) and d.y_test.shape == (n_test,)
        assert d.y_train.dtype == d.y_test.dtype == np.int32
        assert len(d.classes) == k
        assert set(np.unique(d.y_train)) == set(range(k))
    else:
        assert d.y_train.shape == (n - n_test, 1) and d.y_train.dtype == np.float32
        assert d.classes is None


def test_iris_split_is_stratified_120_30():
    d = data.load("iris")
    assert len(d.y_train) == 120 and len(d.y_test) == 30
    np.testing.assert_array_equal(np.bincount(d.y_test), [10, 10, 10])  # 0.2 * 50 per class
    assert d.classes == ("setosa", "versicolor", "virginica")


@pytest.mark.parametrize("name", list(RAW))
def test_split_is_a_partition_of_the_raw_data(name):
    x, y = RAW[name]()
    d = data.load(name, standardize=False, dtype=np.float64)
    got = np.concatenate([d.x_train, d.x_test])
    np.testing.assert_array_equal(sorted_rows(got), sorted_rows(x))
    rows = np.column_stack([x, y])
    got_rows = np.column_stack([got, np.concatenate([d.y_train, d.y_test]).reshape(len(got), -1)])
    np.testing.assert_array_equal(sorted_rows(got_rows), sorted_rows(rows))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_doc003_is_exactly_document_003(dtype):
    # Document 003, section 3.1 and 3.2, verbatim.
    x, y = skd.make_classification(
        n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3, random_state=7
    )
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=7)
    d = data.load("doc003", dtype=dtype)
    assert d.x_train.shape == (400, 5) and d.x_test.shape == (100, 5)
    np.testing.assert_array_equal(d.x_train, x_train.astype(dtype))
    np.testing.assert_array_equal(d.x_test, x_test.astype(dtype))
    np.testing.assert_array_equal(d.y_train, y_train)
    np.testing.assert_array_equal(d.y_test, y_test)
    assert d.x_train.dtype == dtype and d.y_train.dtype == np.int32


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "moons", "spirals"])
def test_standardization_uses_train_statistics(name):
    raw = data.load(name, standardize=False, dtype=np.float64)
    d = data.load(name, dtype=np.float64)
    mean, std = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    np.testing.assert_allclose(d.x_train, (raw.x_train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.x_test, (raw.x_test - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(d.x_train.std(axis=0), 1, rtol=1e-12)
    f32 = data.load(name)
    np.testing.assert_allclose(f32.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(f32.x_train.std(axis=0), 1, rtol=1e-5)


def test_constant_feature_is_not_divided_by_zero():
    d = data.load("digits")  # pixel column 0 is always 0
    assert np.all(np.isfinite(d.x_train)) and np.all(d.x_train[:, 0] == 0)


def test_diabetes_target_standardized_with_train_statistics():
    _, y = RAW["diabetes"]()
    raw = data.load("diabetes", standardize=False, dtype=np.float64)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([raw.y_train, raw.y_test])[:, 0]), np.sort(y)
    )
    d = data.load("diabetes", dtype=np.float64)
    mean, std = raw.y_train.mean(), raw.y_train.std()
    np.testing.assert_allclose(d.y_train, (raw.y_train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.y_test, (raw.y_test - mean) / std, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["iris", "moons", "spirals", "diabetes"])
def test_same_seed_same_data_other_seed_other_split(name):
    a, b, c = data.load(name, seed=3), data.load(name, seed=3), data.load(name, seed=4)
    for u, v in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.x_test, c.x_test)


def test_doc003_seed_changes_only_the_split():
    d = data.load("doc003", seed=0, dtype=np.float64)
    x, _ = skd.make_classification(
        n_samples=500, n_features=5, n_informative=5, n_redundant=0, n_classes=3, random_state=7
    )
    x_train, _ = train_test_split(x, test_size=0.2, random_state=0)
    np.testing.assert_array_equal(d.x_train, x_train)


def test_load_errors():
    with pytest.raises(ValueError, match="iris.*doc003.*'nope'"):
        data.load("nope")
    with pytest.raises(TypeError, match="dtype"):
        data.load("iris", dtype=np.int32)
    with pytest.raises(ValueError, match="test_size"):
        data.load("iris", test_size=1.5)


def test_bundled_class_names_are_scikit_learns():
    for name, loader in [("wine", skd.load_wine), ("breast_cancer", skd.load_breast_cancer),
                         ("digits", skd.load_digits)]:  # fmt: skip
        assert data.load(name).classes == tuple(loader().target_names.tolist())


def test_missing_sklearn_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r'pip install "jmlp\[experiments\]"'):
        data.load("iris")


def test_make_spirals_follows_its_formula():
    x, y = data.make_spirals(n_per_arm=50, n_arms=4, noise=0.0, turns=1.5)
    r = np.tile(np.linspace(0.05, 1, 50), 4)
    theta = 2 * np.pi * (np.repeat(np.arange(4), 50) / 4 + 1.5 * r)
    np.testing.assert_allclose(x[:, 0], r * np.cos(theta), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x[:, 1], r * np.sin(theta), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.bincount(y), [50] * 4)
    noisy, _ = data.make_spirals(n_per_arm=50, n_arms=4, noise=0.1, turns=1.5, seed=1)
    assert 0.05 < np.std(noisy - x) < 0.15


# ----------------------------------------------------------------------------- small tools


def test_one_hot_against_identity_rows():
    labels = np.array([2, 0, 1, 2], dtype=np.int32)
    t = data.one_hot(labels, 4)
    np.testing.assert_array_equal(t, np.eye(4, dtype=np.float32)[labels])
    assert t.dtype == np.float32 and data.one_hot(labels, 3, np.float64).dtype == np.float64


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0.5, 1.0], [[0, 1]]])
def test_one_hot_rejects_bad_labels(labels):
    with pytest.raises(ValueError, match="labels"):
        data.one_hot(np.array(labels), 3)


def test_standardize_returns_train_statistics_and_guards_zero_std():
    x_train = np.array([[1.0, 5.0], [3.0, 5.0]])
    x_test = np.array([[2.0, 7.0]])
    a, b, mean, std = data.standardize(x_train, x_test)
    np.testing.assert_array_equal(mean, [2.0, 5.0])
    np.testing.assert_array_equal(std, [1.0, 1.0])  # column 1 has std 0 -> 1
    np.testing.assert_array_equal(a, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(b, [[0.0, 2.0]])


def test_train_val_split_is_stratified_disjoint_and_seeded():
    x = np.arange(100.0).reshape(50, 2)
    y = np.repeat(np.arange(5, dtype=np.int32), 10)
    x_tr, y_tr, x_val, y_val = data.train_val_split(x, y, 0.2, seed=1)
    assert len(x_val) == 10 and len(x_tr) == 40
    np.testing.assert_array_equal(np.bincount(y_val), [2] * 5)
    np.testing.assert_array_equal(np.sort(np.concatenate([x_tr, x_val])[:, 0]), x[:, 0])
    np.testing.assert_array_equal(x_tr[:, 0] // 2 // 10, y_tr)  # rows keep their labels
    again = data.train_val_split(x, y, 0.2, seed=1)
    np.testing.assert_array_equal(again[2], x_val)
    with pytest.raises(ValueError, match="same number of rows"):
        data.train_val_split(x, y[:-1], 0.2)


# ----------------------------------------------------------------------------- IDX / MNIST

IDX_CODES = [
    (0x08, np.uint8),
    (0x09, np.int8),
    (0x0B, np.int16),
    (0x0C, np.int32),
    (0x0D, np.float32),
    (0x0E, np.float64),
]
SHAPES = [(7,), (3, 4), (2, 3, 5)]


def idx_bytes(code, dtype, array):
    """IDX bytes built straight from the format description, independent of write_idx."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def sample(dtype, shape):
    values = np.arange(math.prod(shape)).reshape(shape) * 37 % 200 - 100
    return (values if np.dtype(dtype).kind != "u" else values + 100).astype(dtype)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("code, dtype", IDX_CODES)
def test_idx_round_trip_and_byte_layout(tmp_path, code, dtype, shape, gz):
    array = sample(dtype, shape)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    data.write_idx(path, array)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == gz
    assert (gzip.decompress(raw) if gz else raw) == idx_bytes(code, dtype, array)
    back = data.load_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("code, dtype", IDX_CODES)
def test_load_idx_reads_hand_built_files(tmp_path, code, dtype):
    array = sample(dtype, (4, 3))
    (tmp_path / "plain").write_bytes(idx_bytes(code, dtype, array))
    (tmp_path / "zipped").write_bytes(gzip.compress(idx_bytes(code, dtype, array)))
    for name in ("plain", "zipped"):  # gzip found by its magic bytes, not by the name
        np.testing.assert_array_equal(data.load_idx(tmp_path / name), array)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        data.write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))


GOOD = idx_bytes(0x08, np.uint8, np.arange(6, dtype=np.uint8).reshape(2, 3))
BAD_FILES = {
    "bad magic": b"\x01" + GOOD[1:],
    "bad dtype code": GOOD[:2] + b"\x0a" + GOOD[3:],
    "truncated header": GOOD[:7],
    "truncated data": GOOD[:-1],
    "trailing data": GOOD + b"\0",
    "too short": b"\0\0",
    "corrupt gzip": gzip.compress(GOOD)[:-6],
}


@pytest.mark.parametrize("what", list(BAD_FILES))
def test_load_idx_errors_name_the_file(tmp_path, what):
    path = tmp_path / "broken-file.idx"
    path.write_bytes(BAD_FILES[what])
    with pytest.raises(ValueError, match="broken-file.idx"):
        data.load_idx(path)


def test_load_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.idx"):
        data.load_idx(tmp_path / "nothing.idx")


def write_fake_mnist(directory, n_train=10, n_test=5, sep="-", gz=""):
    rng = np.random.default_rng(0)
    arrays = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        data.write_idx(directory / f"{stem}-images{sep}idx3-ubyte{gz}", images)
        data.write_idx(directory / f"{stem}-labels{sep}idx1-ubyte{gz}", labels)
        arrays[stem] = (images, labels)
    return arrays


@pytest.mark.parametrize("sep, gz", [("-", ""), ("-", ".gz"), (".", ""), (".", ".gz")])
def test_load_mnist_on_fake_files(tmp_path, sep, gz):
    arrays = write_fake_mnist(tmp_path, sep=sep, gz=gz)
    d = data.load_mnist(tmp_path)
    assert d.x_train.shape == (10, 784) and d.x_test.shape == (5, 784)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert (d.task, d.n_classes) == ("classification", 10)
    images, labels = arrays["train"]
    np.testing.assert_allclose(d.x_train, images.reshape(10, 784) / 255.0, rtol=1e-7, atol=0)
    np.testing.assert_array_equal(d.y_train, labels)
    np.testing.assert_array_equal(d.y_test, arrays["t10k"][1])
    raw = data.load_mnist(tmp_path, flatten=False, scale=False)
    assert raw.x_test.shape == (5, 28, 28)
    np.testing.assert_array_equal(raw.x_test, arrays["t10k"][0])
    # the preprocessing turns raw pixels into the inputs bitwise
    np.testing.assert_array_equal(d.preprocessing.inputs(images.reshape(10, 784)), d.x_train)
    np.testing.assert_array_equal(raw.preprocessing.inputs(arrays["t10k"][0]), raw.x_test)


def test_load_mnist_errors(tmp_path):
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels"):
        data.load_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="t10k"):
        data.load_mnist(tmp_path)


# ----------------------------------------------------------------------------- CSV / NPZ

ROWS = [(1.0, 2.0, "b"), (2.0, 1.0, "a"), (3.0, 0.5, "c"), (4.0, 3.0, "b"), (5.0, 2.5, "a")] * 4


def write_csv(path, rows, header=None, delimiter=","):
    lines = [header] if header else []
    lines += [delimiter.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [None, "f1,f2,label"])
def test_csv_with_and_without_header_string_labels(tmp_path, header):
    path = write_csv(tmp_path / "t.csv", ROWS, header)
    d = data.load_table(path, standardize=False)
    assert d.task == "classification" and d.n_classes == 3 and d.classes == ("a", "b", "c")
    assert d.x_train.shape == (16, 2) and d.x_test.shape == (4, 2) and d.name == "t"
    code = {"a": 0, "b": 1, "c": 2}
    table = {(r[0], r[1]): code[r[2]] for r in ROWS}
    for x, y in [(d.x_train, d.y_train), (d.x_test, d.y_test)]:
        assert [table[tuple(row)] for row in x.tolist()] == y.tolist()


def test_csv_named_target_delimiter_and_regression(tmp_path):
    rows = [(i * 0.37, i % 3, float(i) ** 0.5) for i in range(30)]
    path = write_csv(tmp_path / "r.csv", rows, "y;k;z", delimiter=";")
    d = data.load_table(path, target="y", delimiter=";", standardize=False, dtype=np.float64)
    assert d.task == "regression" and d.y_train.shape == (24, 1) and d.classes is None
    np.testing.assert_array_equal(d.x_train[:, 0], d.x_train[:, 0].round())  # column k
    np.testing.assert_allclose(
        np.sort(np.concatenate([d.y_train, d.y_test])[:, 0]), [r[0] for r in rows], rtol=1e-15
    )
    k = data.load_table(path, target="k", delimiter=";")  # 3 integer values -> classes
    assert k.task == "classification" and k.classes == (0, 1, 2)
    forced = data.load_table(path, target=1, delimiter=";", task="regression")
    assert forced.task == "regression"
    np.testing.assert_allclose(forced.y_train.mean(), 0, atol=1e-6)  # y standardized too
    counts = data.load_table(
        path, target="k", delimiter=";", task="regression", standardize_targets=False
    )  # counts for a poisson loss: x standardized, y as given
    np.testing.assert_allclose(counts.x_train.mean(0), 0, atol=1e-6)
    assert set(np.concatenate([counts.y_train, counts.y_test]).ravel()) == {0.0, 1.0, 2.0}
    assert counts.preprocessing.y_mean == 0 and counts.preprocessing.y_scale == 1


def test_csv_integer_target_with_many_values_is_regression(tmp_path):
    path = write_csv(tmp_path / "m.csv", [(i, i * 2) for i in range(25)])
    assert data.load_table(path).task == "regression"


def test_npz_default_and_named_keys(tmp_path):
    x = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 2 * 3 + 1  # labels 1 and 4 -> codes 0 and 1
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", features=x, target=y)
    for d in (
        data.load_table(tmp_path / "a.npz", standardize=False),
        data.load_table(tmp_path / "b.npz", keys=("features", "target"), standardize=False),
    ):
        assert d.classes == (1, 4) and d.n_classes == 2
        np.testing.assert_array_equal(d.y_train, d.x_train[:, 0] // 2 % 2)
    with pytest.raises(ValueError, match="features"):
        data.load_table(tmp_path / "a.npz", keys=("features", "y"))


CSV_ERRORS = [
    (
        "bad feature",
        "f1,f2,y\n1,2,0\nx,3,1\n1,2,1\n",
        {},
        ValueError,
        "'f1' is not numeric \\('x'\\) at line 3",
    ),
    ("bad feature no header", "1,2,0\n1,oops,1\n3,3,1\n", {}, ValueError, "column 1"),
    ("target range", "1,2,0\n2,3,1\n", {"target": 3}, ValueError, "out of range"),
    ("named, no header", "1,2,0\n2,3,1\n", {"target": "y"}, ValueError, "no header"),
    ("unknown name", "a,b,y\n1,2,0\n2,3,1\n", {"target": "q"}, ValueError, "'q'"),
    ("ragged", "1,2,0\n2,3\n", {}, ValueError, "line 2 has 2 cells, line 1 has 3"),
    ("empty", "f1,f2,y\n1,2,0\n3,,1\n1,2,1\n", {}, ValueError, "'f2' has an empty cell at line 3"),
    ("nan", "f1,f2,y\n1,2,0\n\n3,NaN,1\n1,2,1\n", {}, ValueError, "'f2' holds 'NaN' at line 4"),
    (
        "inf, no header",
        "1,2,0\n1,-inf,1\n3,3,1\n",
        {},
        ValueError,
        "column 1 holds '-inf' at line 2",
    ),
    ("empty label", "f,y\n1,a\n2,\n3,b\n", {}, ValueError, "target column 'y' has an empty cell"),
    ("one column", "1;2;0\n2;3;1\n", {}, ValueError, "1 column \\(its rows hold ';'"),
    ("header only", "a,b,y\n", {}, ValueError, "a header row and no data rows"),
    ("string regression", "1,a\n2,b\n", {"task": "regression"}, ValueError, "regression"),
    ("bad task", "1,0\n2,1\n", {"task": "cluster"}, ValueError, "task"),
]


@pytest.mark.parametrize(
    "what, text, kwargs, error, match", CSV_ERRORS, ids=[e[0] for e in CSV_ERRORS]
)
def test_csv_errors(tmp_path, what, text, kwargs, error, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(error, match=match):
        data.load_table(path, **kwargs)


def test_load_table_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        data.load_table(tmp_path / "absent.csv")


def test_from_arrays_names_the_column_and_row_of_a_nan():
    x = np.ones((10, 3))
    x[[4, 7], 1] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"x: column 1 holds 2 NaN/inf values \(first in row 4\)"):
        data.from_arrays(x, np.arange(10.0))
    y = np.arange(10.0)
    y[6] = np.nan
    with pytest.raises(ValueError, match=r"y: column 0 holds 1 NaN/inf values \(first in row 6\)"):
        data.from_arrays(np.ones((10, 3)), y)


def test_from_arrays_rejects_bad_shapes():
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        data.from_arrays(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="y: expected shape"):
        data.from_arrays(np.zeros((5, 2)), np.zeros(4))


# ----------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("name", ["iris", "diabetes", "doc003"])
def test_preprocessing_holds_the_training_statistics(name):
    d = data.load(name)
    raw = data.load(name, standardize=False)  # the same split, unscaled
    prep = d.preprocessing
    np.testing.assert_array_equal(prep.inputs(raw.x_train), d.x_train)
    np.testing.assert_array_equal(prep.inputs(raw.x_test), d.x_test)
    if d.task == "regression":
        assert prep.classes is None
        np.testing.assert_allclose(prep.y_mean, raw.y_train.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(prep.outputs(d.y_test), raw.y_test, rtol=1e-5, atol=1e-4)
    else:
        assert prep.y_mean is None and prep.classes == d.classes
        np.testing.assert_array_equal(prep.labels(d.y_test), np.asarray(d.classes)[d.y_test])


def test_preprocessing_json_round_trip_is_exact():
    for d in (data.load("diabetes"), data.load("iris")):
        prep = d.preprocessing._replace(features=("a", "b"), target="y")
        back = data.Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
        for field, value in prep._asdict().items():
            if isinstance(value, np.ndarray):
                assert back._asdict()[field].dtype == value.dtype
                np.testing.assert_array_equal(back._asdict()[field], value)
            else:
                assert back._asdict()[field] == value


def test_csv_preprocessing_names_the_columns(tmp_path):
    rows = [(i * 0.5, 10 - i, "cat" if i % 2 else "dog") for i in range(20)]
    path = write_csv(tmp_path / "pets.csv", rows, "weight,age,kind")
    d = data.load_table(path, target="kind")
    assert d.preprocessing.features == ("weight", "age") and d.preprocessing.target == "kind"
    assert d.preprocessing.classes == ("cat", "dog")


@pytest.mark.parametrize(
    "text, targets",
    [
        ("age,kind,weight,extra\n9,cat,1.5,x\n5,dog,2.5,y\n", ["cat", "dog"]),  # by name
        ("1.5,9,cat\n2.5,5,dog\n", ["cat", "dog"]),  # by position, target last
        ("1.5,9\n2.5,5\n", None),  # features only
    ],
)
def test_read_features_finds_the_feature_columns(tmp_path, text, targets):
    prep = data.Preprocessing(np.zeros(2), np.ones(2), features=("weight", "age"), target="kind")
    path = tmp_path / "new.csv"
    path.write_text(text)
    x, y = data.read_features(path, prep)
    np.testing.assert_array_equal(x, [[1.5, 9], [2.5, 5]])
    assert (None if y is None else y.tolist()) == targets


@pytest.mark.parametrize(
    "text, match",
    [
        ("weight,kind\n1.5,cat\n", "no column 'age'"),
        ("1,2,3,4\n5,6,7,8\n", "expected 2 feature columns \\(or 3 with the target\\), got 4"),
        ("weight,age\n1.5,\n", "column 'age' has an empty cell at line 2"),
    ],
)
def test_read_features_errors(tmp_path, text, match):
    prep = data.Preprocessing(np.zeros(2), np.ones(2), features=("weight", "age"), target="kind")
    path = tmp_path / "new.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        data.read_features(path, prep)


# ----------------------------------------------------------------------------- no silent wrong tables


def test_standardize_does_not_overflow_for_huge_values():
    """Values near 1e19 squared overflow float32 (and near 1e155, float64): the statistics
    come out finite, equal to those of the column divided by 1e19 times 1e19."""
    small = np.array([[1.0, 1.0], [3.0, 2.0], [2.0, 3.0], [5.0, 1.0]])
    for dtype, unit in ((np.float32, 1e19), (np.float64, 1e300)):
        x = (small * [unit, 1.0]).astype(dtype)
        a, mean, std = data.standardize(x)
        np.testing.assert_allclose(mean, [2.75 * unit, 1.75], rtol=1e-6)
        np.testing.assert_allclose(std, [np.sqrt(2.1875) * unit, np.sqrt(0.6875)], rtol=1e-6)
        expected = (small - small.mean(0)) / small.std(0)
        np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)


def test_from_arrays_trains_on_huge_values_and_refuses_what_float32_cannot_hold():
    x = np.array([[1e19, 1.0], [3e19, 2.0], [2e19, 3.0], [5e19, 1.0], [4e19, 2.0]] * 4)
    y = np.arange(20) % 2
    ds = data.from_arrays(x, y)
    prep = ds.preprocessing.to_dict()
    assert all(np.isfinite(prep["x_scale"])) and all(np.isfinite(ds.x_train.ravel()))
    assert np.std(ds.x_train[:, 0]) > 0.5  # not all -0.
    x[3, 0] = 1e39
    with pytest.raises(ValueError, match=r"x: column 0 holds 1e\+39, beyond the range of float32"):
        data.from_arrays(x, y)
    assert np.isfinite(data.from_arrays(x, y, dtype=np.float64).preprocessing.x_scale).all()


def test_a_column_beyond_float32_is_named_by_its_header(tmp_path):
    path = tmp_path / "big.csv"
    rows = "".join(f"{i},{i % 3}e39,{i % 2}\n" for i in range(10))
    path.write_text("a,big,y\n" + rows)
    with pytest.raises(ValueError, match=r"x: column 'big' holds 2e\+39"):
        data.load_table(path)


def test_preprocessing_never_holds_infinity_for_json():
    prep = data.Preprocessing(np.zeros(2), np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match=r"preprocessing: x_scale holds inf \(column 1\)"):
        prep.to_dict()


def test_standardized_values_that_overflow_are_refused():
    """Values near float32's limit on both sides: x - mean (mean near -2e38) is beyond float32
    for the positive rows, whichever split they land in; refused naming the column."""
    x = np.array([[-3e38, 0.0]] * 18 + [[3e38, 1.0]] * 3)
    y = np.arange(21) % 2
    with pytest.raises(ValueError, match=r"x: column 0 overflows float32 once standardized"):
        data.from_arrays(x, y)
    assert np.all(np.isfinite(data.from_arrays(x, y, dtype=np.float64).x_train))


CSV_REFUSED = [
    # a header of numbers over a text target is a header, not a training row: see below
    ("duplicate names", "f,f,y\n1,2,a\n2,3,b\n", r"repeats column names \['f'\]"),
    ("nan label", "f,g,y\n1,2,a\n2,3,b\n3,4,nan\n4,5,b\n", r"'y' holds 'nan' at line 4"),
    ("inf label", "f,g,y\n1,2,a\n2,3,-inf\n", r"'y' holds '-inf' at line 3"),
    (
        "a stray 1.5",
        "f,y\n1,0\n2,1\n3,2\n4,1.5\n5,0\n6,1\n",
        (
            r"target column 'y': looks like class labels \(whole numbers 0, 1, 2\) but line 5 "
            r"holds 1\.5; .*--task regression"
        ),
    ),
    (
        "one class",
        "f,y\n1,cat\n2,cat\n3,cat\n",
        r"'y': every example has the label 'cat': one class",
    ),
]


@pytest.mark.parametrize("what, text, match", CSV_REFUSED, ids=[c[0] for c in CSV_REFUSED])
def test_csv_tables_that_would_train_the_wrong_thing_are_refused(tmp_path, what, text, match):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        data.load_table(path)


def test_a_stray_non_whole_label_is_regression_when_asked():
    x, y = np.arange(6.0)[:, None], np.array([0, 1, 2, 1.5, 0, 1])
    with pytest.raises(ValueError, match=r"y: looks like class labels .* row 3 holds 1\.5"):
        data.from_arrays(x, y, test_size=0.5)
    assert data.from_arrays(x, y, task="regression", test_size=0.5).task == "regression"
    many = np.linspace(0, 1, 30)  # real regression targets are not questioned
    assert data.from_arrays(np.arange(30.0)[:, None], many).task == "regression"


def test_a_header_of_numbers_over_a_text_target_is_a_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("0,1,2\n5.1,3.5,cat\n4.9,3.0,dog\n4.7,3.2,cat\n4.6,3.1,dog\n5.0,3.6,cat\n")
    ds = data.load_table(path, standardize=False, test_size=0.4)
    assert len(ds.x_train) + len(ds.x_test) == 5 and ds.classes == ("cat", "dog")
    assert ds.preprocessing.features == ("0", "1") and ds.preprocessing.target == "2"


@pytest.mark.parametrize("header", ["f1,f2,y\n", ""])
def test_a_byte_order_mark_is_not_part_of_the_first_cell(tmp_path, header):
    """Excel's "CSV UTF-8" starts with EF BB BF; it used to rename the first column (or, with
    no header, make the first row a header: its first cell was not a number)."""
    path = tmp_path / "t.csv"
    text = header + "1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,0\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    ds = data.load_table(path, standardize=False, test_size=0.4)
    assert len(ds.x_train) + len(ds.x_test) == 5
    assert ds.preprocessing.features == (("f1", "f2") if header else None)


@pytest.mark.parametrize(
    "classes, y_mean, text, match",
    [
        (
            (0, 1, 2),
            None,
            "1,2,0\n2,3,7\n",
            (
                r"expected 2 feature columns, or 3 with the target column at index 2; got 3, "
                r"and column 2 holds '7' at line 2, not one of the run's"
            ),
        ),
        (None, np.zeros(1), "1,2,a\n", r"column 2 holds 'a' at line 1, not a number"),
    ],
)
def test_an_extra_column_is_the_target_only_if_it_holds_targets(
    tmp_path, classes, y_mean, text, match
):
    prep = data.Preprocessing(np.zeros(2), np.ones(2), y_mean, y_mean, classes)
    path = tmp_path / "new.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        data.read_features(path, prep)
    with pytest.raises(ValueError, match=r"expected 2 feature columns, got 3"):  # no target
        data.read_features(path, prep, target=None)
    path.write_text("1,2,1.0\n2,3,2\n" if classes else "1,2,3.5\n")
    assert data.read_features(path, prep)[1] is not None  # "1.0" is class 1


# ----------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_templates_start_at_zero_with_std_one_sixth():
    t = data.mnist1d.templates()
    assert t.shape == (10, 12)
    np.testing.assert_allclose(t[:, 0], 0, atol=1e-15)
    np.testing.assert_allclose(t.std(axis=1), 1 / 6, rtol=1e-12)


def test_mnist1d_smoothing_and_resampling_match_scipy_and_numpy():
    from scipy.ndimage import gaussian_filter1d

    noise = np.random.default_rng(0).standard_normal((3, 72))
    np.testing.assert_allclose(
        data.mnist1d._smooth(noise, 2.0), gaussian_filter1d(noise, 2.0, axis=1), atol=1e-14
    )
    length = np.array([48, 60, 72])
    got = data.mnist1d._resample(noise, length, 40)
    for row, n, g in zip(noise, length, got):
        want = np.interp(np.linspace(0, 1, 40), np.linspace(0, 1, n), row[:n])
        np.testing.assert_allclose(g, want, atol=1e-14)


def test_mnist1d_is_deterministic_balanced_and_standardized():
    x, y = data.make_mnist1d(n_per_class=20, seed=1)
    x2, y2 = data.make_mnist1d(n_per_class=20, seed=1)
    x3, _ = data.make_mnist1d(n_per_class=20, seed=2)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(x, x3)
    assert x.shape == (200, 40) and np.all(np.bincount(y) == 20)
    assert abs(x.mean()) < 1e-12 and abs(x.std() - 1) < 1e-12
    with pytest.raises(ValueError, match="n_per_class"):
        data.make_mnist1d(n_per_class=0)


def test_mnist1d_split_is_the_papers_and_nearest_class_mean_beats_chance():
    d = data.load("mnist1d", dtype=np.float64)
    assert len(d.y_train) == 4000 and len(d.y_test) == 1000
    assert np.all(np.bincount(d.y_test) == 100)  # stratified
    means = np.stack([d.x_train[d.y_train == k].mean(axis=0) for k in range(10)])
    distance = ((d.x_test[:, None, :] - means[None]) ** 2).sum(axis=-1)
    accuracy = np.mean(distance.argmin(axis=1) == d.y_test)
    assert accuracy > 0.2, accuracy  # chance is 0.1; the paper's logistic regression gets 0.32
