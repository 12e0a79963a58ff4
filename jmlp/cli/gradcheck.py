"""``jmlp gradcheck``: hand-written vs autodiff vs finite-difference gradients of one net."""

import argparse

import jax
import jax.numpy as jnp

from jmlp.cli.options import int_list, names, non_negative, positive_int
from jmlp.gradient_check import gradcheck
from jmlp.init import init_params
from jmlp.losses import LOSSES
from jmlp.net import MLP

# Default gradcheck bounds on the relative errors, per dtype: (autodiff, finite differences).
# float64: hand-written and autodiff differ by rounding only (1e-16 per operation); central
# differences with h = eps^(1/3) ~ 6e-6 are accurate to ~h^2 ~ 4e-11, relative to the largest
# entry. float32: eps = 1.2e-7, h ~ 5e-3, so rounding in L(p +- h) leaves ~eps / h ~ 2e-5 of
# the loss' scale and truncation ~h^2 ~ 2.5e-5: 1e-2 is a loose but honest bound.
GRADCHECK_BOUNDS = {"float64": (1e-10, 1e-6), "float32": (1e-4, 1e-2)}

GRADCHECK_EPILOG = """examples:
  jmlp gradcheck                                  # 4-8-3 tanh / softmax / cross-entropy
  jmlp gradcheck --sizes 10,32,32,1 --activation relu,tanh --loss mse
  jmlp gradcheck --dtype float32 --loss binary_cross_entropy --sizes 5,7,2
  jmlp gradcheck --second-order                   # and the Hessian-vector product (R-operator)

Exit status 0 if both relative errors are within their bounds, 1 if not. Default bounds:
float64 autodiff 1e-10, finite differences 1e-6; float32 autodiff 1e-4, finite differences
1e-2 (the same bounds hold the --second-order line). Finite differences are unreliable where the
loss has kinks (relu, mae, hinge)."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="compare hand-written, autodiff and finite-difference gradients",
        description="The three-way gradient report for one architecture and loss.",
        epilog=GRADCHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a(
        "--sizes",
        type=int_list,
        default=(4, 8, 3),
        metavar="N,N,N",
        help="layer widths, input first (4,8,3)",
    )
    a(
        "--activation",
        type=names,
        default="tanh",
        metavar="NAME[,NAME]",
        help="hidden activation(s) (tanh)",
    )
    a("--output-activation", metavar="NAME", help="default: from the loss, as in train")
    a("--loss", choices=sorted(LOSSES), default="cross_entropy", help="(cross_entropy)")
    a("--batch", type=positive_int, default=16, metavar="B", help="examples in the batch (16)")
    a("--seed", type=int, default=0, metavar="S", help="seed of inputs, targets and params (0)")
    a("--l2", type=non_negative, default=0.0, metavar="C", help="L2 coefficient (0)")
    a("--dtype", choices=tuple(GRADCHECK_BOUNDS), default="float64", help="(float64)")
    a(
        "--fd-entries",
        type=positive_int,
        default=200,
        metavar="K",
        help="entries per tensor checked by finite differences (200)",
    )
    a(
        "--autodiff-rtol",
        type=non_negative,
        metavar="R",
        help="bound on the hand-vs-autodiff error",
    )
    a(
        "--fd-rtol",
        type=non_negative,
        metavar="R",
        help="bound on the hand-vs-finite-differences error",
    )
    a(
        "--second-order",
        action="store_true",
        help="also compare the Hessian-vector product (R-operator) along a random direction "
        "with autodiff and with central differences of the gradient",
    )
    p.set_defaults(run=run)


def gradcheck_problem(net: MLP, batch: int, seed: int):
    """Random params, inputs ``x ~ N(0, 1) (batch, n_in)`` and targets that suit the loss."""
    key_p, key_x, key_y = jax.random.split(jax.random.key(seed), 3)
    n_in, n_out = net.sizes[0], net.sizes[-1]
    x = jax.random.normal(key_x, (batch, n_in), jnp.float32)
    if net.loss == "cross_entropy":
        y = jax.random.randint(key_y, (batch,), 0, n_out)
    elif net.loss in ("binary_cross_entropy", "hinge"):
        y = jax.random.bernoulli(key_y, 0.5, (batch, n_out)).astype(jnp.float32)
        y = 2 * y - 1 if net.loss == "hinge" else y
    elif net.loss == "poisson":
        y = jax.random.poisson(key_y, 2.0, (batch, n_out)).astype(jnp.float32)  # counts
    else:
        y = jax.random.normal(key_y, (batch, n_out), jnp.float32)
    return init_params(key_p, net.sizes), x, y


def run(args: argparse.Namespace) -> int:
    """``jmlp gradcheck``: print the report; 0 if within the bounds, 1 if not."""
    net = MLP(
        args.sizes,
        activation=args.activation,
        output_activation=args.output_activation,
        loss=args.loss,
    )
    params, x, y = gradcheck_problem(net, args.batch, args.seed)
    report = gradcheck(
        net,
        params,
        x,
        y,
        l2=args.l2,
        dtype=args.dtype,
        fd_entries=args.fd_entries,
        second_order=args.second_order,
    )
    bound_auto, bound_fd = GRADCHECK_BOUNDS[args.dtype]
    bound_auto = bound_auto if args.autodiff_rtol is None else args.autodiff_rtol
    bound_fd = bound_fd if args.fd_rtol is None else args.fd_rtol
    ok = report.max_rel_autodiff <= bound_auto and report.max_rel_fd <= bound_fd
    print(
        f"net: sizes {net.sizes}, activation {net.activation}, "
        f"output {net.output_activation}, loss {net.loss}"
    )
    print(report)
    print(
        f"{'PASS' if ok else 'FAIL'}: max relative error vs autodiff "
        f"{report.max_rel_autodiff:.2e} (bound {bound_auto:g}), "
        f"vs finite differences {report.max_rel_fd:.2e} (bound {bound_fd:g})"
    )
    return 0 if ok else 1
