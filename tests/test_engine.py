"""The one training engine: every member of fit_many equals fit of that member alone (every key
mode, batch mode and gradient), per-member stopping rules and NaN policy, chunks of epochs, the
ensemble's checkpoints, layouts, evaluation sets, optimizer functions and recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TOL, compiled
from test_ensemble import ADAM, CLS, F64, REG, N, data

import jmlp
from jmlp.backprop import backprop_many
from jmlp.ensemble import member
from jmlp.train.setup import key_period as _key_period

X, Y = data()
VAL = data(9, seed=3)
# Most tests train CLS with ADAM on (X, Y), VAL and the evaluation set SETS, in blocks of 3:
# the compiled programs of test_members_equal_fit, which the others reuse (compiling is most of
# this file's time).
SETS = {"validation": VAL, "evaluate": {"train": (X, Y)}}


def stacked(net, n=N, seed=0, dtype=jnp.float64):
    return jmlp.init_many(jax.random.split(jax.random.key(seed), n), net.sizes, dtype=dtype)


def assert_trees(a, b, **tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jnp.shape(u) == jnp.shape(v)
        np.testing.assert_allclose(u, v, **tol)


def assert_bitwise(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def traces(fn) -> int:
    """Training loops compiled while ``fn()`` runs."""
    with compiled() as names:
        fn()
    return names.count("jit(run_chunk)")


# --- the ensemble layout of the delta rule ------------------------------------------------------

PASS_CASES = [  # (sizes, hidden, output, loss, reduction)
    ((3, 6, 3), "tanh", "softmax", "cross_entropy", "mean"),
    ((3, 5, 4, 2), "relu", "identity", "mse", "sum"),
    ((3, 5, 4, 2), "sigmoid", "sigmoid", "binary_cross_entropy", "mean"),
    ((3, 5, 3), "gelu", "softmax", "mse", "mean"),
    ((3, 2), "relu", "identity", "huber", "mean"),
    ((3, 4, 3), "elu", "sigmoid", "cross_entropy", "mean"),
    ((3, 4, 3), "tanh", "softmax", "binary_cross_entropy", "sum"),
    ((3, 4, 2), "softplus", "identity", "half_sse", "mean"),
    ((3, 4, 2), "leaky_relu", "tanh", "hinge", "mean"),
]


@pytest.mark.parametrize("case", PASS_CASES, ids=lambda c: "-".join(map(str, c[1:])))
def test_backprop_many_equals_vmapped_autodiff(case):
    sizes, hidden, output, loss, reduction = case
    net = jmlp.MLP(sizes, hidden, output, loss, reduction=reduction)
    x, y = data(7, sizes[0], sizes[-1], labels=loss == "cross_entropy")
    if loss == "binary_cross_entropy":
        y = np.random.default_rng(1).uniform(size=y.shape)
    if loss == "hinge":
        y = np.sign(y)
    params, l2 = stacked(net), jnp.array([0.0, 0.1, 0.2, 0.3])
    weights = jnp.array([1.0, 1, 0, 1, 1, 1, 0])
    values, grads = backprop_many(net, params, x, y, l2=l2, weights=weights)
    one = lambda p, c: jmlp.autodiff(net, p, x, y, l2=c, weights=weights)
    ref_values, ref_grads = jax.jit(jax.vmap(one))(params, l2)
    np.testing.assert_allclose(values, ref_values, **TOL["float64"])
    assert_trees(grads, ref_grads, **TOL["float64"])


# --- member m of fit_many is fit of member m ----------------------------------------------------

KEY_MODES = {  # name -> (key for fit_many, key of member m for fit, batch_size)
    "one key": (jax.random.key(7), lambda k, m: k, 6),
    "N keys": (jax.random.split(jax.random.key(7), N), lambda k, m: k[m], 6),
    "N keys repeating": (
        jax.random.split(jax.random.key(7), 2)[np.arange(N) % 2],
        lambda k, m: k[m],
        6,
    ),
    "no key, full batch": (None, lambda k, m: None, None),
    "N keys, full batch": (jax.random.split(jax.random.key(7), N), lambda k, m: k[m], None),
    "one key, batch = N examples": (jax.random.key(7), lambda k, m: k, 20),
}


@pytest.mark.parametrize("gradient", ["backprop", "autodiff"])
@pytest.mark.parametrize("mode", list(KEY_MODES))
def test_members_equal_fit(mode, gradient):
    """N = 20, B = 6: a partial last batch; l2 per member; validation and an evaluation set."""
    key, member_key, batch = KEY_MODES[mode]
    params, l2 = stacked(CLS), np.array([0.0, 0.01, 0.0, 0.05])
    kw = {"epochs": 3, "batch_size": batch, **SETS}
    result = jmlp.fit_many(
        CLS, ADAM, X, Y, params=params, key=key, l2=l2, gradient=gradient, block_size=3, **kw
    )
    names = {"loss", "val_loss", "val_accuracy", "val_error"}
    assert set(result.history) == names | {"train_loss", "train_accuracy", "train_error"}
    for m in range(N):
        ref = jmlp.fit(
            CLS, member(params, m), ADAM, X, Y, key=member_key(key, m), l2=float(l2[m]),
            gradient=gradient, **kw,
        )  # fmt: skip
        assert_trees(member(result.params, m), ref.params, **F64)
        assert_trees(member(result.opt_state, m), ref.opt_state, **F64)
        for name, values in ref.history.items():
            assert result.history[name].shape == (N, 3)
            np.testing.assert_allclose(result.history[name][m], values, **F64)


def test_one_member_is_fit_bitwise():
    """fit is the one-member case of the same engine: the same layout, the same bits."""
    params = stacked(CLS, 1)
    kw = {"epochs": 4, "batch_size": 6, "key": jax.random.key(3), **SETS}
    many = jmlp.fit_many(CLS, ADAM, X, Y, params=params, **kw)
    one = jmlp.fit(CLS, member(params, 0), ADAM, X, Y, **kw)
    assert_bitwise(member(many.params, 0), one.params)
    np.testing.assert_array_equal(many.history["val_loss"][0], one.history["val_loss"])


# The tests below reuse test_members_equal_fit's programs: they come right after it, while
# jmlp.train's cache of compiled programs (the last 64) still holds them.


@pytest.mark.parametrize("many", [False, True], ids=["fit", "fit_many"])
def test_one_epoch_per_call_gives_the_same_bits_as_one_chunk(many):
    """A callback makes the engine return to the host after every epoch."""
    kw = {"epochs": 5, "batch_size": 6, "key": jax.random.key(0), **SETS}
    if many:  # two blocks of members, as test_members_equal_fit's (one program for both)
        run = lambda **extra: jmlp.fit_many(
            CLS, ADAM, X, Y, params=stacked(CLS), block_size=3, **kw, **extra
        )
    else:
        run = lambda **extra: jmlp.fit(CLS, member(stacked(CLS), 0), ADAM, X, Y, **kw, **extra)
    whole, stepped = run(), run(callback=lambda e, p, h: False)
    assert_bitwise(whole.params, stepped.params)
    np.testing.assert_array_equal(whole.history["val_loss"], stepped.history["val_loss"])


def test_callback_sees_stacked_params_and_can_stop_all():
    seen = []

    def callback(epoch, params, history):
        seen.append((epoch, params[0]["W"].shape, history["loss"].shape))
        return epoch == 2

    kw = {"epochs": 5, "block_size": 3, **SETS}  # test_members_equal_fit's full-batch program
    result = jmlp.fit_many(CLS, ADAM, X, Y, params=stacked(CLS), callback=callback, **kw)
    assert seen == [(1, (N, 3, 6), (N, 1)), (2, (N, 3, 6), (N, 2))]
    assert result.epochs_run.tolist() == [2] * N and "callback" in result.stopped[0]


def test_evaluation_sets_equal_the_metrics_of_the_result():
    xt, yt = data(19, seed=9)  # (X, Y)'s row bucket: test_members_equal_fit's program
    kw = {"epochs": 3, "block_size": 3, "validation": VAL, "evaluate": {"test": (xt, yt)}}
    result = jmlp.fit_many(CLS, ADAM, X, Y, params=stacked(CLS), **kw)
    np.testing.assert_allclose(
        result.history["test_accuracy"][:, -1], jmlp.accuracy(CLS, result.params, xt, yt), **F64
    )
    np.testing.assert_allclose(
        result.history["test_error"][:, -1], jmlp.error_rate(CLS, result.params, xt, yt), **F64
    )
    for m in range(N):
        loss = jmlp.loss(CLS, member(result.params, m), xt, yt)
        np.testing.assert_allclose(result.history["test_loss"][m, -1], loss, **F64)


@pytest.mark.parametrize("shared", [True, False], ids=["one key", "N keys"])
def test_layouts_agree(shared):
    """The ensemble pass (columns), vmap of the batch-major pass (rows) and one network at a time
    (single) train the same members."""
    params = stacked(REG, 3)
    key = jax.random.key(1) if shared else jax.random.split(jax.random.key(1), 3)
    x, y = data(12, n_out=2, labels=False)
    kw = {"params": params, "epochs": 3, "batch_size": 5, "key": key}
    runs = [jmlp.fit_many(REG, ADAM, x, y, block_size=b, **kw) for b in (3, 1)]
    assert_trees(runs[0].params, runs[1].params, **F64)
    np.testing.assert_allclose(runs[0].history["loss"], runs[1].history["loss"], **F64)


def test_the_key_period_finds_members_that_share_their_batches():
    """Members whose keys repeat with period p (a grid's seed axis, the last) train in blocks that
    share one key each; any other pattern is one data order per member (period N)."""
    lr, seeds = [1e-3, 1e-2, 1e-1], range(4)
    assert _key_period(jmlp.grid(lr=lr, seed=seeds).keys(jax.random.key(0))) == 4
    assert _key_period(jmlp.grid(seed=seeds, lr=lr).keys(jax.random.key(0))) == 12
    assert _key_period(jax.random.split(jax.random.key(0), 5)) == 5
    assert _key_period(jnp.broadcast_to(jax.random.key(0), (5,))) == 1


# --- stopping rules, per member ----------------------------------------------------------------


def test_tol_per_member_stops_each_where_fit_stops():
    x, y = data(12, n_out=2, labels=False)
    params, tols = stacked(REG, 3), np.array([0.0, 9.5, 12.0])
    result = jmlp.fit_many(REG, optax.sgd(0.01), x, y, params=params, epochs=40, tol=tols)
    assert len(set(result.epochs_run.tolist())) > 1  # the members stopped at different epochs
    for m, tol in enumerate(tols):
        ref = jmlp.fit(REG, member(params, m), optax.sgd(0.01), x, y, epochs=40, tol=tol or None)
        assert result.epochs_run[m] == ref.epochs_run
        assert result.stopped[m].split(" at ")[0] == ref.stopped.split(" at ")[0]
        np.testing.assert_allclose(
            result.history["loss"][m, : ref.epochs_run], ref.history["loss"], **F64
        )
        assert np.all(np.isnan(result.history["loss"][m, ref.epochs_run :]))  # frozen after
        assert_trees(member(result.params, m), ref.params, **F64)


def test_patience_per_member_restores_each_best_epoch():
    params, patience = stacked(CLS), np.array([1, 2, 3, 30])
    kw = {"epochs": 25, "batch_size": 6, "key": jax.random.key(2), "validation": VAL}
    result = jmlp.fit_many(CLS, optax.adam(0.3), X, Y, params=params, patience=patience, **kw)
    for m, p in enumerate(patience):
        ref = jmlp.fit(CLS, member(params, m), optax.adam(0.3), X, Y, patience=int(p), **kw)
        assert result.epochs_run[m] == ref.epochs_run and result.stopped[m] == ref.stopped
        assert_trees(member(result.params, m), ref.params, **F64)
        assert_trees(member(result.opt_state, m), ref.opt_state, **F64)
    best = np.nanargmin(result.history["val_loss"], axis=1) + 1
    assert all(f"restored the best epoch {b} " in s for b, s in zip(best, result.stopped))


def diverging(n_members=3):
    """Full-batch GD on a 2-4-1 linear net; member 1's rate diverges, the others' do not."""
    net = jmlp.MLP((2, 4, 1), "identity", "identity", "mse")
    x = np.random.default_rng(0).normal(size=(8, 2))
    params = stacked(net, n_members)
    return net, params, x, x[:, :1] * 3, np.array([0.01, 10.0, 0.02])


def test_non_finite_member_stops_and_the_others_go_on():
    net, params, x, y, lrs = diverging()
    opt = lambda lr: optax.sgd(lr)
    result = jmlp.fit_many(net, opt, x, y, params=params, hparams={"lr": lrs}, epochs=60)
    assert result.epochs_run.tolist()[::2] == [60, 60] and result.epochs_run[1] < 60
    assert "non-finite" in result.stopped[1]
    with pytest.raises(jmlp.NonFiniteLossError) as info:
        jmlp.fit(net, member(params, 1), optax.sgd(10.0), x, y, epochs=60)
    assert info.value.epoch == result.epochs_run[1] + 1  # the same failing epoch
    # the member keeps the params from before that epoch: fit's, replayed to that epoch's start
    before = jmlp.fit(
        net, member(params, 1), optax.sgd(10.0), x, y, epochs=int(result.epochs_run[1])
    )
    assert_trees(member(result.params, 1), before.params, **F64)
    for m in (0, 2):
        ref = jmlp.fit(net, member(params, m), optax.sgd(lrs[m]), x, y, epochs=60)
        assert_trees(member(result.params, m), ref.params, **F64)


def test_skip_policy_per_member_equals_fit():
    net, params, x, y, lrs = diverging()
    kw = {"epochs": 12, "nan_policy": "skip"}
    result = jmlp.fit_many(
        net, lambda lr: optax.sgd(lr), x, y, params=params, hparams={"lr": lrs}, **kw
    )
    for m in range(3):
        ref = jmlp.fit(net, member(params, m), optax.sgd(lrs[m]), x, y, **kw)
        np.testing.assert_array_equal(result.history["skipped"][m], ref.history["skipped"])
        assert_trees(member(result.params, m), ref.params, **F64)


# --- chunks of epochs, checkpoints --------------------------------------------------------------


@pytest.mark.parametrize("patience", [None, 2])
def test_ensemble_checkpoint_resume_is_bitwise(tmp_path, patience):
    params, path = stacked(CLS), tmp_path / "ensemble.npz"
    keys = jax.random.split(jax.random.key(5), N)
    kw = {"params": params, "batch_size": 6, "key": keys, "validation": VAL, "patience": patience}
    opt = optax.adam(0.3)
    whole = jmlp.fit_many(CLS, opt, X, Y, epochs=12, **kw)
    jmlp.fit_many(CLS, opt, X, Y, epochs=5, checkpoint_path=path, **kw)
    resumed = jmlp.fit_many(CLS, opt, X, Y, epochs=12, checkpoint_path=path, resume=True, **kw)
    assert_bitwise((resumed.params, resumed.opt_state), (whole.params, whole.opt_state))
    np.testing.assert_array_equal(resumed.history["val_loss"], whole.history["val_loss"])
    assert resumed.stopped == whole.stopped
    np.testing.assert_array_equal(resumed.epochs_run, whole.epochs_run)


def test_fit_checkpoint_resume_with_patience_is_bitwise(tmp_path):
    params, path = member(stacked(CLS), 0), tmp_path / "run.npz"
    kw = {"batch_size": 6, "key": jax.random.key(5), "validation": VAL, "patience": 3}
    opt = optax.adam(0.3)
    whole = jmlp.fit(CLS, params, opt, X, Y, epochs=30, **kw)
    assert "early stopping" in whole.stopped and whole.epochs_run < 30
    jmlp.fit(CLS, params, opt, X, Y, epochs=whole.epochs_run - 2, checkpoint_path=path, **kw)
    resumed = jmlp.fit(CLS, params, opt, X, Y, epochs=30, checkpoint_path=path, resume=True, **kw)
    assert_bitwise(resumed.params, whole.params)
    assert resumed.history == whole.history and resumed.stopped == whole.stopped


# --- evaluation sets and metrics of stacked params ---------------------------------------------


def test_metrics_of_stacked_params_are_one_per_member():
    params = stacked(REG, 3)
    x, y = data(12, n_out=2, labels=False)
    r2 = jmlp.r2_score(REG, params, x, y)
    assert r2.shape == (3,)
    for m in range(3):
        np.testing.assert_allclose(r2[m], jmlp.r2_score(REG, member(params, m), x, y), **F64)
    np.testing.assert_allclose(
        jmlp.predict(CLS, stacked(CLS), X)[2], jmlp.predict(CLS, member(stacked(CLS), 2), X)
    )
    with pytest.raises(ValueError, match="y: integer labels"):
        jmlp.accuracy(CLS, stacked(CLS), X, Y + 5)


def test_at_best_takes_each_member_at_its_lowest_val_loss():
    history = {
        "val_loss": np.array([[3.0, 1.0, 2.0], [1.0, np.nan, 2.0]]),
        "acc": np.array([[1, 2, 3], [4, 5, 6]]),
    }
    np.testing.assert_array_equal(jmlp.at_best(history, "acc"), [2, 4])


def test_grid_builds_members_from_named_axes():
    g = jmlp.grid(lr=[0.1, 0.2, 0.3], seed=range(2))
    assert g.shape == (3, 2) and g.size == 6
    np.testing.assert_array_equal(g.values("lr")["lr"], [0.1, 0.1, 0.2, 0.2, 0.3, 0.3])
    np.testing.assert_array_equal(g.values()["seed"], [0, 1, 0, 1, 0, 1])
    keys = jax.random.key_data(g.keys(jax.random.key(0), "seed"))
    assert_bitwise(keys[1], jax.random.key_data(jax.random.fold_in(jax.random.key(0), 1)))
    assert_bitwise(keys[2], keys[0])  # the same seed, another lr
    np.testing.assert_array_equal(g.reshape(np.arange(6)), [[0, 1], [2, 3], [4, 5]])
    with pytest.raises(ValueError, match="names: unknown"):
        g.values("momentum")


# --- optimizers as functions; recompilation -----------------------------------------------------

OPTIMIZER_FORMS = {
    "keywords": (lambda lr: optax.adam(lr), {"lr": [0.01, 0.02, 0.03, 0.04]}),
    "dict": (lambda h: optax.adam(h["lr"]), {"lr": [0.01, 0.02, 0.03, 0.04]}),
    "optax.adam itself": (optax.adam, {"learning_rate": [0.01, 0.02, 0.03, 0.04]}),
}


@pytest.mark.parametrize("form", list(OPTIMIZER_FORMS))
def test_optimizer_functions_take_hparams_as_keywords_or_a_dict(form):
    fn, hparams = OPTIMIZER_FORMS[form]
    result = jmlp.fit_many(CLS, fn, X, Y, params=stacked(CLS), hparams=hparams, epochs=2)
    for m, lr in enumerate(next(iter(hparams.values()))):
        ref = jmlp.fit(CLS, member(stacked(CLS), m), optax.adam(lr), X, Y, epochs=2)
        assert_trees(member(result.params, m), ref.params, **F64)


def test_an_optimizer_function_that_takes_neither_is_named():
    with pytest.raises(TypeError, match=r"optimizer: a function of the hparams must take them"):
        jmlp.fit_many(
            CLS, lambda a, b: optax.adam(a), X, Y, params=stacked(CLS), hparams={"lr": 0.1}
        )
    with pytest.raises(
        ValueError, match="hparams: \\['lr'\\] given, but optimizer is a GradientTr"
    ):
        jmlp.fit_many(CLS, ADAM, X, Y, params=stacked(CLS), hparams={"lr": 0.1})


def test_a_sweep_as_a_loop_of_fit_compiles_once_and_fresh_lambdas_too():
    kw = {"epochs": 2, "batch_size": 6, "key": jax.random.key(0)}
    count = traces(lambda: [
        jmlp.fit(CLS, member(stacked(CLS), 0), lambda lr: optax.adam(lr, b1=0.95), X, Y, hparams={"lr": lr}, **kw)
        for lr in (0.1, 0.2, 0.3)
    ])  # fmt: skip
    assert count <= 1


def test_fit_many_with_equal_settings_does_not_recompile():
    kw = {"params": stacked(CLS), "epochs": 2, "batch_size": 6, "key": jax.random.key(0)}
    jmlp.fit_many(CLS, jmlp.optim.sgd(0.07), X, Y, **kw)
    assert traces(lambda: jmlp.fit_many(CLS, jmlp.optim.sgd(0.07), X, Y, **kw)) == 0
    assert traces(lambda: jmlp.fit_many(CLS, optax.sgd(0.07), X, Y, **kw)) == 1
    assert traces(lambda: jmlp.fit_many(CLS, optax.sgd(0.07), X, Y, **kw)) == 0


@pytest.mark.parametrize("width", [8, 512])  # below and above engine.FINITE_COPY entries
def test_members_finite_against_numpy(width):
    from jmlp.engine import FINITE_COPY, members_finite

    rng = np.random.default_rng(0)
    tree = {"W": rng.normal(size=(3, width, width)).astype(np.float32),
            "b": rng.normal(size=(3, width)).astype(np.float32),
            "count": np.zeros((3,), np.int32)}  # fmt: skip
    assert (width * width + width > FINITE_COPY) == (width == 512)
    tree["W"][1, 2, 3] = np.inf
    tree["b"][2, -1] = np.nan
    expected = [
        np.isfinite(tree["W"][m]).all() and np.isfinite(tree["b"][m]).all() for m in range(3)
    ]
    np.testing.assert_array_equal(jax.jit(members_finite)(tree), expected)
    assert expected == [True, False, False]
