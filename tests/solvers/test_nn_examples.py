"""The neural PDE examples run at a tiny size (subprocesses with Taichi's default settings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "neural_pde"


def run(script, *args, timeout=600):
    env = {**os.environ, "DIFFSIM_ARCH": "cpu", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_mppde_benchmark_table_runs_tiny(tmp_path):
    """The table command at a tiny size: two seeds, both models, the one-line summaries,
    and a second call that only evaluates the finished (checkpointed) trainings."""
    args = ("--tiny", "--families", "E1", "--nx", "40", "--seeds", "0", "1", "--out", str(tmp_path))
    stdout = run("mppde_benchmark.py", *args)
    assert "E1 nx=40 FNO: accumulated" in stdout and "(WENO5 baseline" in stdout
    assert "| E1 | 40 |" in stdout and "| E1 | 40 | MPPDE s1 |" in stdout
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    for m in ("FNO", "MPPDE"):
        runs = rows[0][m]["runs"]
        assert [r["seed"] for r in runs] == [0, 1] and all(r["finite"] and r["speedup"] > 0 for r in runs)
        acc = [r["accumulated"] for r in runs]
        assert rows[0][m]["mean"] == pytest.approx(sum(acc) / 2)
    assert rows[0]["reference"]["rtol 1e-6 f64 (data)"]["accumulated"] == pytest.approx(rows[0]["baseline_accumulated"],
                                                                                         rel=1e-4)
    steps = [r["train_steps"] for r in rows[0]["FNO"]["runs"]]
    run("mppde_benchmark.py", *args)  # resumes: nothing left to train, same numbers
    again = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["train_steps"] for r in again[0]["FNO"]["runs"]] == steps
    assert again[0]["FNO"]["mean"] == pytest.approx(rows[0]["FNO"]["mean"], rel=1e-5)


@pytest.mark.slow
def test_neural_pde_regularization_runs_tiny(tmp_path):
    stdout = run("neural_pde_regularization.py", "--tiny", "--out", str(tmp_path))
    assert "local unbiased" in stdout and (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_smoke_surrogate_runs_tiny(tmp_path):
    stdout = run("smoke_surrogate.py", "--tiny", "--out", str(tmp_path))
    assert "| FNO |" in stdout and "| UNet |" in stdout


@pytest.mark.slow
def test_particle_surrogate_runs_tiny(tmp_path):
    stdout = run("particle_surrogate.py", "--tiny", "--out", str(tmp_path))
    assert "speed-up" in stdout


@pytest.mark.slow
def test_pde_benchmark_runs_quick():
    env = {**os.environ, "DIFFSIM_ARCH": "cpu", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "benchmarks/pde.py", "--quick", "--repeats", "1", "--batch", "4",
                          "--sections", "ab"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MGPCG" in out.stdout and "speed-up" in out.stdout


@pytest.mark.slow
def test_long_rollout_runs_tiny(tmp_path):
    stdout = run("long_rollout.py", "--tiny", "--out", str(tmp_path))
    assert "| 40 | MPPDE |" in stdout
