"""ds.Tactile with ds.Mesh objects (grid SDF, ``diffsim/tactile/gridsdf.py``).

One simulator carries two sensors side by side, one pressed by an analytic ball and one
by an icosphere mesh of the same radius (one compilation serves the comparison and the
gradient checks); the free mesh cube and the interpolation accuracy have their own tests.
"""

import numpy as np
import pytest
import taichi as ti
import torch
import trimesh
from helpers import assert_grads_match_fd

import diffsim as ds
from diffsim.tactile.gridsdf import GridSDF, exact_sdf
from diffsim.tactile.gridsdf import mass_properties as mesh_mass_properties
from diffsim.tactile.rigid import mass_properties

F64 = torch.float64
R = 0.004                 # ball radius (m)
X = 0.012                 # the two sensors sit at x = -X (analytic ball) and +X (mesh ball)
Z0 = 0.003 + R - 2e-4     # balls start 0.2 mm into the 3 mm pads


def icosphere(radius=R, subdivisions=4):
    return ds.Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=subdivisions,
                                                           radius=radius), name="ico")


def twin_sim(**kw):
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    mat = ds.NeoHookean(E=1e5, nu=0.4, density=1000.0)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    c = (0.0005, 0.0003, Z0)
    scene.add_tool(ds.Sphere(center=(c[0] - X, c[1], c[2]), radius=R), friction=0.4,
                   name="ball")
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=R)
    mesh.apply_translation((c[0] + X, c[1], c[2]))
    scene.add_tool(ds.Mesh.from_trimesh(mesh), friction=0.4, name="mball")
    sensors = [ds.TactileSensor(pad=pad, material=mat, markers=(3, 3),
                                camera=ds.TactileCamera(resolution=(12, 10)),
                                pressure_res=(4, 4), damping=(0.0, 0.001),
                                position=(sx * X, 0.0, 0.0), name=name)
               for sx, name in ((-1, "left"), (1, "right"))]
    opts = {"dt": 1e-2, "newton_tol": 1e-12, "cg_tol": 1e-12, "contact_damping": 50.0}
    opts.update(kw)
    return ds.Tactile(scene, sensors=sensors, **opts)


# ---------------------------------------------------------------- grid SDF (fast)
def _near_surface_points(mesh, h, n, rng):
    """``n`` random points within 1.5 cells of a mesh's surface."""
    pts, _d, tri = trimesh.sample.sample_surface(mesh, n, seed=int(rng.integers(1 << 30))) + (
        None,)
    nrm = mesh.face_normals[_d]
    return pts + nrm * rng.uniform(-1.5, 1.5, size=(n, 1)) * h


def test_exact_sdf_against_brute_force():
    """``exact_sdf`` (closest point at unit scale, pseudonormal sign) = the closest of all
    triangles with the sign of trimesh's inside test, for a convex and a non-convex mesh."""
    rng = np.random.default_rng(1)
    for mesh in (trimesh.creation.icosphere(subdivisions=2, radius=R),
                 trimesh.creation.annulus(0.002, 0.004, 0.003)):
        pts = rng.normal(size=(150, 3)) * 0.003
        s = 1.0 / 0.008     # brute force at unit scale too (trimesh's tolerances)
        unit = mesh.copy()
        unit.apply_scale(s)
        dist = np.array([np.linalg.norm(trimesh.triangles.closest_point(
            unit.triangles, np.repeat(p[None], len(unit.faces), 0)) - p, axis=1).min()
            for p in pts * s]) / s
        ref = np.where(unit.contains(pts * s), -dist, dist)
        assert np.abs(exact_sdf(mesh, pts) - ref).max() < 1e-9     # m
        # ds.Mesh.sdf (the FEM mesher's and MPM colliders' point query) agrees too
        assert np.abs(ds.Mesh.from_trimesh(mesh).sdf(pts) - ref).max() < 1e-9


def test_grid_sdf_accuracy():
    """The cubic spline vs the exact distance within 1.5 cells of the surface: an icosphere
    (R = 4 mm, default spacing 0.2 mm) to 0.04 cells (measured 0.023 max, 0.003 median:
    the mesh's own facet kinks), a box to 0.2 cells at its rounded edges (median 3e-3)."""
    rng = np.random.default_rng(0)
    ico = trimesh.creation.icosphere(subdivisions=4, radius=R)
    g = GridSDF.bake(ico)
    h = g.spacing
    assert h == pytest.approx(2 * R / 40)
    pts = _near_surface_points(ico, h, 2000, rng)
    err = np.abs(g.sample(pts) - exact_sdf(ico, pts)) / h
    assert err.max() < 0.04 and np.median(err) < 0.005
    assert GridSDF.bake(ico) is g           # cached
    box = trimesh.creation.box((0.008, 0.006, 0.004))
    g = GridSDF.bake(box)
    pts = _near_surface_points(box, g.spacing, 2000, rng)
    err = np.abs(g.sample(pts) - exact_sdf(box, pts)) / g.spacing
    assert err.max() < 0.2 and np.median(err) < 5e-3


@pytest.mark.parametrize("order", [3, 2])
def test_taichi_sampler_is_the_spline_and_its_gradient(order):
    """The ``@ti.func`` evaluates the same spline as scipy (``GridSDF.sample``), also outside
    the grid (box distance), and its gradient is the spline's (central differences)."""
    mesh = trimesh.creation.box((0.008, 0.006, 0.004))
    g = GridSDF.bake(mesh, 0.0005, order=order)
    rng = np.random.default_rng(2)
    top = np.c_[rng.uniform(-0.002, 0.002, 50), rng.uniform(-0.001, 0.001, 50),
                0.002 + rng.uniform(-0.0005, 0.0005, 50)]     # near the middle of the top face
    pts = np.concatenate([top, rng.uniform(-0.005, 0.005, size=(300, 3)),
                          rng.uniform(-0.02, 0.02, size=(100, 3))])
    coef = g.field(ti.f64)
    fb = ti.FieldsBuilder()
    fb.dense(ti.ijk, g.shape).place(coef)
    tree = fb.finalize()
    g.fill(coef)
    sdf = g.func(coef)
    n = len(pts)
    P = ti.Vector.field(3, ti.f64, shape=n)
    phi = ti.field(ti.f64, shape=n)
    grad = ti.Vector.field(3, ti.f64, shape=n)

    @ti.kernel
    def run():
        for i in P:
            a, b = sdf(P[i])
            phi[i] = a
            grad[i] = b

    P.from_numpy(pts)
    run()
    assert np.abs(phi.to_numpy() - g.sample(pts)).max() < 2e-9    # 1e-9 m rounding outside
    eps = 1e-8
    fd = np.stack([(g.sample(pts + eps * e) - g.sample(pts - eps * e)) / (2 * eps)
                   for e in np.eye(3)], 1)
    assert np.abs(grad.to_numpy() - fd).max() < 1e-5
    # away from edges the gradient is the face's normal, up to the ringing of the kinks of
    # the SDF on the medial planes 3 cells away (this box is only 8 cells thick), which the
    # prefilter damps by 0.27 (cubic) or 0.17 (quadratic) per cell: 1.9e-2 and 5e-3 measured
    tol = 3e-2 if order == 3 else 1e-2
    assert np.abs(grad.to_numpy()[:50] - (0.0, 0.0, 1.0)).max() < tol
    tree.destroy()


def test_mesh_box_mass_properties():
    box = trimesh.creation.box((0.02, 0.04, 0.06))
    box.apply_translation((0.1, -0.2, 0.3))
    m, com, inertia = mesh_mass_properties(box, 1000.0)
    ma, Ia = mass_properties("box", (0.01, 0.02, 0.03), 0, 1000.0)
    assert m == pytest.approx(ma, rel=1e-12)
    assert np.allclose(com, (0.1, -0.2, 0.3), atol=1e-15)
    assert np.allclose(inertia, np.diag(Ia), rtol=1e-12, atol=1e-12 * max(Ia))


def test_free_mesh_body_reference_is_its_centre_of_mass():
    """A free mesh body's pose starts at its centre of mass (a cone's is a quarter of the
    height above the base), a kinematic mesh tool's at its bounding box's centre; the
    mass and the full inertia tensor come from the mesh."""
    cone = trimesh.creation.cone(radius=0.004, height=0.008, sections=32)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_tool(ds.Mesh.from_trimesh(cone.copy()), name="cone")
    kin = cone.copy()
    kin.apply_translation((0.02, 0.0, 0.0))
    scene.add_tool(ds.Mesh.from_trimesh(kin), name="kin")
    wall = trimesh.creation.box((0.002, 0.01, 0.01))
    wall.apply_translation((-0.02, 0.0, 0.0))
    scene.add_collider(ds.Mesh.from_trimesh(wall), name="wall")     # a static mesh object
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=1e5, nu=0.4),
                              markers=(3, 3), position=(0.0, 0.0, -0.01))
    sim = ds.Tactile(scene, sensors=[sensor], free_objects={"cone": 1000.0},
                     sdf_spacing={"cone": 0.0005, "kin": 0.0005, "wall": 0.0005})
    st = sim.reset()
    assert np.allclose(st.tool_pos[sim.tool_index("cone")].numpy(), (0, 0, 0.002), atol=1e-12)
    assert np.allclose(st.tool_pos[sim.tool_index("kin")].numpy(), (0.02, 0, 0.004),
                       atol=1e-12)
    b = sim.free[0]
    m, _c, inertia = mesh_mass_properties(cone, 1000.0)
    assert b.mass == pytest.approx(m) and np.allclose(b.inertia, inertia)
    assert sim.action_dim == 12
    wall = sim.objects[[o.name for o in sim.objects].index("wall")]
    assert wall.kind == "mesh" and np.allclose(wall.center, (-0.02, 0, 0))
    sim.close()


def test_bad_mesh_input():
    open_box = trimesh.creation.box((0.01, 0.01, 0.01))
    open_box.update_faces(np.arange(len(open_box.faces)) != 0)
    with pytest.raises(ValueError, match="not watertight"):
        ds.Mesh.from_trimesh(open_box)
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025),
                              material=ds.NeoHookean(E=1e5, nu=0.4), markers=(3, 3))

    def make(shape, **kw):
        sc = ds.Scene(dim=3)
        sc.add_tool(shape, name="obj")
        return ds.Tactile(sc, sensors=[sensor], **kw)

    with pytest.raises(ValueError, match="object 'obj': the mesh is not watertight"):
        make(ds.Mesh(mesh=open_box))
    thin = ds.Mesh.from_trimesh(trimesh.creation.box((0.01, 0.01, 0.001)))
    with pytest.raises(ValueError, match=r"sdf_spacing=0.001 is not allowed .* must lie in "
                                         r"\[.*, 0.00025\] m"):
        make(thin, sdf_spacing=0.001)               # under 4 cells across the 1 mm side
    with pytest.raises(ValueError, match=r"sdf_spacing\['obj'\]=1e-06 is not allowed.*"
                                         r"at most 4000000 grid nodes"):
        make(thin, sdf_spacing={"obj": 1e-6})       # 10^10 nodes
    with pytest.raises(ValueError, match="sdf_spacing=-1 is not allowed"):
        make(thin, sdf_spacing=-1)
    with pytest.raises(ValueError, match=r"sdf_spacing=.* is not allowed: expected None, a "
                                         r"spacing \(m\) or a dict"):
        make(thin, sdf_spacing={"ball": 1e-4})      # not a mesh object
    with pytest.raises(TypeError, match="FEM/Shell obstacles must be"):
        sc = ds.Scene(dim=3)
        sc.add_tool(thin)
        sc.add_soft_body(ds.Box(lo=(0, 0, 0), hi=(0.01, 0.01, 0.01)), ds.NeoHookean(E=1e5, nu=0.3),
                         resolution=0.005)
        ds.FEM(sc)


# ---------------------------------------------------------------- in the simulator (slow)
@pytest.fixture(scope="module")
def sim():
    s = twin_sim()
    s._engine_for(2, True)
    yield s
    s.close()


def both_balls(sim, T, vx=0.0, vz=-0.02):
    """The two balls move alike: (vx, 0, vz) m/s."""
    U = torch.zeros(T, sim.action_dim, dtype=F64)
    for k in (12, 18):            # fingers first (2 x 6), then ball, mball
        U[:, k] = vx
        U[:, k + 2] = vz
    return U


@pytest.mark.slow
def test_mesh_ball_presses_like_the_analytic_ball(sim):
    U = both_balls(sim, 4)
    U[2:, 12] = U[2:, 18] = 0.05        # press 0.4 mm, then drag 1 mm along +x
    pressed, dragged = sim.rollout(sim.reset(), U, saveat=[2, 4], segment=2)
    for st in (pressed, dragged):
        a, m = sim.read(st, "left"), sim.read(st, "right")
        fz = -float(a.force[2])
        assert fz > 0.05
        assert float(m.force[2]) == pytest.approx(float(a.force[2]), rel=0.03)
        assert float((m.force - a.force).norm()) < 0.03 * float(a.force.norm())
        assert float((m.pressure - a.pressure).abs().max()) < 0.05 * float(a.pressure.max())
        # markers move little in this 12 x 10 px image (0.04 px at most): 0.002 px apart
        dm = float((m.marker_displacement - a.marker_displacement).abs().max())
        assert dm < 0.1 * float(a.marker_displacement.abs().max())
        print(f"analytic {a.force.tolist()} mesh {m.force.tolist()} N; pressure max "
              f"{float(a.pressure.max()):.4g} vs {float(m.pressure.max()):.4g} Pa; markers "
              f"{dm:.3g} px apart (max displacement "
              f"{float(a.marker_displacement.abs().max()):.3g} px)")


@pytest.mark.slow
def test_mesh_object_gradients_fd(sim):
    """Readings of the mesh ball's sensor against central differences (float64): w.r.t. the
    mesh ball's velocity control and its start position, and its contact stiffness."""
    st0 = sim.reset()
    U0 = both_balls(sim, 3, vx=0.02)
    k = sim.tool_index("mball")

    def loss(U, p, kn):
        prob = ds.SimulationProblem(sim, controls=U, state0=st0.replace(tool_pos=p),
                                    params={"mball.contact_stiffness": kn})
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2), saveat=[2, 3])
        out = 0
        for s in sol.u:
            r = sim.read(s, "right")
            out = out + (r.force * torch.tensor([3.0, -2.0, 1.0], dtype=F64)).sum() \
                + 10 * r.torque.sum() + 0.01 * (r.marker_displacement ** 2).sum() \
                + 1e-4 * r.shear.sum() + r.image.mean()
        return out

    args = [U0, st0.tool_pos.clone(), torch.tensor(1e10, dtype=F64)]
    cases = ((0, (1, 20), 1e-4), (0, (0, 18), 1e-4), (1, (k, 2), 1e-6), (1, (k, 0), 1e-6),
             (2, None, 1e7))
    assert_grads_match_fd(loss, args, cases, 2e-5)


@pytest.mark.slow
def test_free_mesh_cube_lands_and_rests_like_the_analytic_cube():
    """Two free 8 mm cubes (51 g), one a ``ds.Box`` and one a 12-triangle mesh, drop 0.1 mm
    onto upward-facing pads and come to rest: the same heights, velocities and pad forces
    over the drop, the landing and the rest (the mesh's edges are rounded at 0.2 mm, but the
    pads touch the flat bottom face)."""
    H = 0.004
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    z = 0.003 + H + 1e-4
    scene.add_tool(ds.Box(lo=(-X - H, -H, z - H), hi=(-X + H, H, z + H)), friction=0.5,
                   name="cube")
    mesh = trimesh.creation.box((2 * H, 2 * H, 2 * H))
    mesh.apply_translation((X, 0.0, z))
    scene.add_tool(ds.Mesh.from_trimesh(mesh), friction=0.5, name="mcube")
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    mat = ds.NeoHookean(E=1e5, nu=0.4, density=1000.0)
    sensors = [ds.TactileSensor(pad=pad, material=mat, markers=(3, 3), damping=(0.0, 5e-3),
                                camera=ds.TactileCamera(resolution=(12, 10)),
                                position=(sx * X, 0.0, 0.0), name=name)
               for sx, name in ((-1, "left"), (1, "right"))]
    sim = ds.Tactile(scene, sensors=sensors, dt=2e-3, newton_tol=1e-12, cg_tol=1e-12,
                     friction_eps=1e-4, free_objects={"cube": 1e5, "mcube": 1e5})
    T = 30
    outs = sim.rollout(sim.reset(), torch.zeros(T, sim.action_dim, dtype=F64),
                       saveat=list(range(1, T + 1)))
    a, m = sim.tool_index("cube"), sim.tool_index("mcube")
    za = np.array([float(s.tool_pos[a, 2]) for s in outs])
    zm = np.array([float(s.tool_pos[m, 2]) for s in outs])
    fa = np.array([-float(s.f[sim.groups["left"]].sum(0)[2]) for s in outs])
    fm = np.array([-float(s.f[sim.groups["right"]].sum(0)[2]) for s in outs])
    mg = float(sim.free_masses[0]) * 9.8
    print(f"heights {np.abs(zm - za).max():.3g} m apart, forces {np.abs(fm - fa).max() / mg:.3g}"
          " m g apart")
    assert float(sim.free_masses[1]) == pytest.approx(float(sim.free_masses[0]), rel=1e-12)
    # measured: heights 2e-8 m apart (the cubes sink 0.23 mm), forces 5e-4 m g apart
    assert np.abs(zm - za).max() < 1e-7
    assert fa[-1] == pytest.approx(mg, rel=0.1)           # resting on the pad
    assert np.abs(fm - fa).max() < 0.01 * mg
    assert abs(float(outs[-1].tool_pos[m, 0]) - X) < 1e-6   # no drift, no tipping
    sim.close()


@pytest.mark.slow
def test_mesh_object_example_runs_at_a_tiny_size(tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # this checkout's package first (an editable install elsewhere would shadow it)
    env = {**os.environ, "DIFFSIM_ARCH": "cpu", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(root / "examples" / "tactile" / "mesh_object.py"),
                          "--steps", "2", "--resolution", "0.002", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=root, env=env, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"d force / d speed: (\S+) N s/m \(finite difference (\S+)\)", out.stdout)
    assert m and float(m[1]) == pytest.approx(float(m[2]), rel=1e-4)
    assert (tmp_path / "reading.json").stat().st_size > 0
