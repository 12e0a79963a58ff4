"""Smoke run of experiments/benchmark.py --quick: every part runs and reports its numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmark.py"


def test_benchmark_quick_writes_every_part(tmp_path):
    env = os.environ | {"JAX_PLATFORMS": "cpu", "JAX_NUMPY_RANK_PROMOTION": "raise"}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["net"] for r in results["step_ratio"]] == ["5-50-3"]
    assert all(r["backprop"] > 0 and r["autodiff"] > 0 for r in results["step_ratio"])
    assert 0 < results["fit_rate"]["fit_gflops"] and 0 < results["fit_rate"]["matmul_gflops"]
    assert results["fit_vs_plain"][0]["speedup"] > 0
    methods = {r["method"] for r in results["ensemble"]}
    assert {"jmlp.fit, one model", "fit_many", "plain jax.vmap of the run"} <= methods
    # part 5: every method on both nets, each ratio over the batch gradient of the same net
    rows = results["per_example"]
    nets = {r["net"] for r in rows}
    base = {r["net"]: r["seconds"] for r in rows if r["method"] == "batch gradient (backprop)"}
    assert len(nets) == 2 and set(base) == nets and len(rows) == 2 * len(rows) // len(nets)
    assert {r["method"] for r in rows} >= {"per_example_grads", "per_example_grad_norms"}
    for r in rows:
        assert r["seconds"] > 0 and r["relative"] == r["seconds"] / base[r["net"]]
    assert "4. ensembles" in proc.stdout
