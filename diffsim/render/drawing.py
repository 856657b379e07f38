"""What the renderer draws of each simulator, as parts fixed once per simulator.

A :class:`SceneDrawing` holds what stays fixed while one simulator is drawn:

* point sets (sphere splats): MPM particles (coloured by body, the radius of a
  particle's volume), the markers of tactile pads;
* rigid meshes, each static or riding on a row of ``state.tool_pos`` /
  ``state.tool_rot``: tools, colliders, free rigid objects, tactile fingers,
  hinge pins;
* deformable surfaces (:class:`~diffsim.render.surfaces.Surface`) over node
  positions: the boundary triangles of FEM tet meshes (tactile pads and FEM
  objects included), shells' triangles (their underside a darker shade), the
  triangles of 2D FEM meshes;
* the camera and the floor.

``frame(state)`` turns a state into the kernel's inputs. The builders below
(``mpm_drawing``, ``deformable_drawing``, ``tactile_drawing``) read each
simulator's model; ``drawing_for`` picks one by the simulator's type.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .camera import Camera
from .colors import (
    BACK_SHADE,
    HINGE_COLOR,
    MARKER_COLOR,
    PAD_COLOR,
    SPECULAR,
    rgb,
)
from .meshes import MeshBatch, TriMesh, material, pose_matrices, shape_mesh, tool_mesh
from .surfaces import Surface, boundary_faces


@dataclass(frozen=True, eq=False)
class PointSet:
    """Sphere splats: ``positions(state)`` (n, dim), colours (n, 3), radii (n,) m."""

    name: str
    positions: Callable
    colors: np.ndarray
    radii: np.ndarray


@dataclass(frozen=True, eq=False)
class RigidPart:
    """A mesh in its own frame, at ``state``'s pose of tool row ``tool`` (``None``: static,
    the mesh in world coordinates); ``material`` a row of ``meshes.material``."""

    name: str
    mesh: TriMesh
    material: np.ndarray
    tool: int | None = None


@dataclass(frozen=True, eq=False)
class SoftPart:
    """A deformable surface over the node positions ``nodes(state)`` (N, 3)."""

    name: str
    surface: Surface
    nodes: Callable
    material: np.ndarray


def up_axis(gravity) -> int:
    """The world axis drawn upwards: the one gravity pulls down along, else y."""
    g = np.asarray(gravity, float)
    if g.shape != (3,) or not np.any(g):
        return 1
    a = int(np.argmax(np.abs(g)))
    return a if g[a] < 0 else 1


def _numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().numpy().astype(np.float64)
    return np.asarray(x, np.float64)


def _lift(x: np.ndarray, z: float = 0.0) -> np.ndarray:
    """(N, 2) points of a 2D scene to (N, 3) in the plane ``z``."""
    if x.shape[1] == 3:
        return x
    return np.concatenate([x, np.full((len(x), 1), z)], 1)


class ColorChoice:
    """Colours by part name: the user's ``colors`` overrides, else the role's default;
    bodies take the palette in order. ``check()`` rejects names that are not parts."""

    def __init__(self, renderer, colors: dict | None):
        self.user = {k: rgb(f"colors[{k!r}]", v) for k, v in (colors or {}).items()}
        self.palette = renderer.palette
        self.renderer = renderer
        self.names: list[str] = []
        self._bodies = 0

    def body(self, name: str) -> np.ndarray:
        c = self.user.get(name)
        if c is None:
            c = np.asarray(self.palette[self._bodies % len(self.palette)], float)
        self._bodies += 1
        self.names.append(name)
        return c

    def role(self, name: str, default) -> np.ndarray:
        self.names.append(name)
        c = self.user.get(name)
        return c if c is not None else rgb(name, default)

    def check(self) -> None:
        unknown = sorted(set(self.user) - set(self.names))
        if unknown:
            raise ValueError(f"colors has unknown name(s) {unknown}; this scene draws: "
                             f"{self.names}")


class SceneDrawing:
    """The fixed parts of one simulator's pictures and how a state becomes kernel inputs.

    Args:
        sim: the simulator (held weakly).
        dim: 2 or 3.
        points, rigid, soft: the parts (see the module docstring).
        camera: default camera; ``floor``: a ``Floor`` or ``None``.
        dtype: float type of the kernel's arrays.
        checks: ``{state field: shape}`` that ``frame`` verifies.
        sensors: tactile sensors whose images ``Renderer.render(..., tactile_image=True)``
            can show (their indices in ``sim.read``).
    """

    def __init__(self, sim, dim: int, points: list[PointSet], rigid: list[RigidPart],
                 soft: list[SoftPart], camera: Camera, floor, dtype, checks: dict,
                 sensors: tuple = ()):
        self.sim_ref = weakref.ref(sim)
        self.dim = dim
        self.points, self.rigid, self.soft = points, rigid, soft
        self.camera, self.floor = camera, floor
        self.dtype = dtype
        self.checks = checks
        self.sensors = sensors
        meshes = [p.mesh for p in rigid]
        for s in soft:
            zeros = np.zeros((s.surface.n_corners, 3))
            meshes.append(TriMesh(zeros, zeros, s.surface.corner_faces))
        mats = [p.material for p in rigid] + [s.material for s in soft]
        self.batch = MeshBatch(meshes, np.stack(mats) if mats else np.zeros((0, 7)), dtype=dtype)
        self.tool_rows = [(i, p.tool) for i, p in enumerate(rigid) if p.tool is not None]
        if points:
            self.colors = np.ascontiguousarray(np.concatenate([p.colors for p in points]),
                                               dtype=dtype)
            self.radii = np.ascontiguousarray(np.concatenate([p.radii for p in points]),
                                              dtype=dtype)
        else:
            self.colors = np.zeros((0, 3), dtype)
            self.radii = np.zeros(0, dtype)
        self.key = None  # set by the renderer: the colours this drawing was made with

    def check(self, state) -> None:
        for name, shape in self.checks.items():
            got = tuple(getattr(state, name).shape)
            if got != tuple(shape):
                raise ValueError(f"state.{name} has shape {got}; this simulator needs "
                                 f"{tuple(shape)}")

    def frame(self, state):
        """``(points, xforms)``: the splat positions (an (n, dim) tensor or array, read in
        place where possible) and the (M, 12) instance transforms; the deformable
        surfaces' vertices are written into ``self.batch``."""
        self.check(state)
        if len(self.points) == 1:
            x = self.points[0].positions(state)
        elif self.points:
            x = np.concatenate([_numpy(p.positions(state)) for p in self.points])
        else:
            x = np.zeros((0, self.dim))
        xf = None
        if self.batch.count:
            xf = np.array(self.batch.identity)
            if self.tool_rows:
                poses = pose_matrices(_numpy(state.tool_pos), _numpy(state.tool_rot))
                for i, k in self.tool_rows:
                    xf[i] = poses[k]
            base = len(self.rigid)
            b = self.batch
            for k, s in enumerate(self.soft):
                lo, hi = b.vertex_offsets[base + k], b.vertex_offsets[base + k + 1]
                s.surface.write_corners(s.nodes(state), b.vertices[lo:hi], b.normals[lo:hi])
        return x, self.batch.transforms(xf)

    def content_bounds(self, state, parts=None) -> np.ndarray:
        """(3, 2) box around the given parts (default all) at ``state``."""
        parts = (self.points + self.rigid + self.soft) if parts is None else parts
        pts = []
        poses = None
        for p in parts:
            if isinstance(p, PointSet):
                pts.append(_lift(_numpy(p.positions(state))))
            elif isinstance(p, SoftPart):
                pts.append(_lift(_numpy(p.nodes(state))))
            elif p.tool is None:
                pts.append(p.mesh.vertices)
            else:
                if poses is None:
                    poses = pose_matrices(_numpy(state.tool_pos), _numpy(state.tool_rot))
                pts.append(p.mesh.transformed(poses[p.tool]).vertices)
        pts = np.concatenate([q for q in pts if len(q)]) if pts else np.zeros((0, 3))
        if not len(pts):
            return np.array([[0.0, 1.0]] * 3)
        return np.stack([pts.min(0), pts.max(0)], 1)


# ---------------------------------------------------------------------- helpers
def _padded(bounds: np.ndarray, scale: float = 1.0, pad: float = 0.05) -> np.ndarray:
    """``bounds`` scaled about its centre, then padded by ``pad`` of its largest side on
    every side (so flat content, such as a sheet at rest, gets a box)."""
    c = bounds.mean(1)
    half = 0.5 * (bounds[:, 1] - bounds[:, 0]) * scale
    ext = max(float(2 * half.max()), 1e-9)
    half = half + pad * ext
    return np.stack([c - half, c + half], 1)


def _floor_for(renderer, box: np.ndarray, axis: int, level: float | None):
    """The renderer's floor choice, for content in ``box`` with up axis ``axis``."""
    from .renderer import Floor

    if renderer.floor is not True:
        return renderer.floor or None
    ext = float(np.max(box[:, 1] - box[:, 0]))
    plane = [a for a in range(3) if a != axis]
    lo = box[plane, 0] - ext
    hi = box[plane, 1] + ext
    lvl = float(box[axis, 0]) if level is None else float(level)
    return Floor(level=lvl, lo=tuple(lo), hi=tuple(hi), cell=_nice(ext / 6.0), axis=axis)


def _nice(x: float) -> float:
    """The number 1, 2 or 5 times a power of ten nearest below ``x`` (checker cells)."""
    e = 10.0 ** math.floor(math.log10(x))
    for m in (5.0, 2.0, 1.0):
        if m * e <= x:
            return m * e
    return e


def _framing(renderer, box: np.ndarray, axis: int, elevation: float = 25.0) -> Camera:
    return Camera.framing(box, aspect=renderer.width / renderer.height, up_axis=axis,
                          elevation=elevation)


def _tool_part(name, kind, geom, axis, dim, row, color, role, z=0.0) -> RigidPart:
    return RigidPart(name, tool_mesh(kind, geom, axis, dim, z=z),
                     material(color, specular=SPECULAR[role]), row)


def _particles(renderer, mpm, choice: ColorChoice, positions) -> PointSet:
    """The particles of a ``ds.MPM`` coloured by body, sized by their volumes."""
    n, d = mpm.n_particles, mpm.dim
    col = np.zeros((n, 3))
    rad = np.zeros(n)
    for g in mpm.model.groups:
        col[g.start:g.end] = choice.body(g.name)
        # 3D: the sphere with the particle's volume; 2D: the disc through the corners
        # of the particle's square, so that flat discs leave no gaps
        r = (3 * g.p_vol / (4 * math.pi)) ** (1 / 3) if d == 3 else math.sqrt(g.p_vol / 2)
        rad[g.start:g.end] = renderer.particle_scale * r
    return PointSet("particles", positions, col, rad)


def _surface_of(points: np.ndarray, elem: np.ndarray) -> np.ndarray:
    """The drawn triangles of a body's elements: tets' boundary, or triangles as they are."""
    return boundary_faces(points, elem) if elem.shape[1] == 4 else np.asarray(elem, np.int32)


# ---------------------------------------------------------------------- simulators
def mpm_drawing(renderer, sim, choice: ColorChoice) -> SceneDrawing:
    """``ds.MPM``: particles, tools at their poses, colliders; framed on the domain."""
    from .renderer import Floor

    d = sim.dim
    ps = _particles(renderer, sim, choice, lambda s: s.x)
    bounds = sim.scene.bounds
    # 2D: tools and colliders sit in front of the particle discs (towards the camera)
    z2d = max(4.0 * float(ps.radii.max(initial=0.0)),
              1e-3 * float(np.max(bounds[:, 1] - bounds[:, 0])))
    rigid = []
    if renderer.show_tools:
        for k, t in enumerate(sim.model.tools):
            rigid.append(_tool_part(t.name, t.kind, t.geom, t.axis, d, k,
                                    choice.role(t.name, renderer.tool_color), "tool", z=z2d))
    if renderer.show_colliders:
        for c in sim.scene.colliders:
            col = choice.role(c.name, renderer.collider_color)
            rigid.append(RigidPart(c.name, shape_mesh(c.shape, z=0.5 * z2d),
                                   material(col, specular=SPECULAR["collider"])))
    axis = up_axis(sim.scene.gravity) if d == 3 else 1
    camera = Camera.framing(bounds, aspect=renderer.width / renderer.height, up_axis=axis)
    floor = (Floor.under(bounds, axis=axis) if renderer.floor is True
             else (renderer.floor or None))
    checks = {"x": (sim.n_particles, d)}
    return SceneDrawing(sim, d, [ps], rigid, [], camera, floor, renderer._real, checks)


def deformable_drawing(renderer, sim, choice: ColorChoice) -> SceneDrawing:
    """``ds.FEM`` and ``ds.Shell``: each body's surface, tools, colliders, the ground."""
    from ..fem.shell import Shell

    model = sim.model
    d = sim.dim
    shell = isinstance(sim, Shell)
    x0 = _lift(np.asarray(model.x0, float))
    soft = []
    for g in model.groups:
        faces = _surface_of(x0, model.elem[g.start:g.end])
        c = choice.body(g.name)
        mat = (material(c, BACK_SHADE * c, SPECULAR["shell"]) if shell
               else material(c, specular=SPECULAR["solid"]))
        soft.append(SoftPart(g.name, Surface(faces, x0), lambda s: s.x, mat))
    bounds = sim.scene.bounds
    z2d = 1e-3 * float(np.max(bounds[:, 1] - bounds[:, 0]))
    rigid = []
    if renderer.show_tools:
        for k, t in enumerate(model.tools):
            rigid.append(_tool_part(t.name, t.kind, t.geom, t.axis, d, k,
                                    choice.role(t.name, renderer.tool_color), "tool", z=z2d))
    colliders = []
    if renderer.show_colliders:
        for c in sim.scene.colliders:
            col = choice.role(c.name, renderer.collider_color)
            colliders.append(RigidPart(c.name, shape_mesh(c.shape, z=0.5 * z2d),
                                       material(col, specular=SPECULAR["collider"])))
    checks = {"x": (sim.n_nodes, d)}
    drawing = SceneDrawing(sim, d, [], rigid + colliders, soft, None, None, renderer._real,
                           checks)
    state = sim.reset()
    box = drawing.content_bounds(state, soft + rigid)
    if colliders:  # colliders (tables, books) count inside the scene's domain only
        cb = drawing.content_bounds(state, colliders)
        dom = bounds if d == 3 else np.concatenate([bounds, [[0.0, 0.0]]])
        cb = np.stack([np.maximum(cb[:, 0], dom[:, 0]), np.minimum(cb[:, 1], dom[:, 1])], 1)
        cb[:, 1] = np.maximum(cb[:, 1], cb[:, 0])
        box = np.stack([np.minimum(box[:, 0], cb[:, 0]), np.maximum(box[:, 1], cb[:, 1])], 1)
    if d == 2:
        drawing.camera = Camera.framing(_padded(box)[:2], aspect=renderer.width / renderer.height)
        drawing.floor = _floor_2d(renderer, _padded(box)[:2])
        return drawing
    axis = up_axis(sim.scene.gravity)
    box = _padded(box)
    drawing.camera = _framing(renderer, box, axis, elevation=30.0)
    ground = sim.scene.ground
    if ground is not None:
        drawing.floor = _floor_for(renderer, box, 1, ground.height)
    else:  # the domain's bottom, so that what falls is seen falling towards it
        level = min(float(box[axis, 0]), float(bounds[axis, 0]))
        drawing.floor = _floor_for(renderer, box, axis, level)
    return drawing


def _floor_2d(renderer, bounds2):
    from .renderer import Floor

    if renderer.floor is not True:
        return renderer.floor or None
    return Floor.under(bounds2)


def tactile_drawing(renderer, sim, choice: ColorChoice) -> SceneDrawing:
    """``ds.Tactile``: pads (their tet meshes' surfaces) on their fingers, markers, rigid
    objects (free ones in body colours), hinge pins, colliders, the ground and a coupled
    MPM or FEM object."""
    import trimesh

    from ..shapes import Mesh
    from ..tools import obstacle_geometry

    model = sim.model
    x0 = np.asarray(model.x0, float)
    soft, rigid, points, focus = [], [], [], []
    spec = SPECULAR
    # pads, fingers, markers
    marker_sets = []
    for k, (sensor, name) in enumerate(zip(sim.sensors, sim.sensor_names)):
        g = next(g for g in model.groups if g.name == name)
        faces = boundary_faces(x0, model.elem[g.start:g.end])
        soft.append(SoftPart(name, Surface(faces, x0), lambda s: s.x,
                             material(choice.role(name, PAD_COLOR), specular=spec["pad"])))
        pad = sensor.pad
        lo, hi = pad.points[:, :2].min(0), pad.points[:, :2].max(0)
        c, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * 1.12
        depth = 0.6 * pad.thickness
        block = trimesh.creation.box(extents=(2 * half[0], 2 * half[1], depth))
        block.apply_translation((c[0], c[1], -0.5 * depth))
        finger = f"{name}_finger"
        rigid.append(RigidPart(finger, TriMesh.from_trimesh(block),
                               material(choice.role(finger, renderer.tool_color),
                                        specular=spec["tool"]), sim.tool_index(finger)))
        optics = sim.optics[k]
        xy = np.asarray(sensor.marker_xy, float)
        if len(xy) > 1:
            dd = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
            spacing = float(np.min(dd[dd > 0]))
        else:
            spacing = float(np.max(hi - lo))
        radius = min(0.16 * spacing, 0.3 * pad.thickness)
        marker_sets.append((optics, radius))
    mcol = choice.role("markers", MARKER_COLOR)

    def markers(s, sets=tuple(marker_sets)):
        out = []
        for optics, _r in sets:
            xs = s.x[optics.nodes]
            out.append((optics.m_bary[..., None] * xs[optics.m_vert]).sum(1))
        return torch.cat(out)

    n_markers = sum(len(o.m_bary) for o, _ in marker_sets)
    if n_markers:
        points.append(PointSet("markers", markers, np.tile(mcol, (n_markers, 1)),
                               np.concatenate([np.full(len(o.m_bary), r * renderer.particle_scale)
                                               for o, r in marker_sets])))
    focus += soft + rigid
    # objects: kinematic tools and free bodies
    free = {b.name: b for b in sim.free}
    scene = sim.user_scene
    for t in scene.tools:
        row = sim.tool_index(t.name)
        is_free = t.name in free
        col = choice.body(t.name) if is_free else choice.role(t.name, renderer.tool_color)
        mat = material(col, specular=spec["free" if is_free else "tool"])
        if isinstance(t.shape, Mesh):
            ref = np.asarray(model.tools[row].position, float)
            tm = TriMesh.from_trimesh(t.shape.mesh)
            mesh = TriMesh(tm.vertices - ref, tm.normals, tm.faces)
        else:
            kind, geom, axis = obstacle_geometry(t.shape)
            mesh = tool_mesh(kind, geom, axis, 3)
        part = RigidPart(t.name, mesh, mat, row)
        rigid.append(part)
        focus.append(part)
    context = []
    for b in sim.free:
        if b.hinge is None:
            continue
        part = _hinge_part(b, rigid[[p.name for p in rigid].index(b.name)], choice)
        context.append(part)
    if renderer.show_colliders:
        for c in scene.colliders:
            col = choice.role(c.name, renderer.collider_color)
            context.append(RigidPart(c.name, shape_mesh(c.shape),
                                     material(col, specular=spec["collider"])))
    # a deformable object coupled to the pads
    if sim.mpm_coupling is not None:
        ps = _particles(renderer, sim.mpm_coupling.mpm, choice, lambda s: s.particle_x)
        points.append(ps)
        focus.append(ps)
    elif sim.fem_coupling is not None:
        fem = sim.fem_coupling.fem
        fx0 = np.asarray(fem.model.x0, float)
        part = SoftPart(fem.model.groups[0].name,
                        Surface(boundary_faces(fx0, fem.model.elem), fx0),
                        lambda s: s.object_x,
                        material(choice.body(fem.model.groups[0].name),
                                 specular=spec["solid"]))
        soft.append(part)
        focus.append(part)
    checks = {"x": (sim.n_nodes, 3), "tool_pos": (len(model.tools), 3)}
    drawing = SceneDrawing(sim, 3, points, rigid + context, soft, None, None, renderer._real,
                           checks, sensors=tuple(range(len(sim.sensors))))
    state = sim.reset()
    # frame what moves (pads, fingers, objects) with room to move; colliders are context
    box = _padded(drawing.content_bounds(state, focus), scale=1.4)
    axis = up_axis(scene.gravity)
    drawing.camera = _framing(renderer, box, axis)
    if scene.ground is not None:
        drawing.floor = _floor_for(renderer, box, 1, scene.ground.height)
    elif sim.mpm_coupling is not None:
        # the MPM domain's wall layer is the floor
        mpm = sim.mpm_coupling.mpm
        level = float(mpm.scene.bounds[axis, 0] + mpm.model.bound * mpm.model.dx)
        drawing.floor = _floor_for(renderer, box, axis, level)
    else:  # under everything, colliders included (a surface to slide on)
        every = drawing.content_bounds(state, focus + context)
        drawing.floor = _floor_for(renderer, box, axis, min(float(box[axis, 0]),
                                                            float(every[axis, 0])))
    return drawing


def _hinge_part(body, lid: RigidPart, choice: ColorChoice) -> RigidPart:
    """A pin along a free object's hinge axis, through its anchor, as long as the object
    is wide along the axis (plus a tenth each side)."""
    import trimesh

    h = body.hinge
    axis = np.asarray(h.axis, float)
    axis = axis / np.linalg.norm(axis)
    anchor = np.asarray(h.anchor, float)
    # the object's extent along the axis, at its scene pose (rot0, position of its tool)
    verts = lid.mesh.vertices
    span = verts @ axis
    width = float(span.max() - span.min())
    extent = np.ptp(verts, axis=0)
    radius = 0.06 * float(np.sort(extent)[0] if np.sort(extent)[0] > 0 else width)
    pin = trimesh.creation.cylinder(radius=max(radius, 1e-6), height=1.2 * width, sections=16)
    pin.apply_transform(trimesh.geometry.align_vectors([0.0, 0.0, 1.0], axis))
    pin.apply_translation(anchor)
    name = f"{body.name}_hinge"
    col = choice.role(name, HINGE_COLOR)
    return RigidPart(name, TriMesh.from_trimesh(pin), material(col, specular=SPECULAR["hinge"]))


def drawing_for(renderer, sim, colors: dict | None) -> SceneDrawing:
    """The :class:`SceneDrawing` of any simulator of diffsim.

    Raises:
        TypeError: ``sim`` is not a simulator the renderer knows.
        ValueError: ``colors`` names something the scene does not draw.
    """
    from ..fem.base import DeformableSimulator
    from ..mpm.simulator import MPM
    from ..tactile.simulator import Tactile

    choice = ColorChoice(renderer, colors)
    if isinstance(sim, Tactile):
        drawing = tactile_drawing(renderer, sim, choice)
    elif isinstance(sim, DeformableSimulator):
        drawing = deformable_drawing(renderer, sim, choice)
    elif isinstance(sim, MPM):
        drawing = mpm_drawing(renderer, sim, choice)
    else:
        raise TypeError(f"sim is a {type(sim).__name__}; the renderer draws ds.MPM, ds.FEM, "
                        "ds.Shell and ds.Tactile simulators (use render_points for arrays)")
    choice.check()
    return drawing


__all__ = ["SceneDrawing", "PointSet", "RigidPart", "SoftPart", "drawing_for", "up_axis",
           "mpm_drawing", "deformable_drawing", "tactile_drawing"]
