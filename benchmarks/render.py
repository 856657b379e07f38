"""Renderer throughput: ``ds.render`` against vectorized numpy z-buffers, same run.

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

Then triangle meshes: a ``ds.Shell`` sheet (``--sheet-res``: about
``2 sheet_res^2`` triangles) in a wave over a table with a sphere tool, and a
``ds.FEM`` block (``--block-res`` cells along it) bent into an arc, each drawn by
``Renderer.render(sim, state)`` (per frame: the surfaces' crease-aware normals
in numpy, then the kernel) and by the peer ``NumpyTriangles``, a vectorized
numpy z-buffer rasterizer with the same shading that gets the same per-frame
surface update; with ``--matplotlib`` also a ``Poly3DCollection`` to PNG.

Usage: ``python benchmarks/render.py [--particles 50000] [--size 256] [--reps 15]
[--sheet-res 96] [--block-res 40] [--arch cpu] [--precision f32] [--matplotlib]
[--json out.json]`` (``./dev bench render`` runs it in the project environment).
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


# ---------------------------------------------------------------------- triangle meshes
def make_mesh_scenes(sheet_res: int, block_res: int):
    """A ``ds.Shell`` sheet (about ``2 sheet_res^2`` triangles) draped in a wave over a
    table, with a sphere tool, and a ``ds.FEM`` block (``block_res`` cells a side) bent
    into an arc: deformed states set directly (rendering needs no simulation)."""
    import torch

    scene = ds.Scene(dim=3)
    scene.add_shell(ds.Rectangle(center=(0.5, 0.3, 0.5), size=(0.6, 0.6)),
                    ds.ShellMaterial(E=1e6, nu=0.3, thickness=3e-4, density=800.0),
                    resolution=0.6 / sheet_res, name="cloth")
    scene.add_collider(ds.Box(lo=(0.25, 0.0, 0.25), hi=(0.75, 0.2, 0.75)), name="table")
    scene.add_tool(ds.Sphere(center=(0.5, 0.45, 0.3), radius=0.06), name="finger")
    shell = ds.Shell(scene)
    s = shell.reset()
    x = s.x.clone()
    x[:, 1] = 0.3 + 0.04 * torch.sin(12.0 * x[:, 0]) * torch.cos(9.0 * x[:, 2])
    shell_state = s.replace(x=x)

    scene = ds.Scene(dim=3)
    scene.add_soft_body(ds.Box(lo=(0.3, 0.1, 0.45), hi=(0.7, 0.2, 0.55)),
                        ds.NeoHookean(E=1e4, nu=0.3), resolution=0.4 / block_res,
                        name="block")
    fem = ds.FEM(scene)
    s = fem.reset()
    x = s.x.clone()
    R0 = 0.3                                         # bend along x into an arc of radius R0
    u = (x[:, 0] - 0.5) / R0
    rr = R0 + (x[:, 1] - 0.1)
    x[:, 0] = 0.5 + rr * torch.sin(u)
    x[:, 1] = 0.1 - R0 + rr * torch.cos(u)
    fem_state = s.replace(x=x)
    return [("shell", shell, shell_state), ("fem", fem, fem_state)]


def _edge(ax, ay, bx, by, px, py):
    """The kernel's edge function (``raster._edge``)."""
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


class NumpyTriangles:
    """The peer for meshes: a vectorized numpy z-buffer rasterizer of the same triangles
    with the same shading (interpolated normals turned to the viewer, back colour by the
    winding, Lambert + ambient + Blinn-Phong). Triangles are rasterized in batches of
    similar bounding-box size (every triangle x every pixel of its box at once); the
    nearest sample per pixel wins (stable sort, ties to the lower triangle id)."""

    def __init__(self, width, height, light, ambient, shininess, background):
        self.w, self.h = width, height
        self.light = np.asarray(light, float) / np.linalg.norm(light)
        self.ambient, self.shininess = ambient, shininess
        f = (np.arange(height) + 0.5) / height
        self.bg = ((1 - f)[:, None, None] * background[0] + f[:, None, None] * background[1]
                   ) * np.ones((1, width, 1))

    def render(self, verts, normals, faces, face_mat, cam) -> np.ndarray:
        w, h = self.w, self.h
        B = cam.basis()
        d = verts - np.asarray(cam.eye)
        v = d @ B.T                                          # view frame: right, up, fwd
        s = cam.pixel_scale(h)
        sc = np.full(len(v), s) if cam.is_orthographic else s / np.maximum(v[:, 2], 1e-30)
        X, Y, Z = 0.5 * w + sc * v[:, 0], 0.5 * h - sc * v[:, 1], v[:, 2]
        Xf, Yf, Zf = X[faces], Y[faces], Z[faces]
        area = (Xf[:, 1] - Xf[:, 0]) * (Yf[:, 2] - Yf[:, 0]) - (Yf[:, 1] - Yf[:, 0]) * (
            Xf[:, 2] - Xf[:, 0])
        ok = (Zf > cam.z_near).all(1) & (np.abs(area) > 1e-12)
        i0 = np.clip(np.floor(Yf.min(1)), 0, h - 1).astype(int)
        i1 = np.clip(np.floor(Yf.max(1)), 0, h - 1).astype(int)
        j0 = np.clip(np.floor(Xf.min(1)), 0, w - 1).astype(int)
        j1 = np.clip(np.floor(Xf.max(1)), 0, w - 1).astype(int)
        ok &= (Xf.max(1) > 0) & (Xf.min(1) < w) & (Yf.max(1) > 0) & (Yf.min(1) < h)
        size = np.maximum(i1 - i0, j1 - j0) + 1
        pix, depth, tri, bary = [], [], [], []
        K = 1
        while True:
            sel = np.nonzero(ok & (size <= K) & (size > K // 2))[0]
            if len(sel):
                off = np.arange(K)
                oy, ox = np.meshgrid(off, off, indexing="ij")
                ii = i0[sel, None] + oy.ravel()[None]
                jj = j0[sel, None] + ox.ravel()[None]
                inbox = (ii <= i1[sel, None]) & (jj <= j1[sel, None])
                px, py = jj + 0.5, ii + 0.5
                xs, ys, zs, a = Xf[sel], Yf[sel], Zf[sel], area[sel, None]
                b0 = _edge(xs[:, 1, None], ys[:, 1, None], xs[:, 2, None], ys[:, 2, None],
                           px, py) / a
                b1 = _edge(xs[:, 2, None], ys[:, 2, None], xs[:, 0, None], ys[:, 0, None],
                           px, py) / a
                b2 = 1.0 - b0 - b1
                inside = inbox & (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
                if cam.is_orthographic:
                    z = b0 * zs[:, 0, None] + b1 * zs[:, 1, None] + b2 * zs[:, 2, None]
                else:
                    z = 1.0 / (b0 / zs[:, 0, None] + b1 / zs[:, 1, None] + b2 / zs[:, 2, None])
                pix.append((ii * w + jj)[inside])
                depth.append(z[inside])
                tri.append(np.broadcast_to(sel[:, None], inside.shape)[inside])
                bary.append(np.stack([b0[inside], b1[inside], b2[inside]], 1))
            if K >= size[ok].max(initial=0):
                break
            K *= 2
        img = self.bg.copy().reshape(-1, 3)
        if not pix:
            return np.clip(img.reshape(h, w, 3) * 255 + 0.5, 0, 255).astype(np.uint8)
        pix, depth = np.concatenate(pix), np.concatenate(depth)
        tri, bary = np.concatenate(tri), np.concatenate(bary)
        order = np.lexsort((tri, depth))
        pixels, first = np.unique(pix[order], return_index=True)
        win = order[first]
        t, bw = tri[win], bary[win]
        if not cam.is_orthographic:
            bw = bw / Zf[t]
        n = np.einsum("pk,pkd->pd", bw, normals[faces[t]])
        nv = n @ B.T
        nv /= np.maximum(np.linalg.norm(nv, axis=1, keepdims=True), 1e-12)
        r, c = pixels // w, pixels % w
        ray = np.stack([(c + 0.5 - 0.5 * w) / s, -(r + 0.5 - 0.5 * h) / s,
                        np.ones(len(c))], 1)
        if cam.is_orthographic:
            ray = np.tile([0.0, 0.0, 1.0], (len(c), 1))
        nv = np.where((np.einsum("pd,pd->p", nv, ray) > 0)[:, None], -nv, nv)
        p = verts[faces[t]]
        gn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]) @ B.T
        back = np.einsum("pd,pd->p", gn, ray) > 0
        mat = face_mat[t]
        base = np.where(back[:, None], mat[:, 3:6], mat[:, 0:3])
        lam = np.maximum(nv @ self.light, 0.0)
        col = base * (self.ambient + (1 - self.ambient) * lam)[:, None]
        half = self.light[None] - ray / np.linalg.norm(ray, axis=1, keepdims=True)
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
        spec = (1 - self.ambient) * mat[:, 6] * np.maximum(
            np.einsum("pd,pd->p", nv, half), 0.0) ** self.shininess
        col += np.where(lam > 0, spec, 0.0)[:, None]
        img[pixels] = col
        return np.clip(img.reshape(h, w, 3) * 255 + 0.5, 0, 255).astype(np.uint8)


def world_triangles(drawing, state):
    """The triangles ``Renderer.render`` draws for ``state``, in world coordinates:
    vertices, normals (V, 3), faces (F, 3) and per-face materials (F, 7)."""
    _, xf = drawing.frame(state)
    b = drawing.batch
    M = xf.reshape(-1, 3, 4).astype(np.float64)
    inst = b.face_instance
    V = b.vertices.astype(np.float64)
    N = b.normals.astype(np.float64)
    owner = np.zeros(len(V), int)
    owner[b.faces.ravel()] = np.repeat(inst, 3)
    R, tr = M[owner, :, :3], M[owner, :, 3]
    verts = np.einsum("vij,vj->vi", R, V) + tr
    normals = np.einsum("vij,vj->vi", R, N)
    return verts, normals, b.faces, b.materials[inst].astype(np.float64)


def matplotlib_mesh_frame(verts, faces, face_rgb, cam, size) -> bytes:
    """What a notebook user would reach for: a Poly3DCollection (painter's algorithm)."""
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_subplot(projection="3d")
    d = np.subtract(cam.eye, cam.target)
    ax.view_init(elev=np.degrees(np.arcsin(d[1] / np.linalg.norm(d))),
                 azim=np.degrees(np.arctan2(d[0], d[2])), vertical_axis="y")
    tris = verts[faces][:, :, [0, 2, 1]]
    ax.add_collection3d(Poly3DCollection(tris, facecolors=face_rgb, linewidths=0))
    lo, hi = verts.min(0), verts.max(0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[2], hi[2])
    ax.set_zlim(lo[1], hi[1])
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def mesh_case(name, sim, state, r, peer, args, size) -> dict:
    """Frames/s of one mesh scene: ``Renderer.render`` against the numpy peer."""
    drawing = r._drawing_for(sim, None)
    box = drawing.content_bounds(state)
    cams = [ds.render.Camera.framing(box, azimuth=az, elevation=30.0)
            for az in np.linspace(0, 360, 24)]
    r.render(sim, state, camera=cams[0])                      # warm up
    peer.render(*world_triangles(drawing, state), cams[0])
    t_ds, t_np, ratios = [], [], []
    for k in range(args.reps):
        cam = cams[k % len(cams)]
        a, img_ds = _timed(lambda: r.render(sim, state, camera=cam))  # noqa: B023
        # the peer gets the same per-frame surface update (normals) as ds.render
        b, img_np = _timed(lambda: peer.render(*world_triangles(drawing, state),  # noqa: B023
                                               cam))  # noqa: B023
        t_ds.append(a)
        t_np.append(b)
        ratios.append(b / a)
    agree = float(np.mean(np.all(np.abs(img_ds.astype(int) - img_np.astype(int)) <= 3, -1)))
    n_faces = drawing.batch.n_faces
    res = {"faces": n_faces, "fps_render": 1 / statistics.median(t_ds),
           "fps_numpy": 1 / statistics.median(t_np),
           "ratio_vs_numpy": statistics.median(ratios), "pixels_agreeing": agree}
    print(f"{name}: {n_faces} triangles, {size}x{size}, median of {args.reps}:")
    print(f"  ds.render render(sim, st) {res['fps_render']:8.1f} frames/s")
    print(f"  numpy triangle z-buffer   {res['fps_numpy']:8.1f} frames/s")
    print(f"  ratio ds.render / numpy   {res['ratio_vs_numpy']:8.1f}x  "
          f"(images agree on {100 * agree:.1f}% of pixels)")
    if args.matplotlib:
        verts, _normals, faces, mats = world_triangles(drawing, state)
        t_mpl = [_timed(lambda cam=cam: matplotlib_mesh_frame(verts, faces, mats[:, :3], cam,
                                                              size))[0] for cam in cams[:3]]
        res["fps_matplotlib"] = 1 / statistics.median(t_mpl)
        res["ratio_vs_matplotlib"] = res["fps_render"] / res["fps_matplotlib"]
        print(f"  matplotlib Poly3DCollection {res['fps_matplotlib']:6.2f} frames/s "
              f"(median of 3); ds.render is {res['ratio_vs_matplotlib']:.0f}x faster")
    return res


def mesh_benchmark(args, size: int) -> dict:
    """The shell and FEM scenes (``make_mesh_scenes``), each timed by ``mesh_case``."""
    r = ds.render.Renderer(size, size, floor=False)
    peer = NumpyTriangles(size, size, ds.render.renderer.DEFAULT_LIGHT, r.ambient,
                          r.shininess, r.background)
    out = {}
    for name, sim, state in make_mesh_scenes(args.sheet_res, args.block_res):
        out[name] = mesh_case(name, sim, state, r, peer, args, size)
        sim.close()
    r.close()
    return out


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--sheet-res", type=int, default=96, help="shell cells along a side")
    ap.add_argument("--block-res", type=int, default=40, help="FEM cells along the block")
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
    res["meshes"] = mesh_benchmark(args, size)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
