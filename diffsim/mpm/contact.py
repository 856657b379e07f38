"""Boundary conditions on grid velocities: kinematic tools, static colliders, walls.

Tools are analytic shapes in their own moving frame (``kind`` and ``geom`` are
compile-time constants); their pose per substep (position, rotation matrix,
linear and angular velocity) lives in fields so that gradients reach it.

Soft contact (the ``contact_width`` knob, metres): a grid node at signed
distance ``phi`` from a tool gets the contact projection with weight
``w = 1`` inside (``phi <= 0``) and ``w = exp(-phi / contact_width)`` outside.
With ``contact_width = 0`` contact is hard (``w`` is 0 or 1) and the loss has no
gradient with respect to a tool that does not yet touch the material; a
width of about one grid cell gives useful gradients before touch at the cost
of a slightly "fuzzy" tool surface.

The hard layer (``skin``, metres, half a grid cell by default) extends the
full projection slightly beyond the surface: grid nodes right outside a thin
wall then stop material as firmly as nodes inside it, which keeps material
from seeping into walls a few cells thick.

Friction is Coulomb's law on the relative velocity ``v_rel`` of an approaching
node (``v_rel . n < 0``): the normal part is removed and the tangential part
shrinks by ``friction * |v_rel . n|``. The tangential norm is smoothed,
``sqrt(|t|^2 + 1e-12)``, so the direction has a finite derivative at rest.

Compound tools are projected part by part (``kernels.tool_parts``). Static
colliders are baked on the grid as one signed distance; grid nodes inside a
collider take its velocity (zero) outright, because a single normal is
ambiguous in the corners of a union of shapes.
"""


import taichi as ti

_SMOOTH = 1e-12


@ti.func
def smooth_norm(v):
    return ti.sqrt(v.norm_sqr() + _SMOOTH)


@ti.func
def _sign(x):
    return 1.0 if x >= 0 else -1.0


# Signed distance and its gradient (the outward unit normal) of each tool shape in
# its own frame, analytically: one evaluation instead of 2 d + 1 for central
# differences keeps the reverse-mode grid kernel small (compound tools have many parts).
@ti.func
def sdfn_sphere(q, radius):
    n = smooth_norm(q)
    return n - radius, q / n


@ti.func
def sdfn_box(q, half):
    dim = ti.static(q.n)
    d = ti.abs(q) - half
    dpos = ti.max(d, 0.0)
    out_len = smooth_norm(dpos)
    dmax = d.max()
    phi = out_len + ti.min(dmax, 0.0)
    n = ti.Vector.zero(float, dim)
    if dmax > 0:
        for i in ti.static(range(dim)):
            n[i] = _sign(q[i]) * dpos[i] / out_len
    else:
        best = d[0]
        k = 0
        for i in ti.static(range(1, dim)):
            if d[i] > best:
                best = d[i]
                k = i
        for i in ti.static(range(dim)):
            if k == i:
                n[i] = _sign(q[i])
    return phi, n


@ti.func
def sdfn_capsule(q, radius, half_length, axis: ti.template()):
    a = q
    a[axis] -= ti.min(ti.max(q[axis], -half_length), half_length)
    n = smooth_norm(a)
    return n - radius, a / n


@ti.func
def sdfn_cylinder(q, radius, half_height, axis: ti.template()):
    rv = q
    rv[axis] = 0.0
    rl = smooth_norm(rv)
    d0 = rl - radius
    d1 = ti.abs(q[axis]) - half_height
    e = ti.Vector.unit(3, axis, float) * _sign(q[axis])
    dd = ti.Vector([ti.max(d0, 0.0), ti.max(d1, 0.0)])
    L = smooth_norm(dd)
    phi = L + ti.min(ti.max(d0, d1), 0.0)
    n = e
    if d0 > 0 or d1 > 0:
        n = (dd[0] / L) * (rv / rl) + (dd[1] / L) * e
    elif d0 > d1:
        n = rv / rl
    return phi, n


def make_tool_sdf(kind: str, geom: tuple, axis: int):
    """A ``@ti.func f(q) -> (phi, n)``: signed distance and unit normal in the tool frame.

    Compound tools are handled part by part by the kernels (``kernels.tool_parts``).
    """
    if kind == "sphere":
        r = geom[0]

        @ti.func
        def f(q):
            return sdfn_sphere(q, r)
    elif kind == "box":
        half = geom

        @ti.func
        def f(q):
            return sdfn_box(q, ti.Vector(half))
    elif kind == "capsule":
        r, hl = geom

        @ti.func
        def f(q):
            return sdfn_capsule(q, r, hl, axis)
    elif kind == "cylinder":
        r, hh = geom

        @ti.func
        def f(q):
            return sdfn_cylinder(q, r, hh, axis)
    else:
        raise ValueError(f"tool kind {kind!r} is not supported")
    return f


@ti.func
def coulomb_project(v, v_solid, n, phi, friction, width: ti.template(), skin: ti.template()):
    """Velocity of a node after soft contact with a solid moving at ``v_solid``.

    ``phi``: signed distance of the node (m); ``n``: unit outward normal;
    ``width``: soft-contact length (m, 0 = hard); ``skin``: hard layer (m).
    """
    w = 0.0
    if phi <= skin:
        w = 1.0
    elif ti.static(width > 0):
        w = ti.exp(-(phi - skin) / width)
    out = v
    if w > 0:
        rel = v - v_solid
        vn = rel.dot(n)
        if vn < 0:
            t = rel - vn * n
            tn = smooth_norm(t)
            proj = t * ti.max(0.0, 1.0 + friction * vn / tn)
            out = v_solid + rel * (1 - w) + proj * w
    return out


@ti.func
def wall_project(v, I, n_cells: ti.template(), bound: ti.template(), kind: ti.template(), friction):
    """Domain walls ``bound`` cells thick: 'sticky', 'slip' or 'friction' (Coulomb)."""
    d = ti.static(v.n)
    out = v
    for i in ti.static(range(d)):
        into = (I[i] < bound and out[i] < 0) or (I[i] > n_cells[i] - 1 - bound and out[i] > 0)
        if into:
            if ti.static(kind == "sticky"):
                out = ti.Vector.zero(float, d)
            elif ti.static(kind == "slip"):
                out[i] = 0.0
            else:
                vn = ti.abs(out[i])
                out[i] = 0.0
                out = out * ti.max(0.0, 1.0 - friction * vn / smooth_norm(out))
    return out
