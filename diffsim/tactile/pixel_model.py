"""A small learnable pixel model of the tactile image, and its calibration.

The photometric ``Lights`` model is a guess at a real sensor's optics. DiffTactile (Si et
al., "DiffTactile: A Physics-based Differentiable Tactile Simulator for Contact-rich
Robotic Manipulation", ICLR 2024) instead maps each pixel's surface normal to its colour
with a small MLP calibrated on real GelSight images. ``TactilePixelModel`` is that MLP,
applied per pixel to the ``PixelFeatures`` of a reading (normal, indentation, optionally
the pixel's position and its marker coverage), and ``fit_pixel_model`` calibrates it from
(features, RGB image) pairs with Adam. The model is a plain ``torch.nn.Module``: images made with it are
differentiable w.r.t. the model's weights and, through the features, w.r.t. the state,
hence the controls and parameters of a ``ds.solve`` rollout.

Use it per sensor (``ds.TactileSensor(..., pixel_model=model)``: ``sim.read(state).image``
is then learned) or on any reading's features (``model(reading.features)``). Save and load it with its ``state_dict``::

    torch.save({"config": model.config, "state": model.state_dict()}, "pixels.pt")
    ckpt = torch.load("pixels.pt")
    model = ds.TactilePixelModel(**ckpt["config"])
    model.load_state_dict(ckpt["state"])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .reading import PixelFeatures


class TactilePixelModel(torch.nn.Module):
    """Per-pixel MLP from surface geometry to RGB (DiffTactile's learned optical model).

    Inputs per pixel (the columns of ``encode``): the unit inner normal ``n`` (3), the
    indentation ``depth / depth_scale`` (1), with ``position`` the pixel's ``uv`` in
    [-1, 1] (2) and ``sin/cos(2^k pi uv)`` for ``k < frequencies`` (``4 * frequencies``),
    with ``markers`` the marker coverage (1). Hidden layers are ``Linear + SiLU`` (smooth,
    so that images have smooth gradients); the output is ``sigmoid`` RGB in (0, 1).

    Args:
        hidden: widths of the hidden layers, e.g. ``(64, 64)``; ints >= 1.
        depth_scale: indentation that maps to an input of 1 (m), > 0.
        position: feed the pixel's image position (lets the model learn vignetting and
            the view-dependent part of the shading, which the normal alone does not fix).
        frequencies: number of positional-encoding octaves (>= 0; 0: raw ``uv`` only).
        markers: feed the marker coverage (so markers appear in the image as the model
            learned them); without it the learned image has no markers.
        dtype: dtype of the weights (``torch.float32``; ``float64`` for finite-difference
            checks). Features are cast to it (and to the weights' device, ``model.to(...)``),
            the image back to the features' dtype and device.

    Call: ``model(features)`` with ``PixelFeatures`` of ``(H, W)`` pixels returns the
    ``(H, W, 3)`` image; pixels that do not see the pad are meaningless unless
    ``model(features, background=0.05)`` (a reading sets them to ``Lights.background``).
    """

    def __init__(self, hidden: Sequence[int] = (64, 64), depth_scale: float = 1e-3,
                 position: bool = True, frequencies: int = 2, markers: bool = True,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        hidden = tuple(hidden)
        if not (len(hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in hidden)):
            raise ValueError(f"hidden={hidden!r} is not allowed: expected a non-empty sequence "
                             "of layer widths, ints >= 1")
        if not (isinstance(depth_scale, (int, float)) and math.isfinite(depth_scale)
                and depth_scale > 0):
            raise ValueError(f"depth_scale={depth_scale!r} is not allowed: it must be a number "
                             "> 0 (m)")
        if not (isinstance(frequencies, int) and 0 <= frequencies <= 16):
            raise ValueError(f"frequencies={frequencies!r} is not allowed: expected an int in "
                             "[0, 16]")
        self.config = {"hidden": hidden, "depth_scale": float(depth_scale),
                       "position": bool(position), "frequencies": frequencies,
                       "markers": bool(markers)}
        self.depth_scale = float(depth_scale)
        self.position, self.frequencies, self.markers = bool(position), frequencies, bool(markers)
        layers, width = [], self.n_inputs
        for h in hidden:
            layers += [torch.nn.Linear(width, h, dtype=dtype), torch.nn.SiLU()]
            width = h
        layers.append(torch.nn.Linear(width, 3, dtype=dtype))
        self.net = torch.nn.Sequential(*layers)

    @property
    def n_inputs(self) -> int:
        """Number of input columns per pixel."""
        return 4 + (2 + 4 * self.frequencies) * self.position + self.markers

    def encode(self, features: PixelFeatures) -> torch.Tensor:
        """The model's inputs ``(H, W, n_inputs)`` (dtype and device of the weights)."""
        if not isinstance(features, PixelFeatures):
            raise TypeError(f"features must be PixelFeatures (a reading's .features), got "
                            f"{type(features).__name__}")
        w = self.net[0].weight
        kw = {"dtype": w.dtype, "device": w.device}
        cols = [features.normal.to(**kw), (features.depth / self.depth_scale).to(**kw)[..., None]]
        if self.position:
            uv = features.uv.to(**kw)
            cols.append(uv)
            for k in range(self.frequencies):
                a = (math.pi * 2 ** k) * uv
                cols += [torch.sin(a), torch.cos(a)]
        if self.markers:
            cols.append(features.markers.to(**kw)[..., None])
        return torch.cat(cols, -1)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """RGB ``(..., 3)`` in (0, 1) of encoded inputs ``x`` ``(..., n_inputs)``."""
        return torch.sigmoid(self.net(x))

    def forward(self, features: PixelFeatures, background: float | None = None) -> torch.Tensor:
        """The image (H, W, 3) of ``features`` (their dtype); with ``background`` the pixels
        that do not see the pad (``features.mask`` False) take that value."""
        img = self.head(self.encode(features)).to(features.normal)
        if background is None:
            return img
        return torch.where(features.mask[..., None], img, torch.full_like(img, background))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())


_EPS = 1.0 / 512


def _as_list(x, what):
    if isinstance(x, PixelFeatures):
        return [x]
    if isinstance(x, (torch.Tensor, np.ndarray)) and what == "images" and x.ndim == 3:
        return [x]
    try:
        out = list(x)
    except TypeError:
        raise TypeError(f"{what} must be one item or a sequence, got {type(x).__name__}") from None
    if not out:
        raise ValueError(f"{what} is empty: expected at least one")
    return out


def fit_pixel_model(features, images, model: TactilePixelModel | None = None, *,
                    iters: int = 500, lr: float = 1e-2, batch_size: int | None = None,
                    loss: str = "l1", seed: int = 0, progress: bool = False):
    """Calibrate a ``TactilePixelModel`` on (features, RGB image) pairs with Adam.

    Only pixels that see the pad (``features.mask``) are fitted; targets are clamped to
    ``[1/512, 1 - 1/512]`` (saturated pixels would drive the output sigmoid into its flat
    tails). For real images, record the sensor pressing known objects at known poses,
    simulate the same contacts, and pair each simulated reading's ``features`` with the
    real image (same camera resolution, registered to the simulated camera).

    Args:
        features: ``PixelFeatures`` (``reading.features``) or a sequence of them.
        images: the target images, one per features: ``(H, W, 3)`` tensors or arrays, RGB
            in [0, 1] (floats) or 0-255 (``uint8``), or one ``(N, H, W, 3)`` stack.
        model: the model to train (in place); default ``TactilePixelModel()``.
        iters: Adam steps (>= 1).
        lr: Adam's initial learning rate (> 0), decayed to ``lr / 100`` on a cosine.
        batch_size: pixels per step, drawn at random (``None``: all pixels, full batch).
        loss: ``"l1"`` (mean absolute error) or ``"l2"`` (mean squared error).
        seed: seed of the pixel sampling.
        progress: show a tqdm progress bar (needs ``tqdm``).

    Returns:
        ``(model, history)``: the trained model (in eval mode) and the loss of every step,
        a numpy array ``(iters,)``.

    Raises:
        ValueError: mismatched counts or shapes, values outside [0, 1], bad settings.
    """
    feats = _as_list(features, "features")
    imgs = _as_list(images, "images")
    if len(feats) != len(imgs):
        raise ValueError(f"got {len(feats)} features and {len(imgs)} images: expected one image "
                         "per features")
    if not (isinstance(iters, int) and iters >= 1):
        raise ValueError(f"iters={iters!r} is not allowed: expected an int >= 1")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed: it must be > 0")
    if loss not in ("l1", "l2"):
        raise ValueError(f"loss={loss!r} is not allowed: expected 'l1' or 'l2'")
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size={batch_size!r} is not allowed: expected None or an int "
                         ">= 1")
    model = TactilePixelModel() if model is None else model
    w = next(model.parameters())
    dt, dev = w.dtype, w.device
    xs, ys = [], []
    with torch.no_grad():
        for i, (f, im) in enumerate(zip(feats, imgs)):
            if not isinstance(f, PixelFeatures):
                raise TypeError(f"features[{i}] must be PixelFeatures, got {type(f).__name__}")
            im = torch.as_tensor(np.asarray(im) if not isinstance(im, torch.Tensor) else im)
            if im.shape != (*f.shape, 3):
                raise ValueError(f"images[{i}] has shape {tuple(im.shape)}: expected "
                                 f"{(*f.shape, 3)} (the features' (H, W) and RGB)")
            scale = 255.0 if im.dtype == torch.uint8 else 1.0
            im = im.to(device=dev, dtype=dt) / scale
            if not bool(((im >= 0) & (im <= 1)).all()):
                raise ValueError(f"images[{i}] has values outside [0, 1]: expected RGB in [0, 1] "
                                 "(floats) or uint8")
            m = f.mask.to(dev)
            xs.append(model.encode(f)[m])
            # a clipped pixel (exactly 0 or 1) would pull the sigmoid's logit to infinity,
            # where its gradient vanishes: aim just inside instead
            ys.append(im[m].clamp(_EPS, 1 - _EPS))
    X, Y = torch.cat(xs), torch.cat(ys)
    if len(X) == 0:
        raise ValueError("no pixel sees the pad (every features.mask is False)")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # a cosine decay of the rate lets Adam settle instead of oscillating at the end
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters, eta_min=0.01 * lr)
    steps = range(iters)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="fit_pixel_model")
    history = np.empty(iters)
    model.train()
    for it in steps:
        if batch_size is None or batch_size >= len(X):
            xb, yb = X, Y
        else:
            idx = torch.randint(len(X), (batch_size,), generator=gen).to(X.device)
            xb, yb = X[idx], Y[idx]
        err = model.head(xb) - yb
        value = err.abs().mean() if loss == "l1" else (err * err).mean()
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        history[it] = value.item()
    model.eval()
    return model, history
