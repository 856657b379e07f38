"""Deformable triangle surfaces: what the renderer draws of FEM solids and shells.

A :class:`Surface` is a fixed list of triangles over a simulator's nodes (the
boundary faces of a tet mesh, a shell's faces, a 2D mesh's triangles). Each
frame it turns node positions ``x`` (N, 3) into the rasterizer's per-corner
vertices and normals. Normals are smooth across edges that were smooth at rest
and sharp across creases (edges whose faces met at more than ``crease_deg`` at
rest, e.g. a box's edges), the way ``trimesh.graph.smooth_shade`` splits a
rigid mesh: the normal at corner ``(f, v)`` is the area-weighted sum of the
current normals of the faces around node ``v`` whose rest normals lie within
``crease_deg`` of face ``f``'s. Which faces are summed is fixed at rest (a CSR
list per corner), so a frame costs one cross product per face and one short sum
per corner: a Taichi kernel (``write_corners``, used by the renderer: parallel,
and deterministic because every corner sums its faces in a fixed order, no float
atomics) or numpy (``corners``, the reference).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from .raster import surface_corners

CREASE_DEG = 35.0


def boundary_faces(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The faces of a tet mesh that belong to one tet only, wound outwards.

    Args:
        points: (N, 3) node positions (m), used to orient the faces.
        cells: (E, 4) node indices of the tets (any orientation).

    Returns:
        (F, 3) int32 node indices; the normal ``(b - a) x (c - a)`` of each face
        points out of its tet.
    """
    cells = np.asarray(cells, np.int64)
    if cells.ndim != 2 or cells.shape[1] != 4:
        raise ValueError(f"cells has shape {cells.shape}; expected (E, 4) tets")
    # face k of a tet: the three nodes other than node k (which lies inside)
    local = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    faces = cells[:, local].reshape(-1, 3)
    opposite = cells[:, [0, 1, 2, 3]].reshape(-1)
    key = np.sort(faces, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    once = counts[inv.reshape(-1)] == 1
    faces, opposite = faces[once], opposite[once]
    p = np.asarray(points, float)
    n = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    inward = np.einsum("ij,ij->i", n, p[opposite] - p[faces[:, 0]]) > 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    return np.ascontiguousarray(faces, dtype=np.int32)


def face_normals(x: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) area-weighted normals ``(b - a) x (c - a)`` (twice the area, m^2)."""
    a, b, c = x[faces[:, 0]], x[faces[:, 1]], x[faces[:, 2]]
    return np.cross(b - a, c - a)


class Surface:
    """Triangles over nodes, drawn with crease-aware smooth normals.

    Args:
        faces: (F, 3) node indices (into the ``x`` given to :meth:`corners`).
        rest: (N, 3) rest positions of the nodes (m): where creases are found.
        crease_deg: faces meeting at a node at more than this angle at rest do
            not share their normals there; ``None`` smooths every node.

    Attributes:
        faces: (F, 3) int32; ``n_corners``: 3F, the rasterizer's vertex count.
    """

    def __init__(self, faces: np.ndarray, rest: np.ndarray, crease_deg: float | None = CREASE_DEG):
        faces = np.asarray(faces)
        rest = np.asarray(rest, float)
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise ValueError(f"faces has shape {faces.shape}; expected (F, 3) with F >= 1")
        if rest.ndim != 2 or rest.shape[1] != 3:
            raise ValueError(f"rest has shape {rest.shape}; expected (N, 3)")
        if faces.min() < 0 or faces.max() >= len(rest):
            raise ValueError(f"faces index nodes outside [0, {len(rest)})")
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)
        F = len(faces)
        self.n_corners = 3 * F
        fn = face_normals(rest, self.faces)
        un = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
        # pairs (corner, face g) with g around the corner's node: corner c = 3 f + k
        corner_node = self.faces.reshape(-1)
        corner_face = np.repeat(np.arange(F), 3)
        order = np.argsort(corner_node, kind="stable")
        sorted_nodes = corner_node[order]
        starts = np.searchsorted(sorted_nodes, np.arange(len(rest) + 1))
        valence = np.diff(starts)[corner_node]                 # faces around each corner
        rows = np.repeat(np.arange(3 * F), valence)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(valence) - valence, valence)
        cols = corner_face[order][starts[np.repeat(corner_node, valence)] + offs]
        if crease_deg is not None:
            keep = np.einsum("ij,ij->i", un[corner_face[rows]], un[cols]) >= math.cos(
                math.radians(crease_deg))
            rows, cols = rows[keep], cols[keep]
        self._gather = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * F, F))
        self._gather.sort_indices()
        self._ptr = np.ascontiguousarray(self._gather.indptr, dtype=np.int32)
        self._idx = np.ascontiguousarray(self._gather.indices, dtype=np.int32)
        self._fn = {}
        self.crease_deg = crease_deg

    def corners(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-corner positions and unit normals of the surface at node positions ``x``.

        Args:
            x: (N, 3) node positions (m), float array.

        Returns:
            ``(vertices, normals)``, each (3F, 3) float64: corner ``3 f + k`` is
            node ``faces[f, k]``. A corner whose faces have vanished (zero area)
            takes its own face's normal, or +y if that is degenerate too.
        """
        x = np.asarray(x, float)
        fn = face_normals(x, self.faces)
        cn = self._gather @ fn
        norm = np.linalg.norm(cn, axis=1, keepdims=True)
        bad = norm[:, 0] <= 1e-30
        if bad.any():
            own = np.repeat(fn, 3, axis=0)[bad]
            own_norm = np.linalg.norm(own, axis=1, keepdims=True)
            own = np.where(own_norm > 1e-30, own, np.array([0.0, 1.0, 0.0]))
            cn[bad], norm[bad] = own, np.maximum(np.linalg.norm(own, axis=1, keepdims=True),
                                                 1e-300)
        return x[self.faces.reshape(-1)], cn / norm

    def write_corners(self, x, vertices: np.ndarray, normals: np.ndarray) -> None:
        """``corners(x)`` computed by a Taichi kernel into ``vertices`` and ``normals``.

        Args:
            x: (N, 3) node positions, or (N, 2) for a 2D mesh (drawn at z = 0): a
                numpy array or torch tensor (read in place when it is contiguous, of
                the outputs' float type and on the CPU; else converted).
            vertices, normals: (3F, 3) C-contiguous arrays of the same float type,
                overwritten.
        """
        dt = vertices.dtype
        if torch.is_tensor(x):
            x = x.detach().to("cpu", torch.float64 if dt == np.float64 else torch.float32)
            x = x.contiguous()
        else:
            x = np.ascontiguousarray(x, dtype=dt)
        fn = self._fn.get(dt)
        if fn is None:
            fn = self._fn[dt] = np.zeros((len(self.faces), 3), dt)
        surface_corners(x, self.faces, self._ptr, self._idx, fn, vertices, normals,
                        int(x.shape[1]))

    @property
    def corner_faces(self) -> np.ndarray:
        """(F, 3) the corners' indices per face: ``[[0, 1, 2], [3, 4, 5], ...]``."""
        return np.arange(self.n_corners, dtype=np.int32).reshape(-1, 3)


__all__ = ["Surface", "boundary_faces", "face_normals", "CREASE_DEG"]
