"""The ``jmlp`` command line (also ``python -m jmlp``), one module per verb.

    jmlp train --data digits                        train on a built-in set, write a run folder
    jmlp train --data houses.csv --target price     train on your own CSV or NPZ file
    jmlp train --resume RUN_FOLDER --epochs 200     continue a run
    jmlp predict RUN_FOLDER new.csv                 apply a trained run to new raw data
    jmlp gradcheck --sizes 4,8,3 --activation tanh  hand-written vs autodiff vs finite differences
    jmlp bench --quick                              the benchmark (from a source checkout)
    jmlp draw                                       a local page to draw a digit on

Each verb's module has ``add_parser(subparsers)`` and ``run(args) -> exit status``. Compiled
programs are kept in JAX's persistent compilation cache (``jmlp.cache``: ``~/.cache/jmlp/xla``,
or ``$JMLP_CACHE_DIR``; empty turns it off).
Exit status: 0 on success; 1 when ``gradcheck`` finds the gradients disagree; 2 on any error (a
bad option, an unknown data set, an unreadable file, a ValueError/TypeError raised by jmlp),
which is printed as one line ``jmlp: error: ...`` on stderr, never as a traceback.
"""

import argparse
import atexit
import contextlib
import gc
import os
import sys

import jmlp
from jmlp.cli import bench, draw, gradcheck, predict, train
from jmlp.cli.options import Parser, UsageError

VERBS = (train, predict, gradcheck, bench, draw)


def build_parser() -> argparse.ArgumentParser:
    """The ``jmlp`` parser with one sub-command per verb module."""
    parser = Parser(
        prog="jmlp",
        description="jmlp: a functional JAX MLP with a hand-written backward pass.",
        epilog="Run 'jmlp VERB --help' for the options and examples of each verb.",
    )
    parser.add_argument("--version", action="version", version=f"jmlp {jmlp.__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=Parser)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jmlp`` script: parse ``argv`` and run the verb; the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.verb != "bench":
            raise UsageError(
                f"{args.verb}: unrecognized arguments: {' '.join(extra)} "
                f"(see jmlp {args.verb} --help)"
            )
        args.extra = extra
        return args.run(args)
    except UsageError as err:
        message = _one_line(err)
    except FloatingPointError as err:  # jmlp.train.NonFiniteLossError
        where = f"epoch {getattr(err, 'epoch', '?')}, step {getattr(err, 'step', '?')}"
        message = f"training diverged: non-finite loss or update at {where}; try a smaller --lr"
    except (ValueError, TypeError, OSError, ImportError) as err:
        message = _one_line(err)
    except KeyboardInterrupt:
        print("jmlp: interrupted", file=sys.stderr)
        return 130
    print(f"jmlp: error: {message}", file=sys.stderr)
    return 2


def console() -> None:
    """The ``jmlp`` script: :func:`main`, the exit handlers, the output flushed, and the process
    ends, without the interpreter's teardown of every module (0.2-0.5 s once JAX is loaded).
    The imports' objects live as long as the process: frozen out of the garbage collector's
    full passes, which would otherwise walk them all again (0.1 s of a run)."""
    gc.freeze()
    status = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(status)
