"""The Taichi kernel that draws one frame: sphere splats and triangles into one depth buffer.

One kernel launch per frame, four parallel loops (a visibility buffer, as in
Burns & Hunt 2013, "The Visibility Buffer"):

1. ``clear``: every pixel's key becomes the background key;
2. ``splat``: one thread per particle projects it, walks the pixels of its
   screen-space disc and keeps, per pixel, the smallest 64-bit key
   ``depth << 32 | id`` with ``atomic_min``; the depth is that of the sphere's
   surface at the pixel, so intersecting spheres meet at the right curve;
3. ``raster``: one thread per triangle does the same for the pixels its
   screen-space triangle covers (depth interpolated perspective-correctly as
   ``1/z``), with ids after the particles';
4. ``shade``: one thread per pixel decodes the winner and shades it once
   (Lambert + ambient): a particle's normal comes from the sphere impostor
   (pixel offset from the projected centre), a triangle's from its vertex
   normals interpolated with perspective-correct barycentrics and turned to
   the viewer; a triangle whose winding (geometric normal) faces away from
   the camera shows its instance's back colour (the underside of a shell),
   and triangles add a Blinn-Phong highlight of their instance's weight;
   background
   pixels get a sky gradient and an optional checkered floor (a ray-plane hit,
   unshaded: it is a backdrop, not an occluder). 2D scenes (the plane z = 0
   seen face-on) are drawn unlit in flat colours, particles as discs.

Work per frame is therefore one projection per particle and triangle, one
atomic per covered pixel and one shading per pixel: overdraw costs atomics,
not shading. All per-frame inputs arrive as ndarray arguments (zero-copy for
numpy and torch on the CPU; on CUDA torch tensors on the device are read in
place, numpy arrays are copied by Taichi), so nothing but this one launch
happens per frame.

``surface_corners`` is the other kernel here: it turns node positions into the
per-corner vertices and crease-aware normals of a deforming surface (FEM
solids, shells, tactile pads) before a frame is drawn.

Layout of ``prm`` (one float array, the runtime precision) is given by the
``P_*`` offsets below; :class:`~diffsim.render.renderer.Renderer` fills it.
"""

import taichi as ti

from ..runtime import ensure_init

P_EYE, P_RIGHT, P_UP, P_FWD = 0, 3, 6, 9      # camera position and basis (world)
P_SCALE = 12                                   # focal length (px) or px per metre (ortho)
P_ORTHO = 13                                   # 1.0 orthographic, 0.0 perspective
P_NEAR, P_FAR = 14, 15                         # depth range of the buffer (m)
P_LIGHT = 16                                   # unit vector towards the light, view frame
P_AMBIENT = 19
P_SKY_TOP, P_SKY_BOTTOM = 20, 23               # background gradient colours
P_FLOOR = 26                                   # 1.0 draws the floor
P_FLOOR_LEVEL = 27                             # plane y = level (3D) / z = level (2D)
P_FLOOR_LO, P_FLOOR_HI = 28, 30                # checkered extent in the plane's two axes
P_FLOOR_CELL = 32                              # checker cell size (m)
P_FLOOR_C1, P_FLOOR_C2, P_FLOOR_OUT = 33, 36, 39
P_NP, P_NF = 42, 43                            # particle and triangle counts
P_MIN_RADIUS = 44                              # smallest splat radius (px)
P_FLOOR_N = 45                                 # the floor's unit normal (world)
P_FLOOR_U, P_FLOOR_V = 48, 51                  # its two in-plane axes (checker coordinates)
P_SHININESS = 54                               # Blinn-Phong exponent of the triangles
N_PARAMS = 55

# columns of ``inst_mat`` (M, N_MAT), one row per mesh instance
MAT_FRONT, MAT_BACK, MAT_SPECULAR = 0, 3, 6    # front / back face RGB, specular weight
N_MAT = 7

DEPTH_LEVELS = 2**31 - 2                       # quantised depth in the key's upper 32 bits
BACKGROUND_KEY = (2**31 - 1) << 32


@ti.func
def _vec3(a: ti.template(), i: ti.template()):
    return ti.Vector([a[i], a[i + 1], a[i + 2]])


@ti.func
def _key(z, near, far, ident):
    t = ti.min(ti.max((z - near) / (far - near), 0.0), 1.0)
    # clamp as an integer: in f32, t * DEPTH_LEVELS rounds up to 2**31 at t = 1, which
    # shifted by 32 would overflow into the sign bit and win every depth test
    q = ti.min(ti.cast(t * DEPTH_LEVELS, ti.i64), ti.i64(DEPTH_LEVELS))
    return (q << 32) | ti.cast(ident, ti.i64)


@ti.func
def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


class Rasterizer:
    """The frame buffer of one renderer: an (H, W) int64 Taichi ndarray of pixel keys.

    The kernel (:func:`draw_frame`) is a module-level function that takes the
    buffer as an argument, so Taichi compiles it once per point dimension and
    float type for every renderer in the process (a kernel of a
    ``@ti.data_oriented`` instance with its own fields would compile once per
    instance: about a second each, which a vector of environments would pay
    per environment). The buffer is freed by :meth:`destroy`.

    Args:
        width, height: image size in pixels.
    """

    def __init__(self, width: int, height: int):
        ensure_init()
        self.width, self.height = int(width), int(height)
        self.key = ti.ndarray(ti.i64, shape=(self.height, self.width))

    def destroy(self) -> None:
        """Free the frame buffer (this rasterizer cannot draw afterwards)."""
        self.key = None  # the ndarray frees its memory when its last reference goes

    def draw(self, x, color, radius, verts, normals, faces, face_inst, xform, inst_mat, prm,
             out, pdim: int) -> None:
        """Draw one frame into ``out`` (see :func:`draw_frame`)."""
        draw_frame(self.key, x, color, radius, verts, normals, faces, face_inst, xform,
                   inst_mat, prm, out, pdim)


@ti.kernel
def draw_frame(key: ti.types.ndarray(dtype=ti.i64, ndim=2), x: ti.types.ndarray(ndim=2),
               color: ti.types.ndarray(ndim=2), radius: ti.types.ndarray(ndim=1),
               verts: ti.types.ndarray(ndim=2), normals: ti.types.ndarray(ndim=2),
               faces: ti.types.ndarray(ndim=2), face_inst: ti.types.ndarray(ndim=1),
               xform: ti.types.ndarray(ndim=2), inst_mat: ti.types.ndarray(ndim=2),
               prm: ti.types.ndarray(ndim=1), out: ti.types.ndarray(dtype=ti.u8, ndim=3),
               pdim: ti.template()):
    """Draw ``x`` (N, pdim) particles and the instanced triangles into ``out`` (H, W, 3).

    ``color`` (N, 3) in [0, 1]; ``radius`` (N,) m; ``verts``/``normals`` (V, 3)
    in each instance's frame; ``faces`` (F, 3); ``face_inst`` (F,) instance of
    each face; ``xform`` (M, 12) row-major 3x4 ``[R | t]`` per instance;
    ``inst_mat`` (M, N_MAT) per instance: front and back RGB in [0, 1] and the
    specular weight (the ``MAT_*`` columns); ``prm`` see the module docstring.
    """
    H, W = key.shape[0], key.shape[1]
    bg = ti.i64(BACKGROUND_KEY)
    for i, j in ti.ndrange(H, W):
        key[i, j] = bg

    n_p = ti.cast(prm[P_NP], ti.i32)
    for p in range(n_p):
        eye, right = _vec3(prm, P_EYE), _vec3(prm, P_RIGHT)
        up, fwd = _vec3(prm, P_UP), _vec3(prm, P_FWD)
        near, far = prm[P_NEAR], prm[P_FAR]
        pw = ti.Vector([x[p, 0], x[p, 1], 0.0])
        if ti.static(pdim == 3):
            pw[2] = x[p, 2]
        d = pw - eye
        z = d.dot(fwd)
        if z > near:
            s = prm[P_SCALE]
            if prm[P_ORTHO] == 0.0:
                s = s / z
            cx = 0.5 * W + s * d.dot(right)
            cy = 0.5 * H - s * d.dot(up)
            r = radius[p]
            rp = ti.max(r * s, prm[P_MIN_RADIUS])
            if cx + rp > 0 and cx - rp < W and cy + rp > 0 and cy - rp < H:
                i0 = ti.max(ti.cast(ti.floor(cy - rp), ti.i32), 0)
                i1 = ti.min(ti.cast(ti.floor(cy + rp), ti.i32), H - 1)
                j0 = ti.max(ti.cast(ti.floor(cx - rp), ti.i32), 0)
                j1 = ti.min(ti.cast(ti.floor(cx + rp), ti.i32), W - 1)
                inv = 1.0 / rp
                for i in range(i0, i1 + 1):
                    dy = (i + 0.5 - cy) * inv
                    for j in range(j0, j1 + 1):
                        dx = (j + 0.5 - cx) * inv
                        d2 = dx * dx + dy * dy
                        if d2 <= 1.0:
                            k = _key(z - r * ti.sqrt(1.0 - d2), near, far, p)
                            if k < key[i, j]:
                                ti.atomic_min(key[i, j], k)

    n_f = ti.cast(prm[P_NF], ti.i32)
    for t in range(n_f):
        eye, right = _vec3(prm, P_EYE), _vec3(prm, P_RIGHT)
        up, fwd = _vec3(prm, P_UP), _vec3(prm, P_FWD)
        near, far = prm[P_NEAR], prm[P_FAR]
        ortho = prm[P_ORTHO] != 0.0
        m = face_inst[t]
        sx = ti.Vector([0.0, 0.0, 0.0])
        sy = ti.Vector([0.0, 0.0, 0.0])
        sz = ti.Vector([0.0, 0.0, 0.0])
        visible = True
        for k in ti.static(range(3)):
            v = faces[t, k]
            w = ti.Vector([xform[m, 3], xform[m, 7], xform[m, 11]])
            for a in ti.static(range(3)):
                w[a] += (xform[m, 4 * a] * verts[v, 0] + xform[m, 4 * a + 1] * verts[v, 1]
                         + xform[m, 4 * a + 2] * verts[v, 2])
            d = w - eye
            z = d.dot(fwd)
            if z <= near:
                visible = False
            s = prm[P_SCALE]
            if not ortho:
                s = s / ti.max(z, near)
            sx[k] = 0.5 * W + s * d.dot(right)
            sy[k] = 0.5 * H - s * d.dot(up)
            sz[k] = z
        area = _edge(sx[0], sy[0], sx[1], sy[1], sx[2], sy[2])
        xmin, xmax = ti.min(sx[0], sx[1], sx[2]), ti.max(sx[0], sx[1], sx[2])
        ymin, ymax = ti.min(sy[0], sy[1], sy[2]), ti.max(sy[0], sy[1], sy[2])
        if visible and ti.abs(area) > 1e-12 and xmax > 0 and xmin < W and ymax > 0 \
                and ymin < H:
            i0 = ti.max(ti.cast(ti.floor(ymin), ti.i32), 0)
            i1 = ti.min(ti.cast(ti.floor(ymax), ti.i32), H - 1)
            j0 = ti.max(ti.cast(ti.floor(xmin), ti.i32), 0)
            j1 = ti.min(ti.cast(ti.floor(xmax), ti.i32), W - 1)
            inv_area = 1.0 / area
            for i in range(i0, i1 + 1):
                py = i + 0.5
                for j in range(j0, j1 + 1):
                    px = j + 0.5
                    b0 = _edge(sx[1], sy[1], sx[2], sy[2], px, py) * inv_area
                    b1 = _edge(sx[2], sy[2], sx[0], sy[0], px, py) * inv_area
                    b2 = 1.0 - b0 - b1
                    if b0 >= 0 and b1 >= 0 and b2 >= 0:
                        z = b0 * sz[0] + b1 * sz[1] + b2 * sz[2]
                        if not ortho:
                            z = 1.0 / (b0 / sz[0] + b1 / sz[1] + b2 / sz[2])
                        k = _key(z, near, far, n_p + t)
                        if k < key[i, j]:
                            ti.atomic_min(key[i, j], k)

    for i, j in ti.ndrange(H, W):
        eye, right = _vec3(prm, P_EYE), _vec3(prm, P_RIGHT)
        up, fwd = _vec3(prm, P_UP), _vec3(prm, P_FWD)
        light = _vec3(prm, P_LIGHT)
        ambient = prm[P_AMBIENT]
        ortho = prm[P_ORTHO] != 0.0
        scale = prm[P_SCALE]
        px, py = j + 0.5 - 0.5 * W, i + 0.5 - 0.5 * H  # offset from the image centre
        # direction of the pixel's ray in the view frame (x right, y up, z forward)
        ray = ti.Vector([0.0, 0.0, 1.0])
        if not ortho:
            ray = ti.Vector([px / scale, -py / scale, 1.0])
        kij = key[i, j]
        col = ti.Vector([0.0, 0.0, 0.0])
        if kij == bg:
            f = (i + 0.5) / H
            col = (1.0 - f) * _vec3(prm, P_SKY_TOP) + f * _vec3(prm, P_SKY_BOTTOM)
            if prm[P_FLOOR] != 0.0:
                origin = eye
                dirw = fwd + (px / scale) * right - (py / scale) * up
                if ortho:
                    origin = eye + (px / scale) * right - (py / scale) * up
                    dirw = fwd
                nrm = _vec3(prm, P_FLOOR_N)
                denom = dirw.dot(nrm)
                if ti.abs(denom) > 1e-12:
                    tt = (prm[P_FLOOR_LEVEL] - origin.dot(nrm)) / denom
                    if tt > 0:
                        hit = origin + tt * dirw
                        a = hit.dot(_vec3(prm, P_FLOOR_U))
                        b = hit.dot(_vec3(prm, P_FLOOR_V))
                        lo_a, lo_b = prm[P_FLOOR_LO], prm[P_FLOOR_LO + 1]
                        hi_a, hi_b = prm[P_FLOOR_HI], prm[P_FLOOR_HI + 1]
                        cell = prm[P_FLOOR_CELL]
                        out_a = ti.max(lo_a - a, a - hi_a, 0.0)
                        out_b = ti.max(lo_b - b, b - hi_b, 0.0)
                        if out_a == 0.0 and out_b == 0.0:
                            parity = (ti.cast(ti.floor((a - lo_a) / cell), ti.i32)
                                      + ti.cast(ti.floor((b - lo_b) / cell), ti.i32)) % 2
                            base = _vec3(prm, P_FLOOR_C1)
                            if parity == 1:
                                base = _vec3(prm, P_FLOOR_C2)
                            col = base
                        else:
                            fade = ti.min(ti.max(out_a, out_b) / (8.0 * cell), 1.0)
                            col = (1.0 - fade) * _vec3(prm, P_FLOOR_OUT) + fade * col
        else:
            ident = ti.cast(kij & ti.i64(0xFFFFFFFF), ti.i32)
            n_pp = ti.cast(prm[P_NP], ti.i32)
            nv = ti.Vector([0.0, 0.0, -1.0])
            base = ti.Vector([0.0, 0.0, 0.0])
            spec_w = 0.0
            if ident < n_pp:
                pw = ti.Vector([x[ident, 0], x[ident, 1], 0.0])
                if ti.static(pdim == 3):
                    pw[2] = x[ident, 2]
                d = pw - eye
                z = d.dot(fwd)
                s = scale
                if not ortho:
                    s = s / z
                rp = ti.max(radius[ident] * s, prm[P_MIN_RADIUS])
                dx = (px - s * d.dot(right)) / rp
                dy = (py + s * d.dot(up)) / rp
                d2 = ti.min(dx * dx + dy * dy, 1.0)
                if ti.static(pdim == 3):
                    nv = ti.Vector([dx, -dy, -ti.sqrt(1.0 - d2)])
                base = ti.Vector([color[ident, 0], color[ident, 1], color[ident, 2]])
            else:
                t = ident - n_pp
                m = face_inst[t]
                sx = ti.Vector([0.0, 0.0, 0.0])
                sy = ti.Vector([0.0, 0.0, 0.0])
                sz = ti.Vector([0.0, 0.0, 0.0])
                nsum = ti.Vector([0.0, 0.0, 0.0])
                nk = ti.Matrix.zero(float, 3, 3)  # rows: the corners' local normals
                wk = ti.Matrix.zero(float, 3, 3)  # rows: the corners in the world
                for k in ti.static(range(3)):
                    v = faces[t, k]
                    w = ti.Vector([xform[m, 3], xform[m, 7], xform[m, 11]])
                    for a in ti.static(range(3)):
                        w[a] += (xform[m, 4 * a] * verts[v, 0]
                                 + xform[m, 4 * a + 1] * verts[v, 1]
                                 + xform[m, 4 * a + 2] * verts[v, 2])
                        nk[k, a] = normals[v, a]
                        wk[k, a] = w[a]
                    d = w - eye
                    z = d.dot(fwd)
                    s = scale
                    if not ortho:
                        s = s / z
                    sx[k] = s * d.dot(right)
                    sy[k] = -s * d.dot(up)
                    sz[k] = z
                area = _edge(sx[0], sy[0], sx[1], sy[1], sx[2], sy[2])
                b0 = _edge(sx[1], sy[1], sx[2], sy[2], px, py) / area
                b1 = _edge(sx[2], sy[2], sx[0], sy[0], px, py) / area
                bw = ti.Vector([b0, b1, 1.0 - b0 - b1])
                if not ortho:
                    bw = bw / sz
                for k in ti.static(range(3)):
                    nsum += bw[k] * ti.Vector([nk[k, 0], nk[k, 1], nk[k, 2]])
                nw = ti.Vector([0.0, 0.0, 0.0])
                for a in ti.static(range(3)):
                    nw[a] = (xform[m, 4 * a] * nsum[0] + xform[m, 4 * a + 1] * nsum[1]
                             + xform[m, 4 * a + 2] * nsum[2])
                nv = ti.Vector([nw.dot(right), nw.dot(up), nw.dot(fwd)])
                nv = nv / ti.max(nv.norm(), 1e-12)
                if nv.dot(ray) > 0:  # two-sided: face the viewer
                    nv = -nv
                # the side the camera sees follows the winding (the geometric normal),
                # not the interpolated normals, which may tilt across a silhouette
                e1 = ti.Vector([wk[1, 0] - wk[0, 0], wk[1, 1] - wk[0, 1], wk[1, 2] - wk[0, 2]])
                e2 = ti.Vector([wk[2, 0] - wk[0, 0], wk[2, 1] - wk[0, 1], wk[2, 2] - wk[0, 2]])
                gn = e1.cross(e2)
                side = MAT_FRONT
                if ti.Vector([gn.dot(right), gn.dot(up), gn.dot(fwd)]).dot(ray) > 0:
                    side = MAT_BACK
                base = ti.Vector([inst_mat[m, side], inst_mat[m, side + 1],
                                  inst_mat[m, side + 2]])
                spec_w = inst_mat[m, MAT_SPECULAR]
            col = base
            if ti.static(pdim == 3):  # 2D scenes face the camera: flat colours, unlit
                lam = ti.max(nv.dot(light), 0.0)
                col = base * (ambient + (1.0 - ambient) * lam)
                if spec_w > 0.0 and lam > 0.0:  # Blinn-Phong: half vector of light and eye
                    half = light - ray / ray.norm()
                    half = half / ti.max(half.norm(), 1e-12)
                    # the highlight is the directional light's (1 - ambient of the total)
                    col += ((1.0 - ambient) * spec_w
                            * ti.max(nv.dot(half), 0.0) ** prm[P_SHININESS])
        for c in ti.static(range(3)):
            out[i, j, c] = ti.cast(ti.min(ti.max(col[c], 0.0), 1.0) * 255.0 + 0.5, ti.u8)


@ti.func
def _node(x: ti.template(), v, xdim: ti.template()):
    p = ti.Vector([x[v, 0], x[v, 1], 0.0])
    if ti.static(xdim == 3):
        p[2] = x[v, 2]
    return p


@ti.kernel
def surface_corners(x: ti.types.ndarray(ndim=2), faces: ti.types.ndarray(dtype=ti.i32, ndim=2),
                    ptr: ti.types.ndarray(dtype=ti.i32, ndim=1),
                    idx: ti.types.ndarray(dtype=ti.i32, ndim=1), fn: ti.types.ndarray(ndim=2),
                    verts: ti.types.ndarray(ndim=2), normals: ti.types.ndarray(ndim=2),
                    xdim: ti.template()):
    """The corners of a deformable surface (``surfaces.Surface.write_corners``).

    ``x`` (N, xdim) node positions (2D at z = 0); ``faces`` (F, 3) node indices;
    ``ptr``/``idx`` the CSR list of faces whose normals each corner ``3 f + k``
    sums. Face normals (area-weighted) go to ``fn`` (F, 3); then each corner gets
    its node's position in ``verts`` and the normalised sum of its faces' normals
    in ``normals`` (3F, 3), summed in CSR order (deterministic); a vanishing sum
    falls back to the face's own normal, then to +y (as ``Surface.corners``)."""
    for f in range(faces.shape[0]):
        a = _node(x, faces[f, 0], xdim)
        n = (_node(x, faces[f, 1], xdim) - a).cross(_node(x, faces[f, 2], xdim) - a)
        for d in ti.static(range(3)):
            fn[f, d] = n[d]
    for c in range(faces.shape[0] * 3):
        f = c // 3
        p = _node(x, faces[f, c % 3], xdim)
        s = ti.Vector([0.0, 0.0, 0.0])
        for q in range(ptr[c], ptr[c + 1]):
            g = idx[q]
            s += ti.Vector([fn[g, 0], fn[g, 1], fn[g, 2]])
        if s.norm() <= 1e-30:
            s = ti.Vector([fn[f, 0], fn[f, 1], fn[f, 2]])
            if s.norm() <= 1e-30:
                s = ti.Vector([0.0, 1.0, 0.0])
        s = s / s.norm()
        for d in ti.static(range(3)):
            verts[c, d] = p[d]
            normals[c, d] = s[d]


__all__ = ["Rasterizer", "draw_frame", "surface_corners", "N_PARAMS", "N_MAT", "BACKGROUND_KEY", "DEPTH_LEVELS"]
