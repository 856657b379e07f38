"""Test session set-up: Taichi on the CPU in float64, deterministic.

``DIFFSIM_TEST_ARCH=cuda`` runs the same tests on a CUDA GPU (float64, without the
serialised scatter loops: GPU atomics make the last bits order-dependent).

Finite-difference gradient checks need float64; their float32 counterparts run the
same cases in a child process initialised in float32 (``precision.py``). Every test shares
this one runtime (re-initialising Taichi would destroy live fields). ``ds.init``'s default
``optimize="compile"`` keeps kernel compilation short; the benchmark runs with
``optimize="runtime"``.
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from precision import ARCH, DETERMINISTIC  # noqa: E402

import diffsim as ds  # noqa: E402

ds.init(arch=ARCH, precision="f64", deterministic=DETERMINISTIC)


@pytest.fixture
def close_after():
    """Collects simulators and closes them after the test."""
    sims = []
    yield sims.append
    for s in sims:
        s.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module: its intra-op threads spin against Taichi's on a
    small shared CPU (the tactile couplings' grids ran 10x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
