"""Physics of ds.Shell against known answers.

* A simply supported square plate under its own weight against Kirchhoff plate theory
  (Navier's series solution).
* The membrane patch test: an in-plane affine deformation is reproduced exactly.
* Rest-angle plasticity leaves a crease; elastic sheets spring back.
* Self-contact keeps a sheet dropped on another sheet above it.
"""

import numpy as np
import pytest
import torch

import diffsim as ds


def test_plate_under_gravity_matches_kirchhoff(close_after):
    """a = 1 m, t = 1 cm, simply supported (boundary pinned, no hinge moment at the edge),
    h = a/10: the centre deflection is 4.1% below Navier's w = 0.00406 q a^4 / D (h = a/20:
    4.1%, a/40: 2.4%; the hinge model converges slowly near the supported edges)."""
    a, t, E, nu, rho, g = 1.0, 0.01, 1e10, 0.3, 1000.0, 9.8
    scene = ds.Scene(dim=3, gravity=(0.0, -g, 0.0))
    mat = ds.ShellMaterial(E=E, nu=nu, thickness=t, density=rho)
    scene.add_shell(ds.Rectangle(center=(0.0, 0.0, 0.0), size=(a, a)), mat, resolution=a / 10,
                    fixed=lambda x: (np.abs(x[:, 0]) > a / 2 - 1e-9)
                    | (np.abs(x[:, 2]) > a / 2 - 1e-9))
    sim = ds.Shell(scene, newton_tol=1e-10, cg_tol=1e-10)
    close_after(sim)
    eq = sim.equilibrium()
    w = (sim.rest_positions[:, 1] - eq.x[:, 1]).max().item()
    navier = 0.00406235 * rho * t * g * a ** 4 / mat.plate_stiffness
    err = w / navier - 1
    assert -0.06 < err < 0.0, err


def test_membrane_patch_test(close_after):
    """Pin the boundary of a flat sheet to an in-plane affine map: the interior follows."""
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, 0.0))
    rect = ds.Rectangle(center=(0.0, 0.0, 0.0), size=(0.2, 0.2))
    from diffsim.mesh import rectangle_mesh

    X, F = rectangle_mesh(rect, 0.04)
    boundary = (np.abs(X[:, 0]) > 0.1 - 1e-9) | (np.abs(X[:, 2]) > 0.1 - 1e-9)
    rng = np.random.default_rng(1)
    X = X.copy()
    X[~boundary, 0] += rng.uniform(-0.005, 0.005, (~boundary).sum())
    X[~boundary, 2] += rng.uniform(-0.005, 0.005, (~boundary).sum())
    scene.add_shell(ds.TriMesh(X, F), ds.ShellMaterial(E=1e5, nu=0.3, membrane="neohookean"),
                    fixed=boundary)
    sim = ds.Shell(scene, newton_tol=1e-12, cg_tol=1e-12)
    close_after(sim)
    A = np.array([[1.15, 0.1], [0.05, 0.85]])
    target = X.copy()
    target[:, [0, 2]] = X[:, [0, 2]] @ A.T
    target = torch.as_tensor(target)
    s0 = sim.reset()
    start = torch.where(torch.as_tensor(boundary)[:, None], target, s0.x)
    eq = sim.equilibrium(s0.replace(x=start))
    assert (eq.x - target).abs().max() < 1e-9


@pytest.mark.slow
def test_plastic_fold_keeps_a_crease_elastic_springs_back(close_after):
    """A strip clamped at one end (two pinned rows) is bent down by a finger; released (the
    quasi-static equilibrium without the finger), the plastic strip stays bent because its
    rest angles followed the bend; the elastic one returns flat."""
    results = {}
    for name, plasticity in (("plastic", 2.0), ("elastic", None)):
        scene = ds.Scene(dim=3, gravity=(0.0, 0.0, 0.0))
        mat = ds.ShellMaterial(E=1e6, nu=0.3, thickness=5e-4, density=500.0,
                               bending_stiffness=1e-3, bending_plasticity=plasticity)
        scene.add_shell(ds.Rectangle(center=(0.1, 0.2, 0.0), size=(0.2, 0.04)), mat,
                        resolution=0.02, fixed=lambda x: x[:, 0] < 0.02 + 1e-9,
                        damping=(2.0, 0.0))
        scene.add_tool(ds.Sphere(center=(0.17, 0.23, 0.0), radius=0.02), name="finger")
        sim = ds.Shell(scene, dt=1e-2, substeps=2)
        close_after(sim)
        U = torch.zeros(20, sim.action_dim, dtype=torch.float64)
        U[:, 1] = -0.4       # push the free end down 8 cm
        with torch.no_grad():
            pressed = sim.rollout(sim.reset(), U)[-1]
            away = pressed.tool_pos + torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
            released = sim.equilibrium(pressed.replace(tool_pos=away))
        tip = sim.rest_positions[:, 0] > 0.2 - 1e-9
        results[name] = (0.2 - pressed.x[tip, 1].mean().item(),
                         0.2 - released.x[tip, 1].mean().item(),
                         released.rest_angle.abs().max().item())
    assert results["plastic"][0] > 0.05 and results["elastic"][0] > 0.05, results
    assert results["plastic"][1] > 0.02 and results["plastic"][2] > 0.05, results
    assert abs(results["elastic"][1]) < 1e-6 and results["elastic"][2] == 0.0, results


@pytest.mark.slow
def test_self_contact_keeps_stacked_sheets_apart(close_after):
    scene = ds.Scene(dim=3)
    mat = ds.ShellMaterial(E=1e5, nu=0.3, thickness=1e-3, density=300.0)
    scene.add_shell(ds.Rectangle(center=(0.5, 0.002, 0.5), size=(0.16, 0.16)), mat,
                    resolution=0.02, name="bottom")
    scene.add_shell(ds.Rectangle(center=(0.5, 0.03, 0.5), size=(0.12, 0.12)), mat,
                    resolution=0.02, name="top")
    scene.add_ground(height=0.0, friction=0.5)
    sim = ds.Shell(scene, dt=1e-2, substeps=2, self_contact=0.02)
    close_after(sim)
    with torch.no_grad():
        end = sim.rollout(sim.reset(), torch.zeros(15, 0))[-1]
    top = end.x[sim.groups["top"], 1]
    bottom = end.x[sim.groups["bottom"], 1]
    assert top.min() > bottom.max() + 0.01, (top.min(), bottom.max())
    assert abs(end.v).max() < 0.05, "at rest"


def test_bend_angle_is_continuous_where_the_dihedral_wraps():
    """``dihedral`` jumps from pi to -pi when a hinge folds flat onto itself; the bending
    energy reads ``bend_angle(theta, rest)``, the difference wrapped to [-pi, pi], so a
    creased hinge (rest 2.5 rad) passes there without a jump (the plain difference jumps
    by 2 pi: its energy by 4 pi k rest, which stalled Newton on Fold's sheet), and the
    difference is unchanged elsewhere."""
    import math

    import taichi as ti

    from diffsim.fem.shell_physics import bend_angle

    thetas = [math.pi - 1e-3, -math.pi + 1e-3, 0.3, -1.0, 2.0]
    rests = [2.5, 2.5, 0.1, 0.5, -0.5]
    out = ti.field(ti.f64, shape=len(thetas))

    @ti.kernel
    def run(t: ti.types.ndarray(), r: ti.types.ndarray()):
        for i in range(len(thetas)):
            out[i] = bend_angle(t[i], r[i])

    run(np.array(thetas), np.array(rests))
    got = out.to_numpy()
    assert got[0] == pytest.approx(math.pi - 1e-3 - 2.5, abs=1e-12)
    assert got[1] == pytest.approx(got[0] + 2e-3, abs=1e-12)       # continuous through pi
    assert got[2:].tolist() == pytest.approx([0.2, -1.5, 2.5], abs=1e-12)
