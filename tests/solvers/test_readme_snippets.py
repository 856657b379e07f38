"""The code in solvers/README.md runs as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[2] / "solvers" / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    scope: dict = {}
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the README's code uses torch's defaults
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), scope)
    finally:
        torch.set_default_dtype(old)
