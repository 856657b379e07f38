"""The tactile manipulation tasks (Grasp, Repose) as Gymnasium environments: registration and
docstrings (fast, no compilation), the env checker and trajectory optimisation (slow: each
compiles a ``ds.Tactile``)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import diffsim.envs as de

SECTIONS = ("Description", "Action Space", "Observation Space", "Rewards", "Starting State",
            "Episode End", "Arguments", "Version History")


@pytest.mark.parametrize("name", ["Grasp", "Repose"])
def test_registered_with_full_docstring(name):
    assert f"diffsim/{name}-v1" in de.env_ids()
    doc = de.registry.task_class(name).__doc__
    for section in SECTIONS:
        assert section in doc, f"{name} docstring lacks {section}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Grasp", "Repose"])
def test_env_checker_and_observation(name):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(f"diffsim/{name}-v1", horizon=3)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    # 3 tools x (position, quaternion), the cube's velocity, 2 x (force, torque, 3 x 3 markers)
    assert obs.shape == (3 * 7 + 6 + 2 * (6 + 18),) and env.observation_space.contains(obs)
    assert info["goal_loss"] == pytest.approx(1.0, abs=0.01)   # nothing lifted or turned yet
    # the contact-seeking term: each pad 1 mm (+-0.2 mm seeded shift) from the object
    assert 1.5 < info["loss"] - info["goal_loss"] < 3.0
    obs, reward, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    env.close()


def _grasp_plan(T, lift):
    """Close at full speed for 6 steps (1.2 mm per finger: 0.2 mm squeeze), then lift."""
    U = torch.zeros(T, 2, dtype=torch.float64)
    U[:6, 0] = 1.0
    U[6:, 1] = lift
    return U


@pytest.mark.slow
def test_grasp_lifts_the_cube_by_friction_and_adam_reduces_the_loss():
    env = gym.make("diffsim/Grasp-v1", horizon=20)
    e = env.unwrapped
    env.reset(seed=0)
    # held: the cube rises with the fingers (lagging by the pads' shear sag), not crushed
    for a in _grasp_plan(20, 0.5).numpy():
        obs, reward, term, trunc, info = env.step(a.astype(np.float32))
    t = e.task.terms(e.sim, e.get_state())
    assert float(t["lift"]) > 0.8 * float(t["finger_lift"]) > 1e-3
    assert 0.2 < float(t["normal_force"].min()) and float(t["normal_force"].max()) < 3.0
    # without closing, lifting the fingers leaves the cube on the ground
    with torch.no_grad():
        U = _grasp_plan(20, 0.5)
        U[:, 0] = 0.0
        assert float(e.rollout_loss(U)) > 1.0
    # a few Adam iterations from a slow lift
    losses = _adam(env, _grasp_plan(20, 0.3))
    assert losses[-1] < 0.25 * losses[0], losses
    env.close()


def _adam(env, U, iters=3, lr=0.1):
    """Losses of ``iters`` Adam steps on ``rollout_loss`` (actions clamped to [-1, 1]) and
    the loss after the last step."""
    U = U.clone().requires_grad_()
    opt = torch.optim.Adam([U], lr=lr)
    losses = []
    for _ in range(iters):
        opt.zero_grad()
        loss = env.unwrapped.rollout_loss(U)
        loss.backward()
        losses.append(float(loss.detach()))
        opt.step()
        with torch.no_grad():
            U.clamp_(-1.0, 1.0)
    with torch.no_grad():
        losses.append(float(env.unwrapped.rollout_loss(U)))
    return losses


@pytest.mark.slow
def test_repose_rolls_the_cylinder_and_adam_reaches_the_angle():
    env = gym.make("diffsim/Repose-v1", horizon=20)
    e = env.unwrapped
    env.reset(seed=0)
    U = torch.zeros(20, 2, dtype=torch.float64)
    U[:6, 0] = 1.0
    U[6:, 1] = 0.2       # 0.02 m/s shear per finger for 14 steps: 0.56 mm, 0.14 rad rolling
    with torch.no_grad():
        sol = e.sim.rollout(e.get_state(), e._physical(U))
        t = e.task.terms(e.sim, sol[-1])
    # it rolls without slip about +z: each contact point travels s = 0.56 mm, theta = s / r
    # = 0.14 rad (within 10%: the squeezed pads touch it a little inside its radius), and
    # its centre stays between the fingers
    assert float(t["angle"]) == pytest.approx(0.14, rel=0.1)
    assert float(t["drift"].abs().max()) < 1e-4
    losses = _adam(env, U)
    assert losses[-1] < 0.25 * losses[0], losses
    env.close()
