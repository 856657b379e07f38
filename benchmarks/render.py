"""Renderer throughput: ``ds.render`` against a vectorized numpy z-buffer, same run.

Draws a 3D scene of about 50k particles (a block of water and a ball of jelly,
``ds.MPM`` at its initial state) at 256x256 while the camera turns around it,
and prints frames/s (median over repeats) of

* ``Renderer.render_points``: the particles alone, the same points, radii,
  colours and camera as the peer (apples to apples);
* ``Renderer.render(sim, state)``: the full picture (tools, floor);
* the peer, a vectorized numpy z-buffer splatter: every particle's disc of
  pixels at once, the nearest sample per pixel by a stable sort (``np.unique``),
  then the same sphere-impostor Lambert shading; the ratio ``ds.render / numpy``
  is the median of per-pair ratios (pairs interleaved, so load on the machine
  hits both alike);
* optionally (``--matplotlib``) matplotlib's 3D scatter rendered to PNG, what a
  notebook user would reach for (a few repeats; it is slow).

Usage: ``python benchmarks/render.py [--particles 50000] [--size 256] [--reps 15]
[--arch cpu] [--precision f32] [--matplotlib] [--json out.json]`` (``./dev bench
render`` runs it in the project environment).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time

import numpy as np

import diffsim as ds


def make_scene(n_target: int):
    """A 3D MPM scene with about ``n_target`` particles, a sphere and a box tool."""
    res = 64
    spacing = 1.0 / res / 2.0  # 8 particles per cell
    n_jelly = 0.12 * n_target  # the jelly ball holds about 12% of the particles
    jelly_r = max((3 * n_jelly / (4 * np.pi)) ** (1 / 3), 2.0) * spacing
    side = max((n_target - n_jelly) ** (1 / 3), 4.0) * spacing
    scene = ds.Scene(dim=3)
    lo = np.array([0.5 - side * 0.75, 0.06, 0.5 - side * 0.5])
    hi = lo + np.array([1.5 * side, side / 1.5, side])
    scene.add_particles(ds.Box(lo=tuple(lo), hi=tuple(hi)), ds.Fluid(), name="water")
    scene.add_particles(ds.Sphere(center=(0.5, float(hi[1]) + jelly_r + 0.03, 0.5),
                                  radius=jelly_r), ds.NeoHookean(), name="jelly")
    scene.add_tool(ds.Sphere(center=(0.82, 0.3, 0.5), radius=0.06), name="ball")
    scene.add_tool(ds.Box(lo=(0.12, 0.3, 0.4), hi=(0.18, 0.7, 0.6)), name="paddle")
    return ds.MPM(scene, grid_res=res)


class NumpySplatter:
    """The peer: a vectorized numpy z-buffer of sphere splats with the same shading."""

    def __init__(self, width, height, light, ambient, background):
        self.w, self.h = width, height
        self.light = np.asarray(light, float) / np.linalg.norm(light)
        self.ambient = ambient
        f = (np.arange(height) + 0.5) / height
        self.bg = ((1 - f)[:, None, None] * background[0] + f[:, None, None] * background[1]
                   ) * np.ones((1, width, 1))

    def render(self, x, colors, radii, cam: ds.render.Camera, min_px=0.6) -> np.ndarray:
        w, h = self.w, self.h
        pix, z = cam.project(x, w, h)
        s = cam.pixel_scale(h) / z
        rp = np.maximum(radii * s, min_px)
        keep = (z > cam.z_near) & (pix[:, 0] + rp > 0) & (pix[:, 0] - rp < w) & (
            pix[:, 1] + rp > 0) & (pix[:, 1] - rp < h)
        ids = np.nonzero(keep)[0]
        cx, cy, rpk, zk, rk = pix[ids, 0], pix[ids, 1], rp[ids], z[ids], radii[ids]
        R = int(np.ceil(rpk.max())) if len(ids) else 0
        off = np.arange(-R, R + 1)
        oy, ox = np.meshgrid(off, off, indexing="ij")
        oy, ox = oy.ravel(), ox.ravel()
        # samples: every point x every offset in its bounding square (N, K)
        j = np.floor(cx)[:, None].astype(np.int64) + ox[None]
        i = np.floor(cy)[:, None].astype(np.int64) + oy[None]
        dx = (j + 0.5 - cx[:, None]) / rpk[:, None]
        dy = (i + 0.5 - cy[:, None]) / rpk[:, None]
        d2 = dx * dx + dy * dy
        ok = (d2 <= 1.0) & (i >= 0) & (i < h) & (j >= 0) & (j < w)
        p_idx = np.broadcast_to(np.arange(len(ids))[:, None], d2.shape)[ok]
        depth = zk[p_idx] - rk[p_idx] * np.sqrt(1.0 - d2[ok])
        flat = (i * w + j)[ok]
        order = np.argsort(depth, kind="stable")
        pixels, first = np.unique(flat[order], return_index=True)  # nearest sample per pixel
        win = order[first]
        nx, ny = dx[ok][win], -dy[ok][win]
        nz = -np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.0))
        lam = np.maximum(nx * self.light[0] + ny * self.light[1] + nz * self.light[2], 0.0)
        col = colors[ids[p_idx[win]]] * (self.ambient + (1 - self.ambient) * lam)[:, None]
        img = self.bg.copy().reshape(-1, 3)
        img[pixels] = col
        return np.clip(img.reshape(h, w, 3) * 255 + 0.5, 0, 255).astype(np.uint8)


def matplotlib_frame(x, colors, cam, size) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_subplot(projection="3d")
    d = np.subtract(cam.eye, cam.target)
    ax.view_init(elev=np.degrees(np.arcsin(d[1] / np.linalg.norm(d))),
                 azim=np.degrees(np.arctan2(d[0], d[2])), vertical_axis="y")
    ax.scatter(x[:, 0], x[:, 2], x[:, 1], c=colors, s=1, depthshade=True)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--matplotlib", action="store_true", help="also time matplotlib's 3D scatter")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args(argv)
    cfg = ds.init(arch=args.arch, precision=args.precision)
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"taichi arch {cfg.arch}, {cfg.precision}")

    sim = make_scene(args.particles)
    state = sim.reset()
    n = sim.n_particles
    size = args.size
    r = ds.render.Renderer(size, size)
    drawing = r._drawing_for(sim, None)  # the colours and radii render() uses
    colors, radii = drawing.colors.astype(np.float64), drawing.radii.astype(np.float64)
    x = state.x.detach().cpu().numpy()
    bounds = sim.scene.bounds
    cams = [ds.render.Camera.framing(bounds, azimuth=az) for az in np.linspace(0, 360, 24)]
    peer = NumpySplatter(size, size, ds.render.renderer.DEFAULT_LIGHT, r.ambient, r.background)

    # warm up: compile, first-touch
    t_compile, _ = _timed(lambda: r.render(sim, state))
    r.render_points(x, colors, radii, camera=cams[0])
    peer.render(x, colors, radii, cams[0])

    t_full, t_pts, t_np, ratios = [], [], [], []
    for k in range(args.reps):
        cam = cams[k % len(cams)]
        a, img_ds = _timed(lambda cam=cam: r.render_points(x, colors, radii, camera=cam))
        b, img_np = _timed(lambda cam=cam: peer.render(x, colors, radii, cam))
        c, _ = _timed(lambda cam=cam: r.render(sim, state, camera=cam))
        t_pts.append(a)
        t_np.append(b)
        t_full.append(c)
        ratios.append(b / a)
    # the two images agree up to ties and rounding
    agree = float(np.mean(np.all(np.abs(img_ds.astype(int) - img_np.astype(int)) <= 2, -1)))
    res = {
        "particles": n, "size": size, "arch": cfg.arch, "precision": cfg.precision,
        "cores": os.cpu_count(), "compile_s": t_compile,
        "fps_render_points": 1 / statistics.median(t_pts),
        "fps_render_state": 1 / statistics.median(t_full),
        "fps_numpy": 1 / statistics.median(t_np),
        "ratio_vs_numpy": statistics.median(ratios),
        "pixels_agreeing": agree,
    }
    print(f"{n} particles, {size}x{size}, median of {args.reps}:")
    print(f"  ds.render render_points   {res['fps_render_points']:8.1f} frames/s")
    print(f"  ds.render render(sim, st) {res['fps_render_state']:8.1f} frames/s  "
          "(with tools and floor)")
    print(f"  numpy z-buffer splatter   {res['fps_numpy']:8.1f} frames/s")
    print(f"  ratio ds.render / numpy   {res['ratio_vs_numpy']:8.1f}x  "
          f"(images agree on {100 * agree:.1f}% of pixels)")
    print(f"  first frame (compile)     {t_compile:8.2f} s")
    if args.matplotlib:
        reps = 3
        t_mpl = [_timed(lambda k=k: matplotlib_frame(x, colors, cams[k], size))[0]
                 for k in range(reps)]
        res["fps_matplotlib"] = 1 / statistics.median(t_mpl)
        res["ratio_vs_matplotlib"] = res["fps_render_points"] / res["fps_matplotlib"]
        print(f"  matplotlib 3D scatter     {res['fps_matplotlib']:8.2f} frames/s "
              f"(median of {reps}); ds.render is {res['ratio_vs_matplotlib']:.0f}x faster")
    r.close()
    sim.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
