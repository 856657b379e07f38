"""``Scene``: a description of what to simulate, independent of the method.

A scene lists particle bodies (shape + material + initial velocity), kinematic
tools, static colliders and the domain with its walls. Simulators (``ds.MPM``,
later ``ds.FEM``, ``ds.Shell``) compile a scene into their static model; the
scene itself holds no Taichi data and can be reused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .materials import Material
from .mesh import Rectangle, TriMesh, check_volume_mesh, mesh_volume, rectangle_mesh, shell_topology
from .parts import Ground, ShellBody, SoftBody, check_fixed
from .shapes import Box, Capsule, Compound, Cylinder, Mesh, Shape, Sphere

WALL_KINDS = ("sticky", "slip", "friction")


@dataclass(frozen=True)
class Body:
    """Particles filling ``shape`` with ``material``; ``velocity`` (m/s) at start."""

    name: str
    shape: Shape
    material: Material
    velocity: tuple
    ppc: float | None
    jitter: float


@dataclass(frozen=True)
class Tool:
    """A kinematic tool driven by per-step linear and angular velocities.

    Attributes:
        friction: Coulomb coefficient (>= 0) between the tool and the material.
        contact_width: soft-contact length (m); 0 is hard contact, ``None`` lets
            the simulator pick one grid cell. See ``diffsim/mpm/contact.py``.
        rotation: initial orientation; 2D: angle (rad); 3D: quaternion (w, x, y, z).
    """

    name: str
    shape: Shape
    friction: float
    contact_width: float | None
    rotation: tuple


@dataclass(frozen=True)
class Collider:
    """A static obstacle with Coulomb ``friction``."""

    name: str
    shape: Shape
    friction: float


def _finite_nonneg(name: str, value) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}={value!r} is not allowed: it must be a finite number >= 0")
    return float(value)


class Scene:
    """What to simulate.

    Args:
        dim: 2 or 3.
        bounds: per-axis ``(lo, hi)`` of the domain (m); default the unit square/cube.
        gravity: (dim,) acceleration (m/s^2); default ``-9.8`` along the second axis.
        walls: boundary condition at the domain walls: ``"sticky"`` (no motion),
            ``"slip"`` (no penetration, free tangential motion) or ``"friction"``
            (Coulomb friction with ``wall_friction``).
        wall_friction: Coulomb coefficient for ``walls="friction"``.

    Example:
        >>> scene = Scene(dim=2)
        >>> scene.add_particles(Box(lo=(0.3, 0.5), hi=(0.5, 0.7)), NeoHookean(E=5e3, nu=0.3))
    """

    def __init__(self, dim: int = 2, bounds=None, gravity=None, walls: str = "slip",
                 wall_friction: float = 0.0):
        if dim not in (2, 3):
            raise ValueError(f"dim={dim!r} is not allowed: expected 2 or 3")
        self.dim = dim
        if bounds is None:
            bounds = [(0.0, 1.0)] * dim
        b = np.asarray(bounds, dtype=np.float64)
        if b.shape != (dim, 2) or not np.all(np.isfinite(b)) or np.any(b[:, 1] <= b[:, 0]):
            raise ValueError(f"bounds={bounds!r} is not allowed: expected {dim} pairs (lo, hi) "
                             "with hi > lo")
        self.bounds = b
        if gravity is None:
            gravity = tuple(-9.8 if i == 1 else 0.0 for i in range(dim))
        g = np.asarray(gravity, dtype=np.float64)
        if g.shape != (dim,) or not np.all(np.isfinite(g)):
            raise ValueError(f"gravity={gravity!r} is not allowed: expected {dim} finite numbers")
        self.gravity = tuple(float(x) for x in g)
        if walls not in WALL_KINDS:
            raise ValueError(f"walls={walls!r} is not allowed: expected one of {WALL_KINDS}")
        self.walls = walls
        self.wall_friction = _finite_nonneg("wall_friction", wall_friction)
        self.bodies: list[Body] = []
        self.tools: list[Tool] = []
        self.colliders: list[Collider] = []

    def _check_shape(self, shape, what: str) -> None:
        if not isinstance(shape, Shape):
            raise TypeError(f"{what} must be a ds.Shape (Box, Sphere, ...), got "
                            f"{type(shape).__name__}")
        if shape.dim != self.dim:
            raise ValueError(f"{what} is {shape.dim}D but the scene is {self.dim}D")

    def _check_name(self, name: str) -> None:
        taken = {b.name for b in self.bodies} | {t.name for t in self.tools} | {
            c.name for c in self.colliders}
        if name in taken:
            raise ValueError(f"name={name!r} is already used in this scene")

    def add_particles(self, shape: Shape, material: Material, velocity=None,
                      name: str | None = None, ppc: float | None = None,
                      jitter: float = 0.0) -> Scene:
        """Fill ``shape`` with particles of ``material``.

        Args:
            shape: region to fill.
            material: a ``ds.Material`` (``Elastic``, ``Fluid``, ...).
            velocity: (dim,) initial velocity (m/s), default zero.
            name: group name (used for ``params={"<name>.E": ...}``); default ``body<i>``.
            ppc: particles per grid cell (default: the simulator's, 2^dim).
            jitter: random offset of particles, fraction of their spacing, in [0, 1).
        """
        self._check_shape(shape, "shape")
        if not isinstance(material, Material):
            raise TypeError(f"material must be a ds.Material, got {type(material).__name__}")
        velocity = tuple(0.0 for _ in range(self.dim)) if velocity is None else velocity
        vel = np.asarray(velocity, dtype=np.float64)
        if vel.shape != (self.dim,) or not np.all(np.isfinite(vel)):
            raise ValueError(f"velocity={velocity!r} is not allowed: expected {self.dim} "
                             "finite numbers")
        if ppc is not None and not (math.isfinite(ppc) and ppc > 0):
            raise ValueError(f"ppc={ppc!r} is not allowed: it must be > 0")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter={jitter!r} is not allowed: it must lie in [0, 1)")
        name = name or f"body{len(self.bodies)}"
        self._check_name(name)
        self.bodies.append(Body(name, shape, material, tuple(map(float, vel)), ppc, jitter))
        return self

    def add_tool(self, shape: Shape, friction: float = 0.0, name: str | None = None,
                 contact_width: float | None = None, rotation=None) -> Scene:
        """Add a kinematic tool (``Sphere``, ``Box``, ``Capsule``, ``Cylinder`` or ``Compound``;
        ``ds.Mesh`` for ``ds.Tactile`` only, where it becomes a baked grid SDF).

        The tool's pose starts at the shape's centre; each control step sets its
        linear velocity (dim) and angular velocity (1 in 2D, 3 in 3D), so it adds
        ``dim + (1 or 3)`` entries to ``sim.action_dim``.
        """
        self._check_shape(shape, "shape")
        if not isinstance(shape, (Box, Sphere, Capsule, Cylinder, Compound, Mesh)):
            raise TypeError(f"tool shape must be Box, Sphere, Capsule, Cylinder, Compound or "
                            f"Mesh (ds.Tactile only), got {type(shape).__name__}")
        friction = _finite_nonneg("friction", friction)
        if contact_width is not None:
            contact_width = _finite_nonneg("contact_width", contact_width)
        if rotation is None:
            rotation = (0.0,) if self.dim == 2 else (1.0, 0.0, 0.0, 0.0)
        rot = np.atleast_1d(np.asarray(rotation, dtype=np.float64))
        want = 1 if self.dim == 2 else 4
        if rot.shape != (want,) or not np.all(np.isfinite(rot)) or (
                want == 4 and np.linalg.norm(rot) < 1e-12):
            raise ValueError(f"rotation={rotation!r} is not allowed: expected "
                             f"{'an angle (rad)' if want == 1 else 'a quaternion (w, x, y, z)'}")
        if want == 4:
            rot = rot / np.linalg.norm(rot)
        name = name or f"tool{len(self.tools)}"
        self._check_name(name)
        self.tools.append(Tool(name, shape, friction, contact_width, tuple(map(float, rot))))
        return self

    def add_collider(self, shape: Shape, friction: float = 0.0,
                     name: str | None = None) -> Scene:
        """Add a static obstacle (any shape, including ``ds.Mesh``)."""
        self._check_shape(shape, "shape")
        friction = _finite_nonneg("friction", friction)
        name = name or f"collider{len(self.colliders)}"
        self._check_name(name)
        self.colliders.append(Collider(name, shape, friction))
        return self

    def __repr__(self) -> str:
        return (f"Scene(dim={self.dim}, bodies={[b.name for b in self.bodies]}, "
                f"tools={[t.name for t in self.tools]}, "
                f"colliders={[c.name for c in self.colliders]})")

    # ==================================================================================
    # FEM soft bodies, thin shells and the ground (ds.FEM, ds.Shell). MPM ignores these.
    # ==================================================================================
    @property
    def soft_bodies(self) -> list:
        """Meshed volumetric bodies (``add_soft_body``), for ``ds.FEM``."""
        return self.__dict__.setdefault("_soft_bodies", [])

    @property
    def shells(self) -> list:
        """Meshed thin shells (``add_shell``), for ``ds.Shell``."""
        return self.__dict__.setdefault("_shells", [])

    @property
    def ground(self):
        """The ground plane (``add_ground``) or ``None``."""
        return self.__dict__.get("_ground")

    def _check_mesh_name(self, name: str) -> None:
        self._check_name(name)
        if name in {b.name for b in self.soft_bodies} | {s.name for s in self.shells} | {
                "ground"}:
            raise ValueError(f"name={name!r} is already used in this scene")

    def add_soft_body(self, shape_or_mesh, material: Material, resolution: float | None = None,
                      fixed=None, velocity=None, damping=(0.0, 0.0), name: str | None = None,
                      mesher: str = "grid") -> Scene:
        """Add a volumetric elastic body for ``ds.FEM`` (tets in 3D, triangles in 2D).

        Args:
            shape_or_mesh: a ``ds.Shape`` to mesh (``Box``, ``Sphere``, ``Polygon``,
                ``Mesh``, ...) or a ``ds.VolumeMesh`` used as given.
            material: ``ds.LinearElastic``, ``ds.Elastic`` (fixed corotated),
                ``ds.StableNeoHookean`` or ``ds.NeoHookean``.
            resolution: cell size h (m) for meshing a shape.
            fixed: pinned nodes: a function ``fixed(x) -> bool array`` of the rest
                positions ``x`` (N, dim), or a boolean array (N,); ``None`` pins nothing.
            velocity: (dim,) initial velocity (m/s).
            damping: Rayleigh coefficients ``(alpha, beta)``: mass-proportional (1/s) and
                stiffness-proportional (s) damping, both >= 0.
            name: body name (for ``params={"<name>.E": ...}``); default ``soft<i>``.
            mesher: ``"grid"`` (structured, default) or ``"tetgen"`` (optional package).

        Raises:
            ValueError: bad mesh (naming the element), a ``fixed`` mask that pins every
                node or (when given) none, bad numbers.
        """

        if not isinstance(material, Material):
            raise TypeError(f"material must be a ds.Material, got {type(material).__name__}")
        name = name or f"soft{len(self.soft_bodies)}"
        self._check_mesh_name(name)
        if isinstance(shape_or_mesh, Shape):
            self._check_shape(shape_or_mesh, "shape_or_mesh")
        points, cells = mesh_volume(shape_or_mesh, resolution, mesher)
        if points.shape[1] != self.dim:
            raise ValueError(f"shape_or_mesh is {points.shape[1]}D but the scene is {self.dim}D")
        check_volume_mesh(points, cells, what=f"soft body {name!r}")
        fixed_mask = check_fixed(fixed, points, f"soft body {name!r}")
        vel = self._velocity(velocity)
        alpha, beta = self._damping(damping)
        self.soft_bodies.append(SoftBody(name, points, cells, material, fixed_mask, vel,
                                         alpha, beta))
        return self

    def add_shell(self, mesh_or_rectangle, material, resolution: float | None = None,
                  fixed=None, velocity=None, damping=(0.0, 0.0),
                  name: str | None = None) -> Scene:
        """Add a thin shell for ``ds.Shell`` (3D scenes).

        Args:
            mesh_or_rectangle: ``ds.Rectangle`` (meshed at ``resolution``), ``ds.TriMesh``
                or a ``trimesh.Trimesh``; the given shape is the rest shape.
            material: ``ds.ShellMaterial``.
            resolution: target edge length (m) for a rectangle.
            fixed: pinned vertices: ``fixed(x) -> bool array`` or a boolean array.
            velocity: (3,) initial velocity (m/s).
            damping: Rayleigh ``(alpha, beta)`` (1/s, s), >= 0.
            name: default ``shell<i>``.

        Raises:
            ValueError: degenerate faces, non-manifold or inconsistently oriented meshes
                (naming the face, edge or vertex), bad ``fixed`` masks or numbers.
        """
        from .materials import ShellMaterial

        if self.dim != 3:
            raise ValueError("shells need a 3D scene (Scene(dim=3))")
        if not isinstance(material, ShellMaterial):
            raise TypeError(f"material must be a ds.ShellMaterial, got {type(material).__name__}")
        name = name or f"shell{len(self.shells)}"
        self._check_mesh_name(name)
        if isinstance(mesh_or_rectangle, Rectangle):
            if resolution is None:
                raise ValueError("resolution is required to mesh a ds.Rectangle (edge length, m)")
            vertices, faces = rectangle_mesh(mesh_or_rectangle, resolution)
        else:
            if not isinstance(mesh_or_rectangle, TriMesh):
                if type(mesh_or_rectangle).__name__ != "Trimesh":
                    raise TypeError("mesh_or_rectangle must be a ds.Rectangle, ds.TriMesh or "
                                    f"trimesh.Trimesh, got {type(mesh_or_rectangle).__name__}")
                mesh_or_rectangle = TriMesh.from_trimesh(mesh_or_rectangle)
            vertices, faces = mesh_or_rectangle.vertices.copy(), mesh_or_rectangle.faces.copy()
        hinges = shell_topology(vertices, faces, what=f"shell {name!r}")
        fixed_mask = check_fixed(fixed, vertices, f"shell {name!r}")
        alpha, beta = self._damping(damping)
        self.shells.append(ShellBody(name, vertices, faces, hinges, material, fixed_mask,
                                     self._velocity(velocity), alpha, beta))
        return self

    def add_ground(self, height: float = 0.0, friction: float = 0.5) -> Scene:
        """A ground plane ``x[1] = height`` (normal +y) for ``ds.FEM``/``ds.Shell`` contact.

        Its Coulomb ``friction`` is differentiable as ``params={"ground.friction": ...}``.
        """
        if not (isinstance(height, (int, float)) and math.isfinite(height)):
            raise ValueError(f"height={height!r} is not allowed: it must be a finite number")

        self.__dict__["_ground"] = Ground(float(height), _finite_nonneg("friction", friction))
        return self

    def _velocity(self, velocity) -> tuple:
        velocity = tuple(0.0 for _ in range(self.dim)) if velocity is None else velocity
        vel = np.asarray(velocity, dtype=np.float64)
        if vel.shape != (self.dim,) or not np.all(np.isfinite(vel)):
            raise ValueError(f"velocity={velocity!r} is not allowed: expected {self.dim} "
                             "finite numbers")
        return tuple(map(float, vel))

    @staticmethod
    def _damping(damping) -> tuple[float, float]:
        try:
            alpha, beta = damping
        except (TypeError, ValueError):
            raise ValueError(f"damping={damping!r} is not allowed: expected Rayleigh "
                             "coefficients (alpha, beta)") from None
        return _finite_nonneg("damping alpha", alpha), _finite_nonneg("damping beta", beta)
