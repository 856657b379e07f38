"""Test session set-up: Taichi on the CPU in float64, deterministic.

Finite-difference gradient checks need float64; every MPM test shares this one
runtime (re-initialising Taichi would destroy live fields). ``ds.init``'s default
``optimize="compile"`` keeps kernel compilation short; the benchmark runs with
``optimize="runtime"``.
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import diffsim as ds  # noqa: E402

ds.init(arch="cpu", precision="f64", deterministic=True)


@pytest.fixture
def close_after():
    """Collects simulators and closes them after the test."""
    sims = []
    yield sims.append
    for s in sims:
        s.close()
