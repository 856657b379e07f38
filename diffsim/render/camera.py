"""``Camera``: where the renderer looks from, and how points map to pixels.

Conventions (shared by :meth:`Camera.project` and the Taichi kernels):

* world space is y-up; a camera has an orthonormal basis ``right``, ``up``,
  ``forward`` (``forward`` points from the eye to the target);
* the view depth of a point ``p`` is ``z = forward . (p - eye)`` (m, > 0 in front);
* pixel coordinates are ``(col, row)`` with the image's top-left corner at
  ``(0, 0)``; pixel ``[row, col]`` of the image covers ``[col, col + 1) x
  [row, row + 1)`` and is sampled at its centre ``(col + 0.5, row + 0.5)``;
* perspective: ``col = W/2 + f * x_v / z`` and ``row = H/2 - f * y_v / z`` with
  the focal length ``f = (H / 2) / tan(fov / 2)`` in pixels (``fov`` is the
  vertical field of view); orthographic: ``f / z`` is replaced by
  ``H / ortho_height`` (pixels per metre).

2D scenes live in the plane ``z = 0`` and are seen by an orthographic camera on
the +z side looking down -z (:meth:`Camera.framing` with 2D bounds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROJECTIONS = ("perspective", "orthographic")


def _vec3(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name}={value!r} is not allowed: expected 3 finite numbers (x, y, z); cameras are "
            "3D also for 2D scenes (which lie in the plane z = 0): use "
            "Camera.framing(bounds) for a 2D view")
    return arr


@dataclass(frozen=True)
class Camera:
    """A pinhole (perspective) or orthographic camera looking from ``eye`` at ``target``.

    Args:
        eye: (3,) camera position (m).
        target: (3,) point the camera looks at (m); must differ from ``eye``.
        up: (3,) approximate up direction (default +y); must not be parallel to
            the viewing direction.
        fov: vertical field of view in degrees, in (0, 180) (perspective only).
        projection: ``"perspective"`` or ``"orthographic"``.
        ortho_height: height of the orthographic view (m); default the
            eye-target distance.
        near: nearest depth drawn (m); default 1% of the eye-target distance.
        far: depth that maps to the back of the depth buffer (m); anything
            farther is drawn at that depth. Default 100x the eye-target distance.

    Raises:
        ValueError: an argument outside its allowed range (named in the message).
    """

    eye: tuple = (0.5, 1.5, 3.0)
    target: tuple = (0.5, 0.5, 0.5)
    up: tuple = (0.0, 1.0, 0.0)
    fov: float = 40.0
    projection: str = "perspective"
    ortho_height: float | None = None
    near: float | None = None
    far: float | None = None

    def __post_init__(self):
        eye, target, up = _vec3("eye", self.eye), _vec3("target", self.target), _vec3(
            "up", self.up)
        dist = float(np.linalg.norm(target - eye))
        if dist < 1e-12:
            raise ValueError(f"target={self.target!r} is not allowed: it must differ from "
                             f"eye={self.eye!r}")
        fwd = (target - eye) / dist
        if np.linalg.norm(np.cross(fwd, up)) < 1e-9 * max(np.linalg.norm(up), 1e-300):
            raise ValueError(f"up={self.up!r} is not allowed: it must not be parallel to the "
                             "viewing direction target - eye")
        if not (isinstance(self.fov, (int, float)) and 0 < self.fov < 180):
            raise ValueError(f"fov={self.fov!r} is not allowed: expected degrees in (0, 180)")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection={self.projection!r} is not allowed: expected one of "
                             f"{PROJECTIONS}")
        for name in ("ortho_height", "near", "far"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r} is not allowed: it must be a finite number > 0")
        if self.far is not None and self.far <= self.z_near:
            raise ValueError(f"far={self.far!r} is not allowed: it must exceed near={self.z_near}")
        # canonical plain tuples (hashable, cheap to read per frame)
        object.__setattr__(self, "eye", tuple(map(float, eye)))
        object.__setattr__(self, "target", tuple(map(float, target)))
        object.__setattr__(self, "up", tuple(map(float, up)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def framing(cls, bounds, azimuth: float = 35.0, elevation: float = 25.0, fov: float = 40.0,
                margin: float = 1.05, aspect: float = 1.0,
                projection: str = "perspective", up_axis: int = 1) -> Camera:
        """A camera that shows the whole box ``bounds``.

        Args:
            bounds: (3, 2) per-axis ``(lo, hi)`` (3D, y up), or (2, 2) for a 2D
                scene, which gets an orthographic view of the plane ``z = 0``.
            azimuth: degrees about the up axis; 0 looks from the axis after it
                (cyclically: +z for y up, +x for z up) towards the box (3D only).
            elevation: degrees above the horizontal plane, in (-90, 90) (3D only).
            fov: vertical field of view, degrees (perspective only).
            margin: >= 1; extra room around the box (1 = tight).
            aspect: image width / height, so that the box fits horizontally too.
            projection: ``"perspective"`` or ``"orthographic"`` (3D).
            up_axis: the world axis shown upwards, 0, 1 (y, the default) or 2 (z,
                for scenes whose gravity points along -z) (3D only).

        Raises:
            ValueError: ``bounds`` is not (2, 2) or (3, 2) with ``hi > lo``, or
                another argument is outside its range.
        """
        b = np.asarray(bounds, dtype=np.float64)
        if b.ndim != 2 or b.shape[0] not in (2, 3) or b.shape[1] != 2 or not np.all(
                np.isfinite(b)) or np.any(b[:, 1] <= b[:, 0]):
            raise ValueError(f"bounds={bounds!r} is not allowed: expected 2 or 3 pairs (lo, hi) "
                             "with hi > lo")
        if not (math.isfinite(margin) and margin >= 1.0):
            raise ValueError(f"margin={margin!r} is not allowed: it must be >= 1")
        if not (math.isfinite(aspect) and aspect > 0):
            raise ValueError(f"aspect={aspect!r} is not allowed: it must be > 0")
        center = b.mean(1)
        extent = b[:, 1] - b[:, 0]
        if b.shape[0] == 2:
            height = margin * max(extent[1], extent[0] / aspect)
            dist = 2.0 * float(extent.max())
            return cls(eye=(center[0], center[1], dist), target=(center[0], center[1], 0.0),
                       up=(0.0, 1.0, 0.0), projection="orthographic", ortho_height=height,
                       near=0.01 * dist, far=4.0 * dist)
        if not -90.0 < elevation < 90.0:
            raise ValueError(f"elevation={elevation!r} is not allowed: expected degrees in "
                             "(-90, 90)")
        if not (isinstance(fov, (int, float)) and 0 < fov < 180):
            raise ValueError(f"fov={fov!r} is not allowed: expected degrees in (0, 180)")
        if up_axis not in (0, 1, 2):
            raise ValueError(f"up_axis={up_axis!r} is not allowed: expected 0, 1 or 2")
        az, el = math.radians(azimuth), math.radians(elevation)
        # horizontal axes after the up axis, cyclically (y up: z then x), so that the
        # right-handed frame and the default view are the same for every up axis
        h1, h2 = (up_axis + 1) % 3, (up_axis + 2) % 3
        direction = np.zeros(3)
        direction[h1] = math.cos(az) * math.cos(el)
        direction[h2] = math.sin(az) * math.cos(el)
        direction[up_axis] = math.sin(el)
        up = tuple(np.eye(3)[up_axis])
        radius = 0.5 * float(np.linalg.norm(extent))
        # the 8 corners in the view frame (relative to the centre): fit them exactly
        probe = cls(eye=tuple(center + direction), target=tuple(center), up=up)
        corners = np.stack(np.meshgrid(*b, indexing="ij"), -1).reshape(-1, 3) - center
        a, h, c = (corners @ probe.basis().T).T  # right, up, forward components
        tan_v = math.tan(math.radians(fov) / 2)
        tan_h = tan_v * aspect
        # a corner at view depth dist + c fits when |a| <= tan_h (dist + c), same for h
        dist = margin * float(np.max(np.maximum(np.abs(a) / tan_h, np.abs(h) / tan_v) - c))
        dist = max(dist, 1e-6 * radius)
        height = 2.0 * margin * max(float(np.abs(h).max()), float(np.abs(a).max()) / aspect)
        eye = center + dist * direction
        return cls(eye=tuple(eye), target=tuple(center), up=up, fov=fov,
                   projection=projection, ortho_height=height,
                   near=max(dist - 2.0 * radius, 0.01 * dist), far=dist + 4.0 * radius)

    # ------------------------------------------------------------------ geometry
    @property
    def distance(self) -> float:
        """Eye-target distance (m)."""
        return float(np.linalg.norm(np.subtract(self.target, self.eye)))

    @property
    def z_near(self) -> float:
        return float(self.near) if self.near is not None else 0.01 * self.distance

    @property
    def z_far(self) -> float:
        return float(self.far) if self.far is not None else 100.0 * self.distance

    @property
    def is_orthographic(self) -> bool:
        return self.projection == "orthographic"

    def basis(self) -> np.ndarray:
        """(3, 3) rows ``right``, ``up``, ``forward`` (orthonormal, world frame)."""
        fwd = np.subtract(self.target, self.eye)
        fwd = fwd / np.linalg.norm(fwd)
        right = np.cross(fwd, self.up)
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        return np.stack([right, up, fwd])

    def pixel_scale(self, height: int) -> float:
        """Focal length in pixels (perspective) or pixels per metre (orthographic)."""
        if self.is_orthographic:
            h = self.ortho_height if self.ortho_height is not None else self.distance
            return height / h
        return 0.5 * height / math.tan(math.radians(self.fov) / 2)

    def project(self, points, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates and view depths of world points.

        Args:
            points: (N, 3) world points (m); (N, 2) points are taken at ``z = 0``.
            width, height: image size in pixels.

        Returns:
            ``(pix, depth)``: (N, 2) ``(col, row)`` pixel coordinates (pixel
            ``[row, col]`` holds the points with ``floor`` of these) and (N,)
            view depths (m; points with depth <= ``near`` are not drawn).
        """
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] not in (2, 3):
            raise ValueError(f"points has shape {p.shape}; expected (N, 3) or (N, 2)")
        if p.shape[1] == 2:
            p = np.concatenate([p, np.zeros((len(p), 1))], 1)
        v = (p - np.asarray(self.eye)) @ self.basis().T
        s = self.pixel_scale(height)
        scale = np.full(len(p), s) if self.is_orthographic else s / v[:, 2]
        pix = np.stack([0.5 * width + scale * v[:, 0], 0.5 * height - scale * v[:, 1]], -1)
        return pix, v[:, 2]


__all__ = ["Camera", "PROJECTIONS"]
