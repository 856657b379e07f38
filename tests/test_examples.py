"""Every example runs at a tiny size (in a subprocess, with Taichi's default settings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "mpm"


def _run(args, tmp_path, timeout=300):
    env = {**os.environ, "DIFFSIM_ARCH": "cpu", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_demo_runs_and_writes_its_outputs(tmp_path):
    out = tmp_path / "demo"
    stdout = _run(["-m", "diffsim", "demo", "--steps", "30", "--iters", "2", "--frames", "3",
                   "--out", str(out)], tmp_path)
    assert "wrote" in stdout
    for name in ("before_after.gif", "loss.png", "controls.npz", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["iterations"] == 2
    assert summary["loss_final"] == summary["loss_final"]  # finite, not NaN


@pytest.mark.parametrize("script, args, expect", [
    ("throw_to_target.py", ["--steps", "10", "--iters", "1"], "loss"),
    ("pour_fluid_3d.py", ["--steps", "4", "--grid-res", "24"], "left the cup"),
    ("plasticine_press.py", ["--steps", "3", "--grid-res", "24"], "permanent dent"),
    ("sand_funnel.py", ["--steps", "3", "--grid-res", "24"], "passed the funnel"),
])
def test_example_runs_at_a_tiny_size(script, args, expect, tmp_path):
    stdout = _run([str(EXAMPLES / script), *args, "--out", str(tmp_path / "out")], tmp_path)
    assert expect in stdout
    assert any((tmp_path / "out").iterdir())
