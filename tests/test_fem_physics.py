"""Physics of ds.FEM against known answers.

* A cantilever under its own weight against Euler-Bernoulli beam theory.
* The patch test: an affine deformation of an irregular mesh is reproduced exactly.
* Energy conservation of the explicit (symplectic) integrator without damping.
* Implicit and explicit integrators agree as dt -> 0 (backward Euler is first order).
* Ground friction: a block sliding on the ground decelerates at mu g.
"""

import numpy as np
import pytest
import torch

import diffsim as ds
from diffsim.mesh import grid_mesh


def _cantilever_error(dim, h):
    L, H, E, rho, g = 1.0, 0.1, 1e9, 1000.0, 9.8
    scene = ds.Scene(dim=dim, gravity=(0.0, -g, 0.0)[:dim])
    scene.add_soft_body(ds.Box(lo=(0.0, 0.0, 0.0)[:dim], hi=(L, H, H)[:dim]),
                        ds.LinearElastic(E=E, nu=0.0, density=rho), resolution=h,
                        fixed=lambda x: x[:, 0] < 1e-9)
    sim = ds.FEM(scene, newton_tol=1e-10, cg_tol=1e-10, max_cg=50000)
    try:
        eq = sim.equilibrium().to("cpu")
        x0 = sim.rest_positions.cpu()
        tip = x0[:, 0] > L - 1e-9
        deflection = -(eq.x[tip, 1] - x0[tip, 1]).mean().item()
    finally:
        sim.close()
    width = H if dim == 3 else 1.0
    q, inertia = rho * g * H * width, H ** 3 / 12 * width
    return deflection / (q * L ** 4 / (8 * E * inertia)) - 1.0


def test_cantilever_matches_euler_bernoulli_2d():
    """L/H = 10, linear triangles, h = H/16: the tip deflection is 0.37% below Euler-Bernoulli
    (h = H/8: 3.7%, h = H/4: 15%: linear triangles converge as h^2 in bending)."""
    err = _cantilever_error(2, 0.1 / 16)
    assert -0.01 < err < 0.0, err


@pytest.mark.slow
def test_cantilever_matches_euler_bernoulli_3d():
    """Tets, h = H/8: 5% below Euler-Bernoulli (linear tets lock in bending)."""
    err = _cantilever_error(3, 0.1 / 8)
    assert -0.08 < err < 0.0, err


@pytest.mark.parametrize("material", [
    ds.StableNeoHookean(E=1e4, nu=0.4),
    pytest.param(ds.Elastic(E=1e4, nu=0.3), marks=pytest.mark.slow)])
def test_patch_test_reproduces_affine_deformation(material, close_after):
    """Pin the boundary of an irregular mesh to an affine map (20% stretch, shear, rotation):
    at equilibrium every interior node follows it (any consistent element passes)."""
    pts, cells = grid_mesh(ds.Box(lo=(0.0, 0.0), hi=(0.2, 0.2)), 0.025)
    rng = np.random.default_rng(0)
    interior = np.all((pts > 1e-9) & (pts < 0.2 - 1e-9), axis=1)
    pts = pts.copy()
    pts[interior] += rng.uniform(-0.006, 0.006, size=(interior.sum(), 2))
    scene = ds.Scene(dim=2, gravity=(0.0, 0.0))
    scene.add_soft_body(ds.VolumeMesh(pts, cells), material, fixed=~interior)
    sim = ds.FEM(scene, newton_tol=1e-12, cg_tol=1e-12)
    close_after(sim)
    A = np.array([[1.2, 0.15], [-0.05, 0.9]])
    c, s = np.cos(0.3), np.sin(0.3)
    A = np.array([[c, -s], [s, c]]) @ A
    target = torch.as_tensor(pts @ A.T + np.array([0.1, -0.05]))
    s0 = sim.reset().to("cpu")
    start = torch.where(torch.as_tensor(interior)[:, None], s0.x, target)
    eq = sim.equilibrium(s0.replace(x=start)).to("cpu")
    assert (eq.x[interior] - target[interior]).abs().max() < 1e-9


def test_explicit_integrator_conserves_energy_without_damping(close_after):
    """A free, spinning and stretching block: symplectic Euler keeps the total energy within
    a bounded oscillation (here < 0.3% over 0.5 s, 2500 steps) and without drift."""
    scene = ds.Scene(dim=2, gravity=(0.0, 0.0))
    scene.add_soft_body(ds.Box(lo=(0.4, 0.4), hi=(0.6, 0.5)), ds.StableNeoHookean(E=1e4, nu=0.3),
                        resolution=0.025)
    sim = ds.FEM(scene, dt=2e-4, substeps=25, integrator="explicit")
    close_after(sim)
    s0 = sim.reset().to("cpu")
    r = s0.x - s0.x.mean(0)
    v = 2.0 * torch.stack([-r[:, 1], r[:, 0]], 1) + 1.5 * r * torch.tensor([1.0, -0.5])
    s0 = s0.replace(v=v)
    with torch.no_grad():
        states = sim.rollout(s0, torch.zeros(100, 0), saveat=range(0, 101, 5))
    parts = [sim.energy(st) for st in states]
    energies = np.array([p["total"] for p in parts])
    e0 = energies[0]
    assert max(p["elastic"] for p in parts) > 0.05 * e0, "the block must deform"
    assert np.abs(energies / e0 - 1).max() < 3e-3
    # no secular drift: the second half oscillates about the same mean as the first
    half = len(energies) // 2
    assert abs(energies[half:].mean() - energies[:half].mean()) < 1e-3 * e0


@pytest.mark.slow
def test_implicit_and_explicit_agree_at_small_dt(close_after):
    """A cantilever swinging under gravity: backward Euler converges to the explicit solution
    at first order (halving dt halves the difference)."""
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.0, 0.4), hi=(0.3, 0.44)), ds.Elastic(E=2e5, nu=0.3),
                        resolution=0.02, fixed=lambda x: x[:, 0] < 1e-9)
    t_end = 0.04
    ref = ds.FEM(scene, dt=1e-4, substeps=40, integrator="explicit")
    close_after(ref)
    with torch.no_grad():
        x_ref = ref.rollout(ref.reset(), torch.zeros(10, 0))[-1].x
    errors = []
    for dt in (1e-3, 5e-4):
        # newton_tol 1e-9 m: far below the discretisation errors compared (about 1e-4 m),
        # and above where the Newton steps stall in float64 (about 1e-10 m)
        sim = ds.FEM(scene, dt=dt, substeps=int(round(t_end / dt)), newton_tol=1e-9,
                     cg_tol=1e-10)
        close_after(sim)
        with torch.no_grad():
            x = sim.rollout(sim.reset(), torch.zeros(1, 0))[-1].x
        errors.append((x - x_ref).norm(dim=1).max().item())
    disp = (x_ref - ref.reset().x).norm(dim=1).max().item()
    assert errors[-1] < 0.05 * disp
    assert 1.6 < errors[0] / errors[1] < 2.4, errors


def test_block_sliding_on_ground_decelerates_at_mu_g(close_after):
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.3, 0.0), hi=(0.4, 0.04)), ds.Elastic(E=1e5, nu=0.3),
                        resolution=0.02, velocity=(1.0, 0.0))
    scene.add_ground(height=0.0, friction=0.3)
    sim = ds.FEM(scene, dt=5e-3, substeps=2, contact_stiffness=1e5, friction_eps=1e-4)
    close_after(sim)
    s0 = sim.reset()
    with torch.no_grad():
        states = sim.rollout(s0, torch.zeros(20, 0), saveat=[4, 20])
    v1, v2 = (st.v[:, 0].mean().item() for st in states)
    t = (20 - 4) * sim.control_dt
    decel = (v1 - v2) / t
    assert v2 > 0.2, "still sliding"
    assert abs(decel / (0.3 * 9.8) - 1) < 0.05, decel


def _pressed_sheet():
    """A small sheet on the ground, pressed and dragged by a finger (contact, friction)."""
    scene = ds.Scene(dim=3)
    scene.add_ground(height=0.0, friction=0.5)
    scene.add_shell(ds.Rectangle(center=(0.5, 1e-4, 0.5), size=(0.1, 0.08)),
                    ds.ShellMaterial(E=3e6, nu=0.3, thickness=1e-4, density=800.0,
                                     bending_stiffness=1e-4), resolution=0.02, name="sheet")
    scene.add_tool(ds.Sphere(center=(0.5, 0.0161, 0.5), radius=0.015), friction=1.0, name="finger")
    return ds.Shell(scene, dt=0.02, contact_stiffness=3e5, newton_tol=1e-8, cg_tol=1e-8)


def test_newton_steps_by_the_energys_slope_where_energies_cannot_decide(close_after):
    """Where the energy's round-off hides a step's decrease (float32: the Armijo test
    cannot pass), Newton takes the step length from the energy's derivative along the
    direction (``DeformableEngine._slope_search``) and converges to the same states.
    Here the energy is made blind (every evaluation returns 0) so that the Armijo test
    fails on every iteration."""
    sim = _pressed_sheet()
    close_after(sim)
    U = torch.zeros(4, sim.action_dim, dtype=torch.float64)
    U[:, 1], U[:, 0] = -0.1, 0.1
    with torch.no_grad():
        sim.solver_stats(reset=True)
        want = sim.rollout(sim.reset(), U)[-1].x
        assert sim.solver_stats(reset=True)["line_search_failures"] == 0
        k = sim._engine_for(sim.default_segment(4), False).k
        energy = k.energy

        def blind(s, alpha):
            energy(s, alpha)          # the trial point and the round-off scale, as the kernel leaves them
            return 0.0

        k.energy = blind
        try:
            got = sim.rollout(sim.reset(), U)[-1].x
        finally:
            del k.energy
        stats = sim.solver_stats(reset=True)
    assert stats["line_search_failures"] > 0 and stats["unconverged_steps"] == 0
    torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


def test_one_launch_cg_of_small_meshes_equals_the_parallel_kernels(close_after):
    """Small meshes solve CG in one single-threaded launch on the CPU (``NodeCG.serial``,
    several times faster on the tasks' sheets); it must give the parallel kernels' solve:
    same Newton and CG iteration counts and the same states and gradients (float64, to the
    CG tolerance's effect), on a shell with contact (Lift-like) and a tet block."""
    def block():
        scene = ds.Scene(dim=3)
        scene.add_soft_body(ds.Box(lo=(0.0, 0.5, 0.0), hi=(0.3, 0.36 + 0.2, 0.06)),
                            ds.StableNeoHookean(E=1e5, nu=0.4, density=1000.0), resolution=0.03,
                            fixed=lambda x: x[:, 0] < 1e-9)
        return ds.FEM(scene, dt=1e-2, newton_tol=1e-9, cg_tol=1e-9)

    for make in (_pressed_sheet, block):
        sim = make()
        close_after(sim)
        out = {}
        for serial in (False, True):
            U = torch.zeros(4, sim.action_dim, dtype=torch.float64)
            if sim.action_dim:
                U[:, 1] = -0.1      # press and drag the sheet over the ground
                U[:, 0] = 0.1
            E = torch.tensor(1e5, dtype=torch.float64, requires_grad=True)
            params = {"E": E} if not sim.action_dim else {}
            U.requires_grad_(bool(sim.action_dim))
            eng = sim._engine_for(sim.default_segment(4), True)
            assert eng.serial_cg    # a small mesh on the CPU
            eng.serial_cg = serial
            sim.solver_stats(reset=True)
            end = sim.rollout(sim.reset(), U, params=params)[-1]
            (end.x[:, 1].sum() + 0.1 * end.v.pow(2).sum()).backward()
            stats = sim.solver_stats(reset=True)
            out[serial] = (end.x.detach(), (U if sim.action_dim else E).grad.clone(), stats)
            eng.serial_cg = True
        (x0, g0, s0), (x1, g1, s1) = out[False], out[True]
        assert abs(s0["cg_iters"] - s1["cg_iters"]) <= 0.02 * s0["cg_iters"] and s0["cg_iters"] > 0
        assert s0["newton_iters"] == s1["newton_iters"]
        torch.testing.assert_close(x1, x0, rtol=0, atol=1e-9)
        assert float(g0.abs().sum()) > 0
        torch.testing.assert_close(g1, g0, rtol=1e-6, atol=1e-12)
