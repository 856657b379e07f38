"""Float32 MPM gradients against float64 (the float32 tier; see ``precision.py``).

The cases are those of ``test_mpm_gradients.py`` (exact there by finite differences
in float64), plus the case that gave NaN gradients in float32 before: a 3D fluid
block hitting the floor at 1 m/s (nodes of vanishing mass at the splash front).
All float32 runs happen in one child process.
"""

import pytest
import test_mpm_gradients as base
import torch
from precision import assert_grads_close, in_precision

import diffsim as ds

T = base.T


def material_grads(name):
    """Gradients of the pushed-block loss w.r.t. controls, material parameter, tool
    friction and initial velocity (``test_mpm_gradients``'s FD case)."""
    material, pname = base.MATERIALS[name]
    sim = base._pushed_block(material)
    try:
        g = torch.Generator().manual_seed(0)
        n, d = sim.n_particles, sim.dim
        weights = (torch.randn(n, d, generator=g, dtype=torch.float64),
                   torch.randn(n, d, generator=g, dtype=torch.float64),
                   torch.randn(n, d, d, generator=g, dtype=torch.float64) * 0.1)
        s0, loss = base._loss_fn(sim, weights)
        U = base._controls(sim).requires_grad_()
        p = torch.tensor(float(getattr(material, pname)), dtype=torch.float64,
                         requires_grad=True)
        fr = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        v0 = s0.v.detach().double().requires_grad_()
        loss(U, {pname: p, "pusher.friction": fr}, v0).backward()
        return {"U": U.grad, pname: p.grad, "friction": fr.grad, "v0": v0.grad}
    finally:
        sim.close()


def falling_grads(name):
    """Undeformed SVD materials falling onto the floor (coinciding singular values)."""
    material = {"elastic": ds.Elastic(E=2e3, nu=0.3),
                "plasticine": ds.Plasticine(E=2e3, nu=0.3, yield_stress=20.0),
                "snow": ds.Snow(E=2e3, nu=0.3)}[name]
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.1), hi=(0.5, 0.2)), material, velocity=(0.5, -0.5))
    sim = ds.MPM(scene, grid_res=32, dt=1e-3, substeps=5)
    try:
        g = torch.Generator().manual_seed(0)
        wx = torch.randn(sim.n_particles, 2, generator=g, dtype=torch.float64)
        wF = torch.randn(sim.n_particles, 2, 2, generator=g, dtype=torch.float64) * 0.1
        s0 = sim.reset()
        v0 = s0.v.detach().double().requires_grad_()
        sol = ds.solve(ds.SimulationProblem(sim, controls=torch.zeros(T, 0),
                                            state0=s0.replace(v=v0)),
                       sensealg=ds.CheckpointAdjoint(segment=5))
        end = sol.u[-1].to("cpu")
        ((end.x * wx).sum() + (end.F * wF).sum()).backward()
        return {"v0": v0.grad}
    finally:
        sim.close()


def splash_grads():
    """A 3D fluid block hitting the floor at 1 m/s: d(mean final position)/d(v0)."""
    n = 32
    dx = 1.0 / n
    scene = ds.Scene(dim=3, gravity=(0.0, -9.8, 0.0), walls="slip")
    lo = 9 * dx
    scene.add_particles(ds.Box(lo=(0.36, lo, 0.36), hi=(0.64, lo + 0.28, 0.64)),
                        ds.Fluid(bulk_modulus=400.0, density=1.0), name="block")
    sim = ds.MPM(scene, grid_res=n, dt=3e-4, substeps=10, bound=4)
    try:
        s0 = sim.reset()
        vel = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64, requires_grad=True)
        state0 = s0.replace(v=torch.zeros_like(s0.v, dtype=torch.float64) + vel)
        sol = ds.solve(ds.SimulationProblem(sim, controls=torch.zeros(20, 0), state0=state0),
                       sensealg=ds.CheckpointAdjoint(segment=20))
        sol.u[-1].x.mean(0).sum().backward()
        return {"velocity": vel.grad}
    finally:
        sim.close()


def rotating_tool_grads():
    """3D, a spinning box tool pushing a neo-Hookean block.

    ``test_mpm_gradients``'s box has faces on grid nodes (z = 0.5), where the box's
    distance has a kink: there float32 and float64 round to different sides and the
    gradients differ by 1e-2, as any two evaluations at a kink may. Shifted by 13 mm
    off the nodes, they agree to 1e-6."""
    scene = ds.Scene(dim=3)
    scene.add_particles(ds.Box(lo=(0.4, 0.3, 0.4), hi=(0.5, 0.4, 0.5)),
                        ds.NeoHookean(E=2e3, nu=0.3), velocity=(0.5, 0.0, 0.0), name="block")
    scene.add_tool(ds.Box(lo=(0.55, 0.313, 0.413), hi=(0.6, 0.413, 0.513)), friction=0.3,
                   name="pusher")
    sim = ds.MPM(scene, grid_res=16, dt=1e-3, substeps=5)
    try:
        w = torch.randn(sim.n_particles, 3, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
        s0, loss = base._loss_fn(sim, (w, w, torch.zeros(sim.n_particles, 3, 3)))
        U = base._controls(sim)
        U[:, 4] = 2.0
        U.requires_grad_()
        loss(U, {}, s0.v).backward()
        return {"U": U.grad}
    finally:
        sim.close()


# 2D cases: seconds each; the 3D ones run in the slow suite
CASES = {**{f"pushed-{m}": (material_grads, (m,)) for m in base.MATERIALS},
         **{f"falling-{m}": (falling_grads, (m,)) for m in ("elastic", "plasticine", "snow")}}
CASES_3D = {"rotating-tool-3d": (rotating_tool_grads, ()),
            "fluid-splash-3d": (splash_grads, ())}


@pytest.fixture(scope="module")
def f32_grads():
    return dict(zip(CASES, in_precision("f32", CASES.values())))


@pytest.mark.parametrize("case", list(CASES))
def test_float32_gradients_match_float64(case, f32_grads):
    fn, args = CASES[case]
    assert_grads_close(f32_grads[case], fn(*args), what=case)


@pytest.mark.slow
def test_float32_gradients_match_float64_3d():
    got = dict(zip(CASES_3D, in_precision("f32", CASES_3D.values())))
    for case, (fn, args) in CASES_3D.items():
        assert_grads_close(got[case], fn(*args), what=case)
