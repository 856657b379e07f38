"""``animate``: frames (H, W, 3) uint8 to a notebook video (HTML player or GIF).

``format="html"`` uses matplotlib's JavaScript player (``Animation.to_jshtml``:
play/pause/step controls, frames embedded as PNG, no ffmpeg needed);
``format="gif"`` encodes an animated GIF with Pillow. Both return an
:class:`Animation`, which Jupyter displays inline (``_repr_html_``) and which
can be saved.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

FORMATS = ("html", "gif")


class Animation:
    """An encoded animation: shows itself in Jupyter, saves itself to a file.

    Attributes:
        format: ``"html"`` or ``"gif"``.
        data: the HTML document fragment (str) or the GIF file (bytes).
        fps, n_frames, size: frames per second, frame count, (width, height).
    """

    def __init__(self, format: str, data, fps: float, n_frames: int, size: tuple[int, int]):
        self.format, self.data = format, data
        self.fps, self.n_frames, self.size = fps, n_frames, size

    def _repr_html_(self) -> str:
        if self.format == "html":
            return self.data
        b64 = base64.b64encode(self.data).decode("ascii")
        return f'<img src="data:image/gif;base64,{b64}" width="{self.size[0]}"/>'

    def __bytes__(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else self.data.encode("utf-8")

    def save(self, path: str | Path) -> Path:
        """Write the animation (``.html`` or ``.gif``) to ``path``; returns the path."""
        path = Path(path)
        path.write_bytes(bytes(self))
        return path

    def __repr__(self) -> str:
        return (f"Animation(format={self.format!r}, frames={self.n_frames}, fps={self.fps:g}, "
                f"size={self.size[0]}x{self.size[1]}, {len(bytes(self))} bytes)")


def _check_frames(frames) -> list[np.ndarray]:
    out = []
    for i, f in enumerate(frames):
        a = np.asarray(f)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
            raise ValueError(f"frames[{i}] has shape {a.shape} and dtype {a.dtype}; expected "
                             "(H, W, 3) uint8 images (e.g. from Renderer.render)")
        if out and a.shape != out[0].shape:
            raise ValueError(f"frames[{i}] has shape {a.shape} but frames[0] has "
                             f"{out[0].shape}; all frames must have the same size")
        out.append(a[..., :3])
    if not out:
        raise ValueError("frames is empty: give at least one image")
    return out


def animate(frames, fps: float = 20, format: str = "html", loop: bool = True,
            scale: float = 1.0, embed_limit_mb: float = 200.0) -> Animation:
    """Make a notebook animation from rendered frames.

    Args:
        frames: sequence of (H, W, 3) uint8 images, all the same size.
        fps: frames per second, > 0.
        format: ``"html"`` (interactive JavaScript player) or ``"gif"``.
        loop: repeat forever.
        scale: display size relative to the frames (html: figure size; gif:
            resampled with nearest neighbour when not 1).
        embed_limit_mb: html only: size limit of the embedded frames (matplotlib's
            ``animation.embed_limit``, whose default of 20 MB silently drops
            frames of long 256x256 videos).

    Returns:
        An :class:`Animation` (displays inline in Jupyter; ``.save(path)``;
        ``.data`` holds the HTML text or the GIF bytes).

    Raises:
        ValueError: bad ``frames``, ``fps``, ``format`` or ``scale``.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not allowed: expected one of {FORMATS}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps={fps!r} is not allowed: it must be a number > 0")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale={scale!r} is not allowed: it must be a number > 0")
    imgs = _check_frames(frames)
    h, w = imgs[0].shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if format == "gif":
        data = _gif(imgs, fps, loop, size)
    else:
        data = _jshtml(imgs, fps, loop, size, embed_limit_mb)
    return Animation(format, data, float(fps), len(imgs), size)


def _gif(imgs: list[np.ndarray], fps: float, loop: bool, size: tuple[int, int]) -> bytes:
    from PIL import Image

    pil = [Image.fromarray(a) for a in imgs]
    if size != pil[0].size:
        pil = [p.resize(size, Image.NEAREST) for p in pil]
    buf = io.BytesIO()
    kwargs = {"loop": 0} if loop else {}
    pil[0].save(buf, format="GIF", save_all=True, append_images=pil[1:],
                duration=max(int(round(1000.0 / fps)), 10), disposal=2, **kwargs)
    return buf.getvalue()


def _jshtml(imgs: list[np.ndarray], fps: float, loop: bool, size: tuple[int, int],
            embed_limit_mb: float) -> str:
    import matplotlib
    from matplotlib import animation
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)  # no pyplot: no GUI backend
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    im = ax.imshow(imgs[0], interpolation="nearest")

    def update(k):
        im.set_data(imgs[k])
        return (im,)

    anim = animation.FuncAnimation(fig, update, frames=len(imgs), interval=1000.0 / fps,
                                   blit=False, repeat=loop)
    with matplotlib.rc_context({"animation.embed_limit": float(embed_limit_mb)}):
        return anim.to_jshtml(fps=fps, default_mode="loop" if loop else "once")


__all__ = ["animate", "Animation", "FORMATS"]
