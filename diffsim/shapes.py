"""Geometric shapes: particle filling, signed distances, tool and collider geometry.

Every shape knows its dimension, its axis-aligned bounds, a signed distance
``sdf(points)`` (negative inside, metres) and how to fill itself with particles
at a given spacing. Analytic shapes (``Box``, ``Sphere``, ``Cylinder``,
``Capsule``) also serve as kinematic tools, whose signed distance the
simulators evaluate in the tool's moving frame. ``Mesh`` wraps a watertight
``trimesh.Trimesh`` (3D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _vec(name: str, value, dim: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.size not in (2, 3) or (dim is not None and arr.size != dim):
        want = f"{dim}" if dim else "2 or 3"
        raise ValueError(f"{name}={value!r} is not allowed: expected a sequence of {want} numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={value!r} is not allowed: values must be finite")
    return arr


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is not allowed: it must be a finite number > 0")
    return float(value)


class Shape:
    """Base of all shapes (abstract).

    Attributes:
        dim: 2 or 3.
        center: (dim,) reference point; a tool's pose moves this point.
    """

    dim: int
    center: np.ndarray

    def sdf_local(self, q: np.ndarray) -> np.ndarray:
        """Signed distance of points ``q`` (N, dim) given relative to ``center`` (metres)."""
        raise NotImplementedError

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (N,) of world points (N, dim); negative inside."""
        pts = np.asarray(points, dtype=np.float64)
        return self.sdf_local(pts - self.center)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask (N,) of points inside the shape."""
        return self.sdf(points) <= 0.0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box ``(lo, hi)`` in world coordinates."""
        raise NotImplementedError

    def volume(self) -> float:
        """Volume (area in 2D) in m^3 (m^2)."""
        raise NotImplementedError

    def sample(self, spacing: float, rng: np.random.Generator | None = None,
               jitter: float = 0.0) -> np.ndarray:
        """Fill the shape with particles on a lattice of the given spacing.

        Args:
            spacing: lattice spacing (m); each particle stands for ``spacing**dim`` of volume.
            rng: random generator for the jitter (deterministic given a seed).
            jitter: random offset of each particle as a fraction of ``spacing`` (0 = regular).

        Returns:
            (N, dim) float64 positions inside the shape.
        """
        lo, hi = self.bounds()
        axes = [np.arange(l + 0.5 * spacing, h, spacing) for l, h in zip(lo, hi)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim)
        if jitter > 0:
            rng = rng or np.random.default_rng(0)
            grid = grid + (rng.random(grid.shape) - 0.5) * jitter * spacing
        return grid[self.contains(grid)]

    def sdf_grid(self, origin: np.ndarray, dx: float, shape: tuple[int, ...]) -> np.ndarray:
        """Signed distance sampled at grid nodes ``origin + dx * index``; array of ``shape``."""
        axes = [origin[i] + dx * np.arange(n) for i, n in enumerate(shape)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim)
        return self.sdf(pts).reshape(shape)


@dataclass(frozen=True)
class Box(Shape):
    """Axis-aligned box (rectangle in 2D) from corner ``lo`` to corner ``hi`` (metres)."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def __post_init__(self):
        lo, hi = _vec("lo", self.lo), _vec("hi", self.hi)
        if lo.size != hi.size:
            raise ValueError(f"lo={self.lo!r} and hi={self.hi!r} must have the same length")
        if np.any(hi <= lo):
            raise ValueError(f"hi={self.hi!r} must exceed lo={self.lo!r} on every axis")

    @property
    def dim(self) -> int:
        return len(self.lo)

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (np.asarray(self.lo, float) + np.asarray(self.hi, float))

    @property
    def half_size(self) -> np.ndarray:
        return 0.5 * (np.asarray(self.hi, float) - np.asarray(self.lo, float))

    def sdf_local(self, q):
        d = np.abs(q) - self.half_size
        outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
        inside = np.minimum(d.max(-1), 0.0)
        return outside + inside

    def bounds(self):
        return np.asarray(self.lo, float), np.asarray(self.hi, float)

    def volume(self):
        return float(np.prod(self.half_size * 2))


@dataclass(frozen=True)
class Sphere(Shape):
    """Ball (disk in 2D) of ``radius`` (m) around ``center``."""

    center: tuple[float, ...]
    radius: float

    def __post_init__(self):
        _vec("center", self.center)
        _positive("radius", self.radius)

    @property
    def dim(self) -> int:
        return len(self.center)

    def sdf(self, points):
        return self.sdf_local(np.asarray(points, float) - np.asarray(self.center, float))

    def sdf_local(self, q):
        return np.linalg.norm(q, axis=-1) - self.radius

    def bounds(self):
        c = np.asarray(self.center, float)
        return c - self.radius, c + self.radius

    def volume(self):
        return math.pi * self.radius**2 if self.dim == 2 else 4 / 3 * math.pi * self.radius**3


def _segment_distance(q: np.ndarray, axis: int, half_length: float) -> np.ndarray:
    a = q.copy()
    a[:, axis] -= np.clip(q[:, axis], -half_length, half_length)
    return np.linalg.norm(a, axis=-1)


@dataclass(frozen=True)
class Capsule(Shape):
    """Capsule: the points within ``radius`` of a segment of ``length`` along ``axis``.

    Args:
        center: (dim,) midpoint of the segment (m).
        radius: m, > 0.
        length: distance between the two hemisphere centres (m), >= 0.
        axis: 0, 1 (or 2 in 3D): the segment's direction in the rest pose.
    """

    center: tuple[float, ...]
    radius: float
    length: float
    axis: int = 0

    def __post_init__(self):
        c = _vec("center", self.center)
        _positive("radius", self.radius)
        if not (math.isfinite(self.length) and self.length >= 0):
            raise ValueError(f"length={self.length!r} is not allowed: it must be >= 0")
        if self.axis not in range(c.size):
            raise ValueError(f"axis={self.axis!r} is not allowed: expected 0..{c.size - 1}")

    @property
    def dim(self) -> int:
        return len(self.center)

    def sdf(self, points):
        return self.sdf_local(np.asarray(points, float) - np.asarray(self.center, float))

    def sdf_local(self, q):
        return _segment_distance(np.atleast_2d(q), self.axis, 0.5 * self.length) - self.radius

    def bounds(self):
        c = np.asarray(self.center, float)
        ext = np.full(self.dim, self.radius)
        ext[self.axis] += 0.5 * self.length
        return c - ext, c + ext

    def volume(self):
        if self.dim == 2:
            return math.pi * self.radius**2 + 2 * self.radius * self.length
        return 4 / 3 * math.pi * self.radius**3 + math.pi * self.radius**2 * self.length


@dataclass(frozen=True)
class Cylinder(Shape):
    """Solid cylinder (3D) of ``radius`` and ``height`` with its axis along ``axis``.

    Args:
        center: (3,) centre of the cylinder (m).
        radius: m, > 0.
        height: m, > 0.
        axis: 0, 1 or 2 (1 = upright in a y-up scene).
    """

    center: tuple[float, ...]
    radius: float
    height: float
    axis: int = 1

    def __post_init__(self):
        _vec("center", self.center, 3)
        _positive("radius", self.radius)
        _positive("height", self.height)
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis={self.axis!r} is not allowed: expected 0, 1 or 2")

    @property
    def dim(self) -> int:
        return 3

    def sdf(self, points):
        return self.sdf_local(np.asarray(points, float) - np.asarray(self.center, float))

    def sdf_local(self, q):
        q = np.atleast_2d(q)
        radial = np.linalg.norm(np.delete(q, self.axis, axis=1), axis=-1) - self.radius
        along = np.abs(q[:, self.axis]) - 0.5 * self.height
        d = np.stack([radial, along], -1)
        return np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)

    def bounds(self):
        c = np.asarray(self.center, float)
        ext = np.full(3, self.radius)
        ext[self.axis] = 0.5 * self.height
        return c - ext, c + ext

    def volume(self):
        return math.pi * self.radius**2 * self.height


@dataclass(frozen=True, eq=False)
class Compound(Shape):
    """A union of analytic shapes that moves as one rigid tool (or fills one body).

    A cup is a bottom plate and four walls; a spoon is a shallow tray and a
    handle. Parts are given in world coordinates at the rest pose; the
    compound's reference point (the tool's pose) is ``center``, default the
    centre of the parts' bounding box. Parts must be axis-aligned ``Box``,
    ``Sphere``, ``Capsule`` or ``Cylinder`` shapes (the tool pose rotates them
    together).
    """

    parts: tuple
    center_point: tuple | None = None

    def __post_init__(self):
        parts = tuple(self.parts)
        if not parts:
            raise ValueError("parts=() is not allowed: a Compound needs at least one shape")
        for p in parts:
            if not isinstance(p, (Box, Sphere, Capsule, Cylinder)):
                raise TypeError(f"Compound parts must be Box, Sphere, Capsule or Cylinder, got "
                                f"{type(p).__name__}")
        if len({p.dim for p in parts}) != 1:
            raise ValueError("Compound parts must all have the same dimension")
        object.__setattr__(self, "parts", parts)
        if self.center_point is not None:
            _vec("center_point", self.center_point, parts[0].dim)

    @property
    def dim(self) -> int:
        return self.parts[0].dim

    @property
    def center(self) -> np.ndarray:
        if self.center_point is not None:
            return np.asarray(self.center_point, dtype=np.float64)
        lo, hi = self.bounds()
        return 0.5 * (lo + hi)

    def sdf(self, points):
        return np.min([p.sdf(points) for p in self.parts], axis=0)

    def sdf_local(self, q):
        return self.sdf(np.asarray(q, float) + self.center)

    def bounds(self):
        los, his = zip(*(p.bounds() for p in self.parts))
        return np.min(los, axis=0), np.max(his, axis=0)

    def volume(self):
        """Sum of the parts' volumes (overlaps counted twice)."""
        return float(sum(p.volume() for p in self.parts))


@dataclass(frozen=True)
class Polygon(Shape):
    """A simple polygon (2D) given by its vertices in order (m).

    Example: ``Polygon([(0.3, 0.05), (0.7, 0.05), (0.5, 0.25)])`` is a triangle.
    """

    vertices: tuple

    def __post_init__(self):
        v = np.asarray(self.vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3 or not np.all(np.isfinite(v)):
            raise ValueError(f"vertices={self.vertices!r} is not allowed: expected >= 3 finite "
                             "(x, y) points")
        area = 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
        if abs(area) < 1e-15:
            raise ValueError(f"vertices={self.vertices!r} enclose no area")

    @property
    def dim(self) -> int:
        return 2

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.vertices, float).mean(0)

    def sdf(self, points):
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        v = np.asarray(self.vertices, dtype=np.float64)
        w = np.roll(v, -1, axis=0)
        e = w - v                                            # (M, 2) edges
        d = p[:, None, :] - v[None]                          # (N, M, 2)
        t = np.clip((d * e).sum(-1) / (e * e).sum(-1), 0.0, 1.0)
        dist = np.linalg.norm(d - t[..., None] * e, axis=-1).min(1)
        # even-odd rule for the inside test
        y = p[:, None, 1]
        crosses = ((v[None, :, 1] > y) != (w[None, :, 1] > y)) & (
            p[:, None, 0] < (w[None, :, 0] - v[None, :, 0]) * (y - v[None, :, 1])
            / (w[None, :, 1] - v[None, :, 1] + 1e-300) + v[None, :, 0])
        inside = crosses.sum(1) % 2 == 1
        return np.where(inside, -dist, dist)

    def sdf_local(self, q):
        return self.sdf(q + self.center)

    def bounds(self):
        v = np.asarray(self.vertices, float)
        return v.min(0), v.max(0)

    def volume(self):
        v = np.asarray(self.vertices, float)
        return float(abs(0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1)
                                      - np.roll(v[:, 0], -1) * v[:, 1])))


@dataclass(frozen=True, eq=False)
class Mesh(Shape):
    """A watertight triangle mesh (3D), loaded and queried through trimesh.

    Inside tests and signed distances on grids use a voxelisation of the mesh at
    the requested spacing (``trimesh.voxel`` + hole filling) and, for distances,
    a Euclidean distance transform (``scipy.ndimage``): accurate to half a
    voxel, which is all an MPM grid resolves. Point queries (``sdf``) use
    trimesh's exact closest-point distance with the sign from the voxel fill.

    Build with :meth:`from_file` or :meth:`from_trimesh`.
    """

    mesh: object = field(repr=False)
    name: str = "mesh"

    @classmethod
    def from_trimesh(cls, mesh, name: str = "mesh") -> Mesh:
        import trimesh

        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"mesh must be a trimesh.Trimesh, got {type(mesh).__name__}")
        if len(mesh.faces) == 0:
            raise ValueError(f"mesh {name!r} has no faces")
        if not mesh.is_watertight:
            raise ValueError(f"mesh {name!r} is not watertight: inside tests and signed distances "
                             "need a closed surface (try trimesh's repair.fill_holes)")
        return cls(mesh=mesh, name=name)

    @classmethod
    def from_file(cls, path: str | Path, scale: float | tuple = 1.0,
                  translate: tuple = (0.0, 0.0, 0.0), rotate_deg: tuple = (0.0, 0.0, 0.0)) -> Mesh:
        """Load a mesh file (.obj, .stl, .ply, ...) and place it.

        Args:
            path: file path; a relative path that does not exist is also looked up
                in the package assets (``diffsim.asset_path``).
            scale: uniform or per-axis scale applied first.
            translate: (3,) offset applied last (m).
            rotate_deg: (3,) Euler angles (x, y, z; degrees) applied after scaling.
        """
        import trimesh

        path = Path(path)
        if not path.exists():
            from diffsim.assets import asset_path

            alt = asset_path(str(path).removeprefix("assets/"))
            if not alt.exists():
                raise FileNotFoundError(f"mesh file {str(path)!r} not found (nor {alt})")
            path = alt
        mesh = trimesh.load(path, force="mesh")
        mesh.apply_scale(scale)
        if any(rotate_deg):
            R = trimesh.transformations.euler_matrix(*np.deg2rad(rotate_deg))
            mesh.apply_transform(R)
        mesh.apply_translation(_vec("translate", translate, 3))
        return cls.from_trimesh(mesh, name=path.stem)

    @property
    def dim(self) -> int:
        return 3

    @property
    def center(self) -> np.ndarray:
        lo, hi = self.bounds()
        return 0.5 * (lo + hi)

    def bounds(self):
        b = np.asarray(self.mesh.bounds, float)
        return b[0], b[1]

    def volume(self):
        return float(self.mesh.volume)

    def _occupancy(self, origin: np.ndarray, pitch: float, shape: tuple[int, ...]) -> np.ndarray:
        """Coarse occupancy on the lattice ``origin + pitch * index`` (voxelise + fill).

        Voxels that the surface crosses count as occupied, so thin walls are
        inflated by up to one voxel; callers refine the boundary band exactly.
        """
        from scipy import ndimage

        vox = self.mesh.voxelized(pitch).fill()
        occ = np.zeros(shape, dtype=bool)
        idx = np.round((vox.points - origin) / pitch).astype(np.int64)
        keep = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
        occ[tuple(idx[keep].T)] = True
        return ndimage.binary_fill_holes(occ)

    def _exact_sdf(self, pts: np.ndarray) -> np.ndarray:
        import trimesh

        if len(pts) == 0:
            return np.zeros(0)
        # query a copy scaled to unit size: for meshes millimetres across given in metres,
        # trimesh 5's closest-point search misses the nearest triangle (77 um errors at
        # 1 mm from a 3 mm sphere; 3 um, the facets' own error, at unit scale)
        unit = self.__dict__.get("_unit")
        if unit is None:
            lo, hi = (np.asarray(b, float) for b in self.mesh.bounds)
            c0, scale = 0.5 * (lo + hi), float((hi - lo).max())
            unit = (trimesh.Trimesh((np.asarray(self.mesh.vertices) - c0) / scale,
                                    self.mesh.faces, process=False), c0, scale)
            object.__setattr__(self, "_unit", unit)  # a cache on a frozen dataclass
        m, c0, scale = unit
        # trimesh's convention is positive inside; ours is negative inside
        return -scale * trimesh.proximity.signed_distance(m, (pts - c0) / scale)

    @staticmethod
    def _band(occ: np.ndarray, width: int) -> np.ndarray:
        """Lattice points within ``width`` voxels of the occupancy boundary."""
        from scipy import ndimage

        grown = ndimage.binary_dilation(occ, iterations=width)
        shrunk = ndimage.binary_erosion(occ, iterations=width)
        return grown & ~shrunk

    def _lattice(self, spacing: float, pad: int):
        lo, hi = self.bounds()
        origin = lo - (pad - 0.5) * spacing
        shape = tuple(int(n) for n in np.ceil((hi - origin) / spacing).astype(int) + pad)
        return origin, shape

    def sample(self, spacing, rng=None, jitter=0.0):
        origin, shape = self._lattice(spacing, pad=2)
        occ = self._occupancy(origin, spacing, shape)
        band = self._band(occ, 1)
        inside = occ & ~band
        cand = np.argwhere(band)
        pts_band = origin + spacing * cand.astype(np.float64)
        keep = self._exact_sdf(pts_band) < 0
        pts = np.concatenate([origin + spacing * np.argwhere(inside).astype(np.float64),
                              pts_band[keep]])
        if jitter > 0:
            rng = rng or np.random.default_rng(0)
            pts = pts + (rng.random(pts.shape) - 0.5) * jitter * spacing
        return pts

    def sdf_grid(self, origin, dx, shape):
        from scipy import ndimage

        origin = np.asarray(origin, float)
        occ = self._occupancy(origin, dx, tuple(shape))
        outside = ndimage.distance_transform_edt(~occ) * dx
        inside = ndimage.distance_transform_edt(occ) * dx
        sdf = np.where(occ, -(inside - 0.5 * dx), outside - 0.5 * dx)
        # exact distances where it matters: the nodes within two cells of the surface
        band = self._band(occ, 2)
        idx = np.argwhere(band)
        sdf[tuple(idx.T)] = self._exact_sdf(origin + dx * idx.astype(np.float64))
        return sdf

    def sdf(self, points):
        return self._exact_sdf(np.asarray(points, dtype=np.float64))


__all__ = ["Shape", "Box", "Sphere", "Capsule", "Cylinder", "Compound", "Polygon", "Mesh"]
