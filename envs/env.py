"""``DiffSimEnv``: any ``Task`` as a Gymnasium environment, with differentiable episodes.

Description:
    A manipulation task on a diffsim simulator (see the task's class docstring
    for its scene, observation, reward and success metric).

Action Space:
    ``Box(-1, 1, (act_dim,), float32)``: normalised tool velocities; the task's
    ``action_map`` scales them to m/s and rad/s. Actions outside [-1, 1] are
    clipped; NaN or wrongly shaped actions raise ``ValueError``.

Observation Space:
    ``Box(low, high, float32)`` from ``Task.observation_bounds``: tool poses,
    per-body centroids, spreads and a fixed subset of particle positions.

Rewards:
    ``objective(previous state) - objective(state)``: dense, and summing to the
    decrease of the same task objective that ``rollout_loss`` differentiates (the
    task's ``loss`` plus the contact-seeking term of its declared ``contacts``).
    ``info`` holds ``loss`` (the objective), ``goal_loss`` (the loss without shaping
    terms, which ``success`` tests), ``success`` and ``solver_converged`` (below).

Simulator failures (``step`` never raises for an action in ``action_space``):
    * An implicit solve (``ds.FEM``, ``ds.Shell``, ``ds.Tactile``) that does not reach its
      tolerance within its iteration limit (``ds.ConvergenceError``): the step keeps
      the last Newton iterate (finite; the line search decreased its energy), as a
      simulator with a fixed iteration budget would. ``info["solver_converged"]`` is
      then ``False`` and ``info["solver_message"]`` says how far the solve got.
    * Any other ``ds.SimulationError`` (a blow-up: non-finite positions or velocities;
      an unconverged step whose iterate is not finite): the state stays where it was,
      the reward is 0, ``truncated`` is ``True`` and ``info["truncation_reason"]``
      holds the error's message. Call ``reset()`` then, as after any truncation.

Starting State:
    ``Task.initial_state`` (the scene at rest; tasks may randomise tool poses or
    targets with the episode's seed).

Episode End:
    ``terminated`` when the task's success test holds; ``truncated`` after the
    task's ``horizon`` steps (also the ``max_episode_steps`` of the registered
    ``TimeLimit``), or when the simulator failed on the step (above).

Arguments:
    ``task``: a registered task name or a ``Task`` instance; ``render_mode``:
    ``None`` or ``"rgb_array"`` (``render()`` returns a (256, W, 3) uint8 picture
    of the current state from ``ds.render``: W = 256, wider for tactile tasks,
    whose sensors' RGB images stand beside the scene); any task option
    (``grid_res``, ``horizon``, ...).

Version History:
    v0: initial release.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch

import diffsim as ds

from . import cache
from .task import Task


class DiffSimEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, task: str | Task = "Pour", render_mode: str | None = None, **options):
        from .registry import make_task

        self.task = make_task(task, **options) if isinstance(task, str) else task
        if options and not isinstance(task, str):
            raise ValueError("options are given to the Task instance, not to DiffSimEnv")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None, "
                             "'rgb_array'")
        self.render_mode = render_mode
        self.sim = cache.acquire(self.task)
        self._A = self.task.action_map(self.sim)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self._A.shape[0],), np.float32)
        low, high = self.task.observation_bounds(self.sim)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._state: ds.State | None = None
        self._start: ds.State | None = None
        self._loss = None
        self._renderer = None
        self._closed = False

    # ------------------------------------------------------------------ properties
    @property
    def horizon(self) -> int:
        """Control steps per episode (also the registered ``max_episode_steps``)."""
        return self.task.horizon

    @property
    def act_dim(self) -> int:
        return int(self._A.shape[0])

    # ------------------------------------------------------------------ gym API
    def _obs(self, state) -> np.ndarray:
        with torch.no_grad():
            o = self.task.observe(self.sim, state).cpu().numpy().astype(np.float32)
        return np.clip(o, self.observation_space.low, self.observation_space.high)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options {sorted(options)} are not supported; set task "
                             "options when making the environment")
        state = self.task.initial_state(self.sim, self.np_random)
        self._start = state
        self._set(state)
        return self._obs(state), self._info(state)

    def _set(self, state: ds.State) -> None:
        self._state = state
        with torch.no_grad():
            self._loss = float(self.task.objective(self.sim, state))

    def _info(self, state, converged: bool = True) -> dict:
        with torch.no_grad():
            goal = float(self.task.goal_loss(self.sim, state))
        return {"loss": self._loss, "goal_loss": goal,
                "success": self.task.success(self.sim, state), "step": state.step,
                "solver_converged": converged}

    def _physical(self, actions: torch.Tensor) -> torch.Tensor:
        return actions.to(self._A.dtype) @ self._A

    def _check_action(self, action) -> torch.Tensor:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.act_dim,):
            raise ValueError(f"action has shape {a.shape}; expected ({self.act_dim},)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action {a.tolist()} holds non-finite values")
        return torch.as_tensor(np.clip(a, -1.0, 1.0), dtype=self.sim.dtype)

    def _advance(self, u: torch.Tensor):
        """One control step of the simulator: ``(state or None, solver message, failure)``
        (see the module docstring: Simulator failures)."""
        with torch.no_grad():
            try:
                return self.sim.step(self._state, u), None, None
            except ds.ConvergenceError as e:
                note = str(e)
            except ds.SimulationError as e:
                return None, None, str(e)
            try:
                state = self.sim.rollout(self._state, u[None], segment=1, check=False)[0]
            except ds.SimulationError as e:
                return None, note, str(e)
        if not all(bool(torch.isfinite(t).all()) for _, t in state.items()):
            return None, note, f"{note}; its last iterate is not finite"
        return state, note, None

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        a = self._check_action(action)
        prev = self._loss
        state, note, failure = self._advance(self._physical(a))
        if failure is not None:
            info = self._info(self._state, converged=note is None)
            info["truncation_reason"] = failure
            if note is not None:
                info["solver_message"] = note
            return self._obs(self._state), 0.0, False, True, info
        self._set(state)
        reward = prev - self._loss
        success = self.task.success(self.sim, state)
        # the task's horizon ends the episode even when the registered TimeLimit is
        # longer (e.g. gym.make(..., horizon=20))
        truncated = state.step - self._start.step >= self.horizon
        info = self._info(state, converged=note is None)
        if note is not None:
            info["solver_message"] = note
        return self._obs(state), float(reward), bool(success), bool(truncated), info

    def render(self):
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from diffsim.render import Renderer

            self._renderer = Renderer(width=256, height=256)
        state = self._state if self._state is not None else self.sim.reset()
        return self._renderer.render(self.sim, state, **self.task.render_options(self.sim))

    def close(self):
        if not self._closed:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
            cache.release(self.task)
            self._closed = True

    # ------------------------------------------------------------------ planners
    def rollout_loss(self, actions: torch.Tensor, state: ds.State | None = None,
                     segment: int | None = None, *, weights=None) -> torch.Tensor:
        """Task objective of the rollout of ``actions`` from ``state``; differentiable.

        Args:
            actions: (T, act_dim) normalised actions (T is usually ``horizon``);
                values are used as given (no clipping, so gradients are exact).
            state: start state (default: the state of the last ``reset``).
            segment: checkpoint segment length (steps) of ``ds.CheckpointAdjoint``
                (default: ``sim.default_segment(T)``, the whole rollout when it fits in
                the simulator's memory budget, so the backward pass recomputes nothing).
            weights: how the trajectory is weighted: None or ``"final"`` (the objective
                of the final state: the default), ``"sum"`` / ``"mean"`` (the task's
                ``step_loss`` summed / averaged over the T states after each action), or
                a (T,) tensor ``w``: ``sum_t w[t] * step_loss(state after t + 1
                actions)``. The rollout stops after the last nonzero weight, so a
                truncated horizon (``dss.ExpandingHorizon``) is also cheaper.

        Returns:
            A scalar tensor with a graph to ``actions``, the task parameters and
            ``state``.
        """
        state = self._start if state is None else state
        if state is None:
            raise RuntimeError("call reset() (or pass state=) before rollout_loss()")
        if not torch.is_tensor(actions):
            actions = torch.as_tensor(np.asarray(actions), dtype=self.sim.dtype)
        if actions.ndim != 2 or actions.shape[1] != self.act_dim:
            raise ValueError(f"actions has shape {tuple(actions.shape)}; expected (T, "
                             f"{self.act_dim})")
        if not torch.isfinite(actions).all():
            raise ValueError("actions holds non-finite values")
        w = self._step_weights(weights, len(actions), actions)
        nz = None if w is None else torch.nonzero(w).flatten()
        # actions after the last weighted state cannot change the loss
        n = len(actions) if nz is None else (int(nz[-1]) + 1 if len(nz) else 0)
        if segment is None:
            segment = self.sim.default_segment(max(n, 1))
        if w is None:
            prob = ds.SimulationProblem(self.sim, controls=self._physical(actions), state0=state)
            sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=min(segment,
                                                                            len(actions))))
            return self.task.objective(self.sim, sol.u[-1])
        if n == 0:
            return actions.sum() * 0.0
        prob = ds.SimulationProblem(self.sim, controls=self._physical(actions[:n]), state0=state)
        sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=min(segment, n)),
                       saveat=[int(t) + 1 for t in nz])
        terms = [w[t].to(self.sim.dtype) * self.task.step_loss(self.sim, s, int(t) + 1)
                 for t, s in zip(nz, sol.u)]
        return torch.stack(terms).sum()

    @staticmethod
    def _step_weights(weights, T: int, actions: torch.Tensor) -> torch.Tensor | None:
        """``weights`` of ``rollout_loss`` as a (T,) tensor, or None for the final state."""
        if weights is None or (isinstance(weights, str) and weights == "final"):
            return None
        if isinstance(weights, str):
            from diffsim.solvers import step_weights

            return step_weights(weights, T, dtype=torch.float64)
        w = torch.as_tensor(weights).detach()
        if w.shape != (T,) or not w.is_floating_point():
            raise ValueError(f"weights must be 'final', 'sum', 'mean' or a real ({T},) tensor "
                             f"(one weight per action), got {weights!r:.80}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError("weights holds non-finite values")
        return w.to(torch.float64)

    def get_state(self) -> ds.State:
        """A copy of the current simulator state (for planners and MPC)."""
        if self._state is None:
            raise RuntimeError("call reset() before get_state()")
        return self._state.clone()

    def set_state(self, state: ds.State) -> None:
        """Continue the episode from ``state`` (as returned by ``get_state``)."""
        self.sim.validate_state(state)
        self._set(state.clone())

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        d = {k: v for k, v in self.__dict__.items() if k not in ("sim", "_renderer")}
        d["_closed"] = True  # the copy acquires its own simulator on unpickling
        return copy.copy(d)

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.sim = cache.acquire(self.task)
        self._renderer = None
        self._closed = False
