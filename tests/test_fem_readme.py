"""The code of diffsim/fem/README.md runs (slow: three simulators compile)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "diffsim" / "fem" / "README.md"


@pytest.mark.slow
def test_readme_code_runs():
    code = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), re.S))
    assert "ds.FEM" in code and "ds.Shell" in code
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    assert namespace["U"].grad is not None and namespace["E"].grad is not None
