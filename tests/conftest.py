"""Test session set-up: Taichi on the CPU in float64, deterministic.

Finite-difference gradient checks need float64; every MPM test shares this one
runtime (re-initialising Taichi would destroy live fields). Taichi's advanced IR
optimisations are off here: they cost most of the compile time of the large
reverse-mode kernels (13 s instead of 94 s for a six-material scene) and only
change speed; the examples' tests run with the defaults in subprocesses.
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import diffsim as ds  # noqa: E402

ds.init(arch="cpu", precision="f64", deterministic=True, advanced_optimization=False)


@pytest.fixture
def close_after():
    """Collects simulators and closes them after the test."""
    sims = []
    yield sims.append
    for s in sims:
        s.close()
