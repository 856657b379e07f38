"""Receding-horizon control (MPC) of a Gymnasium environment with any trajectory optimizer."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from diffsim.dispatch import solve

from .base import AbstractControlAlgorithm
from .checks import positive_int
from .problem import ControlProblem
from .result import ControlResult

FILLS = ("zero", "last")


@dataclasses.dataclass(frozen=True)
class MPC:
    """Receding-horizon control: plan ``horizon`` steps from the current state, execute the
    first ``replan_every``, shift the plan (warm start) and plan again.

    Args:
        planner: the trajectory optimizer of each plan (``Adam``, ``CEM``, ``MPPI``,
            ``Hybrid``).
        horizon: planned control steps (shortened near the end of the episode, so that
            no plan looks past it).
        replan_every: steps executed from each plan (1 <= replan_every <= horizon).
        maxiters, maxevals: the budget of each plan (as in ``solve``; at least one).
        fill: how the shifted plan's new tail starts: ``"zero"`` (zero actions) or
            ``"last"`` (repeat the plan's last action).
        solve_kwargs: further keyword arguments of every ``solve`` (``target``, ...).

    Raises:
        TypeError, ValueError: options of the wrong type or out of range.
    """

    planner: AbstractControlAlgorithm
    horizon: int = 10
    replan_every: int = 1
    maxiters: int | None = 10
    maxevals: int | None = None
    fill: str = "zero"
    solve_kwargs: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.planner, AbstractControlAlgorithm):
            raise TypeError(f"planner must be a trajectory optimizer (Adam, CEM, MPPI, Hybrid), "
                            f"got {type(self.planner).__name__}")
        positive_int("horizon", self.horizon)
        positive_int("replan_every", self.replan_every)
        if self.replan_every > self.horizon:
            raise ValueError(f"replan_every ({self.replan_every}) must be <= horizon ({self.horizon})")
        if self.maxiters is None and self.maxevals is None:
            raise ValueError("MPC needs a budget per plan: give maxiters= and/or maxevals=")
        if self.maxiters is not None:
            positive_int("maxiters", self.maxiters)
        if self.maxevals is not None:
            positive_int("maxevals", self.maxevals)
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(map(repr, FILLS))}, got {self.fill!r}")
        reserved = {"maxiters", "maxevals", "seed", "progress"} & set(self.solve_kwargs)
        if reserved:
            raise ValueError(f"solve_kwargs must not set {sorted(reserved)}: they are MPC's own "
                             "fields or receding_horizon's arguments")

    def shift(self, plan: torch.Tensor, n: int, length: int) -> torch.Tensor:
        """Drop the ``n`` executed steps of ``plan`` and pad/cut it to ``length`` steps."""
        rest = plan[n:]
        if rest.shape[0] >= length:
            return rest[:length].clone()
        if self.fill == "last" and plan.shape[0] > 0:
            pad = plan[-1:].expand(length - rest.shape[0], -1)
        else:
            pad = plan.new_zeros(length - rest.shape[0], plan.shape[1])
        return torch.cat([rest, pad])


@dataclasses.dataclass
class MPCResult:
    """What :func:`receding_horizon` did.

    Attributes:
        actions: ``(n, act_dim)`` executed actions (n steps, float64 tensor).
        rewards: the ``n`` rewards ``env.step`` returned; ``total_reward`` their sum.
        losses: ``info["loss"]`` after each executed step (where the env reports one).
        initial_loss: ``info["loss"]`` of the reset (None with ``reset=False`` or if the
            env reports no loss).
        obs, info: the last observation and info.
        terminated, truncated: how the last step ended.
        plans: the :class:`ControlResult` of each plan.
        nevals, nbackward: rollouts and backward passes spent on planning (all plans).
        time: wall-clock seconds (planning and execution).
    """

    actions: torch.Tensor
    rewards: list[float]
    losses: list[float]
    initial_loss: float | None
    obs: Any
    info: dict
    terminated: bool
    truncated: bool
    plans: list[ControlResult]
    nevals: int
    nbackward: int
    time: float

    @property
    def total_reward(self) -> float:
        return float(sum(self.rewards))


def _planning_env(env: Any) -> Any:
    base = getattr(env, "unwrapped", env)
    missing = [m for m in ("get_state", "set_state", "rollout_loss") if not callable(getattr(base, m, None))]
    if missing:
        raise TypeError(f"receding_horizon needs env.unwrapped to have {', '.join(missing)} (a "
                        f"diffsim.envs.DiffSimEnv has them); {type(base).__name__} does not")
    return base


def receding_horizon(env: Any, mpc: MPC, *, steps: int | None = None, seed: int | None = None,
                     reset: bool = True, u0: torch.Tensor | None = None, progress: bool = False,
                     catch: Any = None) -> MPCResult:
    """Control ``env`` by receding-horizon planning with ``mpc.planner``.

    Each plan minimises ``env.unwrapped.rollout_loss(U, state=s)`` over ``U`` of shape
    ``(H, act_dim)`` inside the action space's bounds, from the state ``s`` that
    ``env.unwrapped.get_state()`` returns; the state is restored with ``set_state(s)``
    after planning, then the first ``mpc.replan_every`` actions run through ``env.step``
    (through any wrappers, so rewards and time limits apply) and the plan is shifted to
    warm-start the next one. Stops after ``steps`` steps or when an episode ends. A plan
    that fails (``NON_FINITE``: every candidate blew up) still executes its best finite
    controls, or the warm start if it saw none; ``out.plans[k].retcode`` tells.

    Args:
        env: a Gymnasium env whose ``unwrapped`` has ``get_state``, ``set_state`` and
            ``rollout_loss(actions, state=...)`` (any ``diffsim/<Task>-v0``).
        mpc: the :class:`MPC` settings.
        steps: control steps to execute (default: what is left of ``env.unwrapped.horizon``).
        seed: seeds ``env.reset`` and the planner (plan k uses ``seed + k``); None draws
            from torch's global generator.
        reset: call ``env.reset(seed=seed)`` first (False: continue from the current state).
        u0: the first plan's initial guess, ``(mpc.horizon, act_dim)`` (default zeros).
        progress: a tqdm bar over the executed steps.
        catch: exceptions counted as a non-finite loss while planning (default
            ``diffsim.SimulationError``: a candidate that blows up the simulator is
            discarded instead of ending the episode).

    Returns:
        :class:`MPCResult`.

    Raises:
        TypeError: an env without the planning methods, a non-Box action space.
        ValueError: bad ``steps`` or ``u0``.
    """
    base = _planning_env(env)
    if not isinstance(mpc, MPC):
        raise TypeError(f"mpc must be an MPC(...) value, got {type(mpc).__name__}")
    space = env.action_space
    if not hasattr(space, "low") or len(space.shape) != 1:
        raise TypeError(f"receding_horizon needs a 1-D Box action space, got {space}")
    if catch is None:
        from diffsim.errors import SimulationError

        catch = (SimulationError,)
    sim = getattr(base, "sim", None)
    dtype = getattr(sim, "dtype", None) or torch.get_default_dtype()
    act_dim = space.shape[0]
    lo = torch.as_tensor(np.asarray(space.low, dtype=np.float64), dtype=dtype)
    hi = torch.as_tensor(np.asarray(space.high, dtype=np.float64), dtype=dtype)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()))
    t0 = time.perf_counter()
    if reset:
        obs, info = env.reset(seed=seed)
    else:
        obs, info = None, {}
    state = base.get_state()
    if steps is None:
        if getattr(base, "horizon", None) is None:
            raise TypeError(f"{type(base).__name__} has no horizon attribute: pass steps=")
        steps = int(base.horizon) - int(getattr(state, "step", 0))
    positive_int("steps", steps)
    plan = torch.zeros(mpc.horizon, act_dim, dtype=dtype) if u0 is None else torch.as_tensor(u0, dtype=dtype)
    if tuple(plan.shape) != (mpc.horizon, act_dim):
        raise ValueError(f"u0 has shape {tuple(plan.shape)}; expected (horizon, act_dim) = "
                         f"({mpc.horizon}, {act_dim})")
    plan = torch.maximum(torch.minimum(plan, hi), lo)
    actions, rewards, losses, plans = [], [], [], []
    initial_loss = info.get("loss") if isinstance(info, dict) else None
    terminated = truncated = False
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, unit="step", desc="MPC", dynamic_ncols=True)
    try:
        k = 0
        while k < steps and not (terminated or truncated):
            s = base.get_state()
            H = min(mpc.horizon, steps - k)
            plan = plan[:H]
            prob = ControlProblem(lambda U, s=s: base.rollout_loss(U, state=s), plan, bounds=(lo, hi))
            res = solve(prob, mpc.planner, maxiters=mpc.maxiters, maxevals=mpc.maxevals,
                        seed=seed + len(plans), catch=catch, **mpc.solve_kwargs)
            plans.append(res)
            base.set_state(s)
            n_exec = min(mpc.replan_every, H)
            done = 0
            for a in res.u[:n_exec]:
                obs, r, terminated, truncated, info = env.step(a.detach().cpu().numpy().astype(space.dtype))
                actions.append(a.detach().to(torch.float64))
                rewards.append(float(r))
                if isinstance(info, dict) and "loss" in info:
                    losses.append(float(info["loss"]))
                done += 1
                k += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4g}" if losses else "-", plan=f"{res.loss:.4g}")
                if terminated or truncated:
                    break
            plan = mpc.shift(res.u, done, mpc.horizon)
    finally:
        if bar is not None:
            bar.close()
    return MPCResult(
        actions=torch.stack(actions) if actions else torch.zeros(0, act_dim, dtype=torch.float64),
        rewards=rewards, losses=losses, initial_loss=initial_loss, obs=obs, info=info,
        terminated=bool(terminated), truncated=bool(truncated), plans=plans,
        nevals=sum(p.nevals for p in plans), nbackward=sum(p.nbackward for p in plans),
        time=time.perf_counter() - t0)
