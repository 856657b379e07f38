"""``Renderer``: images of simulator states as (H, W, 3) uint8 arrays.

Usage::

    r = ds.render.Renderer(width=256, height=256)   # camera framed on the scene by default
    img = r.render(sim, state)                      # (256, 256, 3) uint8
    frames = [r.render(sim, s) for s in sol.u]
    ds.render.animate(frames, fps=20)                # notebook video
    r.close()

Every simulator draws (``drawing.py``): ``ds.MPM`` particles as sphere splats,
``ds.FEM`` solids as the shaded boundary surfaces of their tet meshes,
``ds.Shell`` sheets as shaded two-sided triangle meshes, ``ds.Tactile`` pads with
their markers on their fingers (and, with ``tactile_image=True``, the sensors'
RGB images beside the scene); tools, free rigid objects, hinge pins, colliders
and the floor with all of them.

The renderer is a software rasterizer in one Taichi kernel (``raster.py``): it
needs no display and no OpenGL, runs on the CPU and unchanged on CUDA. It owns
Taichi memory (its depth buffer, freed by ``close``); the kernel is compiled
once per process (per point dimension and float type) and shared by all
renderers, so the first frame takes about a second and the next ones
milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import runtime
from .camera import Camera
from .colors import COLLIDER_COLOR, PALETTE, TOOL_COLOR, rgb
from .drawing import SceneDrawing, drawing_for
from .meshes import MeshBatch, TriMesh
from .raster import (
    N_PARAMS,
    P_AMBIENT,
    P_EYE,
    P_FAR,
    P_FLOOR,
    P_FLOOR_C1,
    P_FLOOR_C2,
    P_FLOOR_CELL,
    P_FLOOR_HI,
    P_FLOOR_LEVEL,
    P_FLOOR_LO,
    P_FLOOR_N,
    P_FLOOR_OUT,
    P_FLOOR_U,
    P_FLOOR_V,
    P_FWD,
    P_LIGHT,
    P_MIN_RADIUS,
    P_NEAR,
    P_NF,
    P_NP,
    P_ORTHO,
    P_RIGHT,
    P_SCALE,
    P_SHININESS,
    P_SKY_BOTTOM,
    P_SKY_TOP,
    P_UP,
    Rasterizer,
)

MAX_SIZE = 16384
# towards the light in the camera frame (x right, y up, z forward): above, left, in front
DEFAULT_LIGHT = (-0.35, 0.75, -0.55)
#: gap (px) between the scene and the tactile images beside it
PANEL_GAP = 2


def _rgb(name: str, value) -> np.ndarray:
    """One colour as (3,) floats in [0, 1] (see ``colors.rgb``)."""
    return rgb(name, value)


def _size(name: str, value) -> int:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            and 1 <= value <= MAX_SIZE):
        raise ValueError(f"{name}={value!r} is not allowed: expected an int in [1, {MAX_SIZE}]")
    return int(value)


@dataclass(frozen=True)
class Floor:
    """A checkered ground plane drawn where nothing else is (a backdrop, not an occluder).

    In 3D it is the plane ``x[axis] = level`` (``y = level`` by default)
    checkered over ``lo..hi`` in the two other axes in increasing order ((x, z)
    for ``axis=1``, (x, y) for ``axis=2``); in 2D it is the plane ``z = level``
    behind the scene, checkered over ``lo..hi`` in (x, y). Outside the checkered
    extent it fades to the background.

    Args:
        level: height of the plane along ``axis`` (m).
        lo, hi: (2,) corners of the checkered extent in the plane's axes (m).
        cell: checker cell size (m), > 0.
        colors: the two checker colours; ``outside``: the plane beyond the extent.
        axis: the plane's normal axis in 3D scenes: 0, 1 (y, up) or 2 (z, for
            scenes whose gravity points along -z).
    """

    level: float = 0.0
    lo: tuple = (0.0, 0.0)
    hi: tuple = (1.0, 1.0)
    cell: float = 0.1
    colors: tuple = ("#e9ebee", "#d5d9df")
    outside: str = "#c3c8cf"
    axis: int = 1

    def __post_init__(self):
        lo, hi = np.asarray(self.lo, float), np.asarray(self.hi, float)
        if lo.shape != (2,) or hi.shape != (2,) or np.any(hi < lo) or not np.all(
                np.isfinite(np.concatenate([lo, hi]))):
            raise ValueError(f"lo={self.lo!r}, hi={self.hi!r} are not allowed: expected two "
                             "finite (a, b) corners with hi >= lo")
        if not (math.isfinite(self.cell) and self.cell > 0):
            raise ValueError(f"cell={self.cell!r} is not allowed: it must be > 0")
        if len(self.colors) != 2:
            raise ValueError(f"colors={self.colors!r} is not allowed: expected two colours")
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis={self.axis!r} is not allowed: expected 0, 1 or 2")

    def frame(self, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plane's unit normal and its two in-plane axes (world), for ``dim``."""
        e = np.eye(3)
        if dim == 2:
            return e[2], e[0], e[1]
        u, v = (a for a in range(3) if a != self.axis)
        return e[self.axis], e[u], e[v]

    @classmethod
    def under(cls, bounds, axis: int = 1, **kwargs) -> Floor:
        """The floor of a scene box: its bottom face along ``axis`` (3D) or its back
        plane (2D)."""
        b = np.asarray(bounds, float)
        if b.shape[0] == 3:
            u, v = (a for a in range(3) if a != axis)
            lo, hi = (b[u, 0], b[v, 0]), (b[u, 1], b[v, 1])
            level, ext = b[axis, 0], max(b[u, 1] - b[u, 0], b[v, 1] - b[v, 0])
            kwargs["axis"] = axis
        else:
            lo, hi = (b[0, 0], b[1, 0]), (b[0, 1], b[1, 1])
            level, ext = 0.0, max(b[0, 1] - b[0, 0], b[1, 1] - b[1, 0])
            # a backdrop seen face-on: subtler than a floor seen at a slant
            kwargs.setdefault("colors", ("#f4f5f7", "#eaecef"))
        kwargs.setdefault("cell", ext / 10.0)
        return cls(level=float(level), lo=tuple(map(float, lo)), hi=tuple(map(float, hi)),
                   **kwargs)


class Renderer:
    """A Taichi software renderer: particles as shaded sphere splats, meshes, a floor.

    Particles are drawn as sphere impostors (a disc per particle whose
    per-pixel depth and normal are those of a sphere), triangles (rigid meshes
    and the deforming surfaces of solids, shells and pads) are rasterized into
    the same depth buffer, and every visible pixel is shaded once with Lambert +
    ambient light (plus a Blinn-Phong highlight on meshes). See
    ``diffsim/render/raster.py``.

    Args:
        width, height: image size in pixels, ints in [1, 16384].
        camera: a :class:`Camera`; ``None`` frames each scene (:meth:`Camera.framing`;
            orthographic for 2D scenes): an MPM scene's bounds, the bodies, tools
            and colliders of FEM/Shell scenes at their start, the pads and objects
            of tactile scenes with room to move; the world axis gravity pulls
            along is drawn upwards.
        background: (top, bottom) colours of the background gradient.
        floor: ``True`` draws a checkered floor (the scene's ground if it has one,
            else under the scene; the back plane in 2D), ``False`` none, or a
            :class:`Floor`.
        light: direction towards the light in world space (3,); ``None`` keeps a
            light fixed to the camera (above-left, in front), which suits any view.
        ambient: ambient fraction of the shading in [0, 1].
        particle_scale: multiplies the particle radius (default: 3D, the radius
            of the sphere with the particle's volume; 2D, half the diagonal of
            the particle's square, so bodies look solid).
        min_pixel_radius: smallest splat radius in pixels (> 0), so that far or
            tiny particles stay visible.
        palette: body colours in the order of ``sim.groups`` (then free objects).
        tool_color, collider_color: mesh colours.
        show_tools, show_colliders: draw the tools / static colliders.
        shininess: Blinn-Phong exponent of the meshes' highlights (>= 1; each
            role has its highlight weight, ``colors.SPECULAR``).

    ``ambient`` and ``light`` may be changed between frames.

    Raises:
        ValueError: an argument outside its range (named in the message).
    """

    def __init__(self, width: int = 256, height: int = 256, camera: Camera | None = None, *,
                 background=("#f5f7fa", "#cfd6e0"), floor=True, light=None,
                 ambient: float = 0.35, particle_scale: float = 1.0,
                 min_pixel_radius: float = 0.6, palette=PALETTE, tool_color=TOOL_COLOR,
                 collider_color=COLLIDER_COLOR, show_tools: bool = True,
                 show_colliders: bool = True, shininess: float = 32.0):
        self.width = _size("width", width)
        self.height = _size("height", height)
        if camera is not None and not isinstance(camera, Camera):
            raise ValueError(f"camera={camera!r} is not allowed: expected a ds.render.Camera "
                             "or None")
        self.camera = camera
        if len(background) != 2:
            raise ValueError(f"background={background!r} is not allowed: expected two colours "
                             "(top, bottom)")
        self.background = (_rgb("background[0]", background[0]),
                           _rgb("background[1]", background[1]))
        if not (floor is True or floor is False or floor is None or isinstance(floor, Floor)):
            raise ValueError(f"floor={floor!r} is not allowed: expected True, False or a Floor")
        self.floor = floor
        if light is not None:
            lw = np.asarray(light, float)
            if lw.shape != (3,) or not np.all(np.isfinite(lw)) or np.linalg.norm(lw) == 0:
                raise ValueError(f"light={light!r} is not allowed: expected a non-zero 3-vector")
            light = lw / np.linalg.norm(lw)
        self.light = light
        if not (isinstance(ambient, (int, float)) and 0.0 <= ambient <= 1.0):
            raise ValueError(f"ambient={ambient!r} is not allowed: expected a number in [0, 1]")
        self.ambient = float(ambient)
        if not (isinstance(particle_scale, (int, float)) and math.isfinite(particle_scale)
                and particle_scale > 0):
            raise ValueError(f"particle_scale={particle_scale!r} is not allowed: it must be > 0")
        self.particle_scale = float(particle_scale)
        if not (isinstance(min_pixel_radius, (int, float)) and math.isfinite(min_pixel_radius)
                and min_pixel_radius > 0):
            raise ValueError(f"min_pixel_radius={min_pixel_radius!r} is not allowed: it must "
                             "be > 0")
        self.min_pixel_radius = float(min_pixel_radius)
        if len(palette) == 0:
            raise ValueError("palette is empty: give at least one colour")
        self.palette = tuple(tuple(_rgb(f"palette[{i}]", c)) for i, c in enumerate(palette))
        self.tool_color = _rgb("tool_color", tool_color)
        self.collider_color = _rgb("collider_color", collider_color)
        self.show_tools, self.show_colliders = bool(show_tools), bool(show_colliders)
        if not (isinstance(shininess, (int, float)) and math.isfinite(shininess)
                and shininess >= 1):
            raise ValueError(f"shininess={shininess!r} is not allowed: expected a number >= 1")
        self.shininess = float(shininess)

        self.cfg = runtime.ensure_init()
        self._real = np.float64 if self.cfg.precision == "f64" else np.float32
        self._raster = Rasterizer(self.width, self.height)
        self._drawing: SceneDrawing | None = None
        self._mesh_cache: tuple | None = None
        self._closed = False
        runtime.register(self)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Free the Taichi fields (idempotent); the renderer cannot draw afterwards."""
        if not self._closed:
            self._raster.destroy()
            self._closed = True
            self._drawing = None
            runtime.unregister(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"Renderer({self.width}x{self.height}, camera={self.camera!r}"
                f"{', closed' if self._closed else ''})")

    # ------------------------------------------------------------------ drawing
    def render(self, sim, state, camera: Camera | None = None, colors: dict | None = None,
               tactile_image: bool = False) -> np.ndarray:
        """Draw a simulator state.

        ``ds.MPM``: particles coloured by body; ``ds.FEM``: each body's boundary
        surface; ``ds.Shell``: each sheet, its underside a darker shade;
        ``ds.Tactile``: the pads on their fingers with their markers, rigid and free
        objects, hinge pins and a coupled MPM/FEM object. Tools at their poses,
        colliders and the floor (the ground, else the bottom of the scene) with all.

        Args:
            sim: a ``ds.MPM``, ``ds.FEM``, ``ds.Shell`` or ``ds.Tactile``, 2D or 3D.
            state: a ``ds.State`` of ``sim``.
            camera: overrides the renderer's camera for this frame.
            colors: ``{name: colour}`` overriding the defaults, for bodies (the
                palette in the order of ``sim.groups``, then free objects), tools,
                colliders, pads, ``"<sensor>_finger"``, ``"<object>_hinge"`` and
                ``"markers"``.
            tactile_image: ``ds.Tactile`` only: put each sensor's tactile RGB image
                (``sim.read(state).image``) beside the scene, stacked top to bottom,
                scaled to share the height (nearest neighbour); the image is then
                wider than ``width``.

        Returns:
            (height, width, 3) uint8 RGB image (wider with ``tactile_image``).

        Raises:
            ValueError: ``state`` does not fit ``sim``, unknown names in ``colors``,
                ``tactile_image`` for a simulator without sensors.
            TypeError: ``sim`` is not a diffsim simulator.
            RuntimeError: the renderer is closed.
        """
        self._check_open()
        drawing = self._drawing_for(sim, colors)
        if tactile_image and not drawing.sensors:
            raise ValueError(f"tactile_image=True is not allowed for a {type(sim).__name__}: "
                             "it has no tactile sensors (ds.Tactile has)")
        x, xf = drawing.frame(state)
        cam = camera or self.camera or drawing.camera
        img = self._draw(x, drawing.colors, drawing.radii, drawing.batch, xf, cam,
                         drawing.floor)
        if tactile_image:
            img = self._with_panels(img, [sim.read(state, sensor=k, image=True).image
                                          for k in drawing.sensors])
        return img

    def render_points(self, points, colors=None, radius=0.01, meshes=(), camera=None,
                      floor: Floor | None = None) -> np.ndarray:
        """Draw points as shaded spheres (discs in 2D) and triangle meshes.

        Args:
            points: (N, 3) world points (m), or (N, 2) points of a 2D scene
                (drawn in the plane z = 0); numpy array or torch tensor.
            colors: ``None`` (the first palette colour), one colour, or (N, 3)
                RGB per point (floats in [0, 1] or uint8).
            radius: sphere radius (m), a number or (N,) per point.
            meshes: items ``mesh``, ``(mesh, color)`` or ``(mesh, color,
                transform)``; ``mesh`` a ``trimesh.Trimesh`` (world frame unless
                ``transform``, a 4x4 or 3x4 rigid transform, moves it).
            camera: default: the renderer's camera, else one framing the points.
            floor: a :class:`Floor` or ``None`` (``True`` is for scenes only).

        Returns:
            (height, width, 3) uint8 RGB image.

        Raises:
            ValueError: arrays of the wrong shape or values (named in the message).
        """
        self._check_open()
        if not torch.is_tensor(points):
            points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ValueError(f"points has shape {tuple(points.shape)}; expected (N, 3) or "
                             "(N, 2)")
        n = points.shape[0]
        real = self._real
        if colors is None:
            cols = np.broadcast_to(np.asarray(self.palette[0]), (n, 3))
        elif isinstance(colors, str) or np.asarray(colors).shape == (3,):
            cols = np.broadcast_to(_rgb("colors", colors), (n, 3))
        else:
            c = np.asarray(colors)
            if c.shape != (n, 3):
                raise ValueError(f"colors has shape {c.shape}; expected (3,) or (N, 3) = "
                                 f"({n}, 3)")
            cols = c / 255.0 if c.dtype == np.uint8 else c
        cols = np.ascontiguousarray(cols, dtype=real)
        rad = np.asarray(radius, float)
        if rad.ndim == 0:
            rad = np.full(n, float(rad))
        if rad.shape != (n,) or not np.all(np.isfinite(rad)) or np.any(rad <= 0):
            raise ValueError(f"radius must be a number > 0 or (N,) = ({n},) positive numbers; "
                             f"got shape {rad.shape}")
        rad = np.ascontiguousarray(rad, dtype=real)
        batch, xf = self._mesh_batch(meshes)
        if floor is not None and not isinstance(floor, Floor):
            raise ValueError(f"floor={floor!r} is not allowed: expected a ds.render.Floor or None")
        cam = camera or self.camera
        if cam is None:
            p = points.detach().cpu().numpy() if torch.is_tensor(points) else points
            if n:
                lo, hi = p.min(0).astype(float), p.max(0).astype(float)
                pad = 0.05 * max(float(np.max(hi - lo)), 1e-3) + float(rad.max())
                cam = Camera.framing(np.stack([lo - pad, hi + pad], 1),
                                     aspect=self.width / self.height)
            else:
                cam = Camera()
        return self._draw(points, cols, rad, batch, xf, cam, floor)

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Renderer is closed")

    def _drawing_for(self, sim, colors) -> SceneDrawing:
        """The drawing of ``sim`` (built on first use, kept while ``sim`` and ``colors``
        stay the same: meshes, surfaces and the camera are made once per simulator)."""
        d = self._drawing
        key = None if colors is None else tuple(sorted(
            (k, tuple(_rgb(f"colors[{k!r}]", v))) for k, v in colors.items()))
        if d is None or d.sim_ref() is not sim or d.key != key:
            d = self._drawing = drawing_for(self, sim, colors)
            d.key = key
        return d

    def _with_panels(self, img: np.ndarray, images) -> np.ndarray:
        """``img`` with the tactile images (each (h, w, 3) in [0, 1]) stacked beside it."""
        H = img.shape[0]
        n = len(images)
        slot = (H - PANEL_GAP * (n - 1)) // n
        if slot < 1:
            raise ValueError(f"height={H} is too small for {n} tactile images beside the scene")
        tiles = []
        for im in images:
            a = np.clip(im.detach().cpu().double().numpy(), 0.0, 1.0)
            h, w = a.shape[:2]
            tw = max(1, round(w * slot / h))
            rows = np.minimum((np.arange(slot) + 0.5) * h / slot, h - 1).astype(int)
            cols = np.minimum((np.arange(tw) + 0.5) * w / tw, w - 1).astype(int)
            tiles.append(np.round(a[rows][:, cols] * 255).astype(np.uint8))
        width = max(t.shape[1] for t in tiles)
        bg = np.round(self.background[1] * 255).astype(np.uint8)
        panel = np.empty((H, width + PANEL_GAP, 3), np.uint8)
        panel[:] = bg
        top = 0
        for t in tiles:
            panel[top:top + t.shape[0], PANEL_GAP:PANEL_GAP + t.shape[1]] = t
            top += t.shape[0] + PANEL_GAP
        return np.concatenate([img, panel], axis=1)

    def _mesh_batch(self, meshes) -> tuple[MeshBatch, np.ndarray]:
        import trimesh

        items = []
        for i, item in enumerate(meshes):
            parts = item if isinstance(item, (tuple, list)) else (item,)
            if not 1 <= len(parts) <= 3:
                raise ValueError(f"meshes[{i}] must be mesh, (mesh, color) or "
                                 "(mesh, color, transform)")
            mesh = parts[0]
            if not isinstance(mesh, (trimesh.Trimesh, TriMesh)):
                raise ValueError(f"meshes[{i}] is a {type(mesh).__name__}; expected a "
                                 "trimesh.Trimesh")
            color = _rgb(f"meshes[{i}] color", parts[1]) if len(parts) > 1 and parts[1] is not \
                None else self.collider_color
            xf = np.eye(4)[:3]
            if len(parts) == 3 and parts[2] is not None:
                m = np.asarray(parts[2], float)
                if m.shape not in ((4, 4), (3, 4)):
                    raise ValueError(f"meshes[{i}] transform has shape {m.shape}; expected "
                                     "(4, 4) or (3, 4)")
                xf = m[:3]
            items.append((mesh, color, xf))
        ids = tuple(id(m) for m, _, _ in items)
        cols = tuple(tuple(c) for _, c, _ in items)
        cached = self._mesh_cache
        if cached is not None and cached[0] == ids and cached[1] == cols:
            batch = cached[2]
        else:
            tms = [m if isinstance(m, TriMesh) else TriMesh.from_trimesh(m) for m, _, _ in items]
            batch = MeshBatch(tms, [c for _, c, _ in items], dtype=self._real)
            # keep the meshes alive with the cache so that their ids stay theirs
            self._mesh_cache = (ids, cols, batch, [m for m, _, _ in items])
        xf = batch.transforms(np.stack([x for _, _, x in items]) if items else None)
        return batch, xf

    def _positions(self, x):
        """Particle positions as an array the kernel can read on the current arch."""
        real = self._real
        if torch.is_tensor(x):
            x = x.detach()
            on_cuda = self.cfg.arch == "cuda"
            if x.is_cuda and on_cuda:
                return x.to(dtype=self.cfg.torch_float).contiguous()
            return np.ascontiguousarray(x.cpu().numpy(), dtype=real)
        return np.ascontiguousarray(x, dtype=real)

    def _params(self, cam: Camera, n_p: int, n_f: int, floor: Floor | None,
                pdim: int = 3) -> np.ndarray:
        prm = np.zeros(N_PARAMS)
        basis = cam.basis()
        prm[P_EYE:P_EYE + 3] = cam.eye
        prm[P_RIGHT:P_RIGHT + 3] = basis[0]
        prm[P_UP:P_UP + 3] = basis[1]
        prm[P_FWD:P_FWD + 3] = basis[2]
        prm[P_SCALE] = cam.pixel_scale(self.height)
        prm[P_ORTHO] = 1.0 if cam.is_orthographic else 0.0
        prm[P_NEAR], prm[P_FAR] = cam.z_near, cam.z_far
        light = basis @ self.light if self.light is not None else np.asarray(DEFAULT_LIGHT)
        prm[P_LIGHT:P_LIGHT + 3] = light / np.linalg.norm(light)
        prm[P_AMBIENT] = self.ambient
        prm[P_SKY_TOP:P_SKY_TOP + 3] = self.background[0]
        prm[P_SKY_BOTTOM:P_SKY_BOTTOM + 3] = self.background[1]
        if floor is not None:
            prm[P_FLOOR] = 1.0
            prm[P_FLOOR_LEVEL] = floor.level
            prm[P_FLOOR_LO:P_FLOOR_LO + 2] = floor.lo
            prm[P_FLOOR_HI:P_FLOOR_HI + 2] = floor.hi
            prm[P_FLOOR_CELL] = floor.cell
            prm[P_FLOOR_C1:P_FLOOR_C1 + 3] = _rgb("floor.colors[0]", floor.colors[0])
            prm[P_FLOOR_C2:P_FLOOR_C2 + 3] = _rgb("floor.colors[1]", floor.colors[1])
            prm[P_FLOOR_OUT:P_FLOOR_OUT + 3] = _rgb("floor.outside", floor.outside)
            n, u, v = floor.frame(pdim)
            prm[P_FLOOR_N:P_FLOOR_N + 3] = n
            prm[P_FLOOR_U:P_FLOOR_U + 3] = u
            prm[P_FLOOR_V:P_FLOOR_V + 3] = v
        prm[P_NP], prm[P_NF] = n_p, n_f
        prm[P_MIN_RADIUS] = self.min_pixel_radius
        prm[P_SHININESS] = self.shininess
        return prm.astype(self._real)

    def _draw(self, x, colors, radii, batch: MeshBatch, xf, cam: Camera,
              floor: Floor | None) -> np.ndarray:
        if not isinstance(cam, Camera):
            raise ValueError(f"camera={cam!r} is not allowed: expected a ds.render.Camera")
        pdim = int(x.shape[1])
        n = int(x.shape[0])
        pos = self._positions(x)
        if n == 0:  # the kernel takes arrays of length >= 1; the count says 0
            pos = np.zeros((1, pdim), self._real)
            colors, radii = np.zeros((1, 3), self._real), np.ones(1, self._real)
        prm = self._params(cam, n, batch.n_faces, floor, pdim)
        out = np.empty((self.height, self.width, 3), np.uint8)
        self._raster.draw(pos, colors, radii, batch.vertices, batch.normals, batch.faces,
                          batch.face_instance, xf, batch.materials, prm, out, pdim)
        return out


def render_state(sim, state, renderer: Renderer | None = None, **kwargs) -> np.ndarray:
    """One image of ``state``: ``renderer.render(sim, state)``.

    Without a ``renderer``, a temporary one is made from ``kwargs`` (``width``,
    ``height``, ``camera``, ...) and closed again: convenient for a single
    picture; keep a :class:`Renderer` for many frames (it also keeps the
    meshes built for ``sim``).
    """
    if renderer is not None:
        if kwargs:
            raise ValueError(f"pass options either to the Renderer or here, not both: "
                             f"{sorted(kwargs)}")
        return renderer.render(sim, state)
    with Renderer(**kwargs) as r:
        return r.render(sim, state)


__all__ = ["Renderer", "Floor", "render_state", "PALETTE", "TOOL_COLOR", "COLLIDER_COLOR"]
