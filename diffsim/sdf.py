"""Signed distances of the analytic shapes, in Taichi: the one library every simulator uses.

Each ``@ti.func`` takes a point ``q`` in the shape's own frame (centred, axis-aligned;
``axis`` is the long axis of capsules and cylinders) and returns ``(phi, grad)``: the
signed distance in metres (negative inside) and its gradient, the outward unit normal.
Gradients are analytic, not finite differences: one evaluation instead of ``2 d + 1``
keeps MPM's reverse-mode grid kernels small, and the implicit FEM/Shell solvers'
gradient is exactly the derivative of their contact energy (Taichi's autodiff of these
functions gives the exact node Hessian blocks).

Smoothing (one rule for every shape): a norm ``|m|`` is computed as
``sqrt(|m|^2 + eps^2) - eps`` with ``eps = 1e-9`` m (:func:`rounded_norm`), so the
distance is exact to 1e-9 m and its gradient is defined everywhere (``m = 0``: the
centre of a sphere, a box's faces meeting at an edge or corner; there the gradient is 0
or the face normal instead of NaN). Inside a box or a cylinder, and on its surface, the
gradient is the normal of the nearest face (ties go to the lower axis, the side before
the caps): grid nodes and mesh vertices that lie exactly on a face (axis-aligned tools on
grid lines) get its normal, not the zero vector of the rounded norm of ``max(d, 0) = 0``.

Squared norms are written ``m.dot(m)``: Taichi 1.7's reverse mode of ``norm_sqr``/``**
2`` returns NaN in float32 when advanced optimisation is off (``ds.init``'s default).
``diffsim/shapes.py`` has the numpy twins used to sample particles and to test inside.
"""

import taichi as ti

EPS = 1e-9  # m: rounds the distance's edges and corners so gradients are defined everywhere

KINDS = ("sphere", "box", "capsule", "cylinder")


@ti.func
def sign(x):
    return ti.select(x >= 0, 1.0, -1.0)


@ti.func
def rounded_norm(m):
    """``(|m|, m / |m|)`` smoothed by ``EPS`` (both finite at ``m = 0``)."""
    s = ti.sqrt(m.dot(m) + EPS * EPS)
    return s - EPS, m / s


@ti.func
def sphere(q, radius):
    n, u = rounded_norm(q)
    return n - radius, u


@ti.func
def box(q, half):
    """Box of half extents ``half`` (2D or 3D)."""
    d = ti.abs(q) - half
    mpos = ti.max(d, 0.0)
    out, u = rounded_norm(mpos)
    grad = ti.Vector.zero(float, q.n)
    mx = d[0]
    am = 0
    for i in ti.static(range(q.n)):
        grad[i] = u[i] * sign(q[i])
        if ti.static(i > 0):
            if d[i] > mx:
                mx = d[i]
                am = i
    if mx <= 0:  # inside or on the surface (where u = 0): the nearest face's normal
        out += mx
        for i in ti.static(range(q.n)):
            if am == i:
                grad[i] += sign(q[i])
    return out, grad


@ti.func
def capsule(q, radius, half_length, axis: ti.template()):
    """Segment of half length ``half_length`` along ``axis``, swept by a ball of ``radius``."""
    a = q
    a[axis] -= ti.min(ti.max(q[axis], -half_length), half_length)
    n, u = rounded_norm(a)
    return n - radius, u


@ti.func
def cylinder(q, radius, half_height, axis: ti.template()):
    """Solid cylinder (3D) of ``radius`` and half height ``half_height`` along ``axis``."""
    r2 = 0.0
    for i in ti.static(range(3)):
        if ti.static(i != axis):
            r2 += q[i] * q[i]
    rs = ti.sqrt(r2 + EPS * EPS)   # divides: finite on the axis
    d = ti.Vector([rs - EPS - radius, ti.abs(q[axis]) - half_height])
    out, u = rounded_norm(ti.max(d, 0.0))
    gd = u
    if d.max() <= 0:  # inside or on the surface (where u = 0): the nearest face's normal
        out += d.max()
        if d[0] >= d[1]:
            gd = ti.Vector([1.0, 0.0])
        else:
            gd = ti.Vector([0.0, 1.0])
    grad = ti.Vector.zero(float, 3)
    for i in ti.static(range(3)):
        if ti.static(i != axis):
            grad[i] = gd[0] * q[i] / rs
        else:
            grad[i] = gd[1] * sign(q[i])
    return out, grad


def make_sdf(kind: str, geom: tuple, axis: int):
    """``@ti.func f(q) -> (phi, grad phi)`` of one shape, its geometry baked in as constants.

    Args:
        kind: one of ``KINDS``.
        geom: ``(radius,)`` (sphere), the half extents (box), ``(radius, half_length)``
            (capsule), ``(radius, half_height)`` (cylinder), in metres
            (``tools.shape_geometry`` makes them from ``ds`` shapes).
        axis: the long axis of capsules and cylinders (ignored otherwise).

    Raises:
        ValueError: an unknown kind.
    """
    if kind == "sphere":
        r = geom[0]

        @ti.func
        def f(q):
            return sphere(q, r)
    elif kind == "box":
        half = geom

        @ti.func
        def f(q):
            return box(q, ti.Vector(half))
    elif kind == "capsule":
        r, hl = geom

        @ti.func
        def f(q):
            return capsule(q, r, hl, axis)
    elif kind == "cylinder":
        r, hh = geom

        @ti.func
        def f(q):
            return cylinder(q, r, hh, axis)
    else:
        raise ValueError(f"shape kind must be one of {KINDS}, got {kind!r}")
    return f
