"""The CableStraighten task: a bent elastic MPM rod held between two tactile pads.

Fast: registration and docstring, the bend measure, the env checker, reset/step shapes and
zero actions (one ``ds.Tactile`` with its MPM rod, compiled once). Slow: the scripted
squeeze-and-pull plan straightens the rod measurably and Adam on smooth changes of it
lowers the loss.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import hat_basis_adam

import diffsim.envs as de
from diffsim.envs.tasks.cable import CableStraighten

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def env():
    e = gym.make("diffsim/CableStraighten-v0")
    yield e
    e.close()


def test_registered_with_full_docstring():
    assert "diffsim/CableStraighten-v0" in de.env_ids()
    doc = de.registry.task_class("CableStraighten").__doc__
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments", "Version History"):
        assert section in doc, f"CableStraighten docstring lacks {section}"


def test_bend_measure():
    """Points on a line have no bend, whatever the line's direction; the bend of points off
    a line is their mean squared distance from it."""
    t = torch.linspace(0, 1, 7, dtype=F64)
    line = torch.stack([t, 0.3 * t + 0.1], 1)
    assert abs(float(CableStraighten.bend_of(line))) < 1e-12
    zig = torch.stack([t, 0.01 * (-1.0) ** torch.arange(7, dtype=F64)], 1)
    ref = ((zig[:, 1] - zig[:, 1].mean()) ** 2).mean()
    assert float(CableStraighten.bend_of(zig)) == pytest.approx(float(ref), rel=1e-3)
    # the start shape: a straight held part, then a 45 deg arc towards +y
    task = CableStraighten()
    x = torch.tensor([[task.end - task.length, 0.0, 0.0], [task.end, 0.0, 0.0]], dtype=F64)
    tip = task.bent(x)[0]
    R = (task.length - task.straight) / (math.pi / 4)
    assert float(tip[1]) == pytest.approx(R * (1 - math.cos(math.pi / 4)), rel=1e-9)


@pytest.mark.slow  # 40-100 s on 2 cores: the fast suite keeps test_tactile.py's cases
def test_env_checker_shapes_and_zero_actions(env):
    from gymnasium.utils.env_checker import check_env

    e = env.unwrapped
    check_env(e)
    obs, info = env.reset(seed=0)
    # 2 fingers x (position, quaternion), 2 x (force, torque, 3 x 3 markers), 7 keypoints
    assert obs.shape == (2 * 7 + 2 * (6 + 18) + 7 * 3,) and env.observation_space.contains(obs)
    assert info["goal_loss"] == pytest.approx(1.0, abs=0.01) and not info["success"]
    assert env.action_space.shape == (3,)
    # zero actions for 10 steps (2 ms): nothing touches the rod; it stays as it lies
    for _ in range(10):
        obs, reward, term, trunc, info = env.step(np.zeros(3, np.float32))
        assert env.observation_space.contains(obs) and isinstance(reward, float)
    assert not term and not trunc
    assert info["goal_loss"] == pytest.approx(1.0, abs=0.01)
    st = e.get_state()
    assert float(st.particle_x[:, 2].min()) > 0.0            # on the floor
    assert float(st.f_mpm.abs().max()) == 0.0


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_scripted_plan_straightens_the_rod(env):
    e = env.unwrapped
    env.reset(seed=0)
    for a in e.task.scripted_actions().numpy():
        obs, reward, term, trunc, info = env.step(a.astype(np.float32))
    t = e.task.terms(e.sim, e.get_state())
    # squeezed by both pads, pulled 1.3 mm: the bend drops to 0.75 of the start (measured)
    assert float(t["normal_force"].min()) > 0
    assert float(t["fraction"]) < 0.85, float(t["fraction"])
    assert trunc


def _adam(env, U0, iters=2, lr=0.05, knots=8):
    return hat_basis_adam(env, U0, iters, lr, knots)


@pytest.mark.slow
def test_adam_lowers_the_loss(env):
    env.reset(seed=0)
    losses = _adam(env, env.unwrapped.task.scripted_actions())
    print("Adam", losses)
    assert losses[-1] < losses[0], losses
