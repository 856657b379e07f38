"""Float32 FEM gradients against float64 (the float32 tier; see ``precision.py``).

The cases are those of ``test_fem_gradients.py`` (exact there by finite differences in
float64), with the same solver settings: the tolerances of 1e-13 that the finite
differences need are below what float32 resolves, and the solver floors them at the
precision (``diffsim/fem/engine.py``), so the same call runs in both precisions. The fast
cases (one child process, overlapping the float64 references) are the default implicit
integrator and the quasi-static solve; the explicit, all-model and 3D cases are slow.
"""

import pytest
import test_fem_gradients as base
import torch
from precision import assert_grads_close, compare_in_precisions

import diffsim as ds

F64 = torch.float64
TIGHT = dict(newton_tol=1e-13, cg_tol=1e-13, adjoint_tol=1e-13, max_cg=10000)
SIMS = {
    "implicit": dict(dt=1e-2, substeps=2, integrator="implicit", contact_stiffness=2e3, **TIGHT),
    "explicit": dict(dt=2e-3, substeps=5, integrator="explicit", contact_stiffness=2e3),
}


def rollout_grads(integrator, all_models, dim=2, segment=3):
    """Gradients of ``test_fem_gradients``'s loss w.r.t. the controls, every parameter of
    ``base.PARAMS`` on the scene's bodies, the initial positions and velocities."""
    sim = ds.FEM(base._scene(dim=dim, all_models=all_models), **SIMS[integrator])
    try:
        names = [k for k in base.PARAMS if k.split(".")[0] in sim.groups or "friction" in k]
        s0 = sim.reset().to("cpu")
        g = torch.Generator().manual_seed(0)
        n, d = sim.n_nodes, sim.dim
        wx = torch.randn(n, d, generator=g, dtype=F64)
        wv = torch.randn(n, d, generator=g, dtype=F64) * 0.1
        v_init = s0.v.double() + 0.2 * torch.randn(n, d, generator=g, dtype=F64)
        U = base._controls(sim).requires_grad_()
        P = {k: torch.tensor(base.PARAMS[k], dtype=F64, requires_grad=True) for k in names}
        x0 = s0.x.double().requires_grad_()
        v0 = v_init.requires_grad_()
        prob = ds.SimulationProblem(sim, controls=U, params=P, state0=s0.replace(x=x0, v=v0))
        end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=segment)).u[-1].to("cpu")
        ((end.x * wx).sum() + (end.v * wv).sum()).backward()
        return {"U": U.grad, **{k: P[k].grad for k in names}, "x0": x0.grad, "v0": v0.grad}
    finally:
        sim.close()


def equilibrium_grads():
    """``test_equilibrium_gradients_match_finite_differences``: a pinned beam at rest."""
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.0, 0.3), hi=(0.3, 0.35)),
                        ds.StableNeoHookean(E=5e3, nu=0.3), resolution=0.025,
                        fixed=lambda x: x[:, 0] < 1e-9, name="beam")
    sim = ds.FEM(scene, newton_tol=1e-13, cg_tol=1e-13, adjoint_tol=1e-13, max_cg=10000)
    try:
        s0 = sim.reset().to("cpu")
        w = torch.linspace(-1, 1, sim.n_nodes, dtype=F64)
        E = torch.tensor(5e3, dtype=F64, requires_grad=True)
        nu = torch.tensor(0.3, dtype=F64, requires_grad=True)
        x0 = s0.x.double().requires_grad_()
        eq = sim.equilibrium(s0.replace(x=x0), params={"E": E, "nu": nu}).to("cpu")
        ((eq.x[:, 1] * w).sum() + eq.x[:, 1].min()).backward()
        return {"E": E.grad, "nu": nu.grad, "x0": x0.grad}
    finally:
        sim.close()


#: fast: the default integrator (Newton's floors, the adjoint solve) and the quasi-static solve
CASES = {"implicit-2d": (rollout_grads, ("implicit", False)),
         "equilibrium": (equilibrium_grads, ())}
SLOW_CASES = {"explicit-2d-all-models": (rollout_grads, ("explicit", True, 2, 2)),
              "implicit-2d-all-models": (rollout_grads, ("implicit", True)),
              "implicit-3d": (rollout_grads, ("implicit", True, 3, 2))}


@pytest.fixture(scope="module")
def results():
    return compare_in_precisions(CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_float32_gradients_match_float64(case, results):
    assert_grads_close(*results[case], what=case)


@pytest.mark.slow
def test_float32_gradients_match_float64_slow():
    for case, (got, want) in compare_in_precisions(SLOW_CASES).items():
        assert_grads_close(got, want, what=case)
