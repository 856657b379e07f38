"""Triangle meshes of tools and colliders, and their packing for the rasterizer.

3D shapes become meshes through trimesh's primitives (``icosphere``, ``box``,
``capsule``, ``cylinder``) or, for ``ds.Mesh``, the wrapped ``trimesh.Trimesh``;
sharp edges are split (``trimesh.graph.smooth_shade``) so boxes shade flat and
spheres smooth. 2D shapes become flat triangulated outlines in the plane
``z = const`` facing +z (the 2D camera looks down -z).

A :class:`MeshBatch` concatenates meshes into the arrays the kernel reads, one
*instance* per mesh with its material (front and back colour, highlight); each
frame the (M, 12) instance transforms change, and the vertices of deformable
instances (soft bodies, shells) are rewritten in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..shapes import Box, Capsule, Compound, Cylinder, Mesh, Polygon, Shape, Sphere

SMOOTH_ANGLE = math.radians(35.0)  # edges sharper than this shade as creases
CIRCLE_SEGMENTS = 48


@dataclass(frozen=True, eq=False)
class TriMesh:
    """Vertices (V, 3), unit vertex normals (V, 3) and faces (F, 3) of one mesh."""

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray

    @classmethod
    def from_trimesh(cls, mesh) -> TriMesh:
        """From a ``trimesh.Trimesh`` (copied; sharp edges split for flat shading)."""
        import trimesh

        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"mesh must be a trimesh.Trimesh, got {type(mesh).__name__}")
        if len(mesh.faces) == 0:
            raise ValueError("mesh has no faces")
        smooth = trimesh.graph.smooth_shade(mesh, angle=SMOOTH_ANGLE, facet_minarea=None)
        return cls(np.asarray(smooth.vertices, float), np.asarray(smooth.vertex_normals, float),
                   np.asarray(smooth.faces, np.int32))

    @classmethod
    def flat(cls, outline: np.ndarray, z: float = 0.0) -> TriMesh:
        """A 2D outline (M, 2) (simple polygon, either orientation) as a flat mesh at ``z``."""
        outline = np.asarray(outline, float)
        faces = triangulate_polygon(outline)
        verts = np.concatenate([outline, np.full((len(outline), 1), float(z))], 1)
        normals = np.tile([0.0, 0.0, 1.0], (len(outline), 1))
        return cls(verts, normals, faces)

    @classmethod
    def concat(cls, meshes: list[TriMesh]) -> TriMesh:
        """One mesh holding all of ``meshes`` (e.g. the parts of a compound tool)."""
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])
        return cls(np.concatenate([m.vertices for m in meshes]),
                   np.concatenate([m.normals for m in meshes]),
                   np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]).astype(
                       np.int32))

    def transformed(self, matrix: np.ndarray) -> TriMesh:
        """This mesh moved by a 3x4 (or 4x4) rigid transform."""
        R, t = matrix[:3, :3], matrix[:3, 3]
        return TriMesh(self.vertices @ R.T + t, self.normals @ R.T, self.faces)


def triangulate_polygon(outline: np.ndarray) -> np.ndarray:
    """Ear-clipping triangulation of a simple polygon (M, 2); returns (M - 2, 3) indices.

    O(M^2), meant for outlines of tens to hundreds of vertices.
    """
    pts = np.asarray(outline, float)
    m = len(pts)
    if m < 3:
        raise ValueError(f"a polygon needs >= 3 vertices, got {m}")
    area2 = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    sign = 1.0 if area2 >= 0 else -1.0
    idx = list(range(m))
    tris = []

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    guard = 0
    while len(idx) > 3 and guard < 4 * m * m:
        guard += 1
        n = len(idx)
        for k in range(n):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % n]
            a, b, c = pts[i0], pts[i1], pts[i2]
            if sign * cross(a, b, c) <= 1e-15:
                continue  # reflex or degenerate corner: not an ear
            inside = False
            for q in idx:
                if q in (i0, i1, i2):
                    continue
                p = pts[q]
                if (sign * cross(a, b, p) >= 0 and sign * cross(b, c, p) >= 0
                        and sign * cross(c, a, p) >= 0):
                    inside = True
                    break
            if not inside:
                tris.append((i0, i1, i2))
                del idx[k]
                break
        else:  # no ear found (self-intersecting input): fan the rest
            tris += [(idx[0], idx[j], idx[j + 1]) for j in range(1, len(idx) - 1)]
            idx = idx[:3]
            break
    if len(idx) == 3:
        tris.append(tuple(idx))
    return np.asarray(tris, dtype=np.int32).reshape(-1, 3)


# ---------------------------------------------------------------------- 2D outlines
def _circle(radius: float) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, CIRCLE_SEGMENTS, endpoint=False)
    return radius * np.stack([np.cos(t), np.sin(t)], -1)


def _capsule_outline(radius: float, half_length: float, axis: int) -> np.ndarray:
    t = np.linspace(-np.pi / 2, np.pi / 2, CIRCLE_SEGMENTS // 2)
    right = np.stack([half_length + radius * np.cos(t), radius * np.sin(t)], -1)
    outline = np.concatenate([right, -right])
    return outline[:, ::-1] if axis == 1 else outline


def _rect(half) -> np.ndarray:
    hx, hy = half
    return np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]], float)


# ---------------------------------------------------------------------- 3D primitives
def _along(mesh, axis: int):
    """A mesh built along z, turned so that z points along ``axis``."""
    import trimesh

    if axis != 2:
        target = np.eye(3)[axis]
        mesh.apply_transform(trimesh.geometry.align_vectors([0.0, 0.0, 1.0], target))
    return mesh


def _primitive(kind: str, geom, axis: int):
    """A trimesh primitive of a tool or collider kind, centred at the origin."""
    import trimesh

    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=2, radius=geom[0])
    if kind == "box":
        return trimesh.creation.box(extents=2.0 * np.asarray(geom, float))
    if kind == "capsule":
        r, hl = geom
        return _along(trimesh.creation.capsule(height=2.0 * hl, radius=r, count=[24, 12]), axis)
    if kind == "cylinder":
        r, hh = geom
        return _along(trimesh.creation.cylinder(radius=r, height=2.0 * hh, sections=32), axis)
    raise ValueError(f"tool kind {kind!r} cannot be drawn")


def tool_mesh(kind: str, geom, axis: int, dim: int, z: float = 0.0) -> TriMesh:
    """A tool's mesh in its own frame (its pose maps it to the world).

    Args:
        kind, geom, axis: as in ``ToolSpec`` (sphere ``(r,)``, box half sizes,
            capsule ``(r, half_length)``, cylinder ``(r, half_height)``;
            compound: ``geom`` holds ``(kind, geom, axis, offset)`` parts).
        dim: 2 gives a flat outline at height ``z`` (towards the 2D camera).
    """
    if kind == "compound":
        parts = []
        for k, g, a, offset in geom:
            shift = np.eye(4)[:3]
            shift[:len(offset), 3] = offset
            parts.append(tool_mesh(k, g, a, dim, z).transformed(shift))
        return TriMesh.concat(parts)
    if dim == 3:
        return TriMesh.from_trimesh(_primitive(kind, geom, axis))
    if kind == "sphere":
        outline = _circle(geom[0])
    elif kind == "box":
        outline = _rect(geom)
    elif kind == "capsule":
        outline = _capsule_outline(geom[0], geom[1], axis)
    else:
        raise ValueError(f"tool kind {kind!r} cannot be drawn in 2D")
    return TriMesh.flat(outline, z)


def shape_mesh(shape: Shape, z: float = 0.0) -> TriMesh:
    """A static shape's mesh in world coordinates (3D) or its flat outline at ``z`` (2D).

    Raises:
        TypeError: a shape this module cannot mesh.
    """
    if isinstance(shape, Compound):
        return TriMesh.concat([shape_mesh(p, z) for p in shape.parts])
    c = np.asarray(shape.center, float)
    if shape.dim == 2:
        if isinstance(shape, Box):
            outline = _rect(shape.half_size)
        elif isinstance(shape, Sphere):
            outline = _circle(shape.radius)
        elif isinstance(shape, Capsule):
            outline = _capsule_outline(shape.radius, 0.5 * shape.length, shape.axis)
        elif isinstance(shape, Polygon):
            return TriMesh.flat(np.asarray(shape.vertices, float), z)
        else:
            raise TypeError(f"cannot draw a 2D {type(shape).__name__}")
        return TriMesh.flat(outline + c, z)
    if isinstance(shape, Mesh):
        return TriMesh.from_trimesh(shape.mesh)
    if isinstance(shape, Box):
        mesh = _primitive("box", shape.half_size, 0)
    elif isinstance(shape, Sphere):
        mesh = _primitive("sphere", (shape.radius,), 0)
    elif isinstance(shape, Capsule):
        mesh = _primitive("capsule", (shape.radius, 0.5 * shape.length), shape.axis)
    elif isinstance(shape, Cylinder):
        mesh = _primitive("cylinder", (shape.radius, 0.5 * shape.height), shape.axis)
    else:
        raise TypeError(f"cannot draw a 3D {type(shape).__name__}")
    mesh.apply_translation(c)
    return TriMesh.from_trimesh(mesh)


# ---------------------------------------------------------------------- poses
def quat_to_matrix(q) -> np.ndarray:
    """(K, 3, 3) rotation matrices of (K, 4) quaternions (w, x, y, z), normalised here."""
    q = np.asarray(q, float)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def pose_matrices(pos, rot) -> np.ndarray:
    """(K, 3, 4) rigid transforms of tool poses.

    Args:
        pos: (K, 3) positions, or (K, 2) in a 2D scene (placed at z = 0).
        rot: (K, 4) quaternions (w, x, y, z), or (K, 1) angles (rad) about +z in 2D.
    """
    pos = np.asarray(pos, float)
    rot = np.asarray(rot, float)
    k = len(pos)
    out = np.zeros((k, 3, 4))
    if pos.shape[1] == 2:
        c, s = np.cos(rot[:, 0]), np.sin(rot[:, 0])
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
        out[:, 2, 2] = 1.0
        out[:, :2, 3] = pos
    else:
        out[:, :, :3] = quat_to_matrix(rot)
        out[:, :, 3] = pos
    return out


# ---------------------------------------------------------------------- packing
def material(front, back=None, specular: float = 0.0) -> np.ndarray:
    """One row of a :class:`MeshBatch`'s materials: front RGB, back RGB (default the
    front's), Blinn-Phong highlight weight (0 = matte)."""
    front = np.asarray(front, float)
    back = front if back is None else np.asarray(back, float)
    return np.concatenate([front, back, [float(specular)]])


class MeshBatch:
    """Meshes packed for the kernel: each mesh is one instance with a material and a transform.

    Args:
        meshes: the meshes, each in its instance's frame.
        materials: (M, 7) rows of :func:`material` (front RGB, back RGB,
            highlight weight), or (M, 3) RGB in [0, 1] (both sides, matte).
        dtype: float type of the vertex arrays (the runtime precision).
    """

    def __init__(self, meshes: list[TriMesh], materials, dtype=np.float32):
        self.count = len(meshes)
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])
        self.vertex_offsets = offsets
        if meshes:
            mats = np.asarray(materials, float).reshape(len(meshes), -1)
            if mats.shape[1] == 3:
                mats = np.stack([material(c) for c in mats])
            if mats.shape[1] != 7:
                raise ValueError(f"materials has shape {mats.shape}; expected (M, 7) or (M, 3)")
            self.vertices = np.ascontiguousarray(
                np.concatenate([m.vertices for m in meshes]), dtype=dtype)
            self.normals = np.ascontiguousarray(
                np.concatenate([m.normals for m in meshes]), dtype=dtype)
            self.faces = np.ascontiguousarray(np.concatenate(
                [m.faces + o for m, o in zip(meshes, offsets)]), dtype=np.int32)
            self.face_instance = np.ascontiguousarray(np.concatenate(
                [np.full(len(m.faces), i) for i, m in enumerate(meshes)]), dtype=np.int32)
            self.materials = np.ascontiguousarray(mats, dtype=dtype)
        else:  # the kernel takes arrays of length >= 1; the face count is 0
            self.vertices = np.zeros((1, 3), dtype)
            self.normals = np.zeros((1, 3), dtype)
            self.faces = np.zeros((1, 3), np.int32)
            self.face_instance = np.zeros(1, np.int32)
            self.materials = np.zeros((1, 7), dtype)
        self.n_faces = sum(len(m.faces) for m in meshes)
        identity = np.zeros((max(self.count, 1), 3, 4))
        identity[:, :, :3] = np.eye(3)
        self.identity = identity
        self.dtype = dtype

    def set_vertices(self, instance: int, vertices: np.ndarray, normals: np.ndarray) -> None:
        """Overwrite the vertices and normals of one instance (a deformable surface)."""
        a, b = self.vertex_offsets[instance], self.vertex_offsets[instance + 1]
        self.vertices[a:b] = vertices
        self.normals[a:b] = normals

    def transforms(self, matrices: np.ndarray | None = None) -> np.ndarray:
        """(M, 12) kernel layout of (M, 3, 4) instance transforms (identity when ``None``)."""
        m = self.identity if matrices is None else matrices
        return np.ascontiguousarray(np.asarray(m).reshape(-1, 12), dtype=self.dtype)


__all__ = ["TriMesh", "MeshBatch", "material", "tool_mesh", "shape_mesh", "pose_matrices",
           "quat_to_matrix", "triangulate_polygon"]
