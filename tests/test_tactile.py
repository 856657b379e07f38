"""ds.Tactile: readings, physics (Hertz, shear, no contact), gradients, bad input.

Fast tests share one tiny sensor (50 nodes); Hertz, the two-sensor gripper and the full
set of finite-difference checks are slow.
"""

import numpy as np
import pytest
import torch
from helpers import assert_grads_match_fd

import diffsim as ds

F64 = torch.float64


def tiny_sim(gravity=(0.0, 0.0, -9.8), ball_z=None, **kw):
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    scene = ds.Scene(dim=3, gravity=gravity)
    z = 0.003 + 0.004 - 2e-4 if ball_z is None else ball_z
    scene.add_tool(ds.Sphere(center=(0.0005, 0.0003, z), radius=0.004), friction=0.4,
                   name="ball")
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(3, 3), camera=ds.TactileCamera(resolution=(12, 10)),
                              pressure_res=(4, 4), damping=(0.0, 0.001))
    opts = {"dt": 1e-2, "newton_tol": 1e-12, "cg_tol": 1e-12, "contact_damping": 50.0}
    opts.update(kw)
    return ds.Tactile(scene, sensors=[sensor], **opts)


@pytest.fixture(scope="module")
def sim():
    s = tiny_sim()
    s._engine_for(2, True)     # one engine (segment 2, with gradients) serves every fast test
    yield s
    s.close()


def controls(sim, T=3):
    U = torch.zeros(T, sim.action_dim, dtype=F64)
    U[:, 6] = 0.02      # ball slides along +x ...
    U[:, 8] = -0.02     # ... and presses down
    U[:, 0] = 0.005     # finger drifts along x
    U[:, 3] = 0.3       # and rolls about x
    return U


def test_no_contact_zero_force_and_displacement(sim):
    state = sim.reset()
    state.tool_pos = state.tool_pos + torch.tensor([[0, 0, 0], [0, 0, 0.003]], dtype=F64,
                                                        device=sim.device)
    U = torch.zeros(2, sim.action_dim, dtype=F64)
    U[:, 0] = 0.01     # the finger moves; the pad moves with it, untouched
    end = sim.rollout(state, U, segment=2)[-1]
    r = sim.read(end)
    assert float(r.force.abs().max()) == 0.0 and float(r.torque.abs().max()) == 0.0
    assert float(r.pressure.abs().max()) == 0.0
    # the pad's gravity sag is below a micrometre; markers in the image stay put
    assert float(r.marker_displacement.abs().max()) < 1e-3
    assert float(end.tool_pos[0, 0]) == pytest.approx(2 * sim.control_dt * 0.01)
    rest = sim.read(sim.reset())
    assert torch.allclose(r.image, rest.image, atol=1e-3)


def test_press_reading(sim):
    U = torch.zeros(2, sim.action_dim, dtype=F64)
    U[:, 8] = -0.02
    end = sim.rollout(sim.reset(), U, segment=2)[-1]
    r = sim.read(end)
    assert r.force.shape == (3,) and r.torque.shape == (3,)
    assert r.markers.shape == (9, 2) and r.pressure.shape == (4, 4) and r.shear.shape == (4, 4, 2)
    assert r.image.shape == (10, 12, 3) and float(r.image.min()) >= 0 and float(r.image.max()) <= 1
    fz = -float(r.force[2])
    assert fz > 0.05                                   # pressed: the pad is pushed back (-z)
    # the pressure map integrates to the normal force of the contact surface
    area = sim.optics[0].cell_area
    assert float(r.pressure.sum()) * area == pytest.approx(fz, rel=1e-9)
    assert float(r.pressure.max()) > 0
    # the contact-force state is the reaction the fingers feel: equal to minus the pad's
    # elastic force on its pinned nodes would need the stress; check the sum instead
    assert torch.allclose(r.force, (end.f[sim.groups["sensor0"]] @ torch.eye(3, dtype=F64,
                                                                          device=sim.device)).sum(0))


def test_shear_moves_markers_along_the_shear(sim):
    U = torch.zeros(4, sim.action_dim, dtype=F64)
    U[:2, 8] = -0.02                 # press 0.4 mm
    U[2:, 6] = 0.05                  # then drag the ball 1 mm along +x (friction 0.4)
    pressed, dragged = sim.rollout(sim.reset(), U, saveat=[2, 4], segment=2)
    r0, r1 = sim.read(pressed), sim.read(dragged)
    du = r1.markers - r0.markers
    # markers move along +x in the image (pinhole: u grows with x), hardly along y
    assert float(du[:, 0].mean()) > 0.05
    assert float(du[:, 0].mean()) > 2 * abs(float(du[:, 1].mean()))
    # the pad is dragged along +x: shear traction and total force point along +x
    assert float(r1.shear[..., 0].sum()) > 0 and float(r1.force[0]) > 0
    assert float(r1.force[0]) > 5 * abs(float(r1.force[1]))
    # Coulomb: the tangential force is about mu times the normal force (friction takes
    # the normal force of the step start, lagged, so it may exceed mu F_n by a little)
    assert 0.8 * 0.4 * float(-r1.force[2]) < float(r1.force[0]) < 1.1 * 0.4 * float(-r1.force[2])


def test_gradients_fd(sim):
    """Gradients of readings w.r.t. controls, the object's start pose, material and contact
    parameters against central differences (float64)."""
    st0 = sim.reset()
    U0 = controls(sim)

    def loss(U, E, mu, kn, p):
        prob = ds.SimulationProblem(sim, controls=U, state0=st0.replace(tool_pos=p), params={
            "sensor0.E": E, "ball.friction": mu, "ball.contact_stiffness": kn})
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2), saveat=[2, 3])
        out = 0
        for s in sol.u:
            r = sim.read(s)
            out = out + (r.force * torch.tensor([3.0, -2.0, 1.0], dtype=F64,
                                                 device=sim.device)).sum() \
                + 10 * r.torque.sum() + 0.01 * (r.marker_displacement ** 2).sum() \
                + 1e-4 * r.shear.sum() + r.image.mean()
        return out

    args = [U0, torch.tensor(1e5, dtype=F64), torch.tensor(0.4, dtype=F64),
            torch.tensor(1e10, dtype=F64), st0.tool_pos.clone()]
    cases = ((0, (1, 8), 1e-4), (1, None, 1e2), (2, None, 1e-4), (3, None, 1e7),
             (4, (1, 0), 1e-6))
    assert_grads_match_fd(loss, args, cases, 2e-5)


@pytest.mark.slow
def test_hertz_sphere_on_thick_pad():
    """Force vs depth of a rigid frictionless sphere (R = 10 mm) pressed 0.2-0.8 mm into a
    thick pad (32 x 32 x 16 mm, graded mesh: 0.5 mm cells under the contact, 6 mm far
    away; 66k tets) against Hertz, ``F = 4/3 E* sqrt(R) d^1.5``. The contact radius is
    1.4-2.8 mm (3-6 fine cells) and a/t = 0.09-0.18: linear tets and the bonded, finite
    layer make the pad stiffer than the half-space (measured: 12-22% above Hertz, rising
    with depth as a/t grows; log-log slope 1.57), hence the tolerances."""
    R, t, W = 0.01, 0.016, 0.032
    pad = ds.TactilePad.flat((W, W, t), 0.006, fine=(0.003, 0.0005))
    E, nu = 1e5, 0.3
    scene = ds.Scene(dim=3, gravity=(0, 0, 0))
    scene.add_tool(ds.Sphere(center=(0, 0, t + R), radius=R), friction=0.0, name="ball")
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=E, nu=nu, density=1000.0),
                              markers=(3, 3))
    sim = ds.Tactile(scene, sensors=[sensor], dt=0.05)
    d = np.array([0.2, 0.35, 0.5, 0.65, 0.8]) * 1e-3
    U = torch.zeros(len(d), sim.action_dim, dtype=F64)
    U[:, 8] = -torch.as_tensor(np.diff(np.concatenate([[0], d]))) / sim.control_dt
    with torch.no_grad():
        states = sim.rollout(sim.reset(), U, saveat=range(1, len(d) + 1))
    F = np.array([-float(sim.read(s, image=False).force[2]) for s in states])
    hertz = 4 / 3 * E / (1 - nu ** 2) * np.sqrt(R) * d ** 1.5
    slope = np.polyfit(np.log(d), np.log(F), 1)[0]
    sim.close()
    assert abs(slope - 1.5) < 0.15, (slope, F)
    assert np.all(np.abs(F / hertz - 1) < 0.25), F / hertz


# ---------------------------------------------------------------------------- bad input
def test_bad_pad_mesh_not_watertight():
    import trimesh

    box = trimesh.creation.box(extents=(0.02, 0.02, 0.004))
    box.apply_translation((0, 0, 0.002))
    open_box = trimesh.Trimesh(box.vertices, box.faces[:-2], process=False)
    with pytest.raises(ValueError, match="pad mesh is not watertight: 4 boundary edge"):
        ds.TactilePad.from_mesh(open_box, resolution=0.002)


def test_pad_from_mesh_and_dome():
    import trimesh

    box = trimesh.creation.box(extents=(0.02, 0.02, 0.004))
    box.apply_translation((0, 0, 0.002))
    pad = ds.TactilePad.from_mesh(box, resolution=0.002)
    assert pad.back.sum() == 11 * 11 and pad.contact_area.sum() > 0.02 * 0.02
    dome = ds.TactilePad.dome((0.02, 0.02, 0.003), dome_height=0.002, resolution=0.002)
    z, tri, _b = dome.surface_height(np.array([[0.0, 0.0], [0.0095, 0.0095]]))
    assert z[0] == pytest.approx(0.005) and z[1] == pytest.approx(0.003) and (tri >= 0).all()


def test_bad_markers_outside_pad():
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    with pytest.raises(ValueError, match=r"markers: marker 1 at \(x, y\) = \(0.02, 0\) m lies "
                                         r"outside the pad's contact surface .* allowed"):
        ds.TactileSensor(pad=pad, markers=np.array([[0.0, 0.0], [0.02, 0.0]]))
    with pytest.raises(ValueError, match=r"markers=\(0, 3\) is not allowed"):
        ds.TactileSensor(pad=pad, markers=(0, 3))


def test_bad_camera():
    pad = ds.TactilePad.flat((0.02, 0.02, 0.004), 0.002)
    with pytest.raises(ValueError, match=r"camera=TactileCamera\(distance=0.005.*does not see the "
                                         r"pad: .*outside the 64 x 48 image.*allowed: every"):
        ds.TactileSensor(pad=pad, camera=ds.TactileCamera(distance=0.005))
    with pytest.raises(ValueError, match=r"fov_deg=190 is not allowed: it must lie in \(0, 180\)"):
        ds.TactileCamera(fov_deg=190)
    with pytest.raises(ValueError, match="distance=-1 is not allowed"):
        ds.TactileCamera(distance=-1)
    # a fisheye of the same field of view sees more
    ds.TactileSensor(pad=pad, camera=ds.TactileCamera(distance=0.012, fov_deg=120,
                                                      model="fisheye"))


def test_bad_scene_and_params(sim):
    scene = ds.Scene(dim=3)
    scene.add_soft_body(ds.Box(lo=(0, 0, 0), hi=(0.01, 0.01, 0.01)), ds.NeoHookean(E=1e4),
                        resolution=0.005)
    with pytest.raises(ValueError, match="scene.bounds=.*margin"):   # FEM object at the edge
        ds.Tactile(scene, sensors=[ds.TactileSensor()])
    with pytest.raises(ValueError, match="non-empty list"):
        ds.Tactile(ds.Scene(dim=3), sensors=[])
    with pytest.raises(ValueError, match=r"contact_stiffness=-1.0 is not allowed: it must be > 0"):
        sim.internal_params({"ball.contact_stiffness": -1.0})
    with pytest.raises(ValueError, match="unknown name 'ball.E'"):
        sim.internal_params({"ball.E": 1.0})


def test_nonfinite_gradient_names_the_contact_force_stage(sim, monkeypatch):
    """A NaN injected into the reverse of the contact-force state (step 1 of 3) raises
    ``ds.GradientError`` naming that stage and step instead of reaching the optimiser."""
    U = controls(sim).requires_grad_()
    k = sim._engine.k
    reverse = k.after_substep_grad

    def poisoned(s):
        reverse(s)
        if s == 1:                    # local substep 1 exists only in the first segment
            k.cprm.grad.fill(float("nan"))

    monkeypatch.setattr(k, "after_substep_grad", poisoned)
    prob = ds.SimulationProblem(sim, controls=U, params={"ball.contact_stiffness": 1e10})
    end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2)).u[-1]
    with pytest.raises(ds.GradientError) as err:
        sim.read(end).force.sum().backward()
    e = err.value
    assert e.stage == "contact_forces, node_wrench, sum_wrench (reverse)"
    assert (e.substep, e.step) == (1, 1) and set(e.fields) == {"cprm.grad"}
