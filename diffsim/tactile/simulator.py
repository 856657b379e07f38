"""``ds.Tactile``: vision-based tactile sensors (GelSight-like) touching rigid, MPM and FEM objects.

Usage::

    scene = ds.Scene(dim=3, gravity=(0, 0, 0))
    scene.add_tool(ds.Sphere(center=(0, 0, 0.009), radius=0.005), name="ball")
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.02, 0.02, 0.004), 0.002),
                              material=ds.NeoHookean(E=3e5, nu=0.45), markers=(7, 7))
    sim = ds.Tactile(scene, sensors=[sensor])
    state = sim.step(sim.reset(), torch.zeros(sim.action_dim))
    reading = sim.read(state)          # ds.TactileReading: markers, pressure, force, image

The pads are ``ds.FEM`` bodies and a ``ds.Tactile`` *is* a ``ds.FEM`` (implicit steps,
Newton/PCG, adjoints by the implicit function theorem, checkpointed rollouts): see
``kernels.py`` for what it adds (pads on kinematic fingers, area-weighted penalty contact
with damping and smoothed Coulomb friction, the contact-force state).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..adjoint import CheckpointAdjoint, checkpointing, stepwise_rollout
from ..fem.base import DeformableSimulator
from ..fem.simulator import FEM
from ..mesh import VolumeMesh
from ..scene import Scene
from ..shapes import Sphere
from ..state import State
from ..tools import quat_to_matrix
from .fem_coupling import FEMCoupling
from .gridsdf import mass_properties as mesh_mass_properties
from .kernels import TactileEngine, TactileKernels
from .mpm_coupling import PAD_STATE, MPMCoupling
from .mpm_kernels import MPMTactileEngine, MPMTactileKernels
from .objects import ObjectSpec, rigid_objects
from .reading import SensorOptics, TactileReading
from .rigid import FreeBody, advance, check_hinges, hinge_angle, hinge_torques, mass_properties
from .sensor import TactileSensor

CONTACT_PARAMS = ("contact_stiffness", "contact_damping", "friction")
#: autograd memory of one coupled control step, in floats per object sample point (MPM
#: particle or FEM sample): the stencils, level-set grids and impulses of the step. Measured
#: (tests/test_tactile_mpm.py's block: 24.3 MB saved for 4 float64 steps, 1728 particles).
COUPLED_STEP_FLOATS_PER_SAMPLE = 440
#: memory a coupled gradient rollout may keep before ``default_segment`` checkpoints it (MiB)
COUPLED_MEMORY_MB = 1024.0


@dataclass(frozen=True, eq=False)
class TactileSpec:
    """What ``TactileKernels`` add to the FEM model: objects, contact width, pinned-node
    fingers (``driven``, -1 for free nodes) and finger-frame positions, contact areas."""

    objects: tuple
    width: float
    driven: np.ndarray
    local: np.ndarray
    area: np.ndarray


def _quat_matrix(q) -> np.ndarray:
    return quat_to_matrix(torch.as_tensor(q, dtype=torch.float64)).numpy()


def _check_arguments(scene, sensors, free_objects, substeps, fem_contact_stiffness,
                     contact_stiffness, contact_damping, contact_width) -> tuple:
    """``ds.Tactile``'s argument checks: ``(sensors as a list, sensor names, contact width)``.

    Raises:
        TypeError, ValueError: the argument, its value and what is allowed.
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a ds.Scene, got {type(scene).__name__}")
    if scene.dim != 3:
        raise ValueError(f"ds.Tactile needs a 3D scene (Scene(dim=3)), got dim={scene.dim}")
    if isinstance(sensors, TactileSensor):
        sensors = [sensors]
    sensors = list(sensors)
    if not sensors or not all(isinstance(s, TactileSensor) for s in sensors):
        raise ValueError(f"sensors={sensors!r} is not allowed: expected a non-empty list of "
                         "ds.TactileSensor")
    if scene.shells:
        raise ValueError("scene.shells is not allowed: ds.Tactile supports rigid objects "
                         "(the scene's tools, colliders and ground) and one deformable "
                         "object (an MPM particle body or an FEM soft body); shells in "
                         "contact with the pads are not implemented")
    if scene.bodies and scene.soft_bodies:
        raise ValueError(f"scene.soft_bodies ({[b.name for b in scene.soft_bodies]}) is not "
                         "allowed together with an MPM particle body (scene.bodies: "
                         f"{[b.name for b in scene.bodies]}): ds.Tactile supports one "
                         "deformable object")
    deformable = "an MPM particle body" if scene.bodies else "an FEM soft body"
    if (scene.bodies or scene.soft_bodies) and free_objects:
        raise ValueError(f"free_objects={free_objects!r} is not allowed together with "
                         f"{deformable}: free rigid bodies do not touch deformable objects; "
                         "use free_objects=None (kinematic tools push the object)")
    if (scene.bodies or scene.soft_bodies) and substeps != 1:
        raise ValueError(f"substeps={substeps!r} is not allowed with {deformable}: "
                         "one pad step per object step; use substeps=1 (and "
                         "mpm_substeps for an MPM object)")
    if not (isinstance(fem_contact_stiffness, (int, float))
            and math.isfinite(fem_contact_stiffness) and fem_contact_stiffness > 0):
        raise ValueError(f"fem_contact_stiffness={fem_contact_stiffness!r} is not allowed: "
                         "it must be a finite number > 0 (1/s^2)")
    for name, val, lo in (("contact_stiffness", contact_stiffness, 0.0),
                          ("contact_damping", contact_damping, None)):
        ok = isinstance(val, (int, float)) and math.isfinite(val) and (
            val > 0 if lo is not None else val >= 0)
        if not ok:
            raise ValueError(f"{name}={val!r} is not allowed: it must be a finite number "
                             f"{'> 0' if lo is not None else '>= 0'}")
    width = 1e-6 if contact_width is None else contact_width
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"contact_width={contact_width!r} is not allowed: it must be > 0 (m)")
    names = [s.name or f"sensor{i}" for i, s in enumerate(sensors)]
    if len(set(names)) != len(names):
        raise ValueError(f"sensor names {names} are not unique")
    return sensors, names, width


class Tactile(FEM):
    """Tactile sensors (FEM elastomer pads on kinematic fingers) touching rigid and MPM objects.

    Objects are the scene's tools (``ds.Sphere``, ``ds.Box``, ``ds.Capsule``,
    ``ds.Cylinder``, ``ds.Mesh``; kinematic, driven by per-step velocities like the
    fingers), its colliders (static, the same shapes) and its ground. The action of a
    control step is, per sensor and then per kinematic tool, the linear (m/s) and angular
    (rad/s, world frame) velocity: ``action_dim = 6 * (sensors + tools - free objects)``.

    **Free objects** (``free_objects``): tools that are free rigid bodies instead of
    kinematic ones, pushed by the pads' contact forces (the reaction of the implicit pad
    step), gravity and the ground; semi-implicit, one-step lag, see ``rigid.py``. Their
    velocities are the state's ``body_vel``; they take no action.

    **Mesh objects** (``ds.Mesh``, watertight): their signed distance is baked once on a
    grid in the object's frame (``gridsdf.py``: trimesh's exact distance within 6 cells of
    the surface, spacing ``sdf_spacing``) and sampled in the contact kernels by an
    interpolating cubic B-spline (C2; the contact normal is its gradient), so contact,
    parameters and gradients work as for analytic shapes. A mesh tool's pose moves the
    centre of its bounding box (``Shape.center``); a free mesh body's pose moves its centre
    of mass (``tool_pos`` starts there), and its mass and full inertia tensor come from the
    mesh (``trimesh``'s ``mass_properties``). Near-surface interpolation error is about
    2e-2 cells on a finely faceted mesh; edges, corners and features thinner than a few
    cells are rounded or lost at the scale of a cell (README: Mesh objects).

    **An MPM object** (one ``scene.add_particles`` body, any ``ds`` material): the pads
    meet the level set of its particles (a density grid built in torch each step,
    differentiable in the particles) with the same contact model as rigid objects, and
    their reaction goes back to the particles as a momentum-conserving impulse before an
    internal ``ds.MPM`` step of ``mpm_substeps`` substeps (``dt / mpm_substeps`` each; the
    scene's bounds are its domain, its tools push the particles too). Partitioned and
    explicit for the object: ``dt < 2 sqrt(m_s / k_s)`` (see ``mpm_coupling.py`` and the
    README's "MPM objects"). Not with ``free_objects`` or ``substeps > 1``.

    **An FEM object** (one ``scene.add_soft_body`` body, optionally with ``fixed`` nodes):
    the same scheme (``fem_coupling.py``) with 4 sample points per tet (barycentric, a
    quarter of the tet's mass each, positions and velocities interpolated from the nodes)
    as the "particles" of the level set on a grid over ``scene.bounds`` (``mpm_grid_res``
    cells along its longest side; the tets should be no larger than a cell). The reaction
    impulse goes from the samples to the nodes with the same weights (``v += J / m`` with
    the lumped node masses: momentum is conserved exactly), then an internal implicit
    ``ds.FEM`` steps the object by ``dt`` with the scene's gravity, tools, colliders and
    ground. State ``object_x``, ``object_v`` (nodes); parameters ``"<body>.E"``, etc.
    Lagged and explicit for the object as MPM objects (``dt < 2 sqrt(m_s / k_s)``). Not
    with an MPM body, ``free_objects`` or ``substeps > 1``.

    Args:
        scene: a 3D ``ds.Scene`` with the objects: tools, colliders, ground and at most
            one deformable object: a particle (MPM) body or an FEM soft body. Shells
            are not supported.
        sensors: one or more ``ds.TactileSensor`` (two for a parallel gripper).
        dt, substeps: implicit step (s) and steps per control step.
        contact_stiffness: default normal stiffness ``k_n`` of every object (Pa/m:
            pressure per metre of penetration).
        contact_damping: default normal damping ``k_d`` (Pa s/m).
        contact_width: penalty onset length (m), default 1e-6 m.
        friction_eps: friction smoothing velocity (m/s).
        free_objects: ``{tool name: density (kg/m^3)}``: tools that are free rigid bodies
            (uniform density; mass and inertia from the shape). Needs ``substeps=1``.
        sdf_spacing: grid spacing (m) of mesh objects' signed distances: one value for all,
            or ``{object name: spacing}``; default (``None``) ``min(longest side / 40,
            thinnest side / 8)`` of the mesh's bounding box. Allowed: at least 4 cells
            across the thinnest side, at most 4e6 grid nodes (the error names the range).
        hinges: ``{free object name: ds.Hinge}`` (or ``(anchor, axis)``): free objects
            hinged to the world, turning only about the hinge's axis (``rigid.py``);
            ``hinge_angle(state, name)`` reads the angle.
        newton_tol, cg_tol, max_newton, max_cg, adjoint_tol: as ``ds.FEM``.
        mpm_grid_res: MPM grid cells along the longest side of ``scene.bounds`` (>= 8);
            also the level set's grid (of an MPM or FEM object).
        mpm_substeps: explicit MPM substeps per pad step (>= 1; CFL: ``dt /
            mpm_substeps <= dx / c``).
        mpm_friction: default pad friction of the MPM or FEM object (``"<body>.friction"``).
        mpm_ppc: particles per MPM cell (default: the body's, else 8).
        fem_contact_stiffness: ``ds.FEM``'s penalty (1/s^2) of an FEM object against the
            scene's tools, colliders and ground (not the pads: they use ``k_n``).

    Parameters (``param_names()``): per pad ``"<sensor>.E"``, ``"<sensor>.nu"``,
    ``"<sensor>.damping_alpha"``, ``"<sensor>.damping_beta"``; per object
    ``"<object>.contact_stiffness"``, ``"<object>.contact_damping"``,
    ``"<object>.friction"`` (objects: tool and collider names, ``"ground"``), or the bare
    names for all. State: ``x``, ``v`` (N, 3) nodes of the pads, ``f`` (N, 3) contact
    forces on them (N), ``wrench`` (objects, 6) force (N) and torque (N m, about the
    object's centre; a collider's centre, the ground's point ``(0, height, 0)``) of the
    pads on each object, ``tool_pos``/``tool_rot`` fingers then tools, ``body_vel``
    (free objects, 6) linear (m/s) and angular (rad/s) velocities of the free objects;
    with an MPM object also ``f_mpm`` (N, 3), its force on the pad nodes (N; part of
    ``f``), and ``particle_x``, ``particle_v``, ``particle_C``, ``particle_F``,
    ``particle_Jp``: the MPM state (as ``ds.MPM``'s ``x``, ``v``, ``C``, ``F``, ``Jp``).
    Its material parameters are ``"<body>.E"`` etc. (body-qualified names only).

    Raises:
        ValueError/TypeError: a 2D scene, no sensor, unsupported objects, a mesh that is
            not watertight, an ``sdf_spacing`` out of range, bad numbers.
    """

    STATE_NAMES = ("x", "v", "f", "wrench")
    engine_cls = TactileEngine

    def __init__(self, scene: Scene, sensors, dt: float = 1e-2, substeps: int = 1,
                 contact_stiffness: float = 1e10, contact_damping: float = 0.0,
                 contact_width: float | None = None, friction_eps: float = 1e-3,
                 free_objects: dict | None = None, hinges: dict | None = None,
                 sdf_spacing: float | dict | None = None,
                 newton_tol: float = 1e-6, cg_tol: float = 1e-6, max_newton: int = 30,
                 max_cg: int = 2000, adjoint_tol: float = 1e-10, mpm_grid_res: int = 32,
                 mpm_substeps: int = 4, mpm_friction: float = 0.5,
                 mpm_ppc: float | None = None, fem_contact_stiffness: float = 1e6):
        sensors, names, width = _check_arguments(scene, sensors, free_objects, substeps,
                                                 fem_contact_stiffness, contact_stiffness,
                                                 contact_damping, contact_width)
        inner = Scene(dim=3, gravity=scene.gravity)
        for s, name in zip(sensors, names):
            R = _quat_matrix(s.rotation)
            pts = s.pad.points @ R.T + np.asarray(s.position)
            inner.add_soft_body(VolumeMesh(pts, s.pad.cells), s.material, fixed=s.pad.back,
                                damping=s.damping, name=name)
        for s, name in zip(sensors, names):
            inner.add_tool(Sphere(center=s.position, radius=1e-3), name=f"{name}_finger",
                           rotation=s.rotation)
        free_names = set(free_objects) if isinstance(free_objects, dict) else set()
        objects = rigid_objects(scene, inner, free_names, sdf_spacing, contact_stiffness,
                                contact_damping)
        self.mpm_coupling = self.fem_coupling = self.coupling = None
        if scene.bodies:
            self.mpm_coupling = MPMCoupling(scene, float(dt), mpm_grid_res, mpm_substeps,
                                            mpm_friction, mpm_ppc, len(objects))
        elif scene.soft_bodies:
            self.fem_coupling = FEMCoupling(
                scene, float(dt), mpm_grid_res, mpm_friction, len(objects),
                fem_contact_stiffness, dict(newton_tol=newton_tol, cg_tol=cg_tol,
                                            max_newton=max_newton, max_cg=max_cg,
                                            adjoint_tol=adjoint_tol, friction_eps=friction_eps))
        coupling = self.mpm_coupling or self.fem_coupling
        if coupling is not None:
            # the level-set object kind ("mpm"): MPM particles or an FEM object's samples
            objects.append(ObjectSpec(coupling.body.name, "mpm", (), 0, -1, (0.0, 0.0, 0.0),
                                      float(contact_stiffness), float(contact_damping),
                                      coupling.friction))
            self.coupling = coupling
        super().__init__(inner, dt=dt, substeps=substeps, integrator="implicit",
                         contact_stiffness=1.0, friction_eps=friction_eps, newton_tol=newton_tol,
                         cg_tol=cg_tol, max_newton=max_newton, max_cg=max_cg,
                         adjoint_tol=adjoint_tol)
        self.user_scene = scene
        self.sensors = tuple(sensors)
        self.sensor_names = tuple(names)
        self.objects = tuple(objects)
        n = self.n_nodes
        driven = np.full(n, -1, dtype=np.int64)
        local = np.zeros((n, 3))
        area = np.zeros(n)
        for k, (s, name) in enumerate(zip(sensors, names)):
            sl = self.groups[name]
            driven[sl] = np.where(s.pad.back, k, -1)
            local[sl] = s.pad.points
            area[sl] = s.pad.contact_area
        self._driven = torch.as_tensor(np.nonzero(driven >= 0)[0], device=self.device)
        self._driven_tool = torch.as_tensor(driven[driven >= 0], device=self.device)
        self._driven_local = torch.as_tensor(local[driven >= 0], dtype=self.dtype,
                                             device=self.device)
        self.spec = TactileSpec(tuple(objects), float(width), driven, local, area)
        self.kernels_cls = functools.partial(TactileKernels, tactile=self.spec)
        if self.coupling is not None:
            if self.coupling.body.name in names:
                raise ValueError(f"the deformable object's name {self.coupling.body.name!r} is "
                                 f"also a sensor name ({names}); rename one")
            self.kernels_cls = functools.partial(MPMTactileKernels, tactile=self.spec,
                                                 grid=self.coupling.grid)
            self.engine_cls = MPMTactileEngine
            self.STATE_NAMES = PAD_STATE
        self.optics = [SensorOptics(s, k, self.groups[name], self.dtype, self.device)
                       for k, (s, name) in enumerate(zip(sensors, names))]
        self.free = self._free_bodies(free_objects or {}, hinges or {})
        n_int = self.model.action_dim
        free_cols = [6 * b.tool + c for b in self.free for c in range(6)]
        user_cols = [c for c in range(n_int) if c not in set(free_cols)]
        # internal controls = cat(user controls, body velocities)[:, _perm]
        order = user_cols + free_cols
        self._perm = torch.as_tensor([order.index(c) for c in range(n_int)], device=self.device)

    def _free_bodies(self, free_objects, hinges) -> tuple:
        if not isinstance(free_objects, dict):
            raise ValueError(f"free_objects={free_objects!r} is not allowed: expected a dict "
                             "{tool name: density (kg/m^3)}")
        tools = [t.name for t in self.user_scene.tools]
        hinges = check_hinges(hinges, free_objects)
        out = []
        for name, density in free_objects.items():
            if name not in tools:
                raise ValueError(f"free_objects: {name!r} is not a tool of the scene; tools: "
                                 f"{tools}")
            if not (isinstance(density, (int, float)) and math.isfinite(density)
                    and density > 0):
                raise ValueError(f"free_objects[{name!r}]={density!r} is not allowed: the "
                                 "density must be a finite number > 0 (kg/m^3)")
            j = [o.name for o in self.objects].index(name)
            o = self.objects[j]
            if o.kind == "mesh":
                shape = next(t.shape for t in self.user_scene.tools if t.name == name)
                m, _com, inertia = mesh_mass_properties(shape.mesh, float(density))
                inertia = tuple(tuple(float(v) for v in row) for row in inertia)
            else:
                m, inertia = mass_properties(o.kind, o.geom, o.axis, float(density))
            rot0 = self.user_scene.tools[tools.index(name)].rotation
            out.append(FreeBody(name, o.tool, j, o.kind, o.geom, o.axis, m, inertia,
                                hinges.get(name), rot0))
        if out and self.substeps != 1:
            raise ValueError(f"substeps={self.substeps} is not allowed with free_objects: free "
                             "bodies are advanced once per step; use substeps=1 and a smaller dt")
        return tuple(out)

    def hinge_angle(self, state: State, name: str) -> torch.Tensor:
        """The hinge angle (rad, differentiable) of the hinged free object ``name``."""
        b = self._hinged(name)
        return hinge_angle(b, state.tool_rot[b.tool])

    def hinge_torques(self, state: State, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pads, gravity)``: the torques (N m, differentiable) about the hinge axis of the
        hinged free object ``name``, positive in the opening sense (increasing angle), of
        the pads' contact forces of the step that reached ``state`` and of gravity. At a
        limit the hinge's stop absorbs their sum; the angle moves off the lower limit only
        where it is positive."""
        b = self._hinged(name)
        g = torch.tensor(self.model.gravity, dtype=self.dtype, device=self.device)
        return hinge_torques(b, g, state.tool_pos[b.tool], state.wrench[b.obj])

    def _hinged(self, name: str) -> FreeBody:
        b = self.free[self.body_index(name)]
        if b.hinge is None:
            raise ValueError(f"{name!r} has no hinge; hinged objects: "
                             f"{[c.name for c in self.free if c.hinge is not None]}")
        return b

    @property
    def action_dim(self) -> int:
        return self.model.action_dim - 6 * len(self.free)

    # ------------------------------------------------------------------ parameters
    def param_names(self) -> list[str]:
        names = []
        for g in self.model.groups:
            names += [f"{g.name}.{p}" for p in self._group_param_names(g)]
        names += sorted({p for g in self.model.groups for p in self._group_param_names(g)})
        for o in self.objects:
            names += [f"{o.name}.{p}" for p in CONTACT_PARAMS]
        if self.objects:
            names += list(CONTACT_PARAMS)
        if self.coupling is not None:
            names += self.coupling.param_names()
        return names

    def _friction_values(self, params) -> torch.Tensor:
        return torch.zeros(max(len(self.model.tools), 1), dtype=self.dtype, device=self.device)

    def internal_params(self, params: dict | None = None):
        """``(material (G, 6), unused (K,), contact (objects, 3))``: pads as ``ds.FEM``, and
        per object ``(k_n, k_d, mu)``."""
        material, unused = super().internal_params(params)
        params = self._scalar_params(params)
        rows = []
        for o in self.objects:
            vals = []
            for p, default in zip(CONTACT_PARAMS, (o.stiffness, o.damping, o.friction)):
                v = params.get(f"{o.name}.{p}", params.get(p))
                v = torch.tensor(default, dtype=self.dtype) if v is None else v
                bad = float(v.detach()) <= 0 if p == "contact_stiffness" else float(
                    v.detach()) < 0
                if bad:
                    raise ValueError(f"params for object {o.name!r}: {p}={float(v)} is not "
                                     f"allowed: it must be {'> 0' if p == 'contact_stiffness' else '>= 0'}")
                vals.append(v.reshape(()))
            rows.append(torch.stack(vals))
        contact = (torch.stack(rows) if rows else torch.zeros(1, 3, dtype=self.dtype))
        return material, unused, contact.to(self.device)

    # ------------------------------------------------------------------ states
    @property
    def state_spec(self) -> dict[str, tuple]:
        spec = dict(super().state_spec)
        spec["f"] = (self.n_nodes, 3)
        spec["wrench"] = (len(self.objects), 6)
        spec["body_vel"] = (len(self.free), 6)
        if self.coupling is not None:
            spec["f_mpm"] = (self.n_nodes, 3)
            spec.update(self.coupling.state_spec())
        return spec

    def _extra_state(self) -> dict:
        kw = {"dtype": self.dtype, "device": self.device}
        out = {"f": torch.zeros(self.n_nodes, 3, **kw),
               "wrench": torch.zeros(len(self.objects), 6, **kw),
               "body_vel": torch.zeros(len(self.free), 6, **kw)}
        if getattr(self, "coupling", None) is not None:
            out["f_mpm"] = torch.zeros(self.n_nodes, 3, **kw)
            out.update(self.coupling.reset())
        return out

    @property
    def free_masses(self) -> torch.Tensor:
        """(free objects,) masses of the free objects (kg)."""
        return torch.tensor([b.mass for b in self.free], dtype=self.dtype)

    def body_index(self, name: str) -> int:
        """Index of a free object in ``state.body_vel`` (its tool row is ``tool_index``)."""
        names = [b.name for b in self.free]
        if name not in names:
            raise ValueError(f"{name!r} is not a free object; free objects: {names}")
        return names.index(name)

    def tool_index(self, name: str) -> int:
        """Row of a tool (or finger ``"<sensor>_finger"``) in ``state.tool_pos``/``tool_rot``."""
        names = [t.name for t in self.model.tools]
        if name not in names:
            raise ValueError(f"{name!r} is not a tool; tools: {names}")
        return names.index(name)

    def attach(self, state: State) -> State:
        """``state`` with the pads' back faces moved onto their fingers' poses (differentiable
        in ``tool_pos``/``tool_rot``); ``rollout`` does this to its start state.

        A state that a rollout produced (``state.step > 0``) is returned as it is: its
        back faces moved with their fingers by the velocity steps, and recomputing them
        from the poses rounds differently (float32: by a unit in the last place), so that
        the same actions in one rollout or one step at a time (``env.step``) would part,
        and contact grows such a difference into another outcome (BoxOpen-v2: goal 0.56
        against 1.53). Move a finger of such a state by its velocity controls, or set
        ``step=0`` with ``state.replace`` to have the pad follow an edited pose.
        """
        if state.step > 0:
            return state
        R = quat_to_matrix(state.tool_rot[self._driven_tool])           # (n, 3, 3)
        pos = state.tool_pos[self._driven_tool] + (R @ self._driven_local[..., None])[..., 0]
        x = state.x.clone()
        x[self._driven] = pos.to(x.dtype)
        return state.replace(x=x)

    def default_segment(self, n_steps: int) -> int:
        """Checkpoint segment of a gradient rollout when the caller gives none. With an MPM
        or FEM object (the coupled steps keep about ``COUPLED_STEP_FLOATS_PER_SAMPLE`` floats
        per object sample each): the whole rollout while that fits ``COUPLED_MEMORY_MB``
        (no recomputation), else as many steps as fit. With free rigid bodies only: the
        whole rollout (a step keeps the pads' few hundred nodes' tensors). Otherwise
        ``ds.FEM``'s rule."""
        if self.coupling is None:
            return n_steps if self.free else super().default_segment(n_steps)
        itemsize = torch.finfo(self.dtype).bits // 8
        step_bytes = COUPLED_STEP_FLOATS_PER_SAMPLE * itemsize * int(self.coupling.mass.numel())
        return max(1, min(n_steps, int(COUPLED_MEMORY_MB * 2 ** 20 // max(step_bytes, 1))))

    def rollout(self, state: State, controls: torch.Tensor, params: dict | None = None,
                segment: int | None = None, saveat=None, check: bool = True,
                sensealg=None) -> list[State]:
        """As ``ds.FEM.rollout``; controls are finger, then kinematic tool velocities (6 per
        body). With free objects, or an MPM or FEM object, the rollout goes one control step
        at a time, advancing the bodies between steps in torch (``rigid.advance``) or
        through the object's coupling; with gradients, segments of ``segment`` steps
        (``sensealg.segment``) are checkpointed as a whole (``adjoint.stepwise_rollout``:
        memory grows with ``T / segment``, and the backward pass runs each segment's steps
        twice)."""
        state = self.validate_state(state)
        U = self.validate_controls(controls)
        T = U.shape[0]
        sensealg = checkpointing(self.default_segment(T), segment, sensealg)
        if self.coupling is not None:
            return self.coupling.rollout(self, self.attach(state), U, params, saveat, check,
                                         sensealg.segment)
        if not self.free:
            return self._simulate(self.attach(state), U, params, sensealg, saveat, check)
        g = torch.tensor(self.model.gravity, dtype=self.dtype, device=self.device)
        tools = [b.tool for b in self.free]
        objs = [b.obj for b in self.free]

        def step(t, cur):
            full = torch.cat([U[t:t + 1], cur.body_vel.reshape(1, -1)], 1)[:, self._perm]
            nxt = self._simulate(cur, full, params, CheckpointAdjoint(segment=1), [1], check)[0]
            vel = advance(self.free, self.dt, g, self.user_scene.ground, self.model.contact.friction_eps,
                          nxt.tool_pos[tools], nxt.tool_rot[tools], cur.body_vel,
                          nxt.wrench[objs])
            return nxt.replace(body_vel=vel)

        return stepwise_rollout(step, self.attach(state), T, saveat, sensealg.segment)

    def _simulate(self, state, U, params, sensealg, saveat, check):
        out = DeformableSimulator._simulate(self, state, U, params, sensealg, saveat, check)
        return [State(s.time, s.step, **dict(s.items()), body_vel=state.body_vel) for s in out]

    def _release(self) -> None:
        super()._release()
        if self.coupling is not None:
            self.coupling.close()

    def equilibrium(self, state=None, params=None, check=True):
        raise NotImplementedError("ds.Tactile has no equilibrium(): contact forces are a state "
                                  "of the time stepping; step slowly instead (the pads are light,"
                                  " so implicit steps are nearly quasi-static)")

    # ------------------------------------------------------------------ readings
    def read(self, state: State, sensor: int | str | None = None,
             image: bool = True) -> TactileReading | list[TactileReading]:
        """Readings of the sensors at ``state`` (differentiable torch tensors).

        Args:
            state: a state of this simulator.
            sensor: index or name of one sensor; ``None``: the only sensor, or a list of
                readings (one per sensor) if there are several.
            image: render the tactile image (the costliest part).
        """
        state = self.validate_state(state)
        if sensor is None:
            out = [o.read(state.x, state.f, state.tool_pos, state.tool_rot, image)
                   for o in self.optics]
            return out[0] if len(out) == 1 else out
        if isinstance(sensor, str):
            if sensor not in self.sensor_names:
                raise ValueError(f"sensor={sensor!r} is not allowed: expected one of "
                                 f"{list(self.sensor_names)}")
            sensor = self.sensor_names.index(sensor)
        if not (isinstance(sensor, int) and 0 <= sensor < len(self.optics)):
            raise ValueError(f"sensor={sensor!r} is not allowed: expected an index in [0, "
                             f"{len(self.optics)}) or a name in {list(self.sensor_names)}")
        return self.optics[sensor].read(state.x, state.f, state.tool_pos, state.tool_rot, image)

    def __repr__(self) -> str:
        return (f"Tactile(sensors={list(self.sensor_names)}, nodes={self.n_nodes}, "
                f"tets={self.n_elements}, objects={[o.name for o in self.objects]}, "
                f"dt={self.dt:g}, substeps={self.substeps})")
