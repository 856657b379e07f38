"""Gradients of ds.FEM rollouts against central finite differences (float64).

One 2D scene holds four bodies, one per constitutive model (stable neo-Hookean,
corotated, linear, neo-Hookean), with Rayleigh damping, a pinned cantilever, a
tool with friction pushing a block across the ground: the checks cover every
model's stress and Hessian (the adjoint solves of implicit steps use the exact
Hessian), damping, contact and friction, controls and the initial state, for the
implicit and the explicit integrators. The forward solves are converged tightly,
because a finite difference of an inexact Newton solve is noise.
"""

import pytest
import torch
from helpers import assert_close_rel, central_difference

import diffsim as ds

T = 4
BODIES = {
    "snh": ds.StableNeoHookean(E=2e3, nu=0.3),
    "cor": ds.Elastic(E=3e3, nu=0.25),
    "lin": ds.LinearElastic(E=2e3, nu=0.2),
    "nh": ds.NeoHookean(E=2.5e3, nu=0.3),
}


def _scene(dim=2, all_models=True):
    scene = ds.Scene(dim=dim, bounds=[(0, 1)] * dim)
    d = dim

    def box(lo, hi):
        return ds.Box(lo=lo[:d], hi=hi[:d])

    scene.add_soft_body(box((0.30, 0.0, 0.3), (0.40, 0.05, 0.35)), BODIES["snh"], resolution=0.025,
                        velocity=(0.1, 0.0, 0.0)[:d], damping=(0.2, 0.01), name="snh")
    scene.add_soft_body(box((0.0, 0.3, 0.3), (0.15, 0.35, 0.35)), BODIES["cor"], resolution=0.025,
                        fixed=lambda x: x[:, 0] < 1e-9, damping=(0.0, 0.02), name="cor")
    if all_models:
        scene.add_soft_body(box((0.6, 0.01, 0.3), (0.65, 0.06, 0.35)), BODIES["lin"],
                            resolution=0.025, velocity=(0.0, -0.3, 0.0)[:d], name="lin")
        scene.add_soft_body(box((0.8, 0.01, 0.3), (0.85, 0.06, 0.35)), BODIES["nh"],
                            resolution=0.025, velocity=(0.2, -0.3, 0.0)[:d], name="nh")
    scene.add_ground(height=0.0, friction=0.4)
    scene.add_tool(ds.Sphere(center=(0.435, 0.025, 0.325)[:d], radius=0.03), friction=0.3,
                   name="pusher")
    return scene


def _controls(sim):
    U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
    U[:, 0] = -0.4
    U[:, 1] = 0.05
    U[:, sim.dim] = 2.0  # spin: friction drags the block's top
    return U


PARAMS = {"snh.E": 2e3, "cor.nu": 0.25, "lin.E": 2e3, "nh.nu": 0.3, "snh.damping_alpha": 0.2,
          "cor.damping_beta": 0.02, "pusher.friction": 0.3, "ground.friction": 0.4}


def _check(sim, segment, quick=False):
    params = {k: v for k, v in PARAMS.items() if k.split(".")[0] in sim.groups or "friction" in k}
    s0 = sim.reset().to("cpu")  # checks compute on the CPU; rollouts move states to the sim
    g = torch.Generator().manual_seed(0)
    n, d = sim.n_nodes, sim.dim
    wx = torch.randn(n, d, generator=g, dtype=torch.float64)
    wv = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.1
    v_init = s0.v + 0.2 * torch.randn(n, d, generator=g, dtype=torch.float64)

    def loss(U, params, x0, v0):
        prob = ds.SimulationProblem(sim, controls=U, params=params,
                                    state0=s0.replace(x=x0, v=v0))
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=segment))
        end = sol.u[-1].to("cpu")
        return (end.x * wx).sum() + (end.v * wv).sum()

    U0 = _controls(sim)
    p0 = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    U = U0.clone().requires_grad_()
    P = {k: v.clone().requires_grad_() for k, v in p0.items()}
    x0 = s0.x.clone().requires_grad_()
    v0 = v_init.clone().requires_grad_()
    loss(U, P, x0, v0).backward()
    assert U.grad[:, 0].abs().sum() > 0, "the tool must touch the block"
    atol = 1e-6 * float(x0.grad.abs().max())  # below this, finite differences are noise

    with torch.no_grad():
        for idx in [(0, 0), (T - 1, 1), (1, d)][:2 if quick else 3]:
            fd = central_difference(lambda u: loss(u, p0, s0.x, v_init), U0, idx, 1e-6)
            assert_close_rel(U.grad[idx].item(), fd, 1e-5, atol, f"dL/dU{idx}")
        names = ["snh.E", "cor.nu", "cor.damping_beta", "ground.friction"] if quick else p0
        for name in names:
            val = p0[name]
            fd = central_difference(lambda q, name=name: loss(U0, {**p0, name: q}, s0.x, v_init),
                                    val, (), 1e-6 * max(1.0, float(val)))
            v = float(val)  # compare p dL/dp: gradients in the parameter's own scale
            assert_close_rel(v * P[name].grad.item(), v * fd, 1e-5, atol * 0.1, f"dL/d{name}")
        for body, node in (("snh", 3), ("cor", 5), ("nh", 2))[:1 if quick else 3]:
            if body not in sim.groups:
                continue
            i = sim.groups[body].start + node
            # node 3 of "snh" rests on the ground, at the onset of the C1 contact penalty:
            # central differences converge only linearly there (error ~1.5e-2 h), to the
            # adjoint's value, so the step is small
            fd = central_difference(lambda x: loss(U0, p0, x, v_init), s0.x, (i, 1), 1e-8)
            assert_close_rel(x0.grad[i, 1].item(), fd, 1e-5, atol, f"dL/dx0[{body}]")
            fd = central_difference(lambda v: loss(U0, p0, s0.x, v), v_init, (i, 0), 1e-6)
            assert_close_rel(v0.grad[i, 0].item(), fd, 1e-5, atol, f"dL/dv0[{body}]")


def test_implicit_gradients_match_finite_differences(close_after):
    """Quick subset on two bodies (the explicit test covers every model's exact Hessian);
    ``test_implicit_gradients_all_parameters`` (slow) checks everything."""
    sim = ds.FEM(_scene(all_models=False), dt=1e-2, substeps=2, integrator="implicit", contact_stiffness=2e3,
                 newton_tol=1e-13, cg_tol=1e-13, adjoint_tol=1e-13, max_cg=10000)
    close_after(sim)
    _check(sim, segment=3, quick=True)


def test_explicit_gradients_match_finite_differences(close_after):
    sim = ds.FEM(_scene(), dt=2e-3, substeps=5, integrator="explicit", contact_stiffness=2e3)
    close_after(sim)
    _check(sim, segment=2)


@pytest.mark.slow
def test_implicit_gradients_all_parameters(close_after):
    sim = ds.FEM(_scene(), dt=1e-2, substeps=2, integrator="implicit", contact_stiffness=2e3,
                 newton_tol=1e-13, cg_tol=1e-13, adjoint_tol=1e-13, max_cg=10000)
    close_after(sim)
    _check(sim, segment=3)


@pytest.mark.slow
def test_implicit_gradients_3d(close_after):
    sim = ds.FEM(_scene(dim=3), dt=1e-2, substeps=2, integrator="implicit",
                 contact_stiffness=2e3, newton_tol=1e-13, cg_tol=1e-13, adjoint_tol=1e-13,
                 max_cg=10000)
    close_after(sim)
    _check(sim, segment=2)


def test_equilibrium_gradients_match_finite_differences(close_after):
    """The quasi-static solve is differentiable (adjoint by the implicit function theorem)."""
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.0, 0.3), hi=(0.3, 0.35)),
                        ds.StableNeoHookean(E=5e3, nu=0.3), resolution=0.025,
                        fixed=lambda x: x[:, 0] < 1e-9, name="beam")
    sim = ds.FEM(scene, newton_tol=1e-13, cg_tol=1e-13, adjoint_tol=1e-13, max_cg=10000)
    close_after(sim)
    s0 = sim.reset().to("cpu")
    w = torch.linspace(-1, 1, sim.n_nodes, dtype=torch.float64)

    def loss(E, nu, x0):
        eq = sim.equilibrium(s0.replace(x=x0), params={"E": E, "nu": nu}).to("cpu")
        return (eq.x[:, 1] * w).sum() + eq.x[:, 1].min()

    E = torch.tensor(5e3, dtype=torch.float64, requires_grad=True)
    nu = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x0 = s0.x.clone().requires_grad_()
    loss(E, nu, x0).backward()
    with torch.no_grad():
        fd = central_difference(lambda e: loss(e, nu, s0.x), E.detach(), (), 1e-3)
        assert_close_rel(E.grad.item(), fd, 1e-5, 1e-12, "dL/dE")
        fd = central_difference(lambda n: loss(E, n, s0.x), nu.detach(), (), 1e-6)
        assert_close_rel(nu.grad.item(), fd, 1e-5, 1e-12, "dL/dnu")
        pinned = int(torch.nonzero(sim.fixed)[1])
        fd = central_difference(lambda x: loss(E, nu, x), s0.x, (pinned, 1), 1e-7)
        assert_close_rel(x0.grad[pinned, 1].item(), fd, 1e-5, 1e-10, "dL/dx_pinned")


def test_backward_after_the_engine_was_replaced(close_after):
    """A rollout between a forward and its backward may replace the simulator's engine
    (here: a longer segment); the pending backward must still give the same gradient
    (it used the closed engine: a Taichi index error on freed fields)."""
    sim = ds.FEM(_scene(all_models=False), dt=1e-2, substeps=1, contact_stiffness=2e3)
    close_after(sim)
    s0 = sim.reset()
    U0 = _controls(sim)

    def grad(interleave):
        U = U0.clone().requires_grad_()
        prob = ds.SimulationProblem(sim, controls=U, state0=s0)
        end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=1)).u[-1]
        if interleave:
            with torch.no_grad():
                sim.rollout(s0, U0, segment=2 * T)   # forces a new, longer engine
        end.x.sum().backward()
        return U.grad

    g0 = grad(False)
    assert torch.allclose(grad(True), g0, rtol=1e-9, atol=1e-12)
