"""``Task``: what a manipulation task is, as data plus a small class.

A task says how to build its scene, how normalised actions in [-1, 1] map to the
simulator's tool velocities (``action_map``), what the agent observes, the
differentiable loss of a state, and when the task is solved. ``DiffSimEnv``
turns any task into a Gymnasium environment; rewards are the decrease of the
task's objective per step, so an episode's return is ``objective(start) -
objective(end)`` and ``rollout_loss`` differentiates exactly the quantity RL maximises.

The objective is ``loss`` plus the framework's contact-seeking term for the
``contacts`` a task declares (``envs/contact.py``); ``goal_loss`` (the success metric)
never includes that term. ``step_loss`` is the per-step loss of temporal weightings
(``rollout_loss(actions, weights="sum")``), and ``recipe`` says how ``diffsim solve
--method auto`` optimises the task (``envs/recipe.py``).
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import numpy as np
import torch

import diffsim as ds

from .contact import contact_shaping
from .recipe import Recipe, default_recipe


class Task(abc.ABC):
    """Base of all tasks (abstract).

    Subclasses set ``name``, ``version``, ``defaults`` (every option with its
    default; ``horizon`` and ``grid_res`` at least) and implement
    ``build_scene``, ``action_map`` and ``loss``. Options given to the
    environment (``gym.make("diffsim/Pour-v1", grid_res=32)``) override defaults.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 0
    defaults: ClassVar[dict] = {}
    #: loss below which ``success`` is true (tasks may override ``success``)
    success_threshold: ClassVar[float] = 0.0
    #: particles per body in the observation (a fixed random subset)
    obs_particles: ClassVar[int] = 16
    #: ``(tool name, body name)`` pairs: tools that must reach those bodies. The framework
    #: adds ``contact_weight * sum max(gap - contact_tolerance, 0)^2 / contact_scale^2``
    #: (``gap``: the tool surface's distance to the body's nearest point) to the
    #: objective; the term is zero once every tool touches its body.
    contacts: ClassVar[tuple] = ()
    #: length (m) at which one pair's contact term is ``contact_weight``
    contact_scale: ClassVar[float] = 0.01
    #: gap (m) that already counts as contact (e.g. the soft-contact width of ds.MPM tools)
    contact_tolerance: ClassVar[float] = 0.0
    #: weight of the contact term
    contact_weight: ClassVar[float] = 1.0
    #: how ``diffsim solve --method auto`` optimises the task (None: ``default_recipe``)
    recipe: ClassVar[Recipe | None] = None

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for task {self.name}; allowed: "
                             f"{sorted(self.defaults)}")
        self.options = {**self.defaults, **options}
        for key in ("horizon", "grid_res"):
            v = self.options.get(key)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{key}={v!r} is not allowed: it must be an int >= 1")

    # ------------------------------------------------------------------ spec
    @property
    def horizon(self) -> int:
        return int(self.options["horizon"])

    @abc.abstractmethod
    def build_scene(self) -> ds.Scene:
        """The scene (bodies, tools, colliders) of the task."""

    def sim_kwargs(self) -> dict:
        """Arguments of ``ds.MPM`` besides the scene."""
        return {"grid_res": self.options["grid_res"], "dt": self.options.get("dt", 1e-3),
                "substeps": self.options.get("substeps", 10)}

    def build_sim(self) -> ds.MPM:
        return ds.MPM(self.build_scene(), **self.sim_kwargs())

    def cache_key(self) -> tuple:
        """Tasks with equal keys share one compiled simulator in a process."""
        build = {k: v for k, v in self.options.items() if k not in self.episode_options}
        return (self.name, self.version, tuple(sorted(build.items())))

    #: options that change episodes but not the simulator (horizon, targets, ...)
    episode_options: ClassVar[tuple] = ("horizon",)

    @abc.abstractmethod
    def action_map(self, sim: ds.MPM) -> torch.Tensor:
        """(act_dim, sim.action_dim) matrix: tool velocities = action @ action_map."""

    # ------------------------------------------------------------------ episodes
    def initial_state(self, sim: ds.MPM, rng: np.random.Generator) -> ds.State:
        """The start state of an episode (may use ``rng`` for variation)."""
        return sim.reset()

    @abc.abstractmethod
    def loss(self, sim: ds.MPM, state: ds.State) -> torch.Tensor:
        """Differentiable scalar loss of a state (lower is better)."""

    def goal_loss(self, sim: ds.MPM, state: ds.State) -> torch.Tensor:
        """The success metric: the loss without any shaping terms (default: ``loss``).

        Tasks whose ``loss`` adds a shaping term (e.g. the distance of a tool to the
        object, so the loss is not flat before contact) override this with the unshaped
        part; ``success`` and the results tables use it.
        """
        return self.loss(sim, state)

    def success(self, sim: ds.MPM, state: ds.State) -> bool:
        return bool(float(self.goal_loss(sim, state)) < self.success_threshold)

    def render_options(self, sim) -> dict:
        """Keyword arguments of ``ds.render.Renderer.render`` that ``env.render()`` uses
        (a ``camera``, ``colors``, ``tactile_image``); default none: the renderer frames
        the scene itself."""
        return {}

    def shaping(self, sim: ds.MPM, state: ds.State) -> torch.Tensor:
        """The contact-seeking term of the declared ``contacts`` (0 without any)."""
        if not self.contacts:
            return state.x.new_zeros(())
        return contact_shaping(sim, state, self.contacts, self.contact_scale,
                               self.contact_tolerance, self.contact_weight)

    def objective(self, sim: ds.MPM, state: ds.State) -> torch.Tensor:
        """What rewards and ``rollout_loss`` use: ``loss + shaping`` (a scalar tensor)."""
        out = self.loss(sim, state)
        return out + self.shaping(sim, state) if self.contacts else out

    def step_loss(self, sim: ds.MPM, state: ds.State, t: int) -> torch.Tensor:
        """Loss of the state after ``t`` control steps (1-based), used by temporal
        weightings of ``rollout_loss``; default: ``objective``. Tasks may override it (a
        time-varying target, a running cost)."""
        return self.objective(sim, state)

    def solve_recipe(self) -> Recipe:
        """The task's ``recipe``, or ``default_recipe`` when it declares none."""
        return self.recipe if self.recipe is not None else default_recipe()

    # ------------------------------------------------------------------ observations
    def _obs_indices(self, sim: ds.MPM) -> list:
        rng = np.random.default_rng(1234)
        out = []
        for sl in sim.groups.values():
            n = sl.stop - sl.start
            k = min(self.obs_particles, n)
            out.append(torch.as_tensor(np.sort(rng.choice(n, k, replace=False)) + sl.start))
        return out

    def observe(self, sim: ds.MPM, state: ds.State) -> torch.Tensor:
        """Tool poses, then per body: centroid, spread (std) and a fixed particle subset."""
        if not hasattr(self, "_obs_idx"):
            self._obs_idx = self._obs_indices(sim)
        parts = [state.tool_pos.reshape(-1), state.tool_rot.reshape(-1)]
        for sl, idx in zip(sim.groups.values(), self._obs_idx):
            x = state.x[sl]
            parts += [x.mean(0), x.std(0), state.x[idx].reshape(-1)]
        return torch.cat(parts)

    def observation_bounds(self, sim: ds.MPM) -> tuple[np.ndarray, np.ndarray]:
        """Bounds matching ``observe`` (observations are clipped into them)."""
        lo, hi = sim.scene.bounds[:, 0], sim.scene.bounds[:, 1]
        ext = hi - lo
        K, d = len(sim.model.tools), sim.dim
        r = 1 if d == 2 else 4
        rot_lim = 4 * math.pi if d == 2 else 1.0
        low = [np.tile(lo - ext, K), np.full(K * r, -rot_lim)]
        high = [np.tile(hi + ext, K), np.full(K * r, rot_lim)]
        for sl in sim.groups.values():
            k = min(self.obs_particles, sl.stop - sl.start)
            low += [lo, np.zeros(d), np.tile(lo, k)]
            high += [hi, ext, np.tile(hi, k)]
        return np.concatenate(low).astype(np.float32), np.concatenate(high).astype(np.float32)


def velocity_map(sim: ds.MPM, tool_dofs: list[tuple[int, int, float]]) -> torch.Tensor:
    """Build an action map from ``(tool index, dof within tool, max speed)`` triples.

    Tool dofs are ``0..d-1`` linear (m/s) and then angular (rad/s). Action ``i``
    drives the ``i``-th triple at up to its max speed.
    """
    per_tool = sim.dim + (1 if sim.dim == 2 else 3)
    A = torch.zeros(len(tool_dofs), sim.action_dim, dtype=sim.dtype)
    for i, (tool, dof, vmax) in enumerate(tool_dofs):
        A[i, tool * per_tool + dof] = vmax
    return A


def gripper_map(sim: ds.MPM, fingers: tuple[int, int], speed: float, close: float,
                axis: int = 1) -> torch.Tensor:
    """The action map of a parallel gripper made of two tools: ``(d + 1, sim.action_dim)``.

    Actions ``0 .. d-1`` move both fingers together at up to ``speed`` (m/s) along each
    axis; action ``d`` closes them towards each other along ``axis`` at up to ``close``
    (m/s) each (negative: opens), ``fingers[0]`` moving towards ``-axis`` and
    ``fingers[1]`` towards ``+axis``. A grip then holds while the pair moves, which with
    one velocity per finger needs the fingers' speeds to agree all along a plan.
    """
    first, second = fingers
    return (velocity_map(sim, [(first, k, speed) for k in range(sim.dim)] + [(first, axis, -close)])
            + velocity_map(sim, [(second, k, speed) for k in range(sim.dim)] + [(second, axis, close)]))
