"""The deep-equilibrium example runs end to end at a tiny size, and its two gradients agree."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "neural_ode" / "deq.py"


def load_example():
    spec = importlib.util.spec_from_file_location("deq_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_deq_example_tiny(tmp_path):
    pytest.importorskip("sklearn")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        out = load_example().main(["--iters", "3", "--hidden", "16", "--batch", "32", "--out", str(tmp_path)])
    finally:
        torch.set_default_dtype(old)
    assert out["cosine"] > 0.999          # implicit and unrolled gradients at initialisation
    imp, unr = out["results"]
    assert imp["failed_steps"] == unr["failed_steps"] == 0
    assert 0.0 <= imp["test_accuracy"] <= 1.0 and imp["iterations_median"] > 1
    # the implicit backward holds one evaluation of the cell, unrolled backprop every iteration
    assert out["memory_ratio"] < 0.5
    assert json.loads((tmp_path / "results.json").read_text())["time_ratio"] > 0
