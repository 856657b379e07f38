"""The tactile example, benchmark and task at a tiny size (slow: each compiles its kernels)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    env = {**os.environ, "DIFFSIM_ARCH": "cpu", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=900)


@pytest.mark.slow
def test_system_id_example_runs_at_a_tiny_size(tmp_path):
    out = _run([str(ROOT / "examples" / "tactile" / "system_id.py"), "--steps", "4", "--iters",
                "2", "--out", str(tmp_path / "out")], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "surface stiffness k_n: recovered" in out.stdout and "friction mu:" in out.stdout
    assert (tmp_path / "out" / "summary.json").stat().st_size > 0


@pytest.mark.slow
def test_benchmark_runs_at_a_tiny_size(tmp_path):
    out = _run([str(ROOT / "benchmarks" / "tactile.py"), "--steps", "2", "--optimize",
                "compile", "--resolution", "0.005"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "one sensor vs the same pad in ds.FEM" in out.stdout


@pytest.mark.slow
def test_gripper_tasks_example_runs_at_a_tiny_size(tmp_path):
    out = _run([str(ROOT / "examples" / "tactile" / "gripper_tasks.py"), "--tasks", "Grasp",
                "--iters", "2", "--horizon", "8", "--out", str(tmp_path / "out")], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| Grasp | 100 | 8 |" in out.stdout
    assert (tmp_path / "out" / "results.json").stat().st_size > 0


@pytest.mark.slow
def test_readme_code_runs():
    import re

    readme = ROOT / "diffsim" / "tactile" / "README.md"
    code = "\n".join(re.findall(r"```python\n(.*?)```", readme.read_text(), re.S))
    namespace: dict = {}
    exec(compile(code, str(readme), "exec"), namespace)  # noqa: S102
    assert namespace["U"].grad is not None and namespace["E"].grad is not None
    assert float(namespace["U"].grad.abs().sum()) > 0


@pytest.mark.slow
def test_pixel_model_example_runs_at_a_tiny_size(tmp_path):
    out = _run([str(ROOT / "examples" / "tactile" / "pixel_model.py"), "--places", "2",
                "--fit-iters", "20", "--iters", "2", "--image", "16", "14", "--out",
                str(tmp_path / "out")], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "held-out press 1: mean abs error, learned" in out.stdout
    assert "press speed: recovered" in out.stdout
    assert (tmp_path / "out" / "pixel_model.pt").stat().st_size > 0
    assert (tmp_path / "out" / "summary.json").stat().st_size > 0


@pytest.mark.slow
def test_pixel_benchmark_runs_at_a_tiny_size(tmp_path):
    out = _run([str(ROOT / "benchmarks" / "tactile_pixel.py"), "--image", "16", "12",
                "--repeat", "1", "--threads", "1"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mlp64 / lights (shade only)" in out.stdout
