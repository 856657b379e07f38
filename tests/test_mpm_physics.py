"""Physics of the MPM simulator against known answers.

Conservation laws, free fall, rest, settling fluid, plastic vs elastic
indentation and the angle of repose of sand.
"""

import math

import numpy as np
import pytest
import torch

import diffsim as ds


def _run(sim, steps, state=None, controls=None):
    state = state or sim.reset()
    U = torch.zeros(steps, sim.action_dim, dtype=torch.float64) if controls is None else controls
    with torch.no_grad():  # states on the CPU, where the checks compute
        return [s.to("cpu") for s in sim.rollout(state, U, saveat=range(steps + 1))]


def _momentum(sim, st):
    masses = torch.cat([torch.full((g.count,), g.p_mass, dtype=torch.float64)
                        for g in sim.model.groups])
    return (masses[:, None] * st.v).sum(0), masses


@pytest.mark.parametrize("dim", [2, 3])
def test_linear_momentum_is_conserved_without_gravity_or_walls(dim, close_after):
    """APIC transfers conserve momentum exactly; two colliding bodies exchange it."""
    scene = ds.Scene(dim=dim, gravity=(0.0,) * dim)
    lo1, hi1 = (0.3, 0.4, 0.4)[:dim], (0.42, 0.52, 0.52)[:dim]
    lo2, hi2 = (0.46, 0.42, 0.42)[:dim], (0.56, 0.5, 0.5)[:dim]
    scene.add_particles(ds.Box(lo=lo1, hi=hi1), ds.Elastic(E=1e3, nu=0.3),
                        velocity=(1.0, 0.2, -0.1)[:dim])
    scene.add_particles(ds.Box(lo=lo2, hi=hi2), ds.NeoHookean(E=2e3, nu=0.2, density=500.0),
                        velocity=(-0.5, 0.0, 0.3)[:dim])
    sim = ds.MPM(scene, grid_res=32 if dim == 2 else 16, dt=1e-3, substeps=4)
    close_after(sim)
    states = _run(sim, 25)
    p0, _ = _momentum(sim, states[0])
    for st in states[1:]:
        p, _ = _momentum(sim, st)
        torch.testing.assert_close(p, p0, rtol=1e-11, atol=1e-13)
    # the bodies did interact: each body's own momentum changed
    a = sim.groups["body0"]
    assert not torch.allclose(states[-1].v[a].mean(0), states[0].v[a].mean(0), atol=1e-3)


def test_free_fall_follows_v0_t_plus_half_g_t2(close_after):
    scene = ds.Scene(dim=2, gravity=(0.0, -9.8))
    scene.add_particles(ds.Box(lo=(0.4, 0.6), hi=(0.5, 0.7)), ds.Elastic(E=1e4, nu=0.3),
                        velocity=(0.5, 1.0))
    sim = ds.MPM(scene, grid_res=64, dt=5e-4, substeps=10)
    close_after(sim)
    steps = 30
    states = _run(sim, steps)
    c0 = states[0].x.mean(0)
    v0 = torch.tensor([0.5, 1.0], dtype=torch.float64)
    g = torch.tensor([0.0, -9.8], dtype=torch.float64)
    for n, st in enumerate(states):
        t = n * sim.control_dt
        k = n * sim.substeps  # symplectic Euler: x_k = x_0 + v0 t + g dt^2 k (k + 1) / 2
        exact = c0 + v0 * t + g * 0.5 * t * t
        discrete = exact + g * 0.5 * sim.dt ** 2 * k
        torch.testing.assert_close(st.x.mean(0), discrete, rtol=0, atol=1e-12)
        assert float((st.x.mean(0) - exact).norm()) <= 0.5 * 9.8 * sim.dt * t + 1e-12


@pytest.mark.parametrize("material", [ds.Elastic(E=1e3, nu=0.3), ds.NeoHookean(E=1e3, nu=0.3),
                                      ds.Plasticine(E=1e3, nu=0.3), ds.Snow(E=1e3, nu=0.3)])
def test_body_at_rest_stays_at_rest(material, close_after):
    scene = ds.Scene(dim=2, gravity=(0.0, 0.0))
    scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.6, 0.6)), material, jitter=0.3)
    sim = ds.MPM(scene, grid_res=32, dt=1e-3, substeps=5)
    close_after(sim)
    states = _run(sim, 10)
    assert float(states[-1].v.abs().max()) < 1e-12
    torch.testing.assert_close(states[-1].x, states[0].x, rtol=0, atol=1e-13)


def test_fluid_column_settles_to_rest(close_after):
    """A dam-break column comes to rest with a level surface at the height mass conservation gives."""
    scene = ds.Scene(dim=2, walls="slip", bounds=[(0.0, 0.4), (0.0, 0.4)])
    scene.add_particles(ds.Box(lo=(0.04, 0.04), hi=(0.14, 0.24)),
                        ds.Fluid(bulk_modulus=1e4, viscosity=20.0, density=1e3))
    sim = ds.MPM(scene, grid_res=32, dt=5e-4, substeps=10)
    close_after(sim)
    states = _run(sim, 300)

    def kinetic(st):
        return float((st.v ** 2).mean())

    peak = max(kinetic(s) for s in states)
    assert peak > 0.1, "the column must actually collapse"
    assert kinetic(states[-1]) < 1e-3 * peak
    # level surface: the fluid covers the floor between the walls (the wall layer is
    # bound * dx thick) to the depth its area gives
    x = states[-1].x.numpy()
    wall = sim.model.bound * sim.dx
    floor_y = (sim.model.bound - 1) * sim.dx
    depth = 0.1 * 0.2 / (0.4 - 2 * wall + 2 * sim.dx)
    assert abs(float(x[:, 1].mean()) - (floor_y + depth / 2)) < 0.15 * depth
    tops = [x[np.abs(x[:, 0] - c) < 0.02, 1].max() for c in (0.08, 0.2, 0.32)]
    assert max(tops) - min(tops) < 0.1 * depth, f"surface not level: {tops}"


def _press(material, steps=60):
    """Press a sphere 3 cm down into a block on a sticky floor and retract it.

    Returns the block's surface height under the finger before, at the deepest
    point, and after the material has come to rest.
    """
    scene = ds.Scene(dim=2, walls="sticky", gravity=(0.0, 0.0))
    scene.add_particles(ds.Box(lo=(0.3, 0.0625), hi=(0.7, 0.2625)), material)
    scene.add_tool(ds.Sphere(center=(0.5, 0.3075), radius=0.05), name="finger", contact_width=0.0)
    sim = ds.MPM(scene, grid_res=48, dt=5e-4, substeps=10)
    U = torch.zeros(steps * 3, sim.action_dim, dtype=torch.float64)
    U[:steps, 1] = -0.1
    U[steps:2 * steps, 1] = 0.1
    states = _run(sim, len(U), controls=U)
    sim.close()

    def surface(st, x0=0.5, w=0.02):
        x = st.x.numpy()
        return x[np.abs(x[:, 0] - x0) < w, 1].max()

    return surface(states[0]), surface(states[steps]), surface(states[-1])


def test_plasticine_keeps_a_dent_elastic_does_not():
    top0, pressed, after = _press(ds.Plasticine(E=5e4, nu=0.4, yield_stress=300.0))
    assert top0 - pressed > 0.015, "the finger must indent the block"
    assert top0 - after > 0.004, f"plasticine recovered: dent {top0 - after:.4f} m"
    top0, pressed, after = _press(ds.Elastic(E=5e4, nu=0.4))
    assert top0 - pressed > 0.015
    assert top0 - after < 0.0015, f"elastic kept a dent of {top0 - after:.4f} m"


def _sand_wedge(slope_deg, friction_angle, close_after):
    """A triangular pile of sand with the given flank slope, left under gravity for 0.25 s."""
    base_y, height = 3 / 64, 0.15
    half = height / math.tan(math.radians(slope_deg))
    scene = ds.Scene(dim=2, walls="sticky")
    scene.add_particles(
        ds.Polygon([(0.5 - half, base_y), (0.5 + half, base_y), (0.5, base_y + height)]),
        ds.Sand(E=3.5e5, nu=0.3, friction_angle=friction_angle, density=1.6e3))
    sim = ds.MPM(scene, grid_res=64, dt=1e-4, substeps=25)
    close_after(sim)
    states = _run(sim, 100)
    apex_drop = float(states[0].x[:, 1].max() - states[-1].x[:, 1].max())
    return apex_drop, float(states[-1].v.abs().max()), sim.dx


def test_sand_pile_flatter_than_its_friction_angle_stands(close_after):
    drop, vmax, dx = _sand_wedge(slope_deg=28.0, friction_angle=35.0, close_after=close_after)
    assert drop < 0.5 * dx, f"a 28 deg pile of 35 deg sand slumped by {drop:.4f} m"
    assert vmax < 0.05


def test_sand_pile_steeper_than_its_friction_angle_slumps(close_after):
    drop, vmax, dx = _sand_wedge(slope_deg=35.0, friction_angle=25.0, close_after=close_after)
    assert drop > 2 * dx, f"a 35 deg pile of 25 deg sand stood (apex drop {drop:.4f} m)"
