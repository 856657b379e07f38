"""2D incompressible Navier-Stokes smoke on the Taichi MAC grid: projection, solver, data."""

import numpy as np
import pytest
import torch

from diffsim import SimulationError
from diffsim.eulerian import Smoke, noise_field


@pytest.fixture(scope="module")
def sim():
    s = Smoke(res=(32, 32), size=32.0, dt=1.5, nu=0.01, buoyancy=(0.0, 0.5))
    yield s
    s.close()


def random_flow(sim, seed=0):
    rng = np.random.default_rng(seed)
    nx, ny = sim.res
    vx = rng.standard_normal((nx + 1, ny))
    vy = rng.standard_normal((nx, ny + 1))
    return sim.reset(np.abs(noise_field(sim.res, sim.size, rng)), vx, vy)


def test_projection_removes_the_divergence(sim):
    state = random_flow(sim)
    before = sim.divergence(state)
    projected = sim.project(state)
    after = sim.divergence(projected)
    assert before > 1.0
    assert after < 1e-7 * before
    assert sim.stats["cg_residual"] <= sim.cg_tol
    # walls are closed and a second projection changes nothing
    assert projected.vx[0].abs().max() == 0 and projected.vy[:, -1].abs().max() == 0
    again = sim.project(projected)
    assert torch.allclose(again.vx, projected.vx, atol=1e-9)


def test_multigrid_preconditioning_cuts_cg_iterations(sim):
    plain = Smoke(res=(32, 32), size=32.0, preconditioner="none")
    try:
        state = random_flow(sim, 1)
        a = sim.project(state)
        it_mg = sim.stats["cg_iters"]
        b = plain.project(state)
        it_plain = plain.stats["cg_iters"]
    finally:
        plain.close()
    assert it_mg * 4 < it_plain
    assert torch.allclose(a.vx, b.vx, atol=1e-6)


def test_smoke_rises_and_flow_stays_divergence_free(sim):
    rng = np.random.default_rng(0)
    smoke = np.zeros(sim.res)
    smoke[12:20, 2:8] = 1.0
    state = sim.reset(smoke)
    for _ in range(6):
        state = sim.step(state)
    assert sim.divergence() < 1e-6
    assert float(state.vy.max()) > 0.05  # buoyancy accelerates the plume upwards
    rows = torch.arange(sim.res[1], dtype=state.smoke.dtype)
    centre = float((state.smoke.sum(0) * rows).sum() / state.smoke.sum())
    assert centre > 5.0  # the centre of the smoke moved up from row 4.5
    assert np.isfinite(noise_field((8, 8), 1.0, rng)).all()


def test_bad_arguments_name_the_allowed_range():
    with pytest.raises(ValueError, match="res"):
        Smoke(res=(4, 4))
    with pytest.raises(ValueError, match="nu dt / dx"):
        Smoke(res=(16, 16), size=1.0, dt=1.0, nu=1.0)
    with pytest.raises(ValueError, match="preconditioner"):
        Smoke(res=(16, 16), preconditioner="ilu")


def test_non_finite_state_raises(sim):
    state = sim.reset()
    with pytest.raises(ValueError, match="non-finite"):
        sim.reset(np.full(sim.res, np.nan))
    bad = state.replace(vx=torch.full_like(state.vx, float("nan")))
    with pytest.raises(SimulationError, match="non-finite"):
        sim.step(bad)


@pytest.mark.slow
def test_smoke_data_round_trip(tmp_path):
    from diffsim.solvers.pde import generate
    from diffsim.solvers.pde.smoke import SmokeData, load_smoke

    path = generate(SmokeData(res=16, nt=3, skip=1), tmp_path / "s.h5", 2, progress=False)
    d = load_smoke(path)
    assert d.u.shape == (2, 3, 3, 16, 16) and not d.periodic and d.dt == pytest.approx(1.5)
    assert torch.isfinite(d.u).all() and d.u[:, :, 0].min() >= 0
