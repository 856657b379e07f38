"""The FEM and shell examples run at a tiny size (subprocesses, Taichi's default settings).

Marked slow: each example compiles its simulator's kernels with full optimisation
(about 30-70 s on the 2-core CI machine).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "fem"


@pytest.mark.slow
@pytest.mark.parametrize("script, args, expect", [
    ("push_block.py", ["--steps", "6", "--iters", "2"], "final loss"),
    ("cloth_drape.py", ["--steps", "4", "--resolution", "0.1"], "draped"),
])
def test_fem_example_runs_at_a_tiny_size(script, args, expect, tmp_path):
    env = {**os.environ, "DIFFSIM_ARCH": "cpu", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args, "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert expect in out.stdout
    assert (tmp_path / "out" / "summary.json").stat().st_size > 0
