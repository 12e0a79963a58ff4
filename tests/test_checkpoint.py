"""Tests for jmlp.checkpoint: round trips, the documented file layout, atomicity, validation."""

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmlp import checkpoint, optim
from jmlp.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def make_params(seed, sizes, dtype=jnp.float32):
    """Random list of {"W": (n_in, n_out), "b": (n_out,)} dicts (independent of jmlp.init)."""
    rng = np.random.default_rng(seed)
    return [
        {
            "W": jnp.asarray(rng.standard_normal((n_in, n_out)), dtype=dtype),
            "b": jnp.asarray(rng.standard_normal(n_out), dtype=dtype),
        }
        for n_in, n_out in itertools.pairwise(sizes)
    ]


def trained_adam_state(params, steps=3):
    """optax.adam state after a few updates, so count, mu and nu are all non-trivial."""
    opt = optax.adam(1e-2)
    state = opt.init(params)
    update = jax.jit(opt.update)
    for i in range(steps):
        grads = jax.tree.map(lambda p, i=i: np.sin(np.asarray(p) + i).astype(p.dtype), params)
        _, state = update(grads, state, params)
    return opt, state


def assert_trees_equal(got, want):
    """Same structure, and each leaf bitwise equal with the same dtype."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert isinstance(g, jax.Array)
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


KEYS = {
    "typed_threefry": lambda: jax.random.key(7),
    "typed_rbg": lambda: jax.random.key(7, impl="rbg"),
    "legacy_uint32": lambda: jax.random.PRNGKey(7),
    "none": lambda: None,
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("key_kind", list(KEYS))
def test_round_trip_params_adam_epoch_key(tmp_path, dtype, key_kind):
    params = make_params(0, (4, 5, 3), dtype)
    opt, state = trained_adam_state(params)
    key = KEYS[key_kind]()
    user = {"lr": 0.01, "sizes": [4, 5, 3], "note": "x"}
    out = save_checkpoint(
        tmp_path / "ck.npz", params=params, opt_state=state, epoch=12, key=key, metadata=user
    )
    assert out == tmp_path / "ck.npz"
    like = make_params(99, (4, 5, 3), dtype)  # other values, same structure
    ck = load_checkpoint(out, like_params=like, like_opt_state=opt.init(like))
    assert isinstance(ck, Checkpoint)
    assert_trees_equal(ck.params, params)
    assert_trees_equal(ck.opt_state, state)
    assert isinstance(ck.opt_state[0], optax.ScaleByAdamState)
    assert isinstance(ck.opt_state[1], optax.EmptyState)
    assert ck.epoch == 12 and ck.metadata == user
    if key is None:
        assert ck.key is None
        return
    assert ck.key.dtype == key.dtype and ck.key.shape == key.shape
    np.testing.assert_array_equal(jax.random.uniform(ck.key, (6,)), jax.random.uniform(key, (6,)))


def test_file_layout_is_the_documented_one(tmp_path):
    params = make_params(0, (3, 2, 2))
    _, state = trained_adam_state(params)
    key = jax.random.key(5)
    save_checkpoint(tmp_path / "ck.npz", params=params, opt_state=state, epoch=4, key=key)
    layers = ("0", "1")
    want = {f"params/{i}/{p}" for i in layers for p in "Wb"}
    want |= {f"opt_state/0/{m}/{i}/{p}" for m in ("mu", "nu") for i in layers for p in "Wb"}
    want |= {"opt_state/0/count", "epoch", "key", "metadata"}
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as npz:
        assert set(npz.files) == want
        np.testing.assert_array_equal(npz["params/1/b"], params[1]["b"])
        np.testing.assert_array_equal(npz["opt_state/0/nu/0/W"], state[0].nu[0]["W"])
        np.testing.assert_array_equal(npz["key"], jax.random.key_data(key))
        assert npz["epoch"].dtype == np.int64 and int(npz["epoch"]) == 4
        meta = json.loads(str(npz["metadata"][()]))
    assert meta["format"] == "jmlp-checkpoint" and meta["version"] == 1
    assert meta["key"] == {"kind": "typed", "impl": "threefry2x32"}
    assert meta["leaves"]["params/0/W"] == {"shape": [3, 2], "dtype": "float32"}
    assert meta["leaves"]["opt_state/0/count"] == {"shape": [], "dtype": "int32"}
    assert "ScaleByAdamState" in meta["treedef"]


def test_bfloat16_round_trip_stored_as_uint16_bits(tmp_path):
    params = make_params(0, (3, 4), jnp.bfloat16)
    save_checkpoint(tmp_path / "ck.npz", params=params)
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as npz:
        assert npz["params/0/W"].dtype == np.uint16
        want_bits = np.asarray(params[0]["W"]).view(np.uint16)
        np.testing.assert_array_equal(npz["params/0/W"], want_bits)
    ck = load_checkpoint(tmp_path / "ck.npz", like_params=params)
    assert_trees_equal(ck.params, params)


def test_params_only_and_shape_dtype_struct_templates(tmp_path):
    params = make_params(0, (2, 3), jnp.float64)
    opt, state = trained_adam_state(params)
    save_checkpoint(tmp_path / "ck.npz", params=params, opt_state=state)
    abstract = jax.eval_shape(lambda: params)
    ck = load_checkpoint(tmp_path / "ck.npz", like_params=abstract)  # skips the stored opt_state
    assert ck.opt_state is None and ck.key is None and ck.epoch == 0 and ck.metadata == {}
    assert_trees_equal(ck.params, params)
    save_checkpoint(tmp_path / "p.npz", params=params)  # no opt_state saved
    with pytest.raises(ValueError, match="opt_state/0/count"):
        load_checkpoint(tmp_path / "p.npz", like_params=params, like_opt_state=opt.init(params))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("sizes", [(3, 2), (3, 4, 5, 2), tuple(range(2, 14))])  # 11 layers: "10"
def test_params_load_without_a_template(tmp_path, dtype, sizes):
    params = make_params(0, sizes, dtype)
    _, state = trained_adam_state(params)
    save_checkpoint(tmp_path / "ck.npz", params=params, opt_state=state, epoch=2)
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert_trees_equal(ck.params, params)
    assert ck.opt_state is None and ck.epoch == 2
    with_state = load_checkpoint(tmp_path / "ck.npz", like_opt_state=optax.adam(1e-2).init(params))
    assert_trees_equal(with_state.opt_state, state)


@pytest.mark.parametrize(
    "params", [lambda p: tuple(p), lambda p: [tuple(layer.values()) for layer in p]]
)
def test_params_other_than_lists_and_dicts_need_a_template(tmp_path, params):
    save_checkpoint(tmp_path / "ck.npz", params=params(make_params(0, (3, 4, 2))))
    with pytest.raises(ValueError, match="not plain lists and dicts, so they cannot be rebuilt"):
        load_checkpoint(tmp_path / "ck.npz")


def test_a_wrong_optimizer_template_says_which_template_to_build(tmp_path):
    params = make_params(0, (3, 2))
    _, state = trained_adam_state(params)  # optax.adam's state: (ScaleByAdamState, EmptyState)
    save_checkpoint(tmp_path / "ck.npz", params=params, opt_state=state)
    with pytest.raises(ValueError, match=r"optimizer.init\(params\) of the optimizer that wrote"):
        load_checkpoint(tmp_path / "ck.npz", like_opt_state=optim.adam(1e-2).init(params))


def test_overwrite_leaves_no_temp_files(tmp_path):
    params = make_params(0, (2, 2))
    for epoch in range(3):
        save_checkpoint(tmp_path / "ck.npz", params=params, epoch=epoch)
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert load_checkpoint(tmp_path / "ck.npz", like_params=params).epoch == 2


def _savez_failing_midway(error):
    """A stand-in for np.savez that writes part of an archive, then raises ``error``."""

    def savez(file, *args, **kwds):
        file.write(b"PK\x03\x04" + b"partial" * 10_000)
        raise error

    return savez


@pytest.mark.parametrize(
    "failure",
    [
        "savez_runtime_error",
        "savez_keyboard_interrupt",
        "fsync_os_error",
        "unserialisable_metadata",
    ],
)
def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch, failure):
    target = tmp_path / "ck.npz"
    old = make_params(0, (3, 2))
    save_checkpoint(target, params=old, epoch=1, metadata={"v": 1})
    new = make_params(1, (3, 2))
    kwargs = {"params": new, "epoch": 2}
    errors = {
        "savez_runtime_error": RuntimeError("disk on fire"),
        "savez_keyboard_interrupt": KeyboardInterrupt(),
    }
    if failure in errors:
        monkeypatch.setattr(np, "savez", _savez_failing_midway(errors[failure]))
        expected = type(errors[failure])
    elif failure == "fsync_os_error":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("EIO")))
        expected = OSError
    else:
        kwargs["metadata"] = {"v": object()}
        expected = TypeError
    with pytest.raises(expected):
        save_checkpoint(target, **kwargs)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]
    ck = load_checkpoint(target, like_params=new)
    assert_trees_equal(ck.params, old)
    assert ck.epoch == 1 and ck.metadata == {"v": 1}


SAVER = textwrap.dedent(
    """
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("ckpt", sys.argv[1])
    ckpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt)
    path, n = sys.argv[2], int(sys.argv[3])
    epoch = 0
    while True:
        epoch += 1
        w = np.full((n,), epoch, dtype=np.float32)
        ckpt.save_checkpoint(path, params=[{"W": w, "b": w[:8]}], epoch=epoch)
        print(epoch, flush=True)
    """
)


def test_sigkill_during_save_loop_leaves_a_whole_checkpoint(tmp_path):
    """SIGKILL a process that overwrites a 16 MB checkpoint in a loop; the target stays whole."""
    n, target = 4_000_000, tmp_path / "ck.npz"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    like = [{"W": jax.ShapeDtypeStruct((n,), jnp.float32), "b": np.zeros(8, np.float32)}]
    rng = random.Random(0)
    argv = [sys.executable, str(script), checkpoint.__file__, str(target), str(n)]
    for _ in range(3):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = proc.stdout.readline()  # blocks until one save has completed
        assert first, proc.communicate()[1].decode()
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        ck = load_checkpoint(target, like_params=like)
        assert ck.epoch >= int(first)
        np.testing.assert_array_equal(ck.params[0]["W"], np.full(n, ck.epoch, np.float32))
        np.testing.assert_array_equal(ck.params[0]["b"], np.full(8, ck.epoch, np.float32))
    others = [f for f in os.listdir(tmp_path) if f not in ("ck.npz", "saver.py")]
    assert all(re.fullmatch(r"\.ck\.npz\..*\.tmp", f) for f in others), others
    # what the kills left behind is cleared by the next run, and nothing else
    removed = checkpoint.remove_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(others)
    assert sorted(os.listdir(tmp_path)) == ["ck.npz", "saver.py"]


def test_remove_temp_files_removes_only_the_leftovers_of_atomic_writes(tmp_path):
    # a leftover named as the module docstring says: .<name>.<random>.tmp, made by mkstemp
    fd, leftover = tempfile.mkstemp(prefix=".metrics.csv.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    kept = ["metrics.csv", "notes.tmp", ".hidden", ".metrics.csv.tmp", ".a.b.toolongname.tmp"]
    for name in kept:
        (tmp_path / name).write_text("x")
    assert checkpoint.remove_temp_files(tmp_path) == [Path(leftover)]
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "metrics.csv"
    checkpoint.atomic_write(target, lambda f: f.write(b"epoch\n1\n"))
    assert target.read_bytes() == b"epoch\n1\n"

    def half_then_fail(f):
        f.write(b"epoch\n1\n2")
        raise KeyboardInterrupt  # e.g. Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"epoch\n1\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def _wider(params):
    return [{"W": jnp.zeros((3, 5), jnp.float32), "b": jnp.zeros(5, jnp.float32)}] + params[1:]


def _deeper(params):
    return params + [{"W": jnp.zeros((2, 2), jnp.float32), "b": jnp.zeros(2, jnp.float32)}]


def _float64(params):
    return jax.tree.map(lambda p: p.astype(jnp.float64), params)


@pytest.mark.parametrize(
    "make_template, pieces",
    [
        (_wider, ["params/0/W", "(3, 5)", "float32", "(3, 4)"]),
        (lambda p: p[:1], ["params/1/W", "params/1/b", "in the file but not the template"]),
        (_deeper, ["params/2/W", "params/2/b", "in the template but not the file"]),
        (_float64, ["params/0/W", "dtype float64", "dtype float32"]),
        (lambda p: {"layers": p}, ["params/layers/0/W", "params/0/W"]),
    ],
    ids=["wrong_shape", "fewer_layers", "more_layers", "wrong_dtype", "other_structure"],
)
def test_template_mismatch_names_the_leaf(tmp_path, make_template, pieces):
    params = make_params(0, (3, 4, 2))
    save_checkpoint(tmp_path / "ck.npz", params=params)
    with pytest.raises(ValueError) as info:
        load_checkpoint(tmp_path / "ck.npz", like_params=make_template(params))
    for piece in pieces:
        assert piece in str(info.value)


def test_opt_state_of_another_optimizer_is_rejected(tmp_path):
    params = make_params(0, (3, 2))
    _, state = trained_adam_state(params)
    save_checkpoint(tmp_path / "ck.npz", params=params, opt_state=state)
    sgd_state = optax.sgd(0.1, momentum=0.9).init(params)
    with pytest.raises(ValueError, match="opt_state/0/trace/0/W"):
        load_checkpoint(tmp_path / "ck.npz", like_params=params, like_opt_state=sgd_state)


def _write_not_checkpoints(d):
    (d / "text.npz").write_text("hello, not a zip")
    (d / "empty.npz").write_bytes(b"")
    np.save(d / "plain.npy", np.zeros(3))
    np.savez(d / "arrays.npz", a=np.zeros(3))
    np.savez(d / "otherjson.npz", metadata=np.asarray(json.dumps({"format": "other"})))
    np.savez(d / "badjson.npz", metadata=np.asarray("{not json"))
    meta = {"format": "jmlp-checkpoint", "version": 99, "leaves": {}, "key": None, "user": {}}
    np.savez(d / "newer.npz", metadata=np.asarray(json.dumps(meta)), epoch=np.int64(0))


@pytest.mark.parametrize(
    "name, message",
    [
        ("text.npz", "not a jmlp checkpoint"),
        ("empty.npz", "not a jmlp checkpoint"),
        ("plain.npy", "not a jmlp checkpoint"),
        ("arrays.npz", "not a jmlp checkpoint"),
        ("otherjson.npz", "not a jmlp checkpoint"),
        ("badjson.npz", "not a jmlp checkpoint"),
        ("newer.npz", "version 99 is newer"),
    ],
)
def test_not_a_checkpoint_raises_value_error(tmp_path, name, message):
    _write_not_checkpoints(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / name, like_params=make_params(0, (2, 2)))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.npz"))):
        load_checkpoint(tmp_path / "nope.npz", like_params=[])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epoch": -1}, ValueError, "epoch"),
        ({"epoch": True}, ValueError, "epoch"),
        ({"epoch": 1.5}, ValueError, "epoch"),
        ({"key": jnp.zeros(2, jnp.float32)}, TypeError, "key"),
        ({"params": [{"W": object()}]}, TypeError, "params/0/W"),
        ({"params": [{"W": jax.random.key(0)}]}, TypeError, "params/0/W"),
        ({"params": {"a/b": jnp.ones(1), "a": {"b": jnp.ones(1)}}}, ValueError, "a/b"),
    ],
)
def test_bad_save_arguments(tmp_path, kwargs, error, message):
    kwargs = {"params": [{"W": jnp.ones((1, 1))}]} | kwargs
    with pytest.raises(error, match=message):
        save_checkpoint(tmp_path / "ck.npz", **kwargs)
    assert os.listdir(tmp_path) == []
