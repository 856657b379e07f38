"""Hinged free bodies of ``ds.Tactile`` (``ds.Hinge``) and the BoxOpen task.

Physics (slow: each builds a ``ds.Tactile``): a lid hinged at one edge swings as a physical
pendulum (against the exact recurrence of the scheme and against scipy's solution of the
pendulum ODE, first order in ``dt``), its anchor stays put, limits stop it, a damped spring
holds it at the static balance of torques; gradients of the final hinge angle through steps
of contact against central differences (float64). The task: registration and docstring,
the scripted plan (fast); the env checker, the scripted opening, zero actions, Adam (slow).
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import hat_basis_adam

import diffsim as ds
import diffsim.envs as de
from diffsim.envs.tasks.box_open import BoxOpen
from diffsim.tools import quat_to_matrix

F64 = torch.float64
G = 9.8
L, TH, W = 0.02, 0.005, 0.01    # the pendulum lid: depth (x), thickness (y), width (z) (m)
DENSITY = 5e4


def pendulum(dt=2e-3, hinge=None, **kw):
    """A lid (box) hinged about ``z`` at the origin, its centre at (L/2, TH/2, 0); a tiny pad
    far away (no contact)."""
    scene = ds.Scene(dim=3, gravity=(0.0, -G, 0.0))
    scene.add_tool(ds.Box(lo=(0, 0, -W / 2), hi=(L, TH, W / 2)), friction=1.0, name="lid")
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.01, 0.01, 0.003), 0.005),
                              material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(3, 3), camera=ds.TactileCamera(resolution=(12, 10)),
                              position=(0.1, 0.1, 0.0), normal=(-1, 0, 0), name="finger")
    hinge = hinge or ds.Hinge(anchor=(0, 0, 0), axis=(0, 0, 1))
    opts = {"dt": dt, "newton_tol": 1e-10, "cg_tol": 1e-10, "free_objects": {"lid": DENSITY},
            "hinges": {"lid": hinge}}
    opts.update(kw)
    return ds.Tactile(scene, sensors=[sensor], **opts)


def lid_inertia():
    """(m, I about the hinge axis, centre offset (rx, ry)) of the pendulum lid."""
    m = DENSITY * L * TH * W
    rx, ry = L / 2, TH / 2
    return m, m * (L * L + TH * TH) / 12 + m * (rx * rx + ry * ry), (rx, ry)


def gravity_torque(theta, m, rx, ry):
    """z-torque of gravity about the hinge with the lid turned by ``theta``."""
    return -m * G * (rx * np.cos(theta) - ry * np.sin(theta))


def swing(sim, T):
    outs = sim.rollout(sim.reset(), torch.zeros(T, sim.action_dim, dtype=F64),
                       saveat=list(range(T + 1)))
    return outs, np.array([float(sim.hinge_angle(s, "lid")) for s in outs])


# ---------------------------------------------------------------------------- fast checks
def test_hinge_bad_input():
    with pytest.raises(ValueError, match="axis=.*non-zero"):
        ds.Hinge(anchor=(0, 0, 0), axis=(0, 0, 0))
    with pytest.raises(ValueError, match="anchor=.*3 finite numbers"):
        ds.Hinge(anchor=(0, 0), axis=(0, 0, 1))
    with pytest.raises(ValueError, match="damping=-1.0 is not allowed"):
        ds.Hinge(anchor=(0, 0, 0), axis=(0, 0, 1), damping=-1.0)
    with pytest.raises(ValueError, match="limits=.*low <= high"):
        ds.Hinge(anchor=(0, 0, 0), axis=(0, 0, 1), limits=(1.0, 0.0))
    h = ds.Hinge(anchor=(0, 0, 0), axis=(0, 0, 2), limits=(0, None))
    assert h.axis == (0.0, 0.0, 1.0) and h.limits == (0.0, None)
    with pytest.raises(ValueError, match="hinges: 'cup' is not a free object"):
        pendulum(hinges={"cup": h})
    with pytest.raises(ValueError, match=r"hinges\['lid'\]=.* is not allowed"):
        pendulum(hinges={"lid": 3})
    sim = pendulum(hinges={"lid": ((0, 0, 0), (0, 0, 1))})       # (anchor, axis) works too
    assert sim.free[0].hinge == ds.Hinge((0, 0, 0), (0, 0, 1))
    free = pendulum(hinges={})
    with pytest.raises(ValueError, match="'lid' has no hinge"):
        free.hinge_angle(free.reset(), "lid")


def test_boxopen_registered_with_full_docstring():
    assert "diffsim/BoxOpen-v2" in de.env_ids()
    doc = de.registry.task_class("BoxOpen").__doc__
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments", "Version History"):
        assert section in doc, f"BoxOpen docstring lacks {section}"


def test_scripted_plan_carries_the_finger_around_the_hinge():
    """The plan's actions are within [-1, 1] and, integrated as the tool poses are (position
    linear, rotation exact), keep the finger's origin at its pressed radius from the hinge
    while its turn matches the arc it travels."""
    task = BoxOpen()
    U = task.scripted_actions()
    assert U.shape == (task.horizon, 3) and float(U.abs().max()) <= 1.0
    h = task.sim_options["dt"]
    p = np.array(task.finger_start[:2]) - np.array(task.anchor[:2])
    turned, radii = 0.0, []
    for t, (a0, a1, a2) in enumerate(U.numpy()):
        p = p + h * task.speed * np.array([-a0, a1])
        turned += h * task.turn_rate * a2
        if t == 3:                                      # pressed: the arc starts here
            start = math.atan2(p[1], p[0])
        if t >= 3:
            radii.append(np.hypot(*p))
    assert np.ptp(radii) < 1e-12
    assert math.atan2(p[1], p[0]) - start == pytest.approx(turned, abs=1e-12)
    assert math.pi / 3 < turned < 1.1                      # about the 60 deg target


# ---------------------------------------------------------------------------- physics (slow)
@pytest.mark.slow
def test_pendulum_swing_and_anchor():
    """Released at rest with its centre level with the hinge, the lid swings down as a
    physical pendulum ``I_a theta'' = tau_g(theta)``: exactly the scheme's recurrence
    (symplectic Euler in the angle), and within O(dt) of scipy's solution; the anchor stays
    put to round-off."""
    from scipy.integrate import solve_ivp

    m, Ia, (rx, ry) = lid_inertia()
    T_end = 0.08
    errs = []
    for dt in (2e-3, 1e-3):
        sim = pendulum(dt)
        n = round(T_end / dt)
        outs, theta = swing(sim, n)
        # the scheme: theta_{k+1} = theta_k + h w_k; w_{k+1} = w_k + h tau(theta_{k+1}) / Ia
        th, w, ref = 0.0, 0.0, [0.0]
        for _ in range(n):
            th = th + dt * w
            w = w + dt * gravity_torque(th, m, rx, ry) / Ia
            ref.append(th)
        np.testing.assert_allclose(theta, ref, rtol=1e-9, atol=1e-12)
        ode = solve_ivp(lambda t, y: [y[1], gravity_torque(y[0], m, rx, ry) / Ia],
                        (0, T_end), [0.0, 0.0], t_eval=np.arange(n + 1) * dt, rtol=1e-12,
                        atol=1e-14, method="DOP853")
        errs.append(np.abs(theta - ode.y[0]).max())
        # the anchor (body-frame point on the axis) stays at the origin
        k = sim.tool_index("lid")
        anchor_b = -quat_to_matrix(outs[0].tool_rot[k]).T @ outs[0].tool_pos[k]
        drift = max(float((s.tool_pos[k] + quat_to_matrix(s.tool_rot[k]) @ anchor_b).norm())
                    for s in outs)
        assert drift < 1e-15
        # the body's velocity is consistent: the anchor's rigid velocity v + w x (a - c) is
        # O(h w^2 r) (chord vs tangent), small against the centre's speed w r
        s = outs[-1]
        v, om = s.body_vel[0, :3], s.body_vel[0, 3:]
        va = v + torch.linalg.cross(om, -s.tool_pos[k])
        assert float(va.norm()) < 2 * dt * float(om.norm()) * float(v.norm())
        sim.close()
    print("pendulum max |theta - scipy|:", errs, "final angle", theta[-1])
    assert theta[-1] < -1.0                                     # it swung well down
    # first order: 0.042 rad at 2 ms over a 2 rad swing, halved at 1 ms
    assert errs[0] < 0.05 and errs[0] / errs[1] == pytest.approx(2.0, rel=0.15)


@pytest.mark.slow
def test_limits_and_damped_spring():
    """A lower limit at 0 holds the lid level (at rest, exactly); a heavily damped spring
    settles it where the spring balances gravity, ``k theta = tau_g(theta)``."""
    sim = pendulum(hinge=ds.Hinge((0, 0, 0), (0, 0, 1), limits=(0.0, None)))
    outs, theta = swing(sim, 5)
    assert np.all(theta == 0.0) and float(outs[-1].body_vel.abs().max()) == 0.0
    # the stop absorbs gravity's torque about the axis; no pad touches the lid
    m, _, (rx, ry) = lid_inertia()
    pads, grav = sim.hinge_torques(outs[-1], "lid")
    assert float(pads) == 0.0 and float(grav) == pytest.approx(gravity_torque(0.0, m, rx, ry))
    sim.close()
    sim = pendulum(hinge=ds.Hinge((0, 0, 0), (0, 0, 1), limits=(-0.1, 0.5)))
    _, theta = swing(sim, 20)
    assert theta.min() == pytest.approx(-0.1, abs=1e-12) and theta[-1] == pytest.approx(-0.1)
    sim.close()
    m, Ia, (rx, ry) = lid_inertia()
    k = 0.05                                                    # N m/rad
    d = 1.2 * 2 * math.sqrt(k * Ia)                             # overdamped
    sim = pendulum(hinge=ds.Hinge((0, 0, 0), (0, 0, 1), damping=d, stiffness=k,
                                  rest_angle=0.2))
    _, theta = swing(sim, 200)
    th = theta[-1]
    assert abs(k * (0.2 - th) + gravity_torque(th, m, rx, ry)) < 1e-6 * k
    assert np.all(np.diff(theta) >= -1e-12)                     # rises, no overshoot
    sim.close()


class _BoxOpenFD(BoxOpen):
    """BoxOpen with tight solver tolerances and a hinge with damping and a spring (no
    limits), for the finite-difference check."""

    sim_options = dict(BoxOpen.sim_options, newton_tol=1e-12, cg_tol=1e-12)

    def build_sim(self):
        hinge = ds.Hinge(anchor=self.anchor, axis=(0.0, 0.0, 1.0), damping=1e-4,
                         stiffness=1e-2)
        return ds.Tactile(self.build_scene(), sensors=self.sensors(),
                          free_objects={"lid": self.density}, hinges={"lid": hinge},
                          **self.sim_options)


@pytest.mark.slow
def test_hinge_angle_gradients_fd():
    """d(final hinge angle)/d(finger press, lift and turn speeds, lid friction) through 12
    steps (4 of pressing, 8 carrying the lid) against central differences, float64."""
    task = _BoxOpenFD(horizon=12)
    sim = task.build_sim()
    A = task.action_map(sim)
    base = task.scripted_actions()

    def angle(scale, mu):
        U = base * scale
        return sim.hinge_angle(sim.rollout(sim.reset(), U @ A, params={"lid.friction": mu})[-1],
                               "lid")

    scale = torch.ones(3, dtype=F64, requires_grad=True)
    mu = torch.tensor(1.0, dtype=F64, requires_grad=True)
    th = angle(scale, mu)
    th.backward()
    print("angle", float(th.detach()))
    assert float(th.detach()) > 0.01
    grads = list(scale.grad) + [mu.grad]
    for i, g in enumerate(grads):
        eps = 1e-6
        with torch.no_grad():
            e = torch.zeros(4, dtype=F64)
            e[i] = eps
            hi = angle(1 + e[:3], 1.0 + e[3])
            lo = angle(1 - e[:3], 1.0 - e[3])
            fd = float(hi - lo) / (2 * eps)
        print(i, float(g), fd)
        assert abs(fd) > 1e-4
        assert float(g) == pytest.approx(fd, rel=1e-4)
    sim.close()


# ---------------------------------------------------------------------------- the task (slow)
@pytest.mark.slow
def test_boxopen_lifting_term_has_a_gradient_where_the_angle_has_none():
    """A plan that presses and slides up too slowly to lift the lid: it rests on the
    hinge's stop, so the goal loss's gradient is exactly zero; v2's lifting term has one,
    equal to central differences (float64), and pushing up more lowers it."""
    env = gym.make("diffsim/BoxOpen-v2", horizon=12)
    e = env.unwrapped
    env.reset(seed=0)
    U0 = torch.zeros(12, 3, dtype=F64)
    U0[:4, 0], U0[4:, 1] = 0.25, 0.02

    def losses(up):
        scale = torch.ones(3, dtype=F64)
        scale[1] = 0.0
        U = U0 * scale + U0 * (1 - scale) * up
        state = e.sim.rollout(e.get_state(), e._physical(U))[-1]
        return (e.task.goal_loss(e.sim, state), e.task.objective(e.sim, state),
                e.sim.hinge_angle(state, "lid"))

    up = torch.tensor(1.0, dtype=F64, requires_grad=True)
    goal, obj, angle = losses(up)
    assert float(angle.detach()) == 0.0
    assert torch.autograd.grad(goal, up, retain_graph=True)[0] == 0.0
    g = float(torch.autograd.grad(obj, up)[0])
    with torch.no_grad():
        fd = float(losses(torch.tensor(1.0 + 1e-4))[1] - losses(torch.tensor(1.0 - 1e-4))[1]) / 2e-4
    print("d objective / d up", g, fd)
    assert g < 0 and g == pytest.approx(fd, rel=1e-3)
    env.close()


@pytest.mark.slow
def test_boxopen_env_checker_and_observation():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("diffsim/BoxOpen-v2", horizon=3)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    # 2 tools x (position, quaternion), the lid's velocity, force, torque, 3 x 3 markers, angle
    assert obs.shape == (2 * 7 + 6 + 6 + 18 + 1,) and env.observation_space.contains(obs)
    # angle error 1 + lost contact 1; the contact-seeking term (0.7 mm / 1 mm)^2 and the
    # lifting term (1: no torque from the pads) on top
    assert info["goal_loss"] == pytest.approx(2.0) and not info["success"]
    assert info["loss"] == pytest.approx(2.0 + 0.7 ** 2 + 1.0, abs=1e-3)
    obs, reward, term, trunc, info = env.step(np.array([1.0, 0.0, 0.0], np.float32))
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    # the recipe's per-step loss: the crush term, and the objective at the last step
    e = env.unwrapped
    state, fn = e.get_state(), float(e.task.terms(e.sim, e.get_state())["normal_force"])
    crush = max(fn - 10.0, 0.0) ** 2 / 100.0
    assert float(e.task.step_loss(e.sim, state, 1)) == pytest.approx(crush, abs=1e-9)
    assert float(e.task.step_loss(e.sim, state, 3)) == pytest.approx(
        crush + float(e.task.objective(e.sim, state)), rel=1e-6)
    assert e.task.solve_recipe().weights == "sum"
    env.close()


def _adam(env, U0, iters=3, lr=0.02, knots=10):
    return hat_basis_adam(env, U0, iters, lr, knots)


@pytest.mark.slow
def test_boxopen_scripted_plan_opens_the_lid_and_adam_improves_a_slow_one():
    env = gym.make("diffsim/BoxOpen-v2")
    e = env.unwrapped
    env.reset(seed=0)
    terms = []
    for a in e.task.scripted_actions().numpy():
        obs, reward, term, trunc, info = env.step(a.astype(np.float32))
        terms.append(term)
    t = e.task.terms(e.sim, e.get_state())
    # opened by friction to the target (60 deg; success from 0.82 rad on), still pressing
    assert info["success"] and trunc and terms.index(True) > 30
    # the same actions in one rollout reach the same state to the last bit (diffsim solve
    # optimises rollouts and replays with env.step; the lid's contact amplifies any rounding)
    with torch.no_grad():
        U = torch.as_tensor(e.task.scripted_actions().numpy().astype(np.float32))  # as stepped
        end = e.sim.rollout(e._start, e._physical(U.to(e.sim.dtype)))[-1]
    assert all(torch.equal(v, dict(end.items())[k]) for k, v in e.get_state().items())
    assert float(t["angle"]) == pytest.approx(math.pi / 3, rel=0.01)
    assert float(t["normal_force"]) > 0.1
    # zero actions: nothing touches the lid, which stays shut on its limit (goal 2, the
    # contact-seeking term of the 0.7 mm gap and the lifting term 1)
    with torch.no_grad():
        assert float(e.rollout_loss(torch.zeros(e.horizon, 3, dtype=F64))) == pytest.approx(
            2.0 + 0.7 ** 2 + 1.0, abs=1e-3)
    # a plan that turns at half the rate stops short (0.52 rad); Adam on smooth changes of
    # it (10 hat functions per action) improves it steadily (0.257, 0.198, 0.147, 0.107
    # measured)
    losses = _adam(env, e.task.scripted_actions(turn=0.3))
    print("Adam", losses)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0], losses
    env.close()


@pytest.mark.slow
def test_box_open_example_runs_at_a_tiny_size(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "examples" / "tactile" / "box_open.py"),
                          "--iters", "1", "--horizon", "8", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=root, timeout=900,
                         env={**os.environ, "DIFFSIM_ARCH": "cpu"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| zero actions | 2 |" in out.stdout
    assert (tmp_path / "out" / "results.json").stat().st_size > 0
