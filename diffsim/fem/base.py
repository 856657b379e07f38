"""What ``ds.FEM`` and ``ds.Shell`` share: parameters, states, rollouts, equilibrium.

Both are functional simulators (``diffsim.simulator.Simulator``): ``reset`` builds the
initial ``ds.State``, ``step``/``rollout`` map states and controls to new states, and
gradients flow through ``diffsim.adjoint``'s checkpointed rollout to the controls
(tool velocities), the start state and the parameters (materials, damping, friction).
"""

from __future__ import annotations

import math

import torch

from .. import runtime
from ..adjoint import CheckpointAdjoint, Rollout, RolloutPlan, checkpointing, save_steps
from ..errors import ConvergenceError
from ..implicit import ImplicitLinearization, implicit_solution
from ..scene import Scene
from ..simulator import Simulator
from ..state import State
from ..tools import ToolSpec, obstacle_geometry, tool_trajectory
from .engine import DeformableEngine, SolverOptions, SolverStats
from .model import ColliderSpec

INTEGRATORS = ("implicit", "explicit")


def _positive(name, value, integer=False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not (ok and math.isfinite(value) and value > 0):
        kind = "an int >= 1" if integer else "a finite number > 0"
        raise ValueError(f"{name}={value!r} is not allowed: it must be {kind}")
    return value


class DeformableSimulator(Simulator):
    """Base of ``FEM`` and ``Shell`` (abstract)."""

    kernels_cls: type
    engine_cls: type = DeformableEngine
    STATE_NAMES: tuple = ("x", "v")

    # ------------------------------------------------------------------ construction
    def _common_args(self, scene, dt, substeps, integrator, contact_stiffness, friction_eps,
                     newton_tol, cg_tol, max_newton, max_cg, adjoint_tol):
        if not isinstance(scene, Scene):
            raise TypeError(f"scene must be a ds.Scene, got {type(scene).__name__}")
        _positive("dt", dt)
        _positive("substeps", substeps, integer=True)
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator={integrator!r} is not allowed: expected one of "
                             f"{INTEGRATORS}")
        _positive("contact_stiffness", contact_stiffness)
        _positive("friction_eps", friction_eps)
        for name, val in (("newton_tol", newton_tol), ("cg_tol", cg_tol),
                          ("adjoint_tol", adjoint_tol)):
            _positive(name, val)
        _positive("max_newton", max_newton, integer=True)
        _positive("max_cg", max_cg, integer=True)
        self.cfg = runtime.ensure_init()
        self.scene = scene
        self.dim = scene.dim
        self.dt, self.substeps = float(dt), int(substeps)
        self.integrator = integrator

    def _obstacles(self, scene, default_width):
        tools = []
        for t in scene.tools:
            width = default_width if not t.contact_width else t.contact_width
            tools.append(ToolSpec.of(t, obstacle_geometry(t.shape), width))
        colliders = []
        for c in scene.colliders:
            kind, geom, axis = obstacle_geometry(c.shape)
            colliders.append(ColliderSpec(c.name, kind, geom, axis,
                                          tuple(map(float, c.shape.center)), c.friction))
        return tuple(tools), tuple(colliders)

    def _finish(self, model, options: SolverOptions):
        self.model = model
        self.options = options
        self.stats = SolverStats()
        self._engine: DeformableEngine | None = None
        self._open()

    # ------------------------------------------------------------------ properties
    @property
    def n_nodes(self) -> int:
        return self.model.n_nodes

    @property
    def action_dim(self) -> int:
        return self.model.action_dim

    @property
    def rest_positions(self) -> torch.Tensor:
        """(N, dim) rest positions of the nodes (m)."""
        return torch.as_tensor(self.model.x0, dtype=self.dtype, device=self.device)

    @property
    def masses(self) -> torch.Tensor:
        """(N,) lumped node masses (kg)."""
        return torch.as_tensor(self.model.mass, dtype=self.dtype, device=self.device)

    @property
    def fixed(self) -> torch.Tensor:
        """(N,) bool: pinned nodes."""
        return torch.as_tensor(self.model.fixed, device=self.device)

    @property
    def state_spec(self) -> dict[str, tuple]:
        n, d, k = self.n_nodes, self.dim, len(self.model.tools)
        return {"x": (n, d), "v": (n, d), "tool_pos": (k, d),
                "tool_rot": (k, 1 if d == 2 else 4)}

    def solver_stats(self, reset: bool = False) -> dict:
        """Steps, Newton and CG iteration counts (forward and adjoint) since the last reset."""
        out = self.stats.as_dict()
        if reset:
            self.stats.__init__()
        return out

    # ------------------------------------------------------------------ parameters
    def _group_param_names(self, group) -> tuple:
        return tuple(group.material.param_names) + ("damping_alpha", "damping_beta")

    def _contact_names(self) -> list[str]:
        names = [t.name for t in self.model.tools] + [c.name for c in self.model.colliders]
        if self.model.ground is not None:
            names.append("ground")
        return names

    def param_names(self) -> list[str]:
        """Names accepted in ``SimulationProblem(params=...)``.

        ``"<body>.<param>"`` for one body or ``"<param>"`` for all bodies that have it
        (material parameters such as ``E``, ``nu``; ``damping_alpha``, ``damping_beta``);
        ``"<tool>.friction"``, ``"<collider>.friction"``, ``"ground.friction"`` or
        ``"friction"`` for every obstacle.
        """
        names = []
        for g in self.model.groups:
            names += [f"{g.name}.{p}" for p in self._group_param_names(g)]
        names += sorted({p for g in self.model.groups for p in self._group_param_names(g)})
        contacts = self._contact_names()
        if contacts:
            names += [f"{c}.friction" for c in contacts] + ["friction"]
        return names

    def _scalar_params(self, params: dict | None) -> dict:
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
            params[key] = params[key].reshape(()).to(self.dtype)
        return params

    def _pick(self, params, group, name, default):
        v = params.get(f"{group.name}.{name}", params.get(name))
        return v if v is not None else torch.tensor(float(default), dtype=self.dtype)

    def _damping_values(self, params, g):
        alpha = self._pick(params, g, "damping_alpha", g.alpha)
        beta = self._pick(params, g, "damping_beta", g.beta)
        for name, v in (("damping_alpha", alpha), ("damping_beta", beta)):
            if float(v.detach()) < 0:
                raise ValueError(f"params for body {g.name!r}: {name}={float(v)} is not allowed: "
                                 "it must be >= 0")
        return alpha, beta

    def _friction_values(self, params) -> torch.Tensor:
        vals = []
        obstacles = list(self.model.tools) + list(self.model.colliders)
        names = self._contact_names()
        defaults = [o.friction for o in obstacles]
        if self.model.ground is not None:
            defaults.append(self.model.ground.friction)
        for name, default in zip(names, defaults):
            v = params.get(f"{name}.friction", params.get("friction"))
            if v is not None and float(v.detach()) < 0:
                raise ValueError(f"friction of {name!r} must be >= 0, got {float(v)}")
            vals.append(v if v is not None else torch.tensor(float(default), dtype=self.dtype))
        if not vals:
            return torch.zeros(1, dtype=self.dtype, device=self.device)
        return torch.stack(vals).to(self.device)

    # ------------------------------------------------------------------ states
    def _tool_state(self):
        kw = {"dtype": self.dtype, "device": self.device}
        tools, d = self.model.tools, self.dim
        pos = torch.tensor([t.position for t in tools], **kw).reshape(len(tools), d)
        rot = torch.tensor([t.rotation for t in tools], **kw).reshape(len(tools),
                                                                       1 if d == 2 else 4)
        return pos, rot

    def reset(self) -> State:
        """The initial state: rest positions and the bodies' initial velocities."""
        self._check_open()
        kw = {"dtype": self.dtype, "device": self.device}
        pos, rot = self._tool_state()
        return State(0.0, 0, x=torch.as_tensor(self.model.x0, **kw).clone(),
                     v=torch.as_tensor(self.model.v0, **kw).clone(), tool_pos=pos, tool_rot=rot,
                     **self._extra_state())

    def _extra_state(self) -> dict:
        return {}

    # ------------------------------------------------------------------ engines
    def _engine_for(self, segment: int, requires_grad: bool) -> DeformableEngine:
        self._check_open()
        if requires_grad:
            runtime.check_autodiff(type(self).__name__)
        e = self._engine
        if e is not None and e.segment >= segment and (e.requires_grad or not requires_grad):
            return e
        if e is not None:
            # grow geometrically: every new engine recompiles all kernels
            segment = max(segment, 2 * e.segment if segment > e.segment else e.segment)
            requires_grad = requires_grad or e.requires_grad
            e.close()
        self._engine = self.engine_cls(self.kernels_cls, self.model, segment, requires_grad,
                                       self.dtype, self.device, self.options, self.stats)
        return self._engine

    # ------------------------------------------------------------------ simulate
    def rollout(self, state: State, controls: torch.Tensor, params: dict | None = None,
                segment: int | None = None, saveat=None, check: bool = True,
                sensealg=None) -> list[State]:
        """Simulate ``T = len(controls)`` control steps from ``state``; differentiable.

        Args:
            state: start state.
            controls: (T, action_dim) tool velocities per control step (m/s, rad/s).
            params: differentiable parameters by name (``param_names()``).
            segment: checkpoint segment length in steps, short for
                ``sensealg=ds.CheckpointAdjoint(segment=K)`` (default ``min(T, 32)``).
            saveat: control-step indices in ``[0, T]`` to return (default ``[T]``).
            check: raise ``ds.SimulationError`` on non-finite values or a Newton solve
                that did not converge.
            sensealg: how gradients are computed: ``ds.CheckpointAdjoint(segment=K)``.

        Returns:
            States at ``saveat``; gradients reach ``state``, ``controls`` and ``params``.
        """
        state = self.validate_state(state)
        U = self.validate_controls(controls)
        sensealg = checkpointing(self.default_segment(U.shape[0]), segment, sensealg)
        return self._simulate(state, U, params, sensealg, saveat, check)

    def _simulate(self, state: State, U: torch.Tensor, params, sensealg: CheckpointAdjoint, saveat,
                  check) -> list[State]:
        """``rollout`` after validation; ``U`` holds the velocities of all the model's tools."""
        T = U.shape[0]
        saveat = save_steps(saveat, T)
        internal = self.internal_params(params)
        drive, poses = tool_trajectory(self.model, U, state.tool_pos, state.tool_rot)
        state0 = self._engine_state(state)
        plan = RolloutPlan(engine_for=self._engine_for, n_steps=T, saveat=tuple(saveat),
                           n_state=len(state0), n_drive=len(drive), check=check, step0=state.step)
        outs = sensealg.run(Rollout(plan, tuple(state0), tuple(drive), tuple(internal)))
        S = self.substeps
        states = []
        for i, step in enumerate(saveat):
            tp, tr = poses(step * S)
            tensors = self._state_tensors([o[i] for o in outs], state)
            states.append(State(state.time + step * self.control_dt, state.step + step,
                                **tensors, tool_pos=tp, tool_rot=tr))
        return states

    def _engine_state(self, state: State) -> list:
        """The tensors of ``state`` that the engine steps, in ``STATE_NAMES`` order."""
        return [state[n].to(self.dtype) for n in self.STATE_NAMES]

    def _state_tensors(self, tensors: list, start: State) -> dict:
        """A rollout's stepped tensors (``_engine_state`` order) as a state's named tensors;
        ``start``: the rollout's first state."""
        return dict(zip(self.STATE_NAMES, tensors))

    def equilibrium(self, state: State | None = None, params: dict | None = None,
                    check: bool = True) -> State:
        """The quasi-static equilibrium nearest ``state``: ``grad Psi(x) = f_gravity + f_contact``.

        Solved by Newton's method (projected Hessian, PCG, line search) from
        ``state.x`` with pinned nodes held where ``state`` has them and tools at their
        ``state`` pose; no inertia, damping or friction. Differentiable (implicit function
        theorem) in ``state.x`` (through pinned nodes), tool poses and ``params``.

        Returns:
            A state with the equilibrium positions and zero velocity.

        Raises:
            ds.ConvergenceError: Newton's method did not converge (with ``check``), for
                example because nothing holds the body (pin nodes or add a ground).
        """
        state = self.reset() if state is None else state
        state = self.validate_state(state)
        internal = self.internal_params(params)
        U = torch.zeros(1, self.action_dim, dtype=self.dtype, device=self.device)
        drive, _ = tool_trajectory(self.model, U, state.tool_pos, state.tool_rot)
        drive = [d[:1].expand(2, *d.shape[1:]).contiguous() for d in drive]
        state0 = [state[n].to(self.dtype) for n in self.STATE_NAMES]
        inputs = (*state0, *drive, *internal)
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        eng = self._engine_for(1, needs_grad)
        eng.set_params([t.detach() for t in internal])
        eng.load_drive([t.detach() for t in drive])
        eng.load_state(0, [t.detach() for t in state0])
        eng.newton(0, quasi_static=True)
        failure, eng._failure = eng._failure, None
        if check and failure is not None:
            raise ConvergenceError(f"equilibrium: {failure}", quantity="x", hint=(
                "make sure something holds the body (pinned nodes, the ground, tools), or "
                "raise max_newton"))
        x = torch.empty_like(state0[0])
        eng.k.store_iterate(x)
        if needs_grad:
            lin = _EquilibriumLinearization(self, [t.detach() for t in state0],
                                            [t.detach() for t in drive],
                                            [t.detach() for t in internal], x)
            x = implicit_solution(lin, x, *inputs)
        tensors = {n: state[n] for n in self.STATE_NAMES}
        tensors["x"] = x
        tensors["v"] = torch.zeros_like(state.v)
        return State(state.time, state.step, **tensors, tool_pos=state.tool_pos,
                     tool_rot=state.tool_rot)

    def energy(self, state: State, params: dict | None = None) -> dict:
        """Energies (J) of a state: ``kinetic``, ``elastic``, ``gravity`` (potential) and ``total``."""
        state = self.validate_state(state)
        internal = self.internal_params(params)
        eng = self._engine_for(1, False)
        eng.set_params([t.detach() for t in internal])
        eng.load_state(0, [state[n].detach() for n in self.STATE_NAMES])
        elastic = float(eng.k.elastic_energy(0))
        m = self.masses
        kinetic = 0.5 * float((m[:, None] * state.v.detach() ** 2).sum())
        g = torch.tensor(self.model.gravity, dtype=self.dtype, device=self.device)
        gravity = -float((m[:, None] * state.x.detach() * g).sum())
        return {"kinetic": kinetic, "elastic": elastic, "gravity": gravity,
                "total": kinetic + elastic + gravity}

    def _release(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class _EquilibriumLinearization(ImplicitLinearization):
    """The adjoint system of a quasi-static equilibrium ``g(x*; inputs) = 0`` (``g`` the
    gradient of the potential, ``H = dg/dx`` its symmetric Hessian), in Taichi.

    The implicit-function-theorem bookkeeping is ``diffsim.implicit`` (shared with
    ``diffsim.solvers``' ``ImplicitAdjoint``); the two halves stay on the engine, where they
    are fast: ``adjoint_solve`` is the matrix-free block-Jacobi PCG on the exact Hessian
    (``H^T = H``), ``input_vjp`` the reverse kernels seeded with ``-lam``. The same engine
    methods serve the backward pass of every implicit time step.
    """

    name = "FEM equilibrium"

    def __init__(self, sim, state0, drive, params, x):
        self.sim, self.state0, self.drive, self.params, self.x = sim, state0, drive, params, x

    def adjoint_solve(self, u_bar: torch.Tensor) -> torch.Tensor:
        n_s = len(self.state0)
        eng = self.sim._engine_for(1, True)
        eng.set_params(self.params)
        eng.load_drive(self.drive)
        eng.load_state(0, self.state0)
        eng.load_state(1, [self.x, torch.zeros_like(self.x), *self.state0[2:]])
        eng.zero_state_grads(2)
        eng.zero_param_grads()
        # pinned nodes of x* are the pinned nodes of state.x: implicit_rhs passes their
        # gradient straight to slot 0; the free ones form the right-hand side
        eng.add_state_grads(1, [u_bar, None, *[None] * (n_s - 2)])
        eng.adjoint_solve(0, quasi_static=True)
        self._eng = eng
        return eng.store_lambda()

    def input_vjp(self, w: torch.Tensor):
        eng, self._eng = self._eng, None
        eng.load_lambda(w)
        eng.adjoint_vjp(0)
        g_state = eng.store_state_grads(0)
        g_drive = eng.store_drive_grads(2)
        g_params = eng.store_param_grads()
        return (*g_state, *g_drive, *g_params)
