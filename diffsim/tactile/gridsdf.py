"""Signed distance of a watertight mesh baked on a grid, sampled in Taichi with a C1 spline.

``GridSDF.bake(mesh, spacing)`` samples the mesh's signed distance (negative inside) on a
regular lattice in the mesh's own frame, a few cells beyond its bounding box:

* exact distances (``exact_sdf``: trimesh's closest point on the surface, the sign from
  the closest feature's angle-weighted pseudonormal) at the lattice nodes within ``band``
  cells of the surface;
* farther nodes take the distance to the closest surface point of the nearest exact node
  (a feature transform: an upper bound, off by up to about 0.4 cells) with the sign of a
  voxel fill; the prefilter damps an error ``k`` cells away by ``0.27^k`` at the cubic
  spline (``0.17^k`` quadratic), so within 2 cells of the surface the interpolant sees
  them at about 2e-3 cells.

The values are prefiltered into cubic B-spline coefficients (``scipy.ndimage
.spline_filter``, order 3; order 2, quadratic, on request), so the spline *interpolates*
the samples; ``GridSDF.func`` returns a ``@ti.func q -> (phi, grad phi)`` that evaluates
the spline (64 taps; 27 quadratic) and its exact gradient. The cubic spline is C2, so the
contact potential built on it is C2 with a continuous Hessian and the contact forces are
C1 in the object's pose (the quadratic one is C1: Newton still converges, but a reading
is then kinked wherever a node crosses a cell face, and finite differences across a
kink disagree with the one-sided gradient, seen at 1 % in a check); Taichi's
reverse mode differentiates it like the analytic SDFs of ``node_contact.py``; the
gradient is that of the interpolant (|grad| = 1 up to the interpolation error), not
renormalised, so the contact force stays the exact derivative of its potential. Outside
the lattice's interpolation box the distance is the spline at the nearest point of the
box plus the distance to the box (continuous; far from any contact). Interpolation error
of a smooth SDF is ``O(h^4)`` (cubic; ``O(h^3)`` quadratic); a mesh's own facet kinks,
sharp edges and corners are rounded at the scale of ``h``.

Baked grids are cached per process (key: the mesh in its frame, spacing, padding, band,
order).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import taichi as ti

#: nodes of a grid, at most (about 32 MB of float64 values and as many coefficients)
MAX_NODES = 4_000_000
#: cells across the object's thinnest side, at least (else thin parts vanish)
MIN_CELLS = 4
#: default cells across the object's longest side
DEFAULT_CELLS = 40

_CACHE: dict = {}


def default_spacing(mesh) -> float:
    """``min(longest side / 40, thinnest side / 8)`` of the mesh's bounding box (m)."""
    ext = np.ptp(np.asarray(mesh.bounds, float), axis=0)
    return float(min(ext.max() / DEFAULT_CELLS, ext.min() / (2 * MIN_CELLS)))


def check_spacing(mesh, spacing, padding: int, name: str = "spacing") -> float:
    """``spacing`` (or the default), checked against the mesh's size and ``MAX_NODES``."""
    ext = np.ptp(np.asarray(mesh.bounds, float), axis=0)
    if spacing is None:
        spacing = default_spacing(mesh)
    hi = float(ext.min()) / MIN_CELLS
    # smallest spacing whose lattice has at most MAX_NODES nodes (solved by bisection)
    lo = _min_spacing(ext, padding)
    if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and lo <= spacing <= hi):
        raise ValueError(
            f"{name}={spacing!r} is not allowed for a mesh of size {tuple(np.round(ext, 6))} m: "
            f"it must lie in [{lo:.3g}, {hi:.3g}] m (at least {MIN_CELLS} cells across the "
            f"thinnest side, at most {MAX_NODES} grid nodes)")
    return float(spacing)


def _shape(ext: np.ndarray, h: float, padding: int) -> tuple:
    return tuple(int(math.ceil(e / h - 1e-9)) + 2 * padding + 1 for e in ext)


def _min_spacing(ext: np.ndarray, padding: int) -> float:
    a, b = 1e-12, float(ext.max())
    for _ in range(100):
        m = math.sqrt(a * b)
        if np.prod(_shape(ext, m, padding), dtype=np.float64) > MAX_NODES:
            a = m
        else:
            b = m
    return b


def mesh_key(mesh) -> str:
    v = np.ascontiguousarray(np.asarray(mesh.vertices, np.float64))
    f = np.ascontiguousarray(np.asarray(mesh.faces, np.int64))
    return hashlib.sha1(v.tobytes() + f.tobytes()).hexdigest()


def exact_sdf(mesh, pts: np.ndarray, closest_points: bool = False):
    """Exact signed distance (negative inside) of ``pts`` (N, 3) to a watertight trimesh.

    The closest point is trimesh's (``nearest.on_surface``), computed on a copy of the mesh
    scaled to unit size: at millimetre sizes in metres trimesh 5's closest-point query
    misses the nearest triangle (errors of 30 % of the distance seen). The sign is that of
    ``(p - c) . n`` with ``n`` the angle-weighted pseudonormal of the closest feature (the
    face, edge or vertex holding ``c``), which is exact for a closed manifold surface
    (Baerentzen & Aanaes, IEEE TVCG 2005); no ray tests. ``closest_points=True`` also
    returns the closest points (N, 3).
    """
    import trimesh

    pts = np.asarray(pts, np.float64)
    if len(pts) == 0:
        return (np.zeros(0), np.zeros((0, 3))) if closest_points else np.zeros(0)
    lo, hi = (np.asarray(b, float) for b in mesh.bounds)
    c0, scale = 0.5 * (lo + hi), float(np.ptp(np.stack([lo, hi]), axis=0).max())
    unit = trimesh.Trimesh((np.asarray(mesh.vertices) - c0) / scale, mesh.faces, process=False)
    q = (pts - c0) / scale
    closest, dist, tri = unit.nearest.on_surface(q)
    bary = trimesh.triangles.points_to_barycentric(unit.triangles[tri], closest)
    fn = unit.face_normals
    normal = fn[tri].copy()
    # edge pseudonormals: the sum of the two faces' normals; edge j of a face joins its
    # corners j and j + 1, opposite corner j + 2
    en = np.zeros((len(unit.edges_unique), 3))
    np.add.at(en, unit.edges_unique_inverse, fn[unit.edges_face])
    # vertex pseudonormals: face normals weighted by the face's angle at the vertex
    vn = np.zeros((len(unit.vertices), 3))
    np.add.at(vn, unit.faces.ravel(), (fn[:, None, :] * unit.face_angles[..., None]).reshape(-1, 3))
    tol = 1e-9
    small = bary < tol
    n_small = small.sum(axis=1)
    on_edge = n_small == 1
    if on_edge.any():
        k = np.argmax(small[on_edge], axis=1)
        normal[on_edge] = en[unit.faces_unique_edges[tri[on_edge], (k + 1) % 3]]
    on_vertex = n_small >= 2
    if on_vertex.any():
        k = np.argmax(bary[on_vertex], axis=1)
        normal[on_vertex] = vn[unit.faces[tri[on_vertex], k]]
    side = np.einsum("ij,ij->i", q - closest, normal)
    phi = np.where(side < 0, -1.0, 1.0) * dist * scale
    return (phi, closest * scale + c0) if closest_points else phi


@dataclass(frozen=True, eq=False)
class GridSDF:
    """A baked grid SDF in an object's frame.

    Attributes:
        values: (nx, ny, nz) signed distances (m) at the nodes ``origin + spacing * index``.
        coef: (nx, ny, nz) B-spline coefficients (degree ``order``) that interpolate
            ``values``.
        origin: (3,) the first node (m, object frame); spacing: node spacing (m).
        exact: (nx, ny, nz) bool, nodes whose value is trimesh's exact distance.
        support: (V, 3) the convex hull's vertices in the object frame (support points).
        order: 3, cubic B-spline (C2: contact forces C1 in the pose), or 2, quadratic (C1:
            27 taps instead of 64, but forces only piecewise C1, kinked where a node
            crosses a cell face).
    """

    values: np.ndarray
    coef: np.ndarray
    origin: tuple
    spacing: float
    exact: np.ndarray
    support: np.ndarray
    order: int = 3

    @property
    def shape(self) -> tuple:
        return tuple(self.values.shape)

    @classmethod
    def bake(cls, mesh, spacing: float | None = None, padding: int = 4,
             band: int = 6, name: str = "spacing", order: int = 3) -> GridSDF:
        """Bake (or fetch from the cache) the grid SDF of a watertight ``trimesh.Trimesh``
        given in the object's frame.

        Args:
            mesh: the surface, in the frame the SDF is sampled in.
            spacing: node spacing (m); ``None``: ``default_spacing(mesh)``.
            padding: cells of lattice beyond the bounding box on every side.
            band: nodes within this many cells of the surface get exact distances.
            name: the spacing's argument name in error messages.
            order: spline degree, 3 (cubic, default) or 2 (quadratic).

        Raises:
            ValueError: a mesh that is not watertight, a spacing out of range.
        """
        from scipy import ndimage

        from ..shapes import Mesh

        if not mesh.is_watertight:
            raise ValueError("mesh is not watertight: a signed distance needs a closed "
                             "surface (try trimesh's repair.fill_holes)")
        if order not in (2, 3):
            raise ValueError(f"order={order!r} is not allowed: expected 2 or 3")
        h = check_spacing(mesh, spacing, padding, name)
        key = (mesh_key(mesh), h, padding, band, order)
        if key in _CACHE:
            return _CACHE[key]
        lo, hi = (np.asarray(b, float) for b in mesh.bounds)
        shape = _shape(hi - lo, h, padding)
        origin = 0.5 * (lo + hi) - 0.5 * h * (np.asarray(shape) - 1)
        occ = Mesh(mesh=mesh)._occupancy(origin, h, shape)
        outside = ndimage.distance_transform_edt(~occ) * h
        inside = ndimage.distance_transform_edt(occ) * h
        approx = np.where(occ, -(inside - 0.5 * h), outside - 0.5 * h)
        near = np.abs(approx) <= band * h
        idx = np.argwhere(near)
        pts = origin + h * idx.astype(np.float64)
        # in chunks: trimesh's closest-point query holds several arrays per candidate face
        parts = [exact_sdf(mesh, pts[i:i + 20000], closest_points=True)
                 for i in range(0, len(pts), 20000)]
        phi = np.concatenate([p[0] for p in parts])
        closest = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 3))
        values = np.empty(shape)
        values[tuple(idx.T)] = phi
        # far nodes: the distance to the closest surface point of the nearest exact node (an
        # upper bound, off by up to ~0.4 cells), the sign from the voxel fill; the
        # prefilter carries an error k cells away to the spline damped by 0.27^k (cubic)
        cl = np.zeros(shape + (3,))
        cl[tuple(idx.T)] = closest
        far_idx = ndimage.distance_transform_edt(~near, return_distances=False,
                                                 return_indices=True)
        src = tuple(far_idx[a][~near] for a in range(3))
        far_pts = origin + h * np.argwhere(~near).astype(np.float64)
        dist = np.linalg.norm(far_pts - cl[src], axis=1)
        values[~near] = np.where(occ[~near], -dist, dist)
        coef = ndimage.spline_filter(values, order=order, mode="mirror")
        try:
            support = np.asarray(mesh.convex_hull.vertices, np.float64)
        except Exception:  # degenerate hulls (qhull errors): every vertex is a support point
            support = np.asarray(mesh.vertices, np.float64)
        out = cls(values, coef, tuple(float(c) for c in origin), h, near, support, order)
        _CACHE[key] = out
        return out

    # ------------------------------------------------------------------ numpy reference
    def sample(self, points: np.ndarray) -> np.ndarray:
        """The interpolated signed distance at ``points`` (N, 3) (numpy, the same function as
        ``func``; scipy's B-spline evaluation)."""
        from scipy import ndimage

        u = (np.asarray(points, np.float64) - np.asarray(self.origin)) / self.spacing
        n = np.asarray(self.shape)
        m = self._margin
        uc = np.clip(u, m, n - 1 - m)
        phi = ndimage.map_coordinates(self.coef, uc.T, order=self.order, prefilter=False,
                                      mode="mirror")
        return phi + np.linalg.norm(u - uc, axis=1) * self.spacing

    @property
    def _margin(self) -> float:
        """Cells between the lattice's edge and the box where the spline is evaluated."""
        return 0.5 if self.order == 2 else 1.0

    # ------------------------------------------------------------------ Taichi
    def field(self, real):
        """A Taichi field for the coefficients (place it, then ``fill`` it)."""
        return ti.field(real)

    def fill(self, f) -> None:
        f.from_numpy(self.coef.astype(np.float64 if f.dtype == ti.f64 else np.float32))

    def func(self, coef):
        """``@ti.func q -> (phi, grad phi)`` in the object's frame over the filled field
        ``coef``: the B-spline, its gradient, the box distance outside."""
        o = self.origin
        h = self.spacing
        inv = 1.0 / h
        n = self.shape
        m = self._margin
        taps = self.order + 1
        eps = 1e-9

        # weights and their derivatives at fx = u - base; products, not ** (Taichi 1.7's
        # reverse mode of ** 2 can give NaN in f32)
        if self.order == 2:
            @ti.func
            def weights(fx):
                a0, a1, a2 = 1.5 - fx, fx - 1.0, fx - 0.5
                return ([0.5 * a0 * a0, 0.75 - a1 * a1, 0.5 * a2 * a2],
                        [-a0, -2.0 * a1, a2])

            @ti.func
            def first(uc):
                return ti.cast(ti.floor(uc + 0.5), ti.i32) - 1
        else:
            @ti.func
            def weights(fx):
                t = fx - 1.0
                s = 1.0 - t
                t2 = t * t
                return ([s * s * s / 6.0, (3.0 * t2 * t - 6.0 * t2 + 4.0) / 6.0,
                         (-3.0 * t2 * t + 3.0 * t2 + 3.0 * t + 1.0) / 6.0, t2 * t / 6.0],
                        [-0.5 * s * s, 1.5 * t2 - 2.0 * t, -1.5 * t2 + t + 0.5, 0.5 * t2])

            @ti.func
            def first(uc):
                return ti.cast(ti.floor(uc), ti.i32) - 1

        @ti.func
        def f(q):
            u = (q - ti.Vector(o)) * inv
            uc = u
            base = ti.Vector([0, 0, 0])
            for a in ti.static(range(3)):
                uc[a] = ti.min(ti.max(u[a], m), n[a] - 1 - m)
                base[a] = ti.min(ti.max(first(uc[a]), 0), n[a] - taps)
            w, dw = weights(uc - ti.cast(base, float))
            # separable: contract z, then y, then x (keeps the reverse-mode code small)
            phi = 0.0
            gu = ti.Vector.zero(float, 3)
            for i in ti.static(range(taps)):
                py = 0.0
                py_y = 0.0
                py_z = 0.0
                for j in ti.static(range(taps)):
                    pz = 0.0
                    pz_z = 0.0
                    for k in ti.static(range(taps)):
                        c = coef[base[0] + i, base[1] + j, base[2] + k]
                        pz += c * w[k][2]
                        pz_z += c * dw[k][2]
                    py += pz * w[j][1]
                    py_y += pz * dw[j][1]
                    py_z += pz_z * w[j][1]
                phi += py * w[i][0]
                gu[0] += py * dw[i][0]
                gu[1] += py_y * w[i][0]
                gu[2] += py_z * w[i][0]
            g = ti.Vector.zero(float, 3)
            for a in ti.static(range(3)):
                g[a] = ti.select(u[a] == uc[a], gu[a] * inv, 0.0)
            d = (u - uc) * h
            s = ti.sqrt(d.dot(d) + eps * eps)
            return phi + s - eps, g + d / s

        return f


def mass_properties(mesh, density: float) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mass kg, centre of mass (3,) m, inertia (3, 3) kg m^2 about it, mesh axes)`` of a
    uniform solid bounded by a watertight trimesh (trimesh's ``mass_properties``)."""
    mp = mesh.mass_properties
    vol = float(mp.volume) / float(mp.density)
    if not vol > 0:
        raise ValueError(f"the mesh encloses no volume (volume {vol:g} m^3): is it inside out?")
    scale = density / float(mp.density)
    return (float(mp.mass) * scale, np.asarray(mp.center_mass, float),
            np.asarray(mp.inertia, float) * scale)
