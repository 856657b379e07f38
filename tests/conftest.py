"""Test session set-up: Taichi on the CPU in float64, deterministic.

``DIFFSIM_TEST_ARCH=cuda`` runs the same tests on a CUDA GPU (float64, without the
serialised scatter loops: GPU atomics make the last bits order-dependent).

Finite-difference gradient checks need float64; every MPM test shares this one
runtime (re-initialising Taichi would destroy live fields). ``ds.init``'s default
``optimize="compile"`` keeps kernel compilation short; the benchmark runs with
``optimize="runtime"``.
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import diffsim as ds  # noqa: E402

ARCH = os.environ.get("DIFFSIM_TEST_ARCH", "cpu")
# DIFFSIM_TEST_DETERMINISTIC=0 runs the parallel (atomic) scatter loops on the CPU too
DETERMINISTIC = os.environ.get("DIFFSIM_TEST_DETERMINISTIC", "1" if ARCH == "cpu" else "0") == "1"
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
