"""Every registered task's gradient in float32, the package's default precision.

For each task of the live registry: ``gym.make(id)`` with the task's defaults (only a
shorter ``horizon``, an episode option users set too), ``reset(seed=s)`` and
``env.unwrapped.rollout_loss(A).backward()`` for seeded random actions ``A`` uniform
in [-1, 1]: the loss and every gradient entry must be finite and the gradient nonzero
(the tools touch the material, or the task's shaping term pulls them towards it). One
spawned float32 process per task (``precision.py``): slow (each compiles its
simulator's forward and reverse kernels).
"""

import time

import gymnasium as gym
import pytest
import torch
from precision import in_precision

import diffsim.envs as de

#: control steps per rollout: enough for the tools of every task to reach the material
#: within reach of random actions, short enough for a sweep over all tasks
HORIZON = 8
SEEDS = (0, 1, 2)
ALL_IDS = sorted(de.env_ids())


def rollout_gradients(env_id: str, horizon: int, seeds) -> dict:
    """Loss and gradient w.r.t. the actions of ``rollout_loss`` for each seed (the
    actions drawn from ``torch.Generator().manual_seed(seed)``), and the seconds taken."""
    t0 = time.perf_counter()
    env = gym.make(env_id, horizon=horizon)
    u = env.unwrapped
    losses, grads = [], []
    try:
        for seed in seeds:
            env.reset(seed=seed)
            g = torch.Generator().manual_seed(seed)
            A = (2 * torch.rand(u.horizon, u.act_dim, generator=g, dtype=torch.float64)
                 - 1).requires_grad_()
            loss = u.rollout_loss(A)
            loss.backward()
            losses.append(loss.detach())
            grads.append(A.grad)
    finally:
        env.close()
    return {"loss": torch.stack(losses), "grad": torch.stack(grads),
            "seconds": time.perf_counter() - t0}


def test_every_registered_task_is_swept():
    assert ALL_IDS == sorted(i for i in gym.registry if i.startswith("diffsim/"))
    assert len(ALL_IDS) >= 18


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_float32_rollout_gradients_are_finite_and_nonzero(env_id):
    (res,) = in_precision("f32", [(rollout_gradients, (env_id, HORIZON, SEEDS))])
    print(f"{env_id}: {res['seconds']:.0f} s, losses {res['loss'].tolist()}, gradient norms "
          f"{res['grad'].flatten(1).norm(dim=1).tolist()}")
    assert torch.isfinite(res["loss"]).all(), res["loss"]
    for seed, g in zip(SEEDS, res["grad"]):
        assert torch.isfinite(g).all(), f"seed {seed}: non-finite gradient entries"
        assert float(g.norm()) > 0, f"seed {seed}: the gradient is zero"
