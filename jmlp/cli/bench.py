"""``jmlp bench``: run experiments/benchmark.py of a source checkout and print its table."""

import argparse
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

BENCH_EPILOG = """examples:
  jmlp bench --quick
  jmlp bench --out runs/bench

Runs experiments/benchmark.py of a source checkout; other options are passed on to it."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run the benchmark (source checkout)",
        description="Run the benchmark of experiments/benchmark.py and print its table.",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    p.add_argument("--out", metavar="DIR", help="output folder of the benchmark")
    p.set_defaults(run=run)


def benchmark_script() -> Path:
    """experiments/benchmark.py next to the jmlp package (a source checkout), else an error."""
    path = Path(__file__).resolve().parents[2] / "experiments" / "benchmark.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"bench: {path} not found; the benchmark runs from a source checkout of jmlp"
        )
    return path


def run(args: argparse.Namespace) -> int:
    """``jmlp bench``: the benchmark's ``main(argv)`` if it has one, else the script itself."""
    path = benchmark_script()
    argv = (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
    argv += args.extra
    spec = importlib.util.spec_from_file_location("jmlp_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the experiments import their sibling common.py
    try:
        spec.loader.exec_module(module)
        run = getattr(module, "main", None)
        if not callable(run) or not inspect.signature(run).parameters:
            return subprocess.run([sys.executable, str(path), *argv], check=False).returncode
        status = run(argv)
    finally:
        sys.path.remove(str(path.parent))
    return status if isinstance(status, int) else 0
