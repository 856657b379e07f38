"""Optimising a task in float32 (the default precision) as a new user does: issue 12's loop.

``torch.optim.Adam`` (lr 0.2) on the raw actions of ``diffsim/Pour-v1`` through
``rollout_loss``: before the float32 fixes the gradient was NaN at iteration 2 and the
next rollout raised; with them the loop reaches the task's success within 10
iterations (float64 needs 3). Runs in a float32 child process (``precision.py``).
"""

import math

import pytest
import torch
from precision import in_precision


def pour_adam_loop(iters=10, lr=0.2):
    """Losses, gradient norms and the replayed success of each iterate."""
    import gymnasium as gym

    import diffsim.envs  # noqa: F401

    env = gym.make("diffsim/Pour-v1")
    env.reset(seed=0)
    u = env.unwrapped
    A = torch.zeros(u.horizon, u.act_dim, requires_grad=True)
    opt = torch.optim.Adam([A], lr=lr)
    losses, grads, success = [], [], []
    for _ in range(iters):
        opt.zero_grad()
        loss = u.rollout_loss(A)
        loss.backward()
        losses.append(float(loss))
        grads.append(float(A.grad.norm()))
        # the task's own success test on the state the actions reach
        with torch.no_grad():
            end = u.sim.rollout(u._start, u._physical(A.detach()))[-1]
        success.append(bool(u.task.success(u.sim, end)))
        opt.step()
    env.close()
    return {"loss": losses, "grad": grads, "success": success}


@pytest.mark.slow
def test_pour_adam_loop_reaches_success_in_float32():
    out = in_precision("f32", [(pour_adam_loop, ())])[0]
    assert all(math.isfinite(v) for v in out["loss"] + out["grad"]), out
    assert any(out["success"]), out
