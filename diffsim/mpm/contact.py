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

Signed distances and normals are the shared ``diffsim/sdf.py`` (one smoothing for every
simulator). Compound tools are projected part by part (``kernels.tool_parts``). Static
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
