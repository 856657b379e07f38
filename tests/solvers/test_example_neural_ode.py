"""The neural ODE regularization example runs end to end at a tiny size."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "neural_ode" / "regularization_effect.py"


def load_example():
    spec = importlib.util.spec_from_file_location("regularization_effect", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def test_example_runs_tiny_and_writes_its_table(tmp_path):
    pytest.importorskip("sklearn")
    mod = load_example()
    results = mod.main(["--tasks", "spiral,digits", "--iters", "2", "--repeats", "1", "--out", str(tmp_path)])
    assert len(results) == 8
    assert {r.variant for r in results} == {"none", "global error (2021)", "local unbiased (2023)",
                                            "local biased (2023)"}
    rows = json.loads((tmp_path / "results.json").read_text())
    assert all(r["predict_nfe"] > 0 and r["train_s"] > 0 for r in rows)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows if r["task"] == "digits")
    md = (tmp_path / "results.md").read_text()
    assert md.count("\n") == 10 and "NFE ratio" in md
