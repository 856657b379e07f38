"""``ds.MPM``: a differentiable MLS-MPM simulator built from a ``ds.Scene``.

Usage::

    sim = ds.MPM(scene, grid_res=128, dt=2e-4, substeps=10)
    state = sim.reset()
    state = sim.step(state, action)          # action: (sim.action_dim,)
    sol = ds.solve(ds.SimulationProblem(sim, controls=U), sensealg=ds.CheckpointAdjoint(32))
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import runtime
from ..adjoint import Rollout, RolloutPlan, checkpointing, save_steps
from ..scene import Scene
from ..simulator import Simulator
from ..state import State
from ..tools import ToolSpec, shape_geometry, tool_trajectory
from .constitutive import model_for
from .engine import STATE_NAMES, MPMEngine
from .model import ColliderGrid, GroupSpec, MPMModel

#: control steps the first engine holds when memory allows (see ``MPM._engine_for``)
DEFAULT_SEGMENT = 16


class MPM(Simulator):
    """Moving least squares MPM (Hu et al. 2018) with APIC transfers, 2D and 3D.

    Args:
        scene: what to simulate (bodies, tools, colliders, walls).
        grid_res: grid cells along the longest domain axis (>= 8).
        dt: substep length (s); must satisfy the CFL bound ``dx / c`` of every
            material (``c`` its wave speed).
        substeps: substeps per control step (>= 1); a control step lasts
            ``dt * substeps`` seconds and applies one action.
        ppc: default particles per cell for bodies that do not set their own.
        bound: thickness of the wall layer in grid cells (>= 3).
        seed: seed of the particle jitter.
        contact_skin: thickness, in grid cells, of a layer around tools and
            colliders where grid nodes get the full contact projection (default
            0.5). Without it, material pressed against a tool seeps into walls
            thinner than about three cells; see ``diffsim/mpm/contact.py``.
        memory_budget_mb: memory the simulator may allocate up front for a
            checkpoint segment and its gradients (default 256 MiB). Within it the
            first use allocates room for 16 control steps with gradient fields, so
            later gradient rollouts do not recompile the kernels.

    Attributes:
        action_dim: tool degrees of freedom (per tool: linear velocity, dim
            entries, then angular velocity, 1 in 2D / 3 in 3D; m/s and rad/s).
        n_particles: number of particles.
        dim: spatial dimension (2 or 3).
        dx: grid spacing (m).
        dt: substep length (s).
        substeps: substeps per control step.
        groups: body name -> slice of its particles.

    Raises:
        ValueError: bad arguments, bodies outside the domain, ``dt`` above the
            stability bound.
    """

    def __init__(self, scene: Scene, grid_res: int = 64, dt: float = 1e-4, substeps: int = 10,
                 ppc: float | None = None, bound: int = 3, seed: int = 0,
                 memory_budget_mb: float = 256.0, contact_skin: float = 0.5):
        if not isinstance(scene, Scene):
            raise TypeError(f"scene must be a ds.Scene, got {type(scene).__name__}")
        if not (isinstance(grid_res, int) and grid_res >= 8):
            raise ValueError(f"grid_res={grid_res!r} is not allowed: it must be an int >= 8")
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt={dt!r} is not allowed: it must be a number > 0")
        if not (isinstance(substeps, int) and substeps >= 1):
            raise ValueError(f"substeps={substeps!r} is not allowed: it must be an int >= 1")
        if not (isinstance(bound, int) and bound >= 3):
            raise ValueError(f"bound={bound!r} is not allowed: it must be an int >= 3")
        if not scene.bodies:
            raise ValueError("scene has no particles: call scene.add_particles(...) first")
        self.cfg = runtime.ensure_init()
        self.scene = scene
        self.dim = d = scene.dim
        extent = scene.bounds[:, 1] - scene.bounds[:, 0]
        self.dx = dx = float(extent.max() / grid_res)
        origin = scene.bounds[:, 0]
        grid_shape = tuple(int(round(e / dx)) + 1 for e in extent)
        self.dt, self.substeps = float(dt), int(substeps)
        self.memory_budget_mb = float(memory_budget_mb)

        default_ppc = ppc if ppc is not None else 2.0 ** d
        rng = np.random.default_rng(seed)
        positions, velocities, groups = [], [], []
        lo_ok = origin + bound * dx
        hi_ok = origin + (np.asarray(grid_shape) - 1 - bound) * dx
        start = 0
        # bodies whose model needs an SVD come first, so one loop serves them all
        bodies = sorted(scene.bodies, key=lambda b: not model_for(b.material).needs_svd)
        for body in bodies:
            spacing = dx / (body.ppc or default_ppc) ** (1.0 / d)
            pts = body.shape.sample(spacing, rng=rng, jitter=body.jitter)
            if len(pts) == 0:
                raise ValueError(f"body {body.name!r} holds no particle at spacing {spacing:.3g} m:"
                                 " enlarge it or raise grid_res/ppc")
            if np.any(pts < lo_ok) or np.any(pts > hi_ok):
                raise ValueError(
                    f"body {body.name!r} reaches outside the simulation domain: its particles "
                    f"span {pts.min(0).round(4).tolist()}..{pts.max(0).round(4).tolist()} but must "
                    f"lie within {lo_ok.round(4).tolist()}..{hi_ok.round(4).tolist()} (the "
                    f"bounds minus {bound} wall cells)")
            mat = body.material
            c = mat.wave_speed()
            dt_max = dx / c
            if dt > dt_max:
                raise ValueError(
                    f"dt={dt:g} s is above the stability bound for body {body.name!r}: "
                    f"dt <= dx / c = {dx:.4g} / {c:.4g} = {dt_max:.3g} s ({type(mat).__name__} "
                    "wave speed c); lower dt or raise substeps")
            speed = float(np.linalg.norm(body.velocity))
            if speed * dt > dx:
                raise ValueError(f"velocity={body.velocity} of body {body.name!r} moves more than "
                                 f"one cell per substep; dt must be below {dx / speed:.3g} s")
            vol = spacing ** d
            groups.append(GroupSpec(body.name, mat, model_for(mat), start, start + len(pts),
                                    vol, mat.density * vol))
            positions.append(pts)
            velocities.append(np.broadcast_to(np.asarray(body.velocity), pts.shape))
            start += len(pts)

        tools = []
        for t in scene.tools:
            width = dx if t.contact_width is None else t.contact_width
            tools.append(ToolSpec.of(t, shape_geometry(t.shape), width))

        colliders = self._bake_colliders(scene, origin, dx, grid_shape) if scene.colliders else None
        self.model = MPMModel(
            dim=d, origin=tuple(map(float, origin)), dx=dx, grid_shape=grid_shape, dt=self.dt,
            substeps=self.substeps, bound=bound, gravity=scene.gravity, groups=tuple(groups),
            tools=tuple(tools), colliders=colliders, walls=scene.walls,
            wall_friction=scene.wall_friction, contact_skin=float(contact_skin) * dx)
        self._x0 = np.concatenate(positions)
        self._v0 = np.concatenate(velocities)
        self.groups = {g.name: slice(g.start, g.end) for g in groups}
        self._engine: MPMEngine | None = None
        self._open()

    # ------------------------------------------------------------------ build helpers
    @staticmethod
    def _bake_colliders(scene, origin, dx, grid_shape) -> ColliderGrid:
        sdfs = np.stack([c.shape.sdf_grid(origin, dx, grid_shape) for c in scene.colliders])
        which = np.argmin(sdfs, axis=0)
        sdf = np.take_along_axis(sdfs, which[None], 0)[0]
        normal = np.stack(np.gradient(sdf, dx), axis=-1)
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
        friction = np.asarray([c.friction for c in scene.colliders])[which]
        return ColliderGrid(sdf=sdf, normal=normal, friction=friction, contact_width=0.0)

    # ------------------------------------------------------------------ properties
    @property
    def n_particles(self) -> int:
        return self.model.n_particles

    @property
    def action_dim(self) -> int:
        return self.model.action_dim

    @property
    def state_spec(self) -> dict[str, tuple]:
        n, d, k = self.n_particles, self.dim, len(self.model.tools)
        return {"x": (n, d), "v": (n, d), "C": (n, d, d), "F": (n, d, d), "Jp": (n,),
                "tool_pos": (k, d), "tool_rot": (k, 1 if d == 2 else 4)}

    # ------------------------------------------------------------------ parameters
    def param_names(self) -> list[str]:
        """Names accepted in ``SimulationProblem(params=...)``.

        ``"<body>.<param>"`` for one body, ``"<param>"`` for every body that has it;
        tools: ``"<tool>.friction"`` or ``"friction"`` for all tools.
        """
        names = []
        for g in self.model.groups:
            names += [f"{g.name}.{p}" for p in g.material.param_names]
        shared = sorted({p for g in self.model.groups for p in g.material.param_names})
        names += shared
        if self.model.tools:
            names += [f"{t.name}.friction" for t in self.model.tools] + ["friction"]
        return names

    def internal_params(self, params: dict | None = None):
        """Map user parameters to the kernels' arrays ``(material (G, 6), friction (K,))``.

        Differentiable (torch) in every given parameter. Unknown names raise ``ValueError``.
        """
        params = dict(params or {})
        allowed = set(self.param_names())
        for key, val in params.items():
            if key not in allowed:
                raise ValueError(f"params has unknown name {key!r}; allowed: {sorted(allowed)}")
            if not torch.is_tensor(val):
                params[key] = torch.tensor(float(val), dtype=self.dtype)
            if params[key].numel() != 1 or not torch.isfinite(params[key]).all():
                raise ValueError(f"params[{key!r}]={val!r} is not allowed: expected a finite "
                                 "scalar")
        rows = []
        for g in self.model.groups:
            vals = {}
            for p in g.material.param_names:
                v = params.get(f"{g.name}.{p}", params.get(p))
                vals[p] = v.reshape(()) if v is not None else torch.tensor(
                    float(getattr(g.material, p)), dtype=self.dtype)
            try:
                g.material.validate_values({k: v for k, v in vals.items()})
            except ValueError as e:
                raise ValueError(f"params for body {g.name!r}: {e}") from None
            rows.append(g.material.internal(vals).to(device=self.device, dtype=self.dtype))
        material = torch.stack(rows)
        fr = []
        for t in self.model.tools:
            v = params.get(f"{t.name}.friction", params.get("friction"))
            if v is not None and float(v.detach()) < 0:
                raise ValueError(f"friction of tool {t.name!r} must be >= 0, got {float(v)}")
            fr.append(v.reshape(()).to(self.dtype) if v is not None else torch.tensor(
                t.friction, dtype=self.dtype))
        friction = torch.stack(fr).to(self.device) if fr else torch.zeros(
            1, dtype=self.dtype, device=self.device)
        return material, friction

    # ------------------------------------------------------------------ states
    def reset(self) -> State:
        """The initial state built from the scene."""
        self._check_open()
        n, d = self.n_particles, self.dim
        kw = {"dtype": self.dtype, "device": self.device}
        x = torch.as_tensor(self._x0, **kw).clone()
        v = torch.as_tensor(self._v0, **kw).clone()
        eye = torch.eye(d, **kw).expand(n, d, d).clone()
        tools = self.model.tools
        tool_pos = torch.tensor([t.position for t in tools], **kw).reshape(len(tools), d)
        tool_rot = torch.tensor([t.rotation for t in tools], **kw).reshape(
            len(tools), 1 if d == 2 else 4)
        return State(0.0, 0, x=x, v=v, F=eye, C=torch.zeros(n, d, d, **kw),
                     Jp=torch.ones(n, **kw), tool_pos=tool_pos, tool_rot=tool_rot)

    # ------------------------------------------------------------------ engines
    def _affordable_steps(self) -> int:
        """Control steps of substep slots, with their gradients, within memory_budget_mb."""
        d, itemsize = self.dim, torch.finfo(self.dtype).bits // 8
        slot_bytes = self.n_particles * (2 * d + 2 * d * d + 1) * itemsize
        step_bytes = 2 * slot_bytes * self.substeps  # values and gradients
        return int(self.memory_budget_mb * 2 ** 20 // max(step_bytes, 1))

    def default_segment(self, n_steps: int) -> int:
        """Checkpoint segment for a gradient through ``n_steps`` steps: the whole rollout
        when its substeps fit in ``memory_budget_mb`` (no recomputation in the backward
        pass), else as many steps as fit (at least 1)."""
        return max(1, min(n_steps, self._affordable_steps()))

    def _engine_for(self, segment: int, requires_grad: bool) -> MPMEngine:
        self._check_open()
        if requires_grad:
            runtime.check_autodiff("MPM")
        e = self._engine
        if e is not None and e.segment >= segment and (e.requires_grad or not requires_grad):
            return e
        if e is not None:
            segment = max(segment, e.segment)
            requires_grad = requires_grad or e.requires_grad
            e.close()
        # A new engine recompiles every kernel (seconds), so size the first one for
        # likely later use: at least DEFAULT_SEGMENT steps and gradient fields, as far
        # as they fit in memory_budget_mb.
        affordable = self._affordable_steps()
        segment = max(segment, min(DEFAULT_SEGMENT, affordable))
        requires_grad = requires_grad or segment <= affordable
        self._engine = MPMEngine(self.model, segment, requires_grad, self.dtype, self.device)
        return self._engine

    # ------------------------------------------------------------------ simulate
    def rollout(self, state: State, controls: torch.Tensor, params: dict | None = None,
                segment: int | None = None, saveat=None, check: bool = True,
                sensealg=None) -> list[State]:
        """Simulate ``T = len(controls)`` steps from ``state``; differentiable in torch.

        Args:
            state: start state.
            controls: (T, action_dim) tool velocities per control step.
            params: differentiable parameters (see ``param_names``).
            segment: checkpoint segment length in steps, short for
                ``sensealg=ds.CheckpointAdjoint(segment=K)`` (default
                ``default_segment(T)``: as many as fit in ``memory_budget_mb``).
            saveat: control-step indices in ``[0, T]`` to return (default ``[T]``).
            check: raise ``SimulationError`` on non-finite values / CFL violations.
            sensealg: how gradients are computed: ``ds.CheckpointAdjoint(segment=K)``.

        Returns:
            The states at ``saveat``; gradients flow to ``state``, ``controls``
            and ``params`` when they require grad.
        """
        state = self.validate_state(state)
        U = self.validate_controls(controls)
        T = U.shape[0]
        saveat = save_steps(saveat, T)
        sensealg = checkpointing(self.default_segment(T), segment, sensealg)
        material, friction = self.internal_params(params)
        drive, poses = tool_trajectory(self.model, U, state.tool_pos, state.tool_rot)
        state0 = [state[n].to(self.dtype) for n in STATE_NAMES]
        plan = RolloutPlan(engine_for=self._engine_for, n_steps=T, saveat=tuple(saveat),
                           n_state=len(state0), n_drive=len(drive), check=check, step0=state.step)
        outs = sensealg.run(Rollout(plan, tuple(state0), tuple(drive), (material, friction)))
        S = self.substeps
        states = []
        for i, step in enumerate(saveat):
            tp, tr = poses(step * S)
            states.append(State(state.time + step * self.control_dt, state.step + step,
                                **{n: o[i] for n, o in zip(STATE_NAMES, outs)},
                                tool_pos=tp, tool_rot=tr))
        return states

    def _release(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __repr__(self) -> str:
        return (f"MPM(dim={self.dim}, particles={self.n_particles}, grid={self.model.grid_shape}, "
                f"dt={self.dt:g}, substeps={self.substeps}, tools={len(self.model.tools)})")
