"""``TactileSensor`` and ``TactileCamera``: what a GelSight-like sensor is, as data.

A sensor is an elastomer pad (``TactilePad``) glued by its back face to a rigid,
kinematic finger, with markers printed on its contact surface and a camera inside the
finger that looks at the contact surface through the (transparent) gel.

Frames: the finger frame is the pad frame (``pad.py``): back face ``z = 0``, contact
surface facing ``+z``. ``position`` and ``rotation`` place the finger in the world; the
camera sits on the ``z`` axis at ``z = -distance`` and looks along ``+z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..materials import Material
from .pad import TactilePad

CAMERA_MODELS = ("pinhole", "fisheye")


@dataclass(frozen=True)
class TactileCamera:
    """A camera inside the finger, on the pad's axis, looking at the contact surface.

    Args:
        distance: camera centre to the pad's back face (m), > 0.
        fov_deg: horizontal field of view (degrees), in (0, 180).
        resolution: image ``(width, height)`` in pixels.
        model: ``"pinhole"`` (``u = cx + f X / Z``, ``f = (W/2) / tan(fov/2)``) or
            ``"fisheye"`` (equidistant: ``r = f theta``, ``f = (W/2) / (fov/2)``).
    """

    distance: float = 0.02
    fov_deg: float = 70.0
    resolution: tuple = (64, 48)
    model: str = "pinhole"

    def __post_init__(self):
        if not (isinstance(self.distance, (int, float)) and math.isfinite(self.distance)
                and self.distance > 0):
            raise ValueError(f"camera distance={self.distance!r} is not allowed: it must be a "
                             "number > 0 (m, camera centre behind the pad's back face)")
        if not (isinstance(self.fov_deg, (int, float)) and 0 < self.fov_deg < 180):
            raise ValueError(f"camera fov_deg={self.fov_deg!r} is not allowed: it must lie in "
                             "(0, 180) degrees")
        res = tuple(self.resolution)
        if len(res) != 2 or not all(isinstance(r, int) and 2 <= r <= 4096 for r in res):
            raise ValueError(f"camera resolution={self.resolution!r} is not allowed: expected "
                             "(width, height), ints in [2, 4096]")
        if self.model not in CAMERA_MODELS:
            raise ValueError(f"camera model={self.model!r} is not allowed: expected one of "
                             f"{CAMERA_MODELS}")

    @property
    def focal(self) -> float:
        """Focal length in pixels."""
        half = math.radians(self.fov_deg) / 2
        W = self.resolution[0]
        return (W / 2) / (math.tan(half) if self.model == "pinhole" else half)

    @property
    def principal_point(self) -> tuple[float, float]:
        return self.resolution[0] / 2, self.resolution[1] / 2

    def project(self, P: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates ``(..., 2)`` of points ``P`` ``(..., 3)`` in the pad frame."""
        cx, cy = self.principal_point
        Z = P[..., 2] + self.distance
        X, Y = P[..., 0], P[..., 1]
        f = self.focal
        if self.model == "pinhole":
            return torch.stack([cx + f * X / Z, cy + f * Y / Z], -1)
        r = torch.sqrt(X * X + Y * Y + 1e-30)
        theta = torch.atan2(r, Z)
        return torch.stack([cx + f * theta * X / r, cy + f * theta * Y / r], -1)

    def rays(self) -> np.ndarray:
        """Unit ray directions ``(H, W, 3)`` through the pixel centres (pad frame)."""
        W, H = self.resolution
        cx, cy = self.principal_point
        u, v = np.meshgrid(np.arange(W) + 0.5 - cx, np.arange(H) + 0.5 - cy, indexing="xy")
        f = self.focal
        if self.model == "pinhole":
            d = np.stack([u / f, v / f, np.ones_like(u)], -1)
        else:
            r = np.sqrt(u * u + v * v) + 1e-300
            theta = r / f
            d = np.stack([np.sin(theta) * u / r, np.sin(theta) * v / r, np.cos(theta)], -1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


@dataclass(frozen=True)
class Lights:
    """The photometric model of the tactile image (GelSight-like, Phong shading).

    Three coloured lights inside the gel at azimuths ``azimuths_deg`` around the pad axis
    and elevation ``elevation_deg`` over the contact surface shine on the membrane; the
    camera sees, per pixel, the membrane's inner side with unit normal ``n`` (facing the
    camera), light directions ``l_k`` and view direction ``v``::

        I = albedo * (ambient + sum_k c_k max(n . l_k, 0))
            + specular * sum_k c_k max(r_k . v, 0) ** shininess,   r_k = 2 (n . l_k) n - l_k

    clipped to ``[0, 1]``; markers darken the image by ``marker_darkness`` with Gaussian
    blobs of ``marker_sigma`` pixels. Pixels that do not see the pad show ``background``.
    ``shade`` applies it to a reading's ``PixelFeatures``; a learned alternative is
    ``ds.TactilePixelModel`` (``TactileSensor(pixel_model=...)``).
    """

    colors: tuple = ((1.0, 0.15, 0.15), (0.15, 1.0, 0.15), (0.15, 0.15, 1.0))
    azimuths_deg: tuple = (90.0, 210.0, 330.0)
    elevation_deg: float = 30.0
    ambient: float = 0.15
    albedo: float = 0.8
    specular: float = 0.15
    shininess: float = 8.0
    background: float = 0.05
    marker_darkness: float = 0.8
    marker_sigma: float = 1.0

    def directions(self) -> np.ndarray:
        """(L, 3) unit vectors from the membrane to the lights (pad frame, inside the gel)."""
        e = math.radians(self.elevation_deg)
        return np.array([[math.cos(e) * math.cos(math.radians(a)),
                          math.cos(e) * math.sin(math.radians(a)), -math.sin(e)]
                         for a in self.azimuths_deg])

    def shade(self, features) -> torch.Tensor:
        """The image (H, W, 3) in [0, 1] of ``features`` (``PixelFeatures`` of (H, W) pixels,
        e.g. ``reading.features``); differentiable w.r.t. them."""
        n, v = features.normal, features.view
        kw = {"dtype": n.dtype, "device": n.device}
        light_dir = torch.as_tensor(self.directions(), **kw)
        light_col = torch.as_tensor(np.asarray(self.colors, dtype=np.float64), **kw)
        ndl = n @ light_dir.T                                     # (H, W, L)
        diffuse = torch.clamp(ndl, min=0.0) @ light_col          # (H, W, 3)
        r = 2 * ndl[..., None] * n[..., None, :] - light_dir
        rdv = torch.clamp((r * v[..., None, :]).sum(-1), min=0.0) ** self.shininess
        spec = rdv @ light_col
        img = self.albedo * (self.ambient + diffuse) + self.specular * spec
        img = img * (1 - self.marker_darkness * features.markers[..., None])
        img = torch.where(features.mask[..., None], img, torch.full_like(img, self.background))
        return img.clamp(0.0, 1.0)


def quat_from_normal(normal) -> tuple:
    """Quaternion (w, x, y, z) of the rotation taking ``+z`` to the unit vector ``normal``."""
    n = np.asarray(normal, dtype=np.float64)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) < 1e-12:
        raise ValueError(f"normal={normal!r} is not allowed: expected a non-zero 3-vector")
    n = n / np.linalg.norm(n)
    z = np.array([0.0, 0.0, 1.0])
    c = float(z @ n)
    if c < -1 + 1e-12:
        return (0.0, 1.0, 0.0, 0.0)
    axis = np.cross(z, n)
    q = np.array([1.0 + c, *axis])
    return tuple(map(float, q / np.linalg.norm(q)))


@dataclass(frozen=True, eq=False)
class TactileSensor:
    """A GelSight-like sensor: an FEM elastomer pad on a rigid, kinematic finger.

    Args:
        pad: a ``ds.TactilePad`` (``TactilePad.flat(...)``, ``.dome(...)``,
            ``.from_mesh(...)``) or ``"flat"``/``"dome"`` for the default pads
            (20 x 20 mm, 2 mm cells).
        material: the gel, ``ds.NeoHookean``/``ds.StableNeoHookean``/... (Pa, kg/m^3).
        markers: ``(rows, cols)``: a grid of markers over the contact surface (inset by
            ``marker_margin`` of the footprint), or an ``(M, 2)`` array of ``(x, y)``
            positions (m, pad frame) on the contact surface.
        camera: a ``ds.TactileCamera``; it must see the whole contact surface.
        position: (3,) world position of the finger frame's origin (the back face's
            centre) at the start (m).
        rotation: quaternion (w, x, y, z) of the finger frame, or ``None`` with ``normal``.
        normal: (3,) world direction of the contact surface (alternative to ``rotation``).
        damping: Rayleigh ``(alpha, beta)`` of the gel (1/s, s).
        pressure_res: ``(rows, cols)`` of the pressure maps over the footprint.
        lights: the photometric model (``Lights``); its ``background`` and marker blob
            width (``marker_sigma``) also hold with a ``pixel_model``.
        pixel_model: ``None`` (the image is ``lights.shade``) or a learned image model, a
            ``torch.nn.Module`` such as ``ds.TactilePixelModel`` mapping ``PixelFeatures``
            of (H, W) pixels to an (H, W, 3) RGB image in [0, 1]; the reading keeps its
            output where the camera sees the pad and ``lights.background`` elsewhere. The
            sensor holds a reference: training the model later changes the images.
        name: the sensor's name (its pad is the body ``name``, its finger the tool
            ``name + "_finger"``); default ``sensor<i>``.

    Raises:
        ValueError: markers outside the contact surface, a camera that does not see the
            pad, bad numbers; each message names the argument, the value and what is allowed.
    """

    pad: TactilePad | str = "flat"
    material: Material | None = None
    markers: object = (7, 7)
    camera: TactileCamera = field(default_factory=TactileCamera)
    position: tuple = (0.0, 0.0, 0.0)
    rotation: tuple | None = None
    normal: tuple | None = None
    damping: tuple = (0.0, 0.0)
    pressure_res: tuple = (16, 16)
    marker_margin: float = 0.15
    lights: Lights = field(default_factory=Lights)
    name: str | None = None
    pixel_model: torch.nn.Module | None = None

    def __post_init__(self):
        from ..materials import NeoHookean

        pad = self.pad
        if isinstance(pad, str):
            if pad == "flat":
                pad = TactilePad.flat()
            elif pad == "dome":
                pad = TactilePad.dome()
            else:
                raise ValueError(f"pad={pad!r} is not allowed: expected a ds.TactilePad, 'flat' "
                                 "or 'dome'")
        if not isinstance(pad, TactilePad):
            raise TypeError(f"pad must be a ds.TactilePad or 'flat'/'dome', got "
                            f"{type(pad).__name__}")
        object.__setattr__(self, "pad", pad)
        mat = self.material if self.material is not None else NeoHookean(E=3e5, nu=0.45,
                                                                          density=1000.0)
        if not isinstance(mat, Material):
            raise TypeError(f"material must be a ds.Material, got {type(mat).__name__}")
        object.__setattr__(self, "material", mat)
        if not isinstance(self.camera, TactileCamera):
            raise TypeError(f"camera must be a ds.TactileCamera, got "
                            f"{type(self.camera).__name__}")
        pos = np.asarray(self.position, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValueError(f"position={self.position!r} is not allowed: expected 3 finite "
                             "numbers (m)")
        object.__setattr__(self, "position", tuple(map(float, pos)))
        if self.rotation is not None and self.normal is not None:
            raise ValueError("give rotation or normal, not both")
        rot = quat_from_normal(self.normal) if self.normal is not None else (
            self.rotation if self.rotation is not None else (1.0, 0.0, 0.0, 0.0))
        q = np.asarray(rot, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-12:
            raise ValueError(f"rotation={rot!r} is not allowed: expected a quaternion (w, x, y, z)")
        object.__setattr__(self, "rotation", tuple(map(float, q / np.linalg.norm(q))))
        pr = tuple(self.pressure_res)
        if len(pr) != 2 or not all(isinstance(r, int) and r >= 1 for r in pr):
            raise ValueError(f"pressure_res={self.pressure_res!r} is not allowed: expected "
                             "(rows, cols), ints >= 1")
        if not (0 <= self.marker_margin < 0.5):
            raise ValueError(f"marker_margin={self.marker_margin!r} is not allowed: it must lie "
                             "in [0, 0.5) (fraction of the footprint)")
        if not isinstance(self.lights, Lights):
            raise TypeError(f"lights must be a ds.Lights, got {type(self.lights).__name__}")
        if self.pixel_model is not None and not isinstance(self.pixel_model, torch.nn.Module):
            raise TypeError(f"pixel_model must be None or a torch.nn.Module (e.g. "
                            f"ds.TactilePixelModel), got {type(self.pixel_model).__name__}")
        object.__setattr__(self, "marker_xy", self._marker_xy())
        self._check_camera()

    # ------------------------------------------------------------------ markers, camera
    def _marker_xy(self) -> np.ndarray:
        w, h = self.pad.size
        m = self.markers
        if isinstance(m, tuple) and len(m) == 2 and all(isinstance(k, int) for k in m):
            rows, cols = m
            if rows < 1 or cols < 1:
                raise ValueError(f"markers={m!r} is not allowed: (rows, cols) must be ints >= 1")
            mx, my = (0.5 - self.marker_margin) * w, (0.5 - self.marker_margin) * h
            xs = np.linspace(-mx, mx, cols) if cols > 1 else np.zeros(1)
            ys = np.linspace(-my, my, rows) if rows > 1 else np.zeros(1)
            xy = np.stack(np.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
        else:
            xy = np.asarray(m, dtype=np.float64)
            if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0 or not np.all(np.isfinite(xy)):
                raise ValueError(f"markers has shape {xy.shape}: expected (rows, cols) or an "
                                 "(M, 2) array of (x, y) positions (m, pad frame)")
        _z, tri, _b = self.pad.surface_height(xy)
        out = np.nonzero(tri < 0)[0]
        if len(out):
            i = int(out[0])
            lo = self.pad.points[:, :2].min(0)
            hi = self.pad.points[:, :2].max(0)
            raise ValueError(
                f"markers: marker {i} at (x, y) = ({xy[i, 0]:.4g}, {xy[i, 1]:.4g}) m lies "
                f"outside the pad's contact surface ({len(out)} of {len(xy)} markers do); allowed"
                f": points on the contact surface, within x in [{lo[0]:.4g}, {hi[0]:.4g}], y in "
                f"[{lo[1]:.4g}, {hi[1]:.4g}] m (pad frame)")
        return xy

    def _check_camera(self) -> None:
        cam = self.camera
        front = self.pad.points[self.pad.front_nodes]
        uv = cam.project(torch.as_tensor(front)).numpy()
        W, H = cam.resolution
        bad = (uv[:, 0] < 0) | (uv[:, 0] > W) | (uv[:, 1] < 0) | (uv[:, 1] > H)
        if bad.any():
            i = int(np.argmax(bad))
            p = front[i]
            raise ValueError(
                f"camera={cam!r} does not see the pad: the contact-surface point ({p[0]:.4g}, "
                f"{p[1]:.4g}, {p[2]:.4g}) m projects to pixel ({uv[i, 0]:.1f}, {uv[i, 1]:.1f}), "
                f"outside the {W} x {H} image ({int(bad.sum())} of {len(front)} surface nodes "
                "do); allowed: every contact-surface point inside the image; widen fov_deg, "
                "move the camera back (distance) or use model='fisheye'")
