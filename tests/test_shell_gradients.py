"""Gradients of ds.Shell rollouts against central finite differences (float64).

One scene: a pinned sheet sagging under gravity with rest-angle plasticity (the rest
angles are state and flow), and two stacked sheets on the ground that a spinning,
moving sphere presses and drags (tool friction, vertex self-contact between the
sheets, ground friction). Checks: controls, initial positions, velocities and rest
angles, E, nu, bending stiffness, damping and friction, implicit and explicit (slow: the
reverse kernels of three sheets with self-contact take about a minute to compile). The
fast suite runs a tiny plastic flap pressed by a finger.
"""

import numpy as np
import pytest
import torch
from helpers import assert_close_rel, central_difference

import diffsim as ds

T = 3


def _scene():
    scene = ds.Scene(dim=3)
    plastic = ds.ShellMaterial(E=2e4, nu=0.3, thickness=1e-3, density=500.0,
                               bending_stiffness=2e-4, bending_plasticity=1.0)
    cloth = ds.ShellMaterial(E=2e4, nu=0.25, thickness=1e-3, density=300.0,
                             membrane="neohookean")
    scene.add_shell(ds.Rectangle(center=(0.2, 0.2, 0.5), size=(0.1, 0.06)), plastic,
                    resolution=0.035, fixed=lambda x: x[:, 0] < 0.15 + 1e-9, damping=(0.0, 0.005),
                    velocity=(0.0, -1.0, 0.0), name="flap")
    scene.add_shell(ds.Rectangle(center=(0.5, 0.002, 0.5), size=(0.08, 0.08)), cloth,
                    resolution=0.035, damping=(0.3, 0.0), name="lower")
    scene.add_shell(ds.Rectangle(center=(0.5, 0.014, 0.5), size=(0.08, 0.08)), cloth,
                    resolution=0.035, name="upper")
    scene.add_ground(height=0.0, friction=0.5)
    scene.add_tool(ds.Sphere(center=(0.5, 0.05, 0.5), radius=0.035), friction=0.4,
                   name="finger")
    return scene


PARAMS = {"flap.E": 2e4, "upper.nu": 0.25, "flap.bending_stiffness": 2e-4,
          "flap.damping_beta": 0.005, "lower.damping_alpha": 0.3, "finger.friction": 0.4,
          "ground.friction": 0.5}


def _controls(sim):
    U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
    U[:, 0] = 0.2      # drag
    U[:, 1] = -0.05    # press
    U[:, 4] = 3.0      # spin about y
    return U


def _check(sim, segment, quick):
    s0 = sim.reset()
    # start the sphere touching the upper sheet
    s0 = s0.replace(tool_pos=s0.tool_pos - torch.tensor([[0.0, 0.0145, 0.0]],
                                                        dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    n = sim.n_nodes
    wx = torch.randn(n, 3, generator=g, dtype=torch.float64)
    wv = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.1
    wr = torch.randn(sim.n_hinges, generator=g, dtype=torch.float64)

    def loss(U, params, x0, v0, r0):
        prob = ds.SimulationProblem(sim, controls=U, params=params,
                                    state0=s0.replace(x=x0, v=v0, rest_angle=r0))
        end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=segment)).u[-1]
        return (end.x * wx).sum() + (end.v * wv).sum() + (end.rest_angle * wr).sum()

    U0 = _controls(sim)
    p0 = {k: torch.tensor(v, dtype=torch.float64) for k, v in PARAMS.items()}
    U = U0.clone().requires_grad_()
    P = {k: v.clone().requires_grad_() for k, v in p0.items()}
    x0, v0, r0 = (s0.x.clone().requires_grad_(), s0.v.clone().requires_grad_(),
                  s0.rest_angle.clone().requires_grad_())
    loss(U, P, x0, v0, r0).backward()
    assert U.grad[:, :2].abs().sum() > 0, "the finger must touch the sheet"
    atol = 1e-6 * float(x0.grad.abs().max())  # below this, finite differences are noise
    flap = sim.hinge_groups["flap"]
    with torch.no_grad():
        end = sim.rollout(s0, U0, segment=segment)[-1]
    assert (end.rest_angle[flap] - s0.rest_angle[flap]).abs().max() > 1e-3, "no plastic flow"
    assert sim._engine.k.pairs.n_pairs[0] > 0, "the stacked sheets must be in self-contact"

    with torch.no_grad():
        for idx in [(0, 0), (T - 1, 1), (1, 4)][:2 if quick else 3]:
            fd = central_difference(lambda u: loss(u, p0, s0.x, s0.v, s0.rest_angle), U0, idx,
                                    1e-5)
            assert_close_rel(U.grad[idx].item(), fd, 2e-5, atol, f"dL/dU{idx}")
        names = ["flap.bending_stiffness", "upper.nu", "finger.friction"] if quick else p0
        for name in names:
            val = p0[name]
            fd = central_difference(
                lambda q, name=name: loss(U0, {**p0, name: q}, s0.x, s0.v, s0.rest_angle), val,
                (), 1e-5 * float(val))
            v = float(val)  # compare p dL/dp: gradients in the parameter's own scale
            assert_close_rel(v * P[name].grad.item(), v * fd, 2e-5, atol * 0.1, f"dL/d{name}")
        i = sim.groups["upper"].start + 4
        fd = central_difference(lambda x: loss(U0, p0, x, s0.v, s0.rest_angle), s0.x, (i, 1),
                                1e-7)
        assert_close_rel(x0.grad[i, 1].item(), fd, 2e-5, atol, "dL/dx0")
        j = sim.groups["flap"].start + 5
        fd = central_difference(lambda v: loss(U0, p0, s0.x, v, s0.rest_angle), s0.v, (j, 1),
                                1e-6)
        assert_close_rel(v0.grad[j, 1].item(), fd, 2e-5, atol, "dL/dv0")
        h = int(np.arange(sim.n_hinges)[flap][2])
        fd = central_difference(lambda r: loss(U0, p0, s0.x, s0.v, r), s0.rest_angle, (h,), 1e-6)
        assert_close_rel(r0.grad[h].item(), fd, 2e-5, atol, "dL/drest_angle0")


def test_tiny_plastic_flap_gradients(close_after):
    """The fast check: one pinned plastic flap pressed and dragged by a finger (2 implicit
    steps): controls, bending stiffness, tool friction and rest angles (plastic flow)."""
    scene = ds.Scene(dim=3)
    plastic = ds.ShellMaterial(E=2e4, nu=0.3, thickness=1e-3, density=500.0,
                               bending_stiffness=2e-4, bending_plasticity=1.0)
    scene.add_shell(ds.Rectangle(center=(0.2, 0.2, 0.5), size=(0.1, 0.06)), plastic,
                    resolution=0.035, fixed=lambda x: x[:, 0] < 0.15 + 1e-9,
                    damping=(0.0, 0.005), velocity=(0.0, -1.0, 0.0), name="flap")
    scene.add_tool(ds.Sphere(center=(0.23, 0.17, 0.5), radius=0.02), friction=0.4,
                   name="finger")
    sim = ds.Shell(scene, dt=1.5e-2, substeps=1, contact_stiffness=2e3, newton_tol=1e-13,
                   cg_tol=1e-11, adjoint_tol=1e-13, max_cg=10000)
    close_after(sim)
    s0 = sim.reset()
    g = torch.Generator().manual_seed(0)
    wx = torch.randn(sim.n_nodes, 3, generator=g, dtype=torch.float64)
    wr = torch.randn(sim.n_hinges, generator=g, dtype=torch.float64)
    U0 = torch.zeros(2, sim.action_dim, dtype=torch.float64)
    U0[:, 0], U0[:, 1] = 0.2, 0.5    # the finger rises into the falling flap and drags it
    p0 = {"flap.bending_stiffness": torch.tensor(2e-4, dtype=torch.float64),
          "finger.friction": torch.tensor(0.4, dtype=torch.float64)}

    def loss(U, params, r0):
        prob = ds.SimulationProblem(sim, controls=U, params=params,
                                    state0=s0.replace(rest_angle=r0))
        end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2)).u[-1]
        return (end.x * wx).sum() + (end.rest_angle * wr).sum()

    U = U0.clone().requires_grad_()
    P = {k: v.clone().requires_grad_() for k, v in p0.items()}
    r0 = s0.rest_angle.clone().requires_grad_()
    loss(U, P, r0).backward()
    assert P["finger.friction"].grad.abs() > 0, "the finger must touch the flap"
    atol = 1e-6 * float(U.grad.abs().max())
    with torch.no_grad():
        end = sim.rollout(s0, U0, segment=2)[-1]
        assert (end.rest_angle - s0.rest_angle).abs().max() > 1e-2, "no plastic flow"
        fd = central_difference(lambda u: loss(u, p0, s0.rest_angle), U0, (1, 1), 1e-5)
        assert_close_rel(U.grad[1, 1].item(), fd, 2e-5, atol, "dL/dU")
        for name, val in p0.items():
            fd = central_difference(lambda q, name=name: loss(U0, {**p0, name: q}, s0.rest_angle),
                                    val, (), 1e-5 * float(val))
            v = float(val)
            assert_close_rel(v * P[name].grad.item(), v * fd, 2e-5, atol, f"dL/d{name}")
        fd = central_difference(lambda r: loss(U0, p0, r), s0.rest_angle, (2,), 1e-6)
        assert_close_rel(r0.grad[2].item(), fd, 2e-5, atol, "dL/drest_angle0")


@pytest.mark.slow
def test_implicit_shell_gradients_match_finite_differences(close_after):
    sim = ds.Shell(_scene(), dt=1.5e-2, substeps=1, contact_stiffness=2e3, self_contact=0.012,
                   newton_tol=1e-13, cg_tol=1e-11, adjoint_tol=1e-13, max_cg=10000)
    close_after(sim)
    _check(sim, segment=2, quick=True)


@pytest.mark.slow
def test_implicit_shell_gradients_all_parameters(close_after):
    sim = ds.Shell(_scene(), dt=1.5e-2, substeps=1, contact_stiffness=2e3, self_contact=0.012,
                   newton_tol=1e-13, cg_tol=1e-11, adjoint_tol=1e-13, max_cg=10000)
    close_after(sim)
    _check(sim, segment=2, quick=False)


@pytest.mark.slow
def test_explicit_shell_gradients_match_finite_differences(close_after):
    sim = ds.Shell(_scene(), dt=2.5e-4, substeps=20, integrator="explicit",
                   contact_stiffness=2e3, self_contact=0.012)
    close_after(sim)
    _check(sim, segment=2, quick=True)


@pytest.mark.slow
def test_shell_equilibrium_gradients_match_finite_differences(close_after):
    """The quasi-static equilibrium of a clamped flap bent by a finger pressing down
    (no gravity) is differentiable through ``diffsim.implicit`` (Taichi adjoint solve):
    bending stiffness, the finger's position (a tool pose: the contact term) and a pinned
    node's position."""
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, 0.0))
    mat = ds.ShellMaterial(E=2e4, nu=0.3, thickness=1e-3, density=500.0, bending_stiffness=2e-4)
    # two pinned columns clamp the edge (one column would be a hinge: a mechanism)
    scene.add_shell(ds.Rectangle(center=(0.2, 0.2, 0.5), size=(0.1, 0.06)), mat, resolution=0.035,
                    fixed=lambda x: x[:, 0] < 0.185 + 1e-9, name="flap")
    scene.add_tool(ds.Sphere(center=(0.24, 0.215, 0.5), radius=0.02), name="finger")  # presses down
    sim = ds.Shell(scene, contact_stiffness=2e3, newton_tol=1e-13, cg_tol=1e-12, adjoint_tol=1e-13,
                   max_cg=10000)
    close_after(sim)
    s0 = sim.reset()
    w = torch.randn(sim.n_nodes, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k0 = torch.tensor(2e-4, dtype=torch.float64)

    def loss(k, tool_pos, x0):
        eq = sim.equilibrium(s0.replace(x=x0, tool_pos=tool_pos), params={"flap.bending_stiffness": k})
        return (eq.x * w).sum()

    k = k0.clone().requires_grad_()
    tp = s0.tool_pos.clone().requires_grad_()
    x0 = s0.x.clone().requires_grad_()
    loss(k, tp, x0).backward()
    assert tp.grad.abs().max() > 0, "the finger must touch the flap at equilibrium"
    atol = 1e-8 * float(tp.grad.abs().max())
    with torch.no_grad():
        fd = central_difference(lambda q: loss(q, s0.tool_pos, s0.x), k0, (), 1e-3 * float(k0))
        assert_close_rel(float(k0) * k.grad.item(), float(k0) * fd, 1e-5, atol, "dL/dbending_stiffness")
        fd = central_difference(lambda p: loss(k0, p, s0.x), s0.tool_pos, (0, 1), 1e-6)
        assert_close_rel(tp.grad[0, 1].item(), fd, 1e-5, atol, "dL/dtool_pos")
        pinned = int(torch.nonzero(sim.fixed)[0])
        fd = central_difference(lambda x: loss(k0, s0.tool_pos, x), s0.x, (pinned, 1), 1e-6)
        assert_close_rel(x0.grad[pinned, 1].item(), fd, 1e-5, atol, "dL/dx_pinned")
