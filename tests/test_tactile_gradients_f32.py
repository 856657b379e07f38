"""Float32 tactile gradients against float64 (the float32 tier; see ``precision.py``).

One case per float64 finite-difference test of ``ds.Tactile`` (same scene, controls,
loss and solver settings; tolerances below float32's resolution are floored by the
solver): a ball pressing and sliding on a pad (readings and the tactile image), an FEM
and an MPM block on a pad (the level-set couplings), the free rigid cube in a gripper,
the hinged lid, the mesh ball and the learned pixel model. All slow: each case compiles
a tactile simulator's forward and reverse kernels in both precisions (minutes).
"""

import copy

import pytest
import test_tactile as tac
import test_tactile_boxopen as box
import test_tactile_fem as tfem
import test_tactile_mesh as tmesh
import test_tactile_mpm as tmpm
import test_tactile_rigid as rigid
import torch
from precision import assert_grads_close, compare_in_precisions, in_precision

import diffsim as ds

F64 = torch.float64


def _reading_loss(sim, states, sensor=None):
    """``test_tactile``'s scalar of the readings (force, torque, markers, shear, image)."""
    out = 0
    for s in states:
        r = sim.read(s) if sensor is None else sim.read(s, sensor)
        out = out + (r.force.double() * torch.tensor([3.0, -2.0, 1.0], dtype=F64)).sum() \
            + 10 * r.torque.sum() + 0.01 * (r.marker_displacement ** 2).sum() \
            + 1e-4 * r.shear.sum() + r.image.mean()
    return out


def ball_grads():
    """``test_tactile.test_gradients_fd``: a ball presses and slides on a tiny pad; w.r.t.
    the controls, the pad's E, the ball's friction and contact stiffness, tool poses."""
    sim = tac.tiny_sim()
    try:
        st0 = sim.reset()
        U = tac.controls(sim).requires_grad_()
        E, mu, kn = (torch.tensor(v, dtype=F64, requires_grad=True) for v in (1e5, 0.4, 1e10))
        p = st0.tool_pos.double().requires_grad_()
        prob = ds.SimulationProblem(sim, controls=U, state0=st0.replace(tool_pos=p), params={
            "sensor0.E": E, "ball.friction": mu, "ball.contact_stiffness": kn})
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2), saveat=[2, 3])
        _reading_loss(sim, sol.u).backward()
        return {"U": U.grad, "E": E.grad, "friction": mu.grad, "contact_stiffness": kn.grad,
                "tool_pos": p.grad}
    finally:
        sim.close()


def _block_grads(sim, body, names):
    """The FEM/MPM block tests' loss: 3 coupled steps, the block pressed into the pad and
    the finger sliding; w.r.t. the finger's vertical velocity and the block's parameters."""
    try:
        st0 = sim.reset()
        key = f"{body}_x"
        st0 = st0.replace(**{key: st0[key] - torch.tensor([0.0, 0.0, 3e-5],
                                                           dtype=st0[key].dtype)})
        vz = torch.tensor(0.02, dtype=F64, requires_grad=True)
        P = {n: torch.tensor(v, dtype=F64, requires_grad=True) for n, v in names.items()}
        U = torch.zeros(3, sim.action_dim, dtype=F64)
        U[:, 2] = vz
        U[:, 0] = 0.02
        end = sim.rollout(st0, U, params=P)[-1]
        r = sim.read(end, image=False)
        (-r.force[2] + 3 * r.force[0] + 10 * end[key][:, 2].mean()
         + 1e3 * end[f"{body}_v"].pow(2).sum()).backward()
        return {"vz": vz.grad, **{n: v.grad for n, v in P.items()}}
    finally:
        sim.close()


def fem_block_grads():
    """``test_tactile_fem.test_gradients_match_finite_differences``."""
    return _block_grads(tfem.block_sim(), "object", {"block.E": 1e5})


def mpm_block_grads():
    """``test_tactile_mpm.test_gradients_match_finite_differences``."""
    return _block_grads(tmpm.block_sim(), "particle",
                        {"block.E": 1e5, "block.contact_stiffness": 1e7})


def gripper_grads():
    """``test_tactile_rigid.test_gradients_fd``: a free cube squeezed by two pads;
    d(final height)/d(squeeze speed, friction) over 8 steps."""
    sim = rigid.gripper()
    try:
        k = sim.tool_index("cube")
        speed = torch.tensor(0.3, dtype=F64, requires_grad=True)
        mu = torch.tensor(0.15, dtype=F64, requires_grad=True)
        U = rigid.squeeze_controls(sim, 8, speed)
        sim.rollout(sim.reset(), U, params={"cube.friction": mu})[-1].tool_pos[k, 1].backward()
        return {"speed": speed.grad, "friction": mu.grad}
    finally:
        sim.close()


def hinge_grads():
    """``test_tactile_boxopen.test_hinge_angle_gradients_fd``: the final hinge angle of a
    lid a finger presses and carries; w.r.t. the scale of each action and the friction."""
    task = box._BoxOpenFD(horizon=12)
    sim = task.build_sim()
    try:
        A = task.action_map(sim)
        scale = torch.ones(3, dtype=F64, requires_grad=True)
        mu = torch.tensor(1.0, dtype=F64, requires_grad=True)
        U = (task.scripted_actions().double() * scale).to(A.dtype) @ A
        end = sim.rollout(sim.reset(), U, params={"lid.friction": mu})[-1]
        sim.hinge_angle(end, "lid").backward()
        return {"scale": scale.grad, "friction": mu.grad}
    finally:
        sim.close()


def mesh_ball_grads():
    """``test_tactile_mesh.test_mesh_object_gradients_fd``: readings of the pad a mesh
    ball presses; w.r.t. the controls, the tool poses and the mesh's contact stiffness."""
    sim = tmesh.twin_sim()
    try:
        st0 = sim.reset()
        U = tmesh.both_balls(sim, 3, vx=0.02).requires_grad_()
        p = st0.tool_pos.double().requires_grad_()
        kn = torch.tensor(1e10, dtype=F64, requires_grad=True)
        prob = ds.SimulationProblem(sim, controls=U, state0=st0.replace(tool_pos=p),
                                    params={"mball.contact_stiffness": kn})
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2), saveat=[2, 3])
        _reading_loss(sim, sol.u, "right").backward()
        return {"U": U.grad, "tool_pos": p.grad, "contact_stiffness": kn.grad}
    finally:
        sim.close()


def _pixel_sim():
    """``test_tactile_pixel``'s sensor: a tiny pad, a 24 x 20 image, a ball."""
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_tool(ds.Sphere(center=(0.0, 0.0, 0.003 + 0.004 - 2e-4), radius=0.004),
                   friction=0.4, name="ball")
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(3, 3), camera=ds.TactileCamera(resolution=(24, 20),
                                                                      fov_deg=32),
                              pressure_res=(4, 4), damping=(0.0, 0.001))
    return ds.Tactile(scene, sensors=[sensor], dt=1e-2, newton_tol=1e-12, cg_tol=1e-12,
                      contact_damping=50.0)


def pixel_grads(model_state: dict):
    """``test_tactile_pixel.test_learned_image_gradient_fd``: a scalar of the learned image
    (the module's trained MLP, in the run's precision) through a 3-step press-and-slide."""
    sim = _pixel_sim()
    try:
        model = ds.TactilePixelModel(hidden=(32, 32))
        model.load_state_dict(model_state)
        model = model.to(sim.dtype)
        w = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
        U = torch.zeros(3, sim.action_dim, dtype=F64)
        U[:, 8] = -0.025
        U[:, 6] = 0.02
        U.requires_grad_()
        sol = ds.solve(ds.SimulationProblem(sim, controls=U, state0=sim.reset()),
                       sensealg=ds.CheckpointAdjoint(segment=2), saveat=[3])
        f = sim.read(sol.u[-1]).features
        (w * model(f).double())[f.mask].sum().backward()
        return {"U": U.grad}
    finally:
        sim.close()


CASES = {"ball-on-pad": (ball_grads, ()),
         "fem-block-on-pad": (fem_block_grads, ()),
         "mpm-block-on-pad": (mpm_block_grads, ()),
         "free-cube-gripper": (gripper_grads, ()),
         "hinged-lid": (hinge_grads, ()),
         "mesh-ball": (mesh_ball_grads, ())}


#: looser bounds, measured (2-core x86 CPU, 2026-12-06): the free cube's friction
#: gradient (a scalar, so only its size can differ) is 3.1% off in float32 (the speed
#: gradient of the same case is within 1e-2), likely because the cube is held by
#: friction near the edge of slipping, where d(height)/d(friction) sums per-step
#: contributions of nearly balanced tangential forces and their float32 rounding.
REL_MAX = {"free-cube-gripper": 5e-2}
#: NOT in the tier, an open float32 defect (issue 12): the mesh ball pressing a pad
#: (``CASES["mesh-ball"]``) gives a control gradient with cosine 0.998 and relative error
#: 6.4% against float64 (2-core x86 CPU, 2026-12-06); its other gradients were not
#: reached by that run. Run it with ``compare_in_precisions({"mesh-ball": ...})``.
OPEN_FLOAT32_CASES = ("mesh-ball",)


@pytest.mark.slow
@pytest.mark.parametrize("cases", [["ball-on-pad", "fem-block-on-pad", "mpm-block-on-pad"],
                                   ["free-cube-gripper", "hinged-lid"]])
def test_float32_gradients_match_float64(cases):
    for case, (got, want) in compare_in_precisions({c: CASES[c] for c in cases}).items():
        assert_grads_close(got, want, rel_max=REL_MAX.get(case, 1e-2), what=case)


@pytest.mark.slow
def test_float32_learned_image_gradient_matches_float64():
    """The pixel model trained as in ``test_tactile_pixel`` (float64 readings), then the
    same image gradient in both precisions."""
    import test_tactile_pixel as pix

    sim = _pixel_sim()
    try:
        st0 = sim.reset()
        train = []
        with torch.no_grad():
            for dx, dy in pix.PLACES[:-1]:
                p = st0.tool_pos.clone()
                p[1, 0] += dx
                p[1, 1] += dy
                states = sim.rollout(st0.replace(tool_pos=p), pix.press(sim), saveat=[2, 3],
                                     segment=2)
                train += [sim.read(s) for s in states]
    finally:
        sim.close()
    torch.manual_seed(0)
    model, _ = ds.fit_pixel_model([r.features for r in train], [r.image for r in train],
                                  ds.TactilePixelModel(hidden=(32, 32)), iters=300, lr=2e-2)
    state = {k: v.detach().clone() for k, v in copy.deepcopy(model).state_dict().items()}
    (got,) = in_precision("f32", [(pixel_grads, (state,))])
    assert_grads_close(got, pixel_grads(state), what="learned-image")
