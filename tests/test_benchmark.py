"""Smoke run of experiments/benchmark.py --quick: every part runs and reports its ratios, each
computed from its two timed sides."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark script run in its own process

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmark.py"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    env = os.environ | {"JAX_PLATFORMS": "cpu", "JAX_NUMPY_RANK_PROMOTION": "raise"}
    # As tests/test_experiments.py's runs: XLA's optimization level 0 compiles about twice as fast
    # (the run is mostly compiling); the checks below are of the report, not of the speeds.
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), proc.stdout


def test_every_part_is_printed(quick):
    _, stdout = quick
    for title in (
        "1. step time",
        "3. jmlp.fit samples/s",
        "4. ",
        "5. ",
        "6. ensembles",
        "7. document 003",
        "8. per-example",
        "9. second order",
    ):
        assert title in stdout


def test_ratios_are_the_quotients_of_their_times(quick):
    results, _ = quick
    for r in results["step_ratio"]:
        assert r["ratio"] == pytest.approx(r["backprop"] / r["autodiff"])
    for r in results["fit_vs_scan"]:
        assert r["ratio"] == pytest.approx(r["fit_samples_per_s"] / r["scan_samples_per_s"])
    for r in results["recompile"]:
        assert r["ratio"] == pytest.approx(r["fresh"] / r["reused"])
    sweep = results["sweep"]
    assert sweep["ratio, fit_many"] == pytest.approx(sweep["loop of fit"] / sweep["fit_many"])
    one = next(r for r in results["ensemble"]["rows"] if r["members"] == 1)["seconds"]
    for r in results["ensemble"]["rows"]:
        assert r["per_member_rel"] == pytest.approx(r["seconds"] / r["members"] / one)
    doc = results["doc003"]
    for r in doc["rows"]:
        assert r["ratio"] == pytest.approx(r["seconds"] / doc["seeds"] / doc["numpy, one seed"])
    rows = results["per_example"]  # each ratio over the batch gradient of the same net
    base = {r["net"]: r["seconds"] for r in rows if r["method"] == "batch gradient (backprop)"}
    assert set(base) == {r["net"] for r in rows} and len(base) == 2
    for r in rows:
        assert r["relative"] == pytest.approx(r["seconds"] / base[r["net"]])
    curvature = {r["what"].split()[0]: r for r in results["curvature"]}
    assert set(curvature) == {"hvp", "ntk"}
    for r in curvature.values():
        assert r["ratio"] == pytest.approx(r["hand"] / r["reference"])


def test_the_numpy_reference_of_document_003_trains_as_fit_does():
    """The reference of part 7 (a numpy transcription of 003's code) and jmlp.fit with 003's
    settings take the same steps: float64, 3 epochs of 8 fixed batches."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jmlp

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from benchmark import numpy_doc003
    finally:
        sys.path.remove(str(SCRIPT.parent))
    data = jmlp.data.load("doc003")
    net = jmlp.MLP((5, 50, 3), "relu", "softmax", "cross_entropy", reduction="sum")
    params = jmlp.init_params(
        jax.random.key(3), net.sizes, weight_init="lecun_normal", dtype=jnp.float64
    )
    opt = jmlp.optim.adam(1e-4, b1=0.99, eps_inside_sqrt=True)
    result = jmlp.fit(
        net, params, opt, data.x_train, data.y_train, epochs=3, batch_size=50, shuffle=False
    )
    reference = numpy_doc003(data.x_train, data.y_train, jax.tree.map(np.asarray, params), 3)
    ours = [np.asarray(p[k]) for p in result.params for k in ("W", "b")]
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
