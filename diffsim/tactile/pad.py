"""Elastomer pads of tactile sensors: meshes in the pad frame and their contact surface.

The pad frame: the back face (glued to the finger) is ``z = 0``, the contact surface
faces ``+z`` (``z = thickness`` for a flat pad, a spherical cap above it for a dome),
the pad is centred on the ``z`` axis. ``TactilePad.flat`` and ``TactilePad.dome`` mesh a
tensor-product grid of boxes, each split into six tetrahedra (Kuhn), optionally graded
(fine cells near the centre of the contact surface); ``TactilePad.from_mesh`` meshes a
watertight surface (``.obj``/``.stl`` or ``trimesh.Trimesh``) with ``ds.FEM``'s grid mesher.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..mesh import _orient, check_volume_mesh, mesh_volume


def _graded_axis(lo: float, hi: float, h: float, core: float | None, h_fine: float | None,
                 ratio: float = 1.3) -> np.ndarray:
    """Node coordinates on ``[lo, hi]``: cells of ``h_fine`` within ``|u - c| < core`` (c the
    centre), growing by ``ratio`` up to ``h`` outside; uniform ``h`` without grading."""
    if core is None:
        n = max(1, int(round((hi - lo) / h)))
        return np.linspace(lo, hi, n + 1)
    c = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    out = [0.0]
    step = h_fine
    while out[-1] < half - 1e-12:
        if out[-1] >= core - 1e-12:
            step = min(step * ratio, h)
        nxt = out[-1] + step
        if half - nxt < 0.3 * step:   # no sliver at the end
            nxt = half
        out.append(min(nxt, half))
    u = np.asarray(out)
    return np.concatenate([c - u[:0:-1], c + u])


def _graded_top(t: float, h: float, core: float | None, h_fine: float | None,
                ratio: float = 1.3) -> np.ndarray:
    """Node z coordinates on ``[0, t]``: fine below the contact surface ``z = t``."""
    if core is None:
        n = max(1, int(round(t / h)))
        return np.linspace(0.0, t, n + 1)
    out = [0.0]
    step = h_fine
    while out[-1] < t - 1e-12:
        if out[-1] >= core - 1e-12:
            step = min(step * ratio, h)
        nxt = out[-1] + step
        if t - nxt < 0.3 * step:
            nxt = t
        out.append(min(nxt, t))
    return t - np.asarray(out)[::-1]


def kuhn_tets(axes) -> tuple[np.ndarray, np.ndarray]:
    """Points and positively oriented tets of the tensor grid on ``axes`` (3 coordinate arrays);
    every box is split into six tets along its main diagonal (conforming across boxes)."""
    shape = tuple(len(a) for a in axes)
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    index = np.arange(len(pts)).reshape(shape)
    cells = []
    base = np.stack(np.meshgrid(*[np.arange(n - 1) for n in shape], indexing="ij"), -1)
    base = base.reshape(-1, 3)
    for perm in itertools.permutations(range(3)):
        corner = base.copy()
        tet = [index[tuple(corner.T)]]
        for ax in perm:
            corner = corner.copy()
            corner[:, ax] += 1
            tet.append(index[tuple(corner.T)])
        cells.append(np.stack(tet, 1))
    cells = np.concatenate(cells)
    return pts, _orient(pts, cells)


def boundary_faces(cells: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Boundary triangles of a tet mesh, wound with outward normals."""
    faces = np.concatenate([cells[:, [1, 2, 3]], cells[:, [0, 3, 2]], cells[:, [0, 1, 3]],
                            cells[:, [0, 2, 1]]])
    key = np.sort(faces, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    faces = faces[counts[inv.ravel()] == 1]
    # positively oriented tets: the faces above point outward; check against the centroid
    opp = np.concatenate([cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3]])
    opp = opp[counts[inv.ravel()] == 1]
    n = np.cross(points[faces[:, 1]] - points[faces[:, 0]],
                 points[faces[:, 2]] - points[faces[:, 0]])
    flip = (n * (points[faces[:, 0]] - points[opp])).sum(1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


@dataclass(frozen=True, eq=False)
class TactilePad:
    """A meshed elastomer pad in its own frame (see the module docstring).

    Build with :meth:`flat`, :meth:`dome` or :meth:`from_mesh`.

    Attributes:
        points: (N, 3) rest node positions (m, pad frame).
        cells: (M, 4) tetrahedra.
        kind: ``"flat"``, ``"dome"`` or ``"mesh"``.
        size: (width, height) of the contact face's footprint (m), along x and y.
        thickness: height of the flat part (m); the contact surface is at ``z >=
            thickness`` (dome: up to ``thickness + dome_height``).
    """

    points: np.ndarray = field(repr=False)
    cells: np.ndarray = field(repr=False)
    kind: str
    size: tuple
    thickness: float
    dome_height: float = 0.0

    # ------------------------------------------------------------------ builders
    @classmethod
    def flat(cls, size=(0.02, 0.02, 0.004), resolution: float = 0.002,
             fine: tuple | None = None) -> TactilePad:
        """A flat box pad ``size = (width, height, thickness)`` (m) of cells about ``resolution``.

        ``fine = (core, h_fine)`` grades the mesh: cells of ``h_fine`` within ``core`` (m) of
        the contact surface's centre (laterally and in depth), growing by 1.3 per cell to
        ``resolution`` outside (for contact problems that need a fine mesh where it matters).
        """
        w, h, t = _size3(size)
        res = _res(resolution, max(w, h))
        core, hf = _fine(fine, res)
        axes = [_graded_axis(-w / 2, w / 2, res, core, hf), _graded_axis(-h / 2, h / 2, res, core, hf),
                _graded_top(t, res, core, hf)]
        pts, cells = kuhn_tets(axes)
        return cls(pts, cells, "flat", (w, h), t)

    @classmethod
    def dome(cls, size=(0.02, 0.02, 0.003), dome_height: float = 0.002,
             resolution: float = 0.002, fine: tuple | None = None) -> TactilePad:
        """A pad whose contact surface is a spherical cap of height ``dome_height`` (m) over
        the inscribed circle of the ``(width, height)`` footprint, on a flat base of
        ``thickness``: the grid of :meth:`flat` stretched along z."""
        w, h, t = _size3(size)
        if not (isinstance(dome_height, (int, float)) and math.isfinite(dome_height)
                and 0 < dome_height < 0.5 * min(w, h)):
            raise ValueError(f"dome_height={dome_height!r} is not allowed: it must lie in (0, "
                             f"{0.5 * min(w, h):g}) m (half the smaller footprint side)")
        flat = cls.flat((w, h, t), resolution, fine)
        pts = flat.points.copy()
        pts[:, 2] *= (t + dome_bump(pts[:, 0], pts[:, 1], w, h, dome_height)) / t
        pts_c = _orient(pts, flat.cells)
        return cls(pts, pts_c, "dome", (w, h), t, float(dome_height))

    @classmethod
    def from_mesh(cls, mesh, resolution: float) -> TactilePad:
        """Mesh a closed surface (a ``trimesh.Trimesh``, a ``ds.Mesh`` or a file path) in the
        pad frame: back face at ``z = 0`` (its lowest points), contact surface facing ``+z``.

        Raises:
            ValueError: the surface is not watertight (naming the open edges' count), or it
                does not start at ``z = 0``.
        """
        import trimesh

        from ..shapes import Mesh

        if isinstance(mesh, Mesh):
            tm = mesh.mesh
        elif isinstance(mesh, trimesh.Trimesh):
            tm = mesh
        else:
            try:
                tm = trimesh.load(str(mesh), force="mesh", process=True)
            except Exception as e:
                raise ValueError(f"pad mesh {mesh!r} could not be loaded: {e}") from e
        if not tm.is_watertight:
            edges = trimesh.grouping.group_rows(tm.edges_sorted, require_count=1)
            raise ValueError(f"pad mesh is not watertight: {len(edges)} boundary edge(s) belong "
                             "to a single face; a pad must be a closed surface (allowed: a "
                             "watertight mesh; try trimesh.repair.fill_holes)")
        lo, hi = np.asarray(tm.bounds)
        if abs(lo[2]) > 1e-9 * max(1.0, float(np.ptp(tm.vertices))):
            raise ValueError(f"pad mesh has its lowest point at z={lo[2]:g} m; the pad frame puts "
                             "the back face at z = 0 (allowed: min z == 0; translate the mesh)")
        pts, cells = mesh_volume(Mesh.from_trimesh(tm, name="pad"), resolution)
        w, h = float(hi[0] - lo[0]), float(hi[1] - lo[1])
        return cls(pts, cells, "mesh", (w, h), float(hi[2]))

    # ------------------------------------------------------------------ derived
    def __post_init__(self):
        check_volume_mesh(self.points, self.cells, what="pad mesh")
        faces = boundary_faces(self.cells, self.points)
        n = np.cross(self.points[faces[:, 1]] - self.points[faces[:, 0]],
                     self.points[faces[:, 2]] - self.points[faces[:, 0]])
        area = 0.5 * np.linalg.norm(n, axis=1)
        nz = n[:, 2] / np.maximum(2 * area, 1e-300)
        zmin = self.points[:, 2].min()
        tol = 1e-9 * max(self.size) + 1e-12
        back_face = np.all(self.points[faces, 2] <= zmin + tol, axis=1)
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "front_faces", faces[(nz > 0.3) & ~back_face])
        object.__setattr__(self, "back", self.points[:, 2] <= zmin + tol)
        # lumped contact area per node: a third of each boundary triangle (back face excluded)
        ca = np.zeros(len(self.points))
        np.add.at(ca, faces[~back_face].ravel(), np.repeat(area[~back_face] / 3, 3))
        ca[self.back] = 0.0
        object.__setattr__(self, "contact_area", ca)
        if len(self.front_faces) == 0:
            raise ValueError("pad mesh has no contact surface facing +z (pad frame): the contact "
                             "surface must face +z, the back face lie at z = 0")

    @property
    def front_nodes(self) -> np.ndarray:
        """Indices of the nodes of the contact surface."""
        return np.unique(self.front_faces)

    def surface_height(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Embed points ``xy`` (Q, 2) of the footprint in the contact surface (z as a graph).

        Returns:
            ``(z, tri, bary)``: the rest height (Q,), the front triangle (Q,) (-1 outside
            the surface) and barycentric weights (Q, 3).
        """
        return embed_xy(self.points, self.front_faces, xy)

    def __repr__(self):
        return (f"TactilePad({self.kind}, size={tuple(round(s, 6) for s in self.size)}, "
                f"thickness={self.thickness:g}, nodes={len(self.points)}, tets={len(self.cells)})")


def dome_bump(x, y, w, h, hd):
    """Height of the spherical cap of height ``hd`` over the inscribed circle of ``w x h``."""
    a = 0.5 * min(w, h)
    R = (a * a + hd * hd) / (2 * hd)
    r2 = x * x + y * y
    return np.where(r2 < a * a, np.sqrt(np.maximum(R * R - r2, 0.0)) - (R - hd), 0.0)


def embed_xy(points: np.ndarray, tris: np.ndarray, xy: np.ndarray):
    """Containing triangle (projected on xy) and barycentric weights of each query point."""
    a, b, c = (points[tris[:, k], :2] for k in range(3))
    v0, v1 = b - a, c - a
    den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    Q = len(xy)
    tri = np.full(Q, -1, dtype=np.int64)
    bary = np.zeros((Q, 3))
    chunk = max(1, 2_000_000 // max(len(tris), 1))
    for s in range(0, Q, chunk):
        p = xy[s:s + chunk, None, :] - a[None]
        l1 = (p[..., 0] * v1[:, 1] - p[..., 1] * v1[:, 0]) / den
        l2 = (v0[:, 0] * p[..., 1] - v0[:, 1] * p[..., 0]) / den
        l0 = 1 - l1 - l2
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        hit = inside.any(1)
        k = np.argmax(inside, 1)
        rows = np.arange(len(k))
        tri[s:s + chunk] = np.where(hit, k, -1)
        bary[s:s + chunk] = np.stack([l0[rows, k], l1[rows, k], l2[rows, k]], 1) * hit[:, None]
    z = np.full(Q, np.nan)
    ok = tri >= 0
    z[ok] = (bary[ok] * points[tris[tri[ok]], 2]).sum(1)
    return z, tri, bary


def _size3(size):
    s = np.asarray(size, dtype=np.float64)
    if s.shape != (3,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"size={size!r} is not allowed: expected (width, height, thickness), "
                         "three numbers > 0 (m)")
    return tuple(map(float, s))


def _res(resolution, limit):
    if not (isinstance(resolution, (int, float)) and math.isfinite(resolution)
            and 0 < resolution <= limit):
        raise ValueError(f"resolution={resolution!r} is not allowed: it must lie in (0, {limit:g}]"
                         " m (the footprint's larger side)")
    return float(resolution)


def _fine(fine, res):
    if fine is None:
        return None, None
    try:
        core, hf = map(float, fine)
    except (TypeError, ValueError):
        raise ValueError(f"fine={fine!r} is not allowed: expected (core, h_fine) in m") from None
    if not (core > 0 and 0 < hf <= res):
        raise ValueError(f"fine={fine!r} is not allowed: core > 0 and 0 < h_fine <= resolution "
                         f"({res:g} m)")
    return core, hf
