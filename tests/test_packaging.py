"""The package installs as one wheel holding diffsim, diffsim.solvers, diffsim.envs and assets."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_subpackages_and_imports(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("diffsim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("diffsim/__init__.py", "diffsim/solvers/__init__.py", "diffsim/envs/__init__.py",
                 "diffsim/mpm/kernels.py", "diffsim/assets/meshes/cup.obj"):
        assert must in names, f"{must} missing from the wheel"
    assert not any(n.startswith(("solvers/", "envs/", "tests/")) for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import diffsim, diffsim.solvers, diffsim.envs, sys\n"
            "assert diffsim.__file__.startswith(sys.argv[1]), diffsim.__file__\n"
            "assert diffsim.solvers.solve is diffsim.solve\n"
            "assert diffsim.asset_path('meshes/cup.obj').exists()\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "[project.entry-points.\"gymnasium.envs\"]" in (ROOT / "pyproject.toml").read_text()


def test_console_entry_points():
    for cmd in ([sys.executable, "-m", "diffsim", "--help"],
                [str(Path(sys.executable).parent / "diffsim"), "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "demo" in out.stdout
