"""The Python code in README.md runs as written (in a fresh process, as a user would)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 3
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=1200, env={"DIFFSIM_ARCH": "cpu",
                                                           "MPLBACKEND": "Agg",
                                                           "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
