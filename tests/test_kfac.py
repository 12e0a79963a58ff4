"""K-FAC in the training engine (jmlp.fit(..., preconditioner=jmlp.kfac(...))) against a plain loop
written differently: per-example factors from jax.jacrev and jax.hessian, dense Kronecker products
and numpy inverses; the one-example step against a dense solve; fit_many members against fit;
no recompilation for new damping; resume bitwise; the argument checks."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compiled

import jmlp
from jmlp.precondition import KEY_SALT

NET = jmlp.MLP((3, 5, 4, 3), "tanh", "softmax", "cross_entropy")
F64 = {"rtol": 1e-10, "atol": 1e-12}
KEY = jax.random.key(3)
SGD = optax.sgd(0.1, momentum=0.9)


def data(n=11):
    k1, k2 = jax.random.split(jax.random.key(0))
    return jax.random.normal(k1, (n, 3), jnp.float64), jax.random.randint(k2, (n,), 0, 3)


def params(seed=0, net=NET):
    return jmlp.init_params(jax.random.key(seed), net.sizes, dtype=jnp.float64)


# --- the reference: one example at a time, dense matrices ------------------------------------------
def layer_inputs(p, x):
    """``[h^0, ..., h^{L-1}]`` of one example (tanh hidden layers), by a loop of its own."""
    h, out = x, []
    for layer in p:
        out.append(h)
        h = jnp.tanh(h @ layer["W"] + layer["b"])
    return out


def to_output(p, l, z):
    for layer in p[l + 1 :]:
        z = jnp.tanh(z) @ layer["W"] + layer["b"]
    return z


def example_factors(p, x_n, t_n):
    """Per layer ``(a a^T, J^T H J)`` of one example: ``a = [h^{l-1}, 1]``, ``J = dz^L/dz^l`` by
    jacrev, ``H`` the Hessian of the loss in ``z^L`` by jax.hessian."""
    out = []
    for l, (h, layer) in enumerate(zip(layer_inputs(p, x_n), p)):
        a = jnp.append(h, 1.0)
        z = h @ layer["W"] + layer["b"]
        J = jax.jacrev(lambda z, l=l: to_output(p, l, z))(z)
        H = jax.hessian(lambda u: -jnp.sum(t_n * jax.nn.log_softmax(u)))(to_output(p, l, z))
        out.append((jnp.outer(a, a), J.T @ H @ J))
    return out


EXAMPLE_FACTORS = jax.jit(example_factors)


def exact_factors(p, x, t):
    """Per layer ``A = mean_n a_n a_n^T``, ``G = (1/B) sum_n J_n^T H_n J_n``: a loop over the
    examples."""
    per_example = [EXAMPLE_FACTORS(p, x[n], t[n]) for n in range(len(x))]
    return [tuple(sum(np.asarray(f[l][i]) for f in per_example) / len(x) for i in (0, 1))
            for l in range(len(p))]  # fmt: skip


def sampled_factors(p, x, t, key):
    f = jmlp.kfac_factors(NET, p, x, t, kind="kfac", key=key)
    return [(np.asarray(d["A"]), np.asarray(d["G"])) for d in f]


def dense_step(grads, A_inv, G_inv):
    """``kron(A^-1, G^-1) vec([dW; db])`` with the dense Kronecker product."""
    out = []
    for g, a, b in zip(grads, A_inv, G_inv):
        m = np.concatenate([g["W"], g["b"][None]])
        v = (np.kron(a, b) @ m.ravel()).reshape(m.shape)
        out.append({"W": v[:-1], "b": v[-1]})
    return out


def damped(A, G, damping):
    pi = np.sqrt((np.trace(A) / len(A)) / (np.trace(G) / len(G)))
    gamma = np.sqrt(damping)
    return (np.linalg.inv(A + pi * gamma * np.eye(len(A))),
            np.linalg.inv(G + gamma / pi * np.eye(len(G))))  # fmt: skip


def loop(kind, p, x, y, epochs, batch, damping, decay, every, l2, opt):
    """Epochs of steps on perm[0:B], perm[B:2B], ...: K-FAC by the module docstring's recipe."""
    t = np.eye(3)[np.asarray(y)]
    state, k, running, inverses = opt.init(p), 0, None, None
    grad = jax.jit(jax.grad(lambda q, xb, yb: jmlp.loss(NET, q, xb, yb, l2=l2)))
    update = jax.jit(opt.update)
    for epoch in range(epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), len(x)))
        for idx in np.split(perm, range(batch, len(x), batch)):
            xb, tb = np.asarray(x)[idx], t[idx]
            draws = jax.random.fold_in(jax.random.fold_in(KEY, KEY_SALT), k)
            new = exact_factors(p, xb, tb) if kind == "kflr" else sampled_factors(p, xb, tb, draws)
            eps = min(1 - 1 / (k + 1), decay)
            running = new if running is None else [
                (eps * A + (1 - eps) * An, eps * G + (1 - eps) * Gn)
                for (A, G), (An, Gn) in zip(running, new)
            ]  # fmt: skip
            if k % every == 0:
                inverses = [damped(A, G, damping + l2) for A, G in running]
            g = jax.tree.map(np.asarray, grad(p, xb, jnp.asarray(y)[idx]))
            direction = dense_step(g, *zip(*inverses))
            updates, state = update(direction, state, p)
            p, k = optax.apply_updates(p, updates), k + 1
    return p


def assert_trees(a, b, **tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, **tol)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "n"), [("kflr", 11), ("kfac", 12)])
def test_fit_with_kfac_equals_a_loop_of_dense_steps(kind, n):
    """kflr: a last batch of 3 (a row of weight 0 in the step); kfac: whole batches (the draws
    of a batch depend on its row count)."""
    x, y = data(n)
    kw = {"damping": 1e-2, "decay": 0.8, "every": 2}
    result = jmlp.fit(NET, params(), SGD, x, y, epochs=2, batch_size=4, key=KEY, l2=1e-3,
                      preconditioner=jmlp.kfac(kind=kind, **kw))  # fmt: skip
    expected = loop(kind, params(), x, y, 2, 4, l2=1e-3, opt=SGD, **kw)
    assert_trees(result.params, expected, **F64)
    plain = jmlp.fit(NET, params(), SGD, x, y, epochs=2, batch_size=4, key=KEY, l2=1e-3)
    assert not np.allclose(result.params[0]["W"], plain.params[0]["W"])  # K-FAC mattered


def test_one_example_step_is_the_dense_damped_solve():
    """every=1, decay 0, one example, SGD with step 1: the update is ``-D^-1 g`` with
    ``D = kron(A + pi gamma I, G + gamma / pi I)``, and ``kron(A, G)`` is the GGN block."""
    net = jmlp.MLP((3, 4, 2), "tanh", "softmax", "cross_entropy")
    p = params(1, net)
    x, y = data(1)
    y = y % 2
    damping = 0.05
    result = jmlp.fit(net, p, optax.sgd(1.0), x, y, epochs=1,
                      preconditioner=jmlp.kfac(damping, decay=0.0, every=1, kind="kflr"))  # fmt: skip
    flat = lambda layer: jnp.concatenate([layer["W"], layer["b"][None]]).ravel()
    g = jax.grad(lambda q: jmlp.loss(net, q, x, y))(p)
    t = jax.nn.one_hot(y[0], 2, dtype=jnp.float64)
    hessian = jax.hessian(lambda u: -jnp.sum(t * jax.nn.log_softmax(u)))

    def z_out(v, l):
        """``z^L`` of the example as a function of layer l's row-major ``[W; b]``."""
        m = v.reshape(p[l]["W"].shape[0] + 1, -1)
        q = [*p[:l], {"W": m[:-1], "b": m[-1]}, *p[l + 1 :]]
        return jmlp.forward_cache(net, q, x).z[-1][0]

    @partial(jax.jit, static_argnums=0)
    def ggn_block(l):  # the GGN block of layer l, row-major [W; b]: J^T H J
        J = jax.jacrev(z_out)(flat(p[l]), l)
        return J.T @ hessian(z_out(flat(p[l]), l)) @ J

    for l in range(2):
        block = np.asarray(ggn_block(l))
        a = np.append(np.asarray(jmlp.forward_cache(net, p, x).h[l][0]), 1.0)
        A = np.outer(a, a)
        n_out = p[l]["W"].shape[1]
        G = block[-n_out:, -n_out:]  # the bias block: dz/db = I
        np.testing.assert_allclose(np.kron(A, G), block, **F64)
        pi = np.sqrt((np.trace(A) / len(A)) / (np.trace(G) / n_out))
        gamma = np.sqrt(damping)
        D = np.kron(A + pi * gamma * np.eye(len(A)), G + gamma / pi * np.eye(n_out))
        step = np.linalg.solve(D, np.asarray(flat(g[l])))
        np.testing.assert_allclose(flat(result.params[l]), flat(p[l]) - step, **F64)


@pytest.mark.slow
def test_fit_many_members_are_fit_and_new_damping_does_not_recompile():
    x, y = data()
    n = 3
    stack = jmlp.init_many(jax.random.split(jax.random.key(5), n), NET.sizes, dtype=jnp.float64)
    damping, decay = np.array([1e-3, 1e-2, 1e-1]), np.array([0.9, 0.5, 0.0])
    kw = {"epochs": 2, "batch_size": 4, "key": KEY}
    many = jmlp.fit_many(NET, stack, SGD, x, y, **kw,
                         preconditioner=jmlp.kfac(damping, decay=decay, every=3))  # fmt: skip
    for m in range(n):
        pre = jmlp.kfac(damping[m], decay=decay[m], every=3)
        one = jmlp.fit(NET, jmlp.member(stack, m), SGD, x, y, **kw, preconditioner=pre)
        assert_trees(jmlp.member(many.params, m), one.params, rtol=1e-12, atol=1e-14)
    with compiled() as names:
        again = jmlp.fit_many(NET, stack, SGD, x, y, **kw,
                              preconditioner=jmlp.kfac(damping * 2, decay=decay, every=3))  # fmt: skip
    assert "jit(run_chunk)" not in names
    assert not np.allclose(again.params[0]["W"], many.params[0]["W"])


@pytest.mark.slow
def test_a_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path):
    x, y = data()
    kw = {"batch_size": 4, "key": KEY, "preconditioner": jmlp.kfac(1e-2, every=4)}
    whole = jmlp.fit(NET, params(), SGD, x, y, epochs=4, **kw)
    path = tmp_path / "state.npz"
    jmlp.fit(NET, params(), SGD, x, y, epochs=2, checkpoint_path=path, **kw)
    resumed = jmlp.fit(NET, params(), SGD, x, y, epochs=4, checkpoint_path=path, resume=True, **kw)
    assert resumed.epochs_run == 4 and resumed.history == whole.history
    leaves = lambda r: jax.tree.leaves((r.params, r.opt_state))
    for a, b in zip(leaves(resumed), leaves(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(whole.opt_state.count) == 12  # 3 steps an epoch


@pytest.mark.parametrize(
    ("make", "overrides", "error", "message"),
    [
        (lambda: jmlp.kfac(0.0), {}, ValueError, "damping: expected numbers > 0"),
        (lambda: jmlp.kfac(-1.0), {}, ValueError, "damping: expected numbers > 0"),
        (lambda: jmlp.kfac(decay=1.0), {}, ValueError, r"decay: expected numbers in \[0, 1\)"),
        (lambda: jmlp.kfac(decay=-0.1), {}, ValueError, r"decay: expected numbers in \[0, 1\)"),
        (lambda: jmlp.kfac(every=0), {}, ValueError, "every: expected an int >= 1"),
        (lambda: jmlp.kfac(every=2.0), {}, ValueError, "every: expected an int >= 1"),
        (lambda: jmlp.kfac(kind="ekfac"), {}, ValueError, "kind: expected one of"),
        (lambda: jmlp.kfac(), {"rule": "sign"}, ValueError, "preconditioner: K-FAC precondition"),
        (lambda: jmlp.kfac(), {"gradient": "autodiff"}, ValueError, "gradient: K-FAC's factors"),
        (lambda: "kfac", {}, TypeError, "preconditioner: expected jmlp.kfac"),
        (lambda: jmlp.kfac(), {"key": None}, ValueError, "key: the K-FAC preconditioner"),
    ],
)
def test_bad_arguments_name_the_argument(make, overrides, error, message):
    x, y = data()
    with pytest.raises(error, match=message):
        kw = {"epochs": 1, "key": KEY} | overrides
        jmlp.fit(NET, params(), SGD, x, y, preconditioner=make(), **kw)


@pytest.mark.slow
def test_per_member_damping_of_the_wrong_length_is_refused():
    x, y = data()
    stack = jmlp.init_many(jax.random.split(jax.random.key(5), 2), NET.sizes, dtype=jnp.float64)
    with pytest.raises(ValueError, match=r"damping: expected a number or an array of shape \(2,\)"):
        jmlp.fit_many(NET, stack, SGD, x, y, epochs=1,
                      preconditioner=jmlp.kfac(np.array([1e-3, 1e-2, 1e-1]), kind="kflr"))  # fmt: skip
