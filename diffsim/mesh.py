"""Meshes for ``ds.FEM`` (tetrahedra, triangles in 2D) and ``ds.Shell`` (triangle surfaces).

* ``VolumeMesh(points, cells)``: a user-given simplicial mesh (tets in 3D, triangles in 2D).
* ``TriMesh(vertices, faces)``: a triangle surface for shells (open or closed),
  from arrays, a ``trimesh.Trimesh`` or a file.
* ``Rectangle(center, size, normal_axis)``: a flat rectangular sheet, meshed with
  near-equilateral triangles (rows offset by half an edge), which is the mesh on
  which the hinge bending energy is isotropic (see ``shell_physics.py``).
* ``mesh_volume(shape, h)``: a structured grid of cells of size ``h`` over the
  shape's bounding box, each cube split into six tets (Freudenthal/Kuhn; each
  square into two triangles with alternating diagonals), keeping the elements whose
  centroid lies inside the shape. Boxes are tiled exactly. ``mesher="tetgen"``
  uses TetGen instead (``pip install tetgen``; AGPL-licensed, hence optional).

``check_volume_mesh`` and ``check_shell_mesh`` turn bad input (degenerate or inverted
elements, unreferenced vertices, non-manifold or inconsistently oriented surfaces)
into ``ValueError``s that name the element, edge or vertex.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .shapes import Box, Mesh, Shape, Sphere


# ------------------------------------------------------------------------------ types
@dataclass(frozen=True, eq=False)
class VolumeMesh:
    """A simplicial volume mesh: ``points`` (N, d) in metres, ``cells`` (M, d + 1) indices.

    Tetrahedra in 3D, triangles in 2D, positively oriented: ``det[x1 - x0, ..., xd - x0] > 0``.
    """

    points: np.ndarray = field(repr=False)
    cells: np.ndarray = field(repr=False)

    def __post_init__(self):
        pts = np.asarray(self.points, dtype=np.float64)
        cells = np.asarray(self.cells)
        if pts.ndim != 2 or pts.shape[1] not in (2, 3) or not np.all(np.isfinite(pts)):
            raise ValueError(f"points has shape {pts.shape}: expected (N, 2) or (N, 3) finite "
                             "coordinates")
        d = pts.shape[1]
        if cells.ndim != 2 or cells.shape[1] != d + 1 or not np.issubdtype(cells.dtype,
                                                                         np.integer):
            raise ValueError(f"cells has shape {cells.shape} and dtype {cells.dtype}: expected "
                             f"(M, {d + 1}) integer vertex indices for a {d}D mesh")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "cells", cells.astype(np.int64))

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def __repr__(self):
        return f"VolumeMesh(dim={self.dim}, points={len(self.points)}, cells={len(self.cells)})"


@dataclass(frozen=True, eq=False)
class TriMesh:
    """A triangle surface mesh in 3D for ``ds.Shell``: ``vertices`` (N, 3), ``faces`` (M, 3).

    Build from arrays, :meth:`from_trimesh` or :meth:`from_file`. The surface may be
    open (a sheet) or closed; it must be an oriented 2-manifold (checked on use).
    """

    vertices: np.ndarray = field(repr=False)
    faces: np.ndarray = field(repr=False)

    def __post_init__(self):
        v = np.asarray(self.vertices, dtype=np.float64)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3 or not np.all(np.isfinite(v)):
            raise ValueError(f"vertices has shape {v.shape}: expected (N, 3) finite coordinates")
        if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
            raise ValueError(f"faces has shape {f.shape} and dtype {f.dtype}: expected (M, 3) "
                             "integer vertex indices")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f.astype(np.int64))

    @classmethod
    def from_trimesh(cls, mesh) -> TriMesh:
        return cls(np.asarray(mesh.vertices), np.asarray(mesh.faces))

    @classmethod
    def from_file(cls, path: str | Path, scale: float = 1.0,
                  translate: tuple = (0.0, 0.0, 0.0)) -> TriMesh:
        """Load a surface (.obj, .stl, .ply, ...) with trimesh; scale, then translate (m)."""
        import trimesh

        m = trimesh.load(Path(path), force="mesh", process=False)
        return cls(np.asarray(m.vertices) * scale + np.asarray(translate, dtype=np.float64),
                   np.asarray(m.faces))

    def __repr__(self):
        return f"TriMesh(vertices={len(self.vertices)}, faces={len(self.faces)})"


@dataclass(frozen=True)
class Rectangle:
    """A flat rectangular sheet in 3D.

    Args:
        center: (3,) centre (m).
        size: extents (m) along the two in-plane axes, in increasing axis order (for
            ``normal_axis=1``: x then z).
        normal_axis: the axis normal to the sheet (0, 1 or 2); the sheet's triangles are
            wound so that their normals point along ``+normal_axis``.
    """

    center: tuple
    size: tuple
    normal_axis: int = 1

    def __post_init__(self):
        c = np.asarray(self.center, dtype=np.float64)
        s = np.asarray(self.size, dtype=np.float64)
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise ValueError(f"center={self.center!r} is not allowed: expected 3 finite numbers")
        if s.shape != (2,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"size={self.size!r} is not allowed: expected 2 numbers > 0")
        if self.normal_axis not in (0, 1, 2):
            raise ValueError(f"normal_axis={self.normal_axis!r} is not allowed: expected 0, 1, 2")

    @property
    def in_plane_axes(self) -> tuple[int, int]:
        return tuple(a for a in range(3) if a != self.normal_axis)


# ------------------------------------------------------------------------------ checks
def signed_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Signed volumes (areas in 2D) of simplices: ``det[x1 - x0, ...] / d!``."""
    d = points.shape[1]
    x0 = points[cells[:, 0]]
    Ds = np.stack([points[cells[:, a]] - x0 for a in range(1, d + 1)], axis=-1)
    return np.linalg.det(Ds) / math.factorial(d)


def _check_references(cells: np.ndarray, n: int, what: str, noun: str) -> None:
    """Raise ``ValueError`` if ``cells`` (elements or faces, a ``noun`` each) is empty or
    refers to a vertex outside ``0..n-1``."""
    if len(cells) == 0:
        raise ValueError(f"{what} has no {noun}s")
    bad = np.nonzero((cells < 0) | (cells >= n))
    if len(bad[0]):
        e = int(bad[0][0])
        raise ValueError(f"{what}: {noun} {e} refers to vertex {int(cells[e, bad[1][0]])}, but "
                         f"there are only {n} vertices")


def _check_all_used(cells: np.ndarray, n: int, what: str, noun: str) -> None:
    """Raise ``ValueError`` naming the first of the ``n`` vertices that no ``noun`` uses."""
    used = np.zeros(n, dtype=bool)
    used[cells.ravel()] = True
    if not used.all():
        v = int(np.argmin(used))
        raise ValueError(f"{what}: vertex {v} belongs to no {noun} (it would have no mass); "
                         "remove unreferenced vertices")


def check_volume_mesh(points: np.ndarray, cells: np.ndarray, what: str = "mesh") -> None:
    """Raise ``ValueError`` naming the first bad element or vertex of a volume mesh."""
    n, d = points.shape
    _check_references(cells, n, what, "element")
    srt = np.sort(cells, axis=1)
    rep = (np.diff(srt, axis=1) == 0).any(1)
    if rep.any():
        e = int(np.argmax(rep))
        raise ValueError(f"{what}: element {e} repeats a vertex: {cells[e].tolist()}")
    vol = signed_volumes(points, cells)
    scale = np.ptp(points, axis=0).max() if n > 1 else 1.0
    # an element is degenerate if it is much flatter than its own edge lengths allow
    edges = np.stack([np.linalg.norm(points[cells[:, a]] - points[cells[:, b]], axis=1)
                      for a, b in itertools.combinations(range(d + 1), 2)], 1)
    ref = np.maximum(edges.max(1), 1e-300) ** d / math.factorial(d)
    tiny = np.abs(vol) < 1e-9 * ref + 1e-300 * scale
    if tiny.any():
        e = int(np.argmax(tiny))
        raise ValueError(f"{what}: element {e} (vertices {cells[e].tolist()}) is degenerate: its "
                         f"{'volume' if d == 3 else 'area'} is {vol[e]:.3g}; remove it or fix "
                         "the mesh")
    neg = vol < 0
    if neg.any():
        e = int(np.argmax(neg))
        raise ValueError(f"{what}: element {e} (vertices {cells[e].tolist()}) is inverted: signed "
                         f"{'volume' if d == 3 else 'area'} {vol[e]:.3g} < 0. Elements must be "
                         "positively oriented (det[x1 - x0, ...] > 0); swap two of its vertices")
    _check_all_used(cells, n, what, "element")


def shell_topology(vertices: np.ndarray, faces: np.ndarray, what: str = "mesh"):
    """Check a shell surface and return its hinges.

    Returns:
        ``hinges`` (H, 4) int: ``(a, b, c, d)`` for each interior edge ``a-b`` with face
        ``(a, b, c)`` on one side and ``(b, a, d)`` on the other (both in their winding).

    Raises:
        ValueError: naming the face, edge or vertex that is degenerate, non-manifold or
            inconsistently oriented, or a vertex that no face uses.
    """
    n = len(vertices)
    _check_references(faces, n, what, "face")
    e1 = vertices[faces[:, 1]] - vertices[faces[:, 0]]
    e2 = vertices[faces[:, 2]] - vertices[faces[:, 0]]
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    longest = np.max(np.stack([np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1),
                               np.linalg.norm(e2 - e1, axis=1)]), axis=0)
    tiny = area <= 1e-9 * longest ** 2
    if tiny.any():
        f = int(np.argmax(tiny))
        raise ValueError(f"{what}: face {f} (vertices {faces[f].tolist()}) is degenerate (area "
                         f"{area[f]:.3g} m^2)")
    directed: dict[tuple[int, int], int] = {}
    for f, (a, b, c) in enumerate(faces.tolist()):
        for u, v in ((a, b), (b, c), (c, a)):
            if (u, v) in directed:
                g = directed[(u, v)]
                raise ValueError(
                    f"{what}: edge ({u}, {v}) is used in the same direction by faces {g} and {f}: "
                    "the surface is non-manifold there or its faces are inconsistently oriented")
            directed[(u, v)] = f
    hinges = []
    for (u, v), f in directed.items():
        if u < v and (v, u) in directed:
            g = directed[(v, u)]
            c = [w for w in faces[f] if w != u and w != v][0]
            d = [w for w in faces[g] if w != u and w != v][0]
            hinges.append((u, v, c, d))
    _check_all_used(faces, n, what, "face")
    # a vertex whose faces form more than one fan is a non-manifold ("bow-tie") vertex
    for v, fans in _vertex_fans(faces, directed).items():
        if fans > 1:
            raise ValueError(f"{what}: vertex {v} is non-manifold: its faces form {fans} "
                             "separate fans (two sheets touch at this vertex only)")
    return np.asarray(hinges, dtype=np.int64).reshape(-1, 4)


def _vertex_fans(faces: np.ndarray, directed: dict) -> dict[int, int]:
    """Number of edge-connected fans of faces around each vertex (1 for a manifold vertex)."""
    around: dict[int, list[int]] = {}
    for f, tri in enumerate(faces.tolist()):
        for v in tri:
            around.setdefault(v, []).append(f)
    out = {}
    for v, fs in around.items():
        if len(fs) == 1:
            continue
        parent = {f: f for f in fs}

        def root(f, parent=parent):
            while parent[f] != f:
                parent[f] = parent[parent[f]]
                f = parent[f]
            return f

        fset = set(fs)
        for f in fs:
            a, b, c = faces[f].tolist()
            for u, w in ((a, b), (b, c), (c, a)):
                if v in (u, w):
                    g = directed.get((w, u))
                    if g is not None and g in fset:
                        parent[root(f)] = root(g)
        n_fans = len({root(f) for f in fs})
        if n_fans > 1:
            out[v] = n_fans
    return out


# ------------------------------------------------------------------------------ meshing
def _remove_unused(points: np.ndarray, cells: np.ndarray):
    used = np.unique(cells)
    remap = -np.ones(len(points), dtype=np.int64)
    remap[used] = np.arange(len(used))
    return points[used], remap[cells]


def _orient(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    vol = signed_volumes(points, cells)
    cells = cells.copy()
    flip = vol < 0
    cells[flip, 0], cells[flip, 1] = cells[flip, 1].copy(), cells[flip, 0].copy()
    return cells


def grid_mesh(shape: Shape, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Structured simplicial mesh of ``shape`` with cells of about ``h`` metres.

    Boxes are tiled exactly (the spacing per axis is adjusted to divide the box);
    other shapes keep the elements of a lattice over their bounding box whose
    centroid is inside (a staircase boundary at resolution ``h``).
    """
    d = shape.dim
    lo, hi = shape.bounds()
    if isinstance(shape, Box):
        counts = np.maximum(1, np.round((hi - lo) / h).astype(int))
        axes = [np.linspace(lo[i], hi[i], counts[i] + 1) for i in range(d)]
    else:
        counts = np.maximum(1, np.ceil((hi - lo) / h - 1e-9).astype(int))
        pad = 0.5 * (counts * h - (hi - lo))
        axes = [lo[i] - pad[i] + h * np.arange(counts[i] + 1) for i in range(d)]
    shape_n = tuple(c + 1 for c in counts)
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    index = np.arange(points.shape[0]).reshape(shape_n)
    cells = []
    if d == 2:
        for i, j in itertools.product(range(counts[0]), range(counts[1])):
            a, b, c, e = index[i, j], index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]
            if (i + j) % 2 == 0:
                cells += [(a, b, c), (a, c, e)]
            else:
                cells += [(a, b, e), (b, c, e)]
    else:
        perms = list(itertools.permutations(range(3)))
        for i, j, k in itertools.product(*(range(c) for c in counts)):
            for perm in perms:
                corner = np.array([i, j, k])
                tet = [index[tuple(corner)]]
                for ax in perm:
                    corner = corner.copy()
                    corner[ax] += 1
                    tet.append(index[tuple(corner)])
                cells.append(tet)
    cells = np.asarray(cells, dtype=np.int64)
    if not isinstance(shape, Box):
        centroids = points[cells].mean(1)
        cells = cells[shape.sdf(centroids) < 0]
        if len(cells) == 0:
            raise ValueError(f"resolution={h:g} m is too coarse for the shape {type(shape).__name__}"
                             ": no element has its centroid inside; lower it")
    points, cells = _remove_unused(points, cells)
    return points, _orient(points, cells)


def tetgen_mesh(shape: Shape, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Quality tetrahedral mesh by TetGen (``pip install tetgen``), max volume about ``h^3/6``."""
    try:
        import tetgen
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("mesher='tetgen' needs the optional package tetgen (AGPL-3.0): pip "
                          "install tetgen, or use mesher='grid'") from e
    import trimesh

    if isinstance(shape, Mesh):
        surf = shape.mesh
    elif isinstance(shape, Box) and shape.dim == 3:
        surf = trimesh.creation.box(extents=2 * shape.half_size)
        surf.apply_translation(shape.center)
    elif isinstance(shape, Sphere) and shape.dim == 3:
        surf = trimesh.creation.icosphere(subdivisions=3, radius=shape.radius)
        surf.apply_translation(np.asarray(shape.center, dtype=np.float64))
    else:
        raise TypeError(f"mesher='tetgen' takes a 3D ds.Mesh, Box or Sphere, got "
                        f"{type(shape).__name__}")
    gen = tetgen.TetGen(np.asarray(surf.vertices, dtype=np.float64),
                        np.asarray(surf.faces, dtype=np.int32))
    nodes, elems = gen.tetrahedralize(order=1, minratio=1.5, mindihedral=10.0,
                                      maxvolume=h ** 3 / 6.0, quality=True, verbose=0)[:2]
    points, cells = _remove_unused(np.asarray(nodes, dtype=np.float64),
                                   np.asarray(elems, dtype=np.int64))
    return points, _orient(points, cells)


def mesh_volume(shape_or_mesh, h: float | None, mesher: str = "grid"):
    """Mesh a shape (``grid``/``tetgen``) or validate a ``VolumeMesh``; returns (points, cells)."""
    if isinstance(shape_or_mesh, VolumeMesh):
        return shape_or_mesh.points.copy(), shape_or_mesh.cells.copy()
    if not isinstance(shape_or_mesh, Shape):
        raise TypeError(f"shape_or_mesh must be a ds.Shape or ds.VolumeMesh, got "
                        f"{type(shape_or_mesh).__name__}")
    if h is None or not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise ValueError(f"resolution={h!r} is not allowed: meshing a shape needs a cell size "
                         "> 0 (m)")
    lo, hi = shape_or_mesh.bounds()
    if h > (hi - lo).max():
        raise ValueError(f"resolution={h:g} m exceeds the shape's size {(hi - lo).max():.3g} m")
    if mesher == "grid":
        return grid_mesh(shape_or_mesh, float(h))
    if mesher == "tetgen":
        return tetgen_mesh(shape_or_mesh, float(h))
    raise ValueError(f"mesher={mesher!r} is not allowed: expected 'grid' or 'tetgen'")


def rectangle_mesh(rect: Rectangle, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Near-equilateral triangulation of a rectangle: rows ``h sqrt(3)/2`` apart, odd rows
    shifted by half an edge (with half triangles at the ends)."""
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise ValueError(f"resolution={h!r} is not allowed: it must be a number > 0 (m)")
    W, Hh = float(rect.size[0]), float(rect.size[1])
    if h > max(W, Hh):
        raise ValueError(f"resolution={h:g} m exceeds the rectangle's size {max(W, Hh):g} m")
    nx = max(1, int(round(W / h)))
    ny = max(1, int(round(Hh / (h * math.sqrt(3) / 2))))
    dx, dy = W / nx, Hh / ny
    rows, coords = [], []
    for r in range(ny + 1):
        if r % 2 == 0:
            us = [j * dx for j in range(nx + 1)]
        else:
            us = [0.0] + [(j + 0.5) * dx for j in range(nx)] + [W]
        idx = list(range(len(coords), len(coords) + len(us)))
        coords += [(u, r * dy) for u in us]
        rows.append((idx, us))
    faces = []
    for (bi, bu), (ti, tu) in zip(rows[:-1], rows[1:]):
        i = j = 0
        while i < len(bi) - 1 or j < len(ti) - 1:
            adv_bottom = j == len(ti) - 1 or (i < len(bi) - 1 and bu[i + 1] <= tu[j + 1])
            if adv_bottom:
                faces.append((bi[i], bi[i + 1], ti[j]))
                i += 1
            else:
                faces.append((bi[i], ti[j + 1], ti[j]))
                j += 1
    uv = np.asarray(coords) - np.array([W / 2, Hh / 2])
    a0, a1 = rect.in_plane_axes
    pts = np.tile(np.asarray(rect.center, dtype=np.float64), (len(uv), 1))
    pts[:, a0] += uv[:, 0]
    pts[:, a1] += uv[:, 1]
    faces = np.asarray(faces, dtype=np.int64)
    n = np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]])
    if n[0, rect.normal_axis] < 0:
        faces = faces[:, [0, 2, 1]]
    return pts, faces
