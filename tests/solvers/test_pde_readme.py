"""The Python code in solvers/pde/README.md runs as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[2] / "solvers" / "pde" / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    scope: dict = {}
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)  # the README's code uses torch's defaults
    torch.set_num_threads(1)
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), scope)
    finally:
        torch.set_default_dtype(old)
        torch.set_num_threads(threads)
    assert scope["res"].finite and scope["loss"].requires_grad
