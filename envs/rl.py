"""Reinforcement-learning baselines for ``solve_task``: PPO or SAC from stable-baselines3.

The agent trains on the environment (``env.step``: no gradients of the simulator) until
the wall-clock budget or ``max_rollouts`` episodes are spent; its deterministic policy then
runs one episode from the solve's seeded reset, whose actions are the answer (the env is
deterministic, so they replay to the same result). Rollouts are counted as training
episodes (started ones, the last one possibly cut by the budget).
"""

from __future__ import annotations

import math
import time

import numpy as np


def train_rl(env, method: str, *, seed: int, budget_s: float, max_rollouts: int | None,
             progress: bool = False) -> tuple[np.ndarray, dict]:
    """Train ``method`` (``"ppo"`` or ``"sac"``) on ``env``; returns the actions of the
    deterministic policy's episode from ``env.reset(seed=seed)`` and the statistics."""
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback

    u = env.unwrapped
    T = u.horizon

    class Budget(BaseCallback):
        """Stops training at the time or episode budget; records episode goal losses."""

        def __init__(self):
            super().__init__()
            self.t0 = time.perf_counter()
            self.episodes, self.steps, self.since, self.goal = 0, 0, 0, []
            self.bar = None
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=round(budget_s, 1), unit="s", desc=method.upper())

        def _on_step(self) -> bool:
            self.steps += 1
            self.since += 1
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done:
                    self.episodes += 1
                    self.since = 0
                    self.goal.append(float(info.get("goal_loss", math.nan)))
            elapsed = time.perf_counter() - self.t0
            if self.bar is not None:
                self.bar.n = round(min(elapsed, budget_s), 1)
                self.bar.set_postfix(episodes=self.episodes,
                                     goal=f"{self.goal[-1]:.4g}" if self.goal else "-")
            if elapsed >= budget_s:
                return False
            return max_rollouts is None or self.episodes < max_rollouts

    total = (max_rollouts if max_rollouts is not None else 10**6) * T
    if method == "ppo":
        n_steps = max(64, min(2048, 8 * T))
        model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=64, seed=seed, verbose=0,
                    device="cpu")
    else:
        model = SAC("MlpPolicy", env, learning_starts=min(1000, 4 * T), seed=seed, verbose=0,
                    device="cpu")
    cb = Budget()
    t0 = time.perf_counter()
    try:
        model.learn(total_timesteps=total, callback=cb)
    finally:
        if cb.bar is not None:
            cb.bar.close()
    seconds = time.perf_counter() - t0
    obs, _ = env.reset(seed=seed)
    actions = []
    for _ in range(T):
        a, _ = model.predict(obs, deterministic=True)
        a = np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)
        actions.append(a)
        obs, _, term, trunc, _ = env.step(a)
        if trunc:
            break
    actions = np.stack(actions)
    started = cb.episodes + (1 if cb.since else 0)
    stats = {"algorithm": f"stable_baselines3.{method.upper()}('MlpPolicy', seed={seed})",
             "basis": "None", "weights": "rewards (objective decrease per step)",
             "seconds": seconds, "rollouts": started, "env_steps": cb.steps,
             "backward_passes": 0, "iterations": cb.steps, "retcode": "SUCCESS", "message": "",
             "objective_optimised": None, "final_horizon": None,
             "history": {"rollouts": list(range(1, len(cb.goal) + 1)), "best": list(
                 np.minimum.accumulate(cb.goal)) if cb.goal else [], "iteration": cb.goal,
                 "stage": [method] * len(cb.goal)}}
    return actions, stats
