"""Gradients of MPM rollouts against central finite differences (float64).

Each material is pushed by a tool so the checks cover the constitutive model
(including SVD and return-mapping backward passes), tool contact with friction,
a material parameter, the tool friction, the controls and the initial velocity.
"""

import pytest
import torch
from helpers import assert_close_rel, central_difference

import diffsim as ds

MATERIALS = {
    "elastic": (ds.Elastic(E=2e3, nu=0.3), "E"),
    "neohookean": (ds.NeoHookean(E=2e3, nu=0.3), "nu"),
    "plasticine": (ds.Plasticine(E=2e3, nu=0.3, yield_stress=20.0), "yield_stress"),
    "fluid": (ds.Fluid(bulk_modulus=2e3, viscosity=1.0), "viscosity"),
    "sand": (ds.Sand(E=2e3, nu=0.3, friction_angle=35.0), "E"),
    "snow": (ds.Snow(E=2e3, nu=0.3), "E"),
}
T = 12


def _pushed_block(material, dim=2):
    scene = ds.Scene(dim=dim)
    if dim == 2:
        scene.add_particles(ds.Box(lo=(0.4, 0.3), hi=(0.5, 0.4)), material, velocity=(0.5, 0.0),
                            name="block")
        scene.add_tool(ds.Sphere(center=(0.6, 0.35), radius=0.05), friction=0.3, name="pusher")
    else:
        scene.add_particles(ds.Box(lo=(0.4, 0.3, 0.4), hi=(0.5, 0.4, 0.5)), material,
                            velocity=(0.5, 0.0, 0.0), name="block")
        scene.add_tool(ds.Box(lo=(0.55, 0.3, 0.4), hi=(0.6, 0.4, 0.5)), friction=0.3,
                       name="pusher")
    return ds.MPM(scene, grid_res=32 if dim == 2 else 16, dt=1e-3, substeps=5)


def _controls(sim):
    U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
    U[:, 0] = -1.0  # the tool moves into the block
    return U


def _loss_fn(sim, weights, segment=5):
    s0 = sim.reset()

    def loss(U, params, v0):
        prob = ds.SimulationProblem(sim, controls=U, params=params, state0=s0.replace(v=v0))
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=segment))
        end = sol.u[-1].to("cpu")  # the weights live on the CPU; .to is differentiable
        return (end.x * weights[0]).sum() + (end.v * weights[1]).sum() + (
            end.F * weights[2]).sum()

    return s0, loss


@pytest.mark.parametrize("name", list(MATERIALS))
def test_gradients_match_finite_differences(name, close_after):
    material, pname = MATERIALS[name]
    sim = _pushed_block(material)
    close_after(sim)
    g = torch.Generator().manual_seed(0)
    n, d = sim.n_particles, sim.dim
    weights = (torch.randn(n, d, generator=g, dtype=torch.float64),
               torch.randn(n, d, generator=g, dtype=torch.float64),
               torch.randn(n, d, d, generator=g, dtype=torch.float64) * 0.1)
    s0, loss = _loss_fn(sim, weights)
    U0 = _controls(sim)
    p0 = torch.tensor(float(getattr(material, pname)), dtype=torch.float64)
    fr0 = torch.tensor(0.3, dtype=torch.float64)

    U = U0.clone().requires_grad_()
    p = p0.clone().requires_grad_()
    fr = fr0.clone().requires_grad_()
    v0 = s0.v.clone().requires_grad_()
    loss(U, {pname: p, "pusher.friction": fr}, v0).backward()
    assert U.grad.abs().sum() > 0, "the tool must touch the block"

    fixed = {pname: p0, "pusher.friction": fr0}
    # a central difference may straddle a yield surface or a clamp of the plastic
    # models (a kink): a smaller step makes that less likely
    plastic = name in ("plasticine", "snow", "sand")
    rtol, h = (1e-5, 1e-7) if plastic else (1e-5, 1e-6)
    atol = 1e-5 * float(U.grad.abs().max())  # entries far below the gradient's scale
    for idx in [(0, 0), (5, 1), (9, 2)]:
        fd = central_difference(lambda u: loss(u, fixed, s0.v), U0, idx, h)
        assert_close_rel(U.grad[idx].item(), fd, rtol, atol, f"{name} dL/dU{idx}")
    fd = central_difference(lambda q: loss(U0, {**fixed, pname: q}, s0.v), p0, (), h * float(p0))
    assert_close_rel(p.grad.item(), fd, rtol, 1e-9, f"{name} dL/d{pname}")
    fd = central_difference(lambda q: loss(U0, {**fixed, "pusher.friction": q}, s0.v), fr0, (), h)
    assert_close_rel(fr.grad.item(), fd, rtol, 1e-9, f"{name} dL/dfriction")
    fd = central_difference(lambda v: loss(U0, fixed, v), s0.v, (3, 0), h)
    assert_close_rel(v0.grad[3, 0].item(), fd, rtol, 1e-9, f"{name} dL/dv0")


def test_segment_length_does_not_change_gradients(close_after):
    sim = _pushed_block(ds.Elastic(E=2e3, nu=0.3))
    close_after(sim)
    w = torch.linspace(-1, 1, sim.n_particles * 2, dtype=torch.float64).reshape(-1, 2)
    grads = []
    for segment in (1, 5, T):
        U = _controls(sim).requires_grad_()
        s0, loss = _loss_fn(sim, (w, w, torch.zeros(sim.n_particles, 2, 2)), segment=segment)
        loss(U, {}, s0.v).backward()
        grads.append(U.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads[0], grads[2], rtol=1e-12, atol=1e-14)


def test_gradients_3d_rotating_tool(close_after):
    """3D, a box tool with angular velocity: gradients reach linear and angular controls."""
    sim = _pushed_block(ds.NeoHookean(E=2e3, nu=0.3), dim=3)
    close_after(sim)
    assert sim.action_dim == 6
    w = torch.randn(sim.n_particles, 3, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    s0, loss = _loss_fn(sim, (w, w, torch.zeros(sim.n_particles, 3, 3)))
    U0 = _controls(sim)
    U0[:, 4] = 2.0  # spin about y while pushing
    U = U0.clone().requires_grad_()
    loss(U, {}, s0.v).backward()
    for idx in [(0, 0), (4, 4), (8, 5), (2, 1)]:
        fd = central_difference(lambda u: loss(u, {}, s0.v), U0, idx, 1e-6)
        assert_close_rel(U.grad[idx].item(), fd, 1e-5, 1e-9, f"3D dL/dU{idx}")


def test_gradients_are_bitwise_reproducible_in_deterministic_mode(close_after):
    """Deterministic mode (the CPU default) runs the reverse kernels that sum into one
    gradient (the tool's over grid nodes, the material's over particles) serially:
    repeated gradients are bitwise equal. A racy sum (float atomics from two threads)
    differed in the last bits between repeats on this scene (checked by running those
    kernels in parallel)."""
    scene = ds.Scene(dim=3)
    scene.add_particles(ds.Box(lo=(0.3, 0.15, 0.3), hi=(0.7, 0.3, 0.7)),
                        ds.Plasticine(E=2e3, nu=0.3, yield_stress=20.0), name="slab")
    scene.add_tool(ds.Sphere(center=(0.5, 0.38, 0.5), radius=0.1), friction=0.3, name="press")
    sim = ds.MPM(scene, grid_res=24, dt=1e-3, substeps=4)
    close_after(sim)
    assert sim.n_particles > 8 * 64  # enough particles (and grid blocks) for two threads to race
    U0 = torch.zeros(4, sim.action_dim, dtype=torch.float64)
    U0[:, 1] = -1.0  # press down into the slab
    s0 = sim.reset()
    grads = []
    for _ in range(3):
        U = U0.clone().requires_grad_()
        E = torch.tensor(2e3, dtype=torch.float64, requires_grad=True)
        fr = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        sol = ds.solve(ds.SimulationProblem(sim, controls=U, params={"E": E, "press.friction": fr},
                                            state0=s0), sensealg=ds.CheckpointAdjoint(segment=3))
        end = sol.u[-1]
        ((end.x[:, 1] ** 2).sum() + end.F.sum() + end.v.sum()).backward()
        grads.append(torch.cat([U.grad.flatten(), E.grad.view(1), fr.grad.view(1)]))
    assert grads[0][:-2].abs().sum() > 0 and grads[0][-1] != 0, "the tool must press the slab"
    for g in grads[1:]:
        assert torch.equal(g, grads[0])


def test_saveat_intermediate_states_carry_gradients(close_after):
    sim = _pushed_block(ds.NeoHookean(E=2e3, nu=0.3))
    close_after(sim)
    U0 = _controls(sim)
    s0 = sim.reset()

    def loss(U):
        sol = ds.solve(ds.SimulationProblem(sim, controls=U), saveat=[0, 4, T],
                       sensealg=ds.CheckpointAdjoint(segment=3))
        assert [s.step for s in sol.u] == [0, 4, T]
        return sum(((st.x - s0.x) ** 2).sum() * (i + 1) for i, st in enumerate(sol.u))

    U = U0.clone().requires_grad_()
    loss(U).backward()
    fd = central_difference(loss, U0, (2, 0), 1e-6)
    assert_close_rel(U.grad[2, 0].item(), fd, 1e-5, 1e-10, "saveat dL/dU")


def test_backward_twice_with_retain_graph(close_after):
    """A second backward pass through one rollout (``retain_graph=True``, as
    ``torch.autograd.grad`` of two losses of the same states needs) gives the same
    gradients, also after another rollout ran on the engine; without it torch's own error
    says the saved tensors were freed (once: the checkpoints were not saved with torch)."""
    sim = _pushed_block(ds.NeoHookean(E=2e3, nu=0.3))
    close_after(sim)
    U = _controls(sim).requires_grad_()
    sol = ds.solve(ds.SimulationProblem(sim, controls=U), saveat=[4, T],
                   sensealg=ds.CheckpointAdjoint(segment=3))
    a, b = (sol.u[0].x ** 2).sum(), (sol.u[1].x ** 2).sum() + sol.u[0].v.sum()
    g1 = torch.autograd.grad(b, U, retain_graph=True)[0]
    ds.solve(ds.SimulationProblem(sim, controls=U.detach() * 0.5),
             sensealg=ds.CheckpointAdjoint(segment=3))
    g2 = torch.autograd.grad(b, U, retain_graph=True)[0]
    assert torch.equal(g1, g2) and g1.abs().sum() > 0
    ga = torch.autograd.grad(a, U)[0]
    assert ga.abs().sum() > 0
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(b, U)


@pytest.mark.parametrize("name", ["elastic", "plasticine", "snow"])
def test_gradients_exact_for_undeformed_particles_hitting_the_floor(name, close_after):
    """Particles start with F = I (coinciding singular values) and stay nearly undeformed
    while falling; the SVD-based models must still give exact derivatives."""
    material = {"elastic": ds.Elastic(E=2e3, nu=0.3),
                "plasticine": ds.Plasticine(E=2e3, nu=0.3, yield_stress=20.0),
                "snow": ds.Snow(E=2e3, nu=0.3)}[name]
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.1), hi=(0.5, 0.2)), material, velocity=(0.5, -0.5))
    sim = ds.MPM(scene, grid_res=32, dt=1e-3, substeps=5)
    close_after(sim)
    g = torch.Generator().manual_seed(0)
    wx = torch.randn(sim.n_particles, 2, generator=g, dtype=torch.float64)
    wF = torch.randn(sim.n_particles, 2, 2, generator=g, dtype=torch.float64) * 0.1
    s0 = sim.reset()

    def loss(v0):
        sol = ds.solve(ds.SimulationProblem(sim, controls=torch.zeros(T, 0),
                                            state0=s0.replace(v=v0)),
                       sensealg=ds.CheckpointAdjoint(segment=5))
        end = sol.u[-1].to("cpu")
        return (end.x * wx).sum() + (end.F * wF).sum()

    v0 = s0.v.clone().requires_grad_()
    loss(v0).backward()
    for idx in [(0, 1), (5, 0), (30, 1)]:
        fd = central_difference(loss, s0.v, idx, 1e-6)
        assert_close_rel(v0.grad[idx].item(), fd, 1e-5, 1e-9, f"{name} dL/dv0{idx}")


def test_svd2x2_is_exact_near_coinciding_singular_values():
    """Our 2D SVD reconstructs matrices to rounding where Taichi's 2D ti.svd loses 1e-6."""
    import numpy as np
    import taichi as ti

    from diffsim.mpm.svd import svd2x2

    Fm = ti.Matrix.field(2, 2, ti.f64, shape=())
    out = ti.Matrix.field(2, 2, ti.f64, shape=())
    orth = ti.field(ti.f64, shape=())

    @ti.kernel
    def recon():
        U, sig, V = svd2x2(Fm[None])
        out[None] = U @ ti.Matrix([[sig[0], 0.0], [0.0, sig[1]]]) @ V.transpose()
        orth[None] = (U.transpose() @ U - ti.Matrix.identity(ti.f64, 2)).norm() + (
            V.transpose() @ V - ti.Matrix.identity(ti.f64, 2)).norm()

    rng = np.random.default_rng(0)
    for gap in (0.3, 1e-5, 1e-9, 0.0, -1.5):
        a, b = rng.uniform(0, 2 * np.pi, 2)
        R1 = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        R2 = np.array([[np.cos(b), -np.sin(b)], [np.sin(b), np.cos(b)]])
        A = R1 @ np.diag([0.9 + gap, 0.9]) @ R2.T
        Fm[None] = A
        recon()
        assert np.abs(out.to_numpy() - A).max() < 1e-14, gap
        assert orth[None] < 1e-14
