"""The first answer: whole jobs in fresh processes, jmlp.sklearn beside scikit-learn's MLP.

    python experiments/first_answer.py [--repeats 3] [--out DIR] [--quick]

Each job runs as a new Python process, as a user's script does (imports, compilation, data and
training all counted), jmlp and scikit-learn interleaved, the best of ``--repeats`` kept:
- "003": document 003's problem, 400 x 5, a 5-50-3 relu net, Adam at 1e-3, batch 50, 500
  epochs (no early stop), fit then predict;
- "grid": GridSearchCV on breast_cancer (569 x 30) of Pipeline(StandardScaler,
  MLPClassifier((64,))) over 3 alphas x 2 learning rates, 5 folds and the refit (n_jobs 1; 2
  processes sharing the cache, joblib's default; 2 threads, joblib's threading backend).
Each job also reports its imports apart: jmlp's job imports JAX besides scikit-learn, and the
work after the imports (fit, predict, grid search) is what the library itself decides.
jmlp runs once with an empty compilation cache (a new folder each time) and once with the cache
that an earlier identical process filled. Two more measurements, each in a fresh process:
the compile time of the first ``jmlp.fit`` (first call less second) against that of a plain
whole-run ``lax.scan`` of the same training (experiments/benchmark.py's reference), and the
training programs a grid search compiles (JAX's compile events named ``run_chunk``). Last,
``jmlp train --data digits`` with a warm cache: its wall time against the training time it reports.
Prints a table of ratios and writes results.json.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from common import parse_args, save_json, table

JOB = r"""
import os, sys, time, warnings
began = time.perf_counter()
which, job, jobs, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
if which == "jmlp":
    from jmlp.sklearn import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
imported = time.perf_counter()
warnings.filterwarnings("ignore")
if job == "003":
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1)
    settings = dict(batch_size=50, max_iter=500, tol=0.0, n_iter_no_change=10**6)
    MLPClassifier((50,), random_state=0, **settings).fit(x, y).predict(x)
else:
    x, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=200, random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 1e-2, 1e-1],
            "mlpclassifier__learning_rate_init": [1e-3, 1e-2]}
    with joblib.parallel_config(backend=backend):
        GridSearchCV(pipe, grid, cv=5, n_jobs=jobs).fit(x, y)
print(imported - began, time.perf_counter() - began)
"""

COMPILE = r"""
import sys, time
import jax, jax.numpy as jnp, numpy as np, optax
import jmlp
sys.path.insert(0, sys.argv[2])
from benchmark import scan_run
net = jmlp.MLP((5, 50, 3), "relu", "softmax", "cross_entropy")
rng = np.random.default_rng(0)
x = rng.normal(size=(400, 5)).astype(np.float32)
y = rng.integers(0, 3, 400)
params, opt, key, epochs = jmlp.init_params(jax.random.key(0), net.sizes), optax.adam(1e-3), jax.random.key(1), 500
if sys.argv[1] == "fit":
    run = lambda: jax.block_until_ready(jmlp.fit(net, params, opt, x, y, epochs=epochs, batch_size=50, key=key).params)
else:
    scan = scan_run(net, opt, 400, 50, epochs)
    t = jax.nn.one_hot(y, 3, dtype=jnp.float32)
    run = lambda: jax.block_until_ready(scan(params, key, jnp.asarray(x), t))
times = []
for _ in range(2):
    began = time.perf_counter(); run(); times.append(time.perf_counter() - began)
print(times[0] - times[1])
"""

COUNT = r"""
import warnings, jax
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from jmlp.sklearn import MLPClassifier
warnings.filterwarnings("ignore")
names = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, seconds, **kw: names.append(kw.get("fun_name", ""))
    if event == "/jax/core/compile/backend_compile_duration" else None)
x, y = load_breast_cancer(return_X_y=True)
pipe = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=20, random_state=0))
grid = {"mlpclassifier__alpha": [1e-4, 1e-2, 1e-1], "mlpclassifier__learning_rate_init": [1e-3, 1e-2]}
GridSearchCV(pipe, grid, cv=5).fit(x, y)
print(sum("run_chunk" in n for n in names))
"""


def python(code: str, *args, cache: str = "") -> list[float]:
    """Run ``code`` in a fresh process with the compilation cache folder ``cache`` ("" = off);
    the numbers of the last line it prints."""
    env = os.environ | {"JMLP_CACHE_DIR": cache, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return [float(word) for word in done.stdout.strip().splitlines()[-1].split()]


def job_times(job: str, jobs: int, backend: str, repeats: int) -> dict[str, float]:
    """Best times of ``job``: scikit-learn, jmlp with an empty cache, jmlp with a warm one,
    each in all (``sklearn``, ...) and after its imports (``sklearn_work``, ...)."""
    runs = {"sklearn": [], "jmlp_empty": [], "jmlp_warm": []}
    args = (job, jobs, backend)
    with tempfile.TemporaryDirectory() as warm:
        python(JOB, "jmlp", *args, cache=warm)  # fills the warm cache
        for _ in range(repeats):
            runs["sklearn"].append(python(JOB, "sklearn", *args))
            with tempfile.TemporaryDirectory() as empty:
                runs["jmlp_empty"].append(python(JOB, "jmlp", *args, cache=empty))
            runs["jmlp_warm"].append(python(JOB, "jmlp", *args, cache=warm))
    times = {k: min(total for _, total in v) for k, v in runs.items()}
    return times | {f"{k}_work": min(total - imports for imports, total in v)
                    for k, v in runs.items()}  # fmt: skip


def cli_times(repeats: int) -> dict[str, float]:
    """``jmlp train --data digits`` (the README's first command) in fresh processes with a warm
    cache: the wall time and the training time of its time line, of the run least over it."""
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        env = os.environ | {"JMLP_CACHE_DIR": os.path.join(folder, "cache")}
        for i in range(repeats + 1):  # the first fills the cache
            command = [sys.executable, "-m", "jmlp", "train", "--data", "digits", "--no-progress"]
            began = time.perf_counter()
            done = subprocess.run([*command, "--out", os.path.join(folder, str(i))], env=env,
                                  capture_output=True, text=True, check=True)  # fmt: skip
            wall = time.perf_counter() - began
            training = float(re.search(r"([\d.]+) s training", done.stdout).group(1))
            runs += [{"wall_s": wall, "training_s": training}] if i else []
    return min(runs, key=lambda r: r["wall_s"] - r["training_s"])


def main(argv=None) -> dict:
    args = parse_args(
        __doc__, "first_answer", argv, [(("--repeats",), {"type": int, "default": 3})]
    )
    repeats = 1 if args.quick else args.repeats
    here = os.path.dirname(os.path.abspath(__file__))
    results = {"jobs": {}}
    jobs = [("003", 1, "loky"), ("grid", 1, "loky")]
    jobs += [] if args.quick else [("grid", 2, "loky"), ("grid", 2, "threading")]
    for job, n_jobs, backend in jobs:
        name = f"{job} n_jobs={n_jobs}" + (" threads" if backend == "threading" else "")
        results["jobs"][name] = job_times(job, n_jobs, backend, repeats)
    compile_s = {
        what: min(python(COMPILE, what, here)[-1] for _ in range(repeats))
        for what in ("fit", "scan")
    }
    results["compile_s"] = compile_s
    results["grid_training_compilations"] = int(python(COUNT)[-1])
    results["cli_warm"] = cli = cli_times(repeats)
    rows = [
        [name, f"{t['sklearn']:.2f}", f"{t['jmlp_empty']:.2f}", f"{t['jmlp_warm']:.2f}",
         f"{t['jmlp_empty'] / t['sklearn']:.2f}", f"{t['jmlp_warm'] / t['sklearn']:.2f}",
         f"{t['jmlp_warm_work'] / t['sklearn_work']:.2f}"]
        for name, t in results["jobs"].items()
    ]  # fmt: skip
    heads = ["job", "sklearn s", "jmlp empty s", "jmlp warm s", "empty/sk", "warm/sk"]
    print(table(heads + ["warm/sk after imports"], rows))
    ratio = compile_s["fit"] / compile_s["scan"]
    print(f"first fit compile {compile_s['fit']:.2f} s / plain scan compile "
          f"{compile_s['scan']:.2f} s = {ratio:.2f}")  # fmt: skip
    print(f"training compilations in a 5-fold grid search of 6 settings: "
          f"{results['grid_training_compilations']}")  # fmt: skip
    print(f"jmlp train --data digits, warm cache: {cli['wall_s']:.2f} s in all, "
          f"{cli['training_s']:.1f} s training")  # fmt: skip
    save_json(args.out, results)
    print(json.dumps(results["compile_s"]))
    return results


if __name__ == "__main__":
    main()
