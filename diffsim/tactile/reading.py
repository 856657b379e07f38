"""Readings of a tactile sensor from a state: torch functions of the node positions ``x`` and
contact forces ``f``, hence differentiable through ``ds.solve`` like the state itself.

* Markers: embedded (barycentric) in the rest contact surface, moved with it, projected
  by the camera (``TactileCamera.project``); displacements are relative to the rest image.
* Pressure maps: node contact forces of the contact surface, in the finger frame,
  spread over a ``(rows, cols)`` grid over the footprint by bilinear (tent) weights of the
  nodes' rest ``(x, y)``, divided by the cell area: normal pressure ``-f_z / A`` (Pa,
  compressive > 0) and shear ``(f_x, f_y) / A`` (Pa).
* Force and torque: the total force of the objects on the pad (N, finger frame) and its
  moment (N m) about the centre of the flat contact face ``(0, 0, thickness)``.
* Image: each pixel's ray meets the rest contact surface at a point embedded in a surface
  triangle; the deformed point and the interpolated (area-weighted vertex) normal are the
  pixel's ``PixelFeatures`` (computed once per reading), which an image model turns into
  RGB: by default the photometric ``Lights`` (see ``sensor.py``; markers darken the
  image), or a learned ``TactilePixelModel`` (``pixel_model.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..tools import quat_to_matrix
from .pad import embed_xy


@dataclass
class PixelFeatures:
    """Per-pixel geometry of the deformed contact surface, seen by the sensor's camera.

    Every field is a torch tensor of the sensor's dtype (differentiable w.r.t. the state),
    in the finger frame; ``H, W`` is the camera's resolution (rows, columns).

    Attributes:
        normal: (H, W, 3) unit normal of the membrane's inner side (facing the camera;
            ``(0, 0, -1)`` on a flat pad at rest), interpolated from area-weighted vertex
            normals of the contact surface.
        depth: (H, W) indentation (m): how far the surface point the pixel sees has moved
            towards the camera, ``z_rest - z`` (> 0 where pressed in).
        view: (H, W, 3) unit direction from that surface point to the camera centre.
        markers: (H, W) marker coverage in [0, 1]: Gaussian blobs (``Lights.marker_sigma``
            px) around the markers' image positions.
        uv: (H, W, 2) pixel centres scaled to [-1, 1] (``u`` along the width).
        mask: (H, W) bool, True where the pixel sees the pad (else the image shows the
            background; the other features are meaningless there).
    """

    normal: torch.Tensor
    depth: torch.Tensor
    view: torch.Tensor
    markers: torch.Tensor
    uv: torch.Tensor
    mask: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return tuple(self.mask.shape)


@dataclass
class TactileReading:
    """What a tactile sensor measures at one state (torch tensors, differentiable).

    Attributes:
        markers: (M, 2) marker positions in the image (px).
        marker_displacement: (M, 2) displacement from the rest image (px).
        marker_positions: (M, 3) marker positions in the finger frame (m).
        pressure: (rows, cols) normal pressure on the contact surface (Pa, compressive > 0).
        shear: (rows, cols, 2) shear traction (Pa) along the finger's x and y.
        force: (3,) total force of the objects on the pad (N, finger frame).
        torque: (3,) its moment about the contact face's centre (N m, finger frame).
        image: (H, W, 3) tactile RGB image in [0, 1] (the sensor's ``lights`` or
            ``pixel_model``), or ``None`` if not requested.
        features: the per-pixel ``PixelFeatures`` the image was made from (``None`` without
            the image): the inputs of a learned pixel model, e.g. to calibrate one.
    """

    markers: torch.Tensor
    marker_displacement: torch.Tensor
    marker_positions: torch.Tensor
    pressure: torch.Tensor
    shear: torch.Tensor
    force: torch.Tensor
    torque: torch.Tensor
    image: torch.Tensor | None = None
    features: PixelFeatures | None = None

    def vector(self) -> torch.Tensor:
        """Force, torque and marker displacements, flattened (for observations)."""
        return torch.cat([self.force, self.torque, self.marker_displacement.reshape(-1)])


def _tent_weights(xy: np.ndarray, lo, hi, rows: int, cols: int) -> np.ndarray:
    """(rows * cols, n) bilinear weights of points over the cell centres of a grid."""
    W = np.zeros((rows * cols, len(xy)))
    fx = (xy[:, 0] - lo[0]) / (hi[0] - lo[0]) * cols - 0.5
    fy = (xy[:, 1] - lo[1]) / (hi[1] - lo[1]) * rows - 0.5
    fx = np.clip(fx, 0, cols - 1)
    fy = np.clip(fy, 0, rows - 1)
    x0 = np.minimum(np.floor(fx).astype(int), max(cols - 2, 0))
    y0 = np.minimum(np.floor(fy).astype(int), max(rows - 2, 0))
    tx, ty = fx - x0, fy - y0
    idx = np.arange(len(xy))
    for dy, wy in ((0, 1 - ty), (1, ty)):
        for dx, wx in ((0, 1 - tx), (1, tx)):
            r = np.minimum(y0 + dy, rows - 1)
            c = np.minimum(x0 + dx, cols - 1)
            np.add.at(W, (r * cols + c, idx), wy * wx)
    return W


class SensorOptics:
    """Precomputed embeddings of one sensor (markers, pressure grid, pixels)."""

    def __init__(self, sensor, index: int, nodes: slice, dtype, device):
        self.sensor = sensor
        self.index = index
        self.nodes = nodes
        pad, cam = sensor.pad, sensor.camera
        kw = {"dtype": dtype, "device": device}
        P = pad.points
        tris = pad.front_faces
        self.tris = torch.as_tensor(tris, device=device)
        # markers
        _z, tri, bary = pad.surface_height(sensor.marker_xy)
        self.m_vert = torch.as_tensor(tris[tri], device=device)
        self.m_bary = torch.as_tensor(bary, **kw)
        rest = (self.m_bary[..., None] * torch.as_tensor(P, **kw)[self.m_vert]).sum(1)
        self.m_rest_uv = cam.project(rest)
        # pressure grid over the footprint
        rows, cols = sensor.pressure_res
        lo, hi = P[:, :2].min(0), P[:, :2].max(0)
        front = pad.front_nodes
        self.front = torch.as_tensor(front, device=device)
        self.splat = torch.as_tensor(_tent_weights(P[front, :2], lo, hi, rows, cols), **kw)
        self.cell_area = float((hi[0] - lo[0]) * (hi[1] - lo[1]) / (rows * cols))
        self.center = torch.tensor([0.0, 0.0, pad.thickness], **kw)
        # pixels: rays through the rest contact surface (z a graph over the footprint)
        W, H = cam.resolution
        d = cam.rays().reshape(-1, 3)
        s = np.full(len(d), (pad.thickness + cam.distance) / d[:, 2])
        for _ in range(30):
            xy = s[:, None] * d[:, :2]
            z, _t, _b = embed_xy(P, tris, xy)
            s_new = (np.where(np.isfinite(z), z, pad.thickness) + cam.distance) / d[:, 2]
            if np.max(np.abs(s_new - s)) < 1e-12:
                break
            s = s_new
        _z, ptri, pbary = embed_xy(P, tris, s[:, None] * d[:, :2])
        self.mask = torch.as_tensor((ptri >= 0).reshape(H, W), device=device)
        ptri = np.where(ptri >= 0, ptri, 0)
        self.p_vert = torch.as_tensor(tris[ptri], device=device)
        self.p_bary = torch.as_tensor(pbary, **kw)
        self.p_rest_z = (self.p_bary * torch.as_tensor(P[:, 2], **kw)[self.p_vert]).sum(1)
        u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5, indexing="xy")
        self.pix = torch.as_tensor(np.stack([u, v], -1), **kw)
        self.uv = torch.as_tensor(np.stack([2 * u / W - 1, 2 * v / H - 1], -1), **kw)
        self.cam_pos = torch.tensor([0.0, 0.0, -cam.distance], **kw)

    # ------------------------------------------------------------------ readout
    def read(self, x: torch.Tensor, f: torch.Tensor, tool_pos: torch.Tensor,
             tool_rot: torch.Tensor, image: bool = True) -> TactileReading:
        k = self.index
        R = quat_to_matrix(tool_rot[k])
        Xl = (x[self.nodes] - tool_pos[k]) @ R       # R^T (x - p), finger frame
        Fl = f[self.nodes] @ R
        mk = (self.m_bary[..., None] * Xl[self.m_vert]).sum(1)
        uv = self.sensor.camera.project(mk)
        rows, cols = self.sensor.pressure_res
        Ff = Fl[self.front]
        pressure = -(self.splat @ Ff[:, 2]).reshape(rows, cols) / self.cell_area
        shear = (self.splat @ Ff[:, :2]).reshape(rows, cols, 2) / self.cell_area
        force = Fl.sum(0)
        torque = torch.cross(Xl - self.center, Fl, dim=-1).sum(0)
        if not image:
            return TactileReading(uv, uv - self.m_rest_uv, mk, pressure, shear, force, torque)
        feats = self.features(Xl, uv)
        model = self.sensor.pixel_model
        img = self.sensor.lights.shade(feats) if model is None else self.apply_model(model, feats)
        return TactileReading(uv, uv - self.m_rest_uv, mk, pressure, shear, force, torque, img,
                              feats)

    def features(self, Xl: torch.Tensor, marker_uv: torch.Tensor) -> PixelFeatures:
        """The ``PixelFeatures`` of the deformed contact surface ``Xl`` (finger frame)."""
        L = self.sensor.lights
        W, H = self.sensor.camera.resolution
        t = self.tris
        a, b, c = Xl[t[:, 0]], Xl[t[:, 1]], Xl[t[:, 2]]
        fn = torch.cross(b - a, c - a, dim=-1)                 # outward, area-weighted
        vn = torch.zeros_like(Xl).index_add(0, t.reshape(-1), fn.repeat_interleave(3, 0))
        P = (self.p_bary[..., None] * Xl[self.p_vert]).sum(1)
        n = -(self.p_bary[..., None] * vn[self.p_vert]).sum(1)  # inner side, facing the camera
        n = n / torch.sqrt((n * n).sum(-1, keepdim=True) + 1e-30)
        v = self.cam_pos - P
        v = v / torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-30)
        d2 = ((self.pix[:, :, None, :] - marker_uv[None, None]) ** 2).sum(-1)
        blobs = torch.exp(-d2 / (2 * L.marker_sigma ** 2)).sum(-1).clamp(max=1.0)
        depth = (self.p_rest_z - P[:, 2]).reshape(H, W)
        return PixelFeatures(normal=n.reshape(H, W, 3), depth=depth, view=v.reshape(H, W, 3),
                             markers=blobs, uv=self.uv, mask=self.mask)

    def apply_model(self, model, feats: PixelFeatures) -> torch.Tensor:
        """The image (H, W, 3) of the sensor's learned pixel model; the background where the
        camera does not see the pad stays ``Lights.background``."""
        img = model(feats)
        H, W = feats.shape
        if not (isinstance(img, torch.Tensor) and img.shape == (H, W, 3)):
            raise ValueError(f"pixel_model returned {getattr(img, 'shape', type(img))}: expected "
                             f"an (H, W, 3) = ({H}, {W}, 3) tensor of RGB in [0, 1]")
        img = img.to(feats.normal.dtype)
        bg = torch.full_like(img, self.sensor.lights.background)
        return torch.where(self.mask[..., None], img, bg)
