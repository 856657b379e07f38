"""The default LocalRegularization coefficient must not ruin the fit (issue 14).

With the former default (coeff=1) the README's cubic-spiral neural ODE fitted 2.6x worse
after 400 Adam steps (seed 0) and 4.3-4.9x worse after 1000 (seeds 0-2) than without the
regularizer; with the default 0.1, 1.3x and 0.98-1.32x. The fast test runs the 400-step
case (where coeff=1 gives 2.60x and fails it); the slow one the README's setting on three
seeds and both samplings, plus the digits classifier (accuracy must not drop).
"""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from diffsim import solvers as dss

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "neural_ode" / "regularization_effect.py"


def load_example():
    spec = importlib.util.spec_from_file_location("regularization_effect", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    mod.REPEATS = 1
    return mod


@pytest.fixture
def float32_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)   # the example trains in float32, as users do
    yield
    torch.set_default_dtype(old)


def fit_ratio(ex, task, iters, seed, reg):
    base = ex.train(task, "none", None, iters, 3e-3, seed, dss.DirectAdjoint())
    regd = ex.train(task, "local", reg, iters, 3e-3, seed, dss.DirectAdjoint())
    return regd.final_loss / base.final_loss, regd.predict_nfe / base.predict_nfe, base, regd


def test_default_coefficient_keeps_the_spiral_fit(float32_default):
    ex = load_example()
    ratio, nfe_ratio, _, _ = fit_ratio(ex, ex.SpiralTask(), 400, 0, dss.LocalRegularization())
    assert ratio < 2.0, f"default LocalRegularization fits {ratio:.2f}x worse than none (NFE ratio {nfe_ratio:.2f})"


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["unbiased", "biased"])
def test_default_coefficient_on_the_readme_examples(float32_default, sampling):
    pytest.importorskip("sklearn")
    ex = load_example()
    spiral = ex.SpiralTask()
    # the default sampling on the README's three seeds; the other on seed 0 (CI time:
    # each seed trains four models)
    seeds = (0, 1, 2) if sampling == dss.LocalRegularization().sampling else (0,)
    for seed in seeds:
        ratio, _, _, _ = fit_ratio(ex, spiral, 1000, seed, dss.LocalRegularization(sampling=sampling))
        assert ratio < 2.0, (seed, ratio)
    digits = ex.DigitsTask()
    for seed in seeds:
        ratio, _, base, regd = fit_ratio(ex, digits, 400, seed, dss.LocalRegularization(sampling=sampling))
        assert ratio < 2.0 and regd.accuracy >= base.accuracy - 0.01, (seed, ratio, base.accuracy, regd.accuracy)


def test_sweep_mode_of_the_example_runs_tiny(tmp_path, float32_default):
    ex = load_example()
    rows = ex.main(["--sweep", "0.1,1", "--seeds", "0", "--iters", "2", "--tasks", "spiral", "--out", str(tmp_path)])
    assert len(rows) == 4 and {r["sampling"] for r in rows} == {"unbiased", "biased"}
    assert all(r["nfe_ratio"] > 0 and r["loss_ratio"] > 0 for r in rows)
    assert "loss ratio" in (tmp_path / "sweep.md").read_text()
