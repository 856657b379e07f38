"""diffsim.envs: Gymnasium manipulation tasks over the diffsim simulators.

Importing this package registers every task as ``diffsim/<Task>-v<N>`` (also
done through the ``gymnasium.envs`` entry point):

    import gymnasium as gym
    env = gym.make("diffsim/Pour-v1", render_mode="rgb_array")
    loss = env.unwrapped.rollout_loss(actions)   # differentiable in actions
"""

from .env import DiffSimEnv
from .registry import TASKS, env_ids, make_task, register_envs
from .task import Task, velocity_map

__all__ = ["DiffSimEnv", "Task", "TASKS", "env_ids", "make_task", "register_envs",
           "velocity_map"]

register_envs()
