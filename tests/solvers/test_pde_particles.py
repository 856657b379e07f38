"""MPM particle trajectories for learned simulators: generation, loading, sanity of the motion."""

import numpy as np
import pytest
import torch

from diffsim.solvers.pde import generate
from diffsim.solvers.pde.particles import ParticleData, load_particles


def test_particle_data_round_trip_and_falling_blocks(tmp_path):
    spec = ParticleData(material="mixed", block=0.12, grid_res=32, ppc=1.0, nt=4, substeps=25, dt=4e-4)
    path = generate(spec, tmp_path / "p.h5", 2, chunk=2, progress=False)
    d = load_particles(path)
    N, T, P, dim = d.positions.shape
    assert (N, T, dim) == (2, 4, 2) and P == d.types.numel()
    assert set(d.types.tolist()) == {0, 1, 2} and d.frame_dt == pytest.approx(0.01)
    assert torch.isfinite(d.positions).all()
    assert ((d.positions >= 0) & (d.positions <= 1)).all()
    # gravity: the mean height falls between the first and the last frame of every scene
    drop = d.positions[:, 0, :, 1].mean(1) - d.positions[:, -1, :, 1].mean(1)
    assert (drop > 0).all()
    # the scenes differ (random placement per instance, drawn from the seed)
    assert not torch.allclose(d.positions[0, 0].mean(0), d.positions[1, 0].mean(0))


def test_bad_particle_specs():
    with pytest.raises(ValueError, match="material"):
        ParticleData(material="honey")
    with pytest.raises(ValueError, match="block"):
        ParticleData(block=0.6)
    assert np.isfinite(ParticleData().radius)
