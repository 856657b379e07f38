"""Node contact of ``ds.FEM``, ``ds.Shell`` and the tactile pads: penalty normal force,
smoothed Coulomb friction.

Obstacles are kinematic tools, static colliders (analytic shapes) and the ground plane.
Each node ``i`` of mass ``m_i`` meets each obstacle through its signed distance ``phi``
(negative inside) and the penetration ``p = offset - phi``:

* Normal force ``m_i kappa rho(p) grad(phi)`` with the C1 penalty ``rho(p) = p^2 / (2 w)``
  on ``0 < p < w`` and ``p - w/2`` beyond (``w`` the contact width); its potential is
  ``m_i kappa R(p)``, ``R' = rho``. Scaling by the node mass makes the penalty
  acceleration ``kappa rho`` independent of the mesh resolution.
* Friction, implicit steps (lagged, as in IPC, Li et al. 2020): the normal force
  ``f_n`` and the tangent plane ``T = I - n n^T`` are taken at the start of the step
  (``x_n``, the obstacle's pose at the step start), which makes friction the gradient
  of the potential ``mu f_n h (sqrt(|u|^2 + eps^2) - eps)`` of the relative tangential
  velocity ``u = T((x - x_n)/h - v_obstacle)``: a symmetric Hessian for Newton and CG.
  Below ``eps`` (m/s) sliding is viscous: static friction is approximated by slow creep.
* Friction, explicit steps: Coulomb's law as a velocity projection (the MPM rule of
  ``diffsim/mpm/contact.py``): the tangential relative velocity shrinks by ``mu dt
  f_n / m`` and never reverses; its norm is smoothed by ``eps``.

Signed distances have analytic gradients here (not finite differences), so the
implicit solver's gradient is exactly the derivative of its energy, and Taichi's
autodiff of these functions gives the exact node Hessian blocks. Squared norms are
written ``v.dot(v)``: Taichi 1.7's reverse mode of ``norm_sqr``/``** 2`` returns NaN in
float32 when advanced optimisation is off (``ds.init``'s default).
"""


import taichi as ti

_EPS_SDF = 1e-9  # m: rounds the SDF's edges/corners so gradients are defined everywhere


@ti.func
def _sgn(x):
    return ti.select(x >= 0, 1.0, -1.0)


@ti.func
def _rounded_norm(m):
    s = ti.sqrt(m.dot(m) + _EPS_SDF * _EPS_SDF)
    return s - _EPS_SDF, m / s


@ti.func
def sdf_grad_sphere(q, radius):
    n, u = _rounded_norm(q)
    return n - radius, u


@ti.func
def sdf_grad_box(q, half):
    d = ti.abs(q) - half
    mpos = ti.max(d, 0.0)
    out, u = _rounded_norm(mpos)
    grad = ti.Vector.zero(float, q.n)
    mx = d[0]
    am = 0
    for i in ti.static(range(q.n)):
        grad[i] = u[i] * _sgn(q[i])
        if ti.static(i > 0):
            if d[i] > mx:
                mx = d[i]
                am = i
    if mx < 0:
        out += mx
        for i in ti.static(range(q.n)):
            if am == i:
                grad[i] += _sgn(q[i])
    return out, grad


@ti.func
def sdf_grad_capsule(q, radius, half_length, axis: ti.template()):
    a = q
    a[axis] -= ti.min(ti.max(q[axis], -half_length), half_length)
    n, u = _rounded_norm(a)
    return n - radius, u


@ti.func
def sdf_grad_cylinder(q, radius, half_height, axis: ti.template()):
    r2 = 0.0
    for i in ti.static(range(3)):
        if ti.static(i != axis):
            r2 += q[i] * q[i]
    r = ti.sqrt(r2 + _EPS_SDF * _EPS_SDF)
    d = ti.Vector([r - radius, ti.abs(q[axis]) - half_height])
    out, u = _rounded_norm(ti.max(d, 0.0))
    gd = u
    if d.max() < 0:
        out += d.max()
        if d[0] >= d[1]:
            gd = ti.Vector([1.0, 0.0])
        else:
            gd = ti.Vector([0.0, 1.0])
    grad = ti.Vector.zero(float, 3)
    for i in ti.static(range(3)):
        if ti.static(i != axis):
            grad[i] = gd[0] * q[i] / r
        else:
            grad[i] = gd[1] * _sgn(q[i])
    return out, grad


def make_sdf_grad(kind: str, geom: tuple, axis: int):
    """``@ti.func f(q) -> (phi, grad phi)`` in the obstacle's frame."""
    if kind == "sphere":
        r = geom[0]

        @ti.func
        def f(q):
            return sdf_grad_sphere(q, r)
    elif kind == "box":
        half = geom

        @ti.func
        def f(q):
            return sdf_grad_box(q, ti.Vector(half))
    elif kind == "capsule":
        r, hl = geom

        @ti.func
        def f(q):
            return sdf_grad_capsule(q, r, hl, axis)
    elif kind == "cylinder":
        r, hh = geom

        @ti.func
        def f(q):
            return sdf_grad_cylinder(q, r, hh, axis)
    else:
        raise ValueError(f"obstacle kind {kind!r} is not supported")
    return f


@ti.func
def penalty(p, width: ti.template()):
    """``(rho(p), R(p))``: C1 penalty force magnitude and its potential (see module doc)."""
    rho = 0.0
    R = 0.0
    if p > 0:
        if p < width:
            rho = p * p / (2 * width)
            R = p * p * p / (6 * width)
        else:
            rho = p - 0.5 * width
            R = 0.5 * p * p - 0.5 * width * p + width * width / 6
    return rho, R


@ti.func
def lagged_friction(x, xn, n, fn, v_obst, mu, h: ti.template(), eps: ti.template()):
    """Gradient and potential of lagged friction (implicit steps); ``n`` is the unit normal."""
    d = ti.static(x.n)
    T = ti.Matrix.identity(float, d) - n.outer_product(n)
    u = T @ ((x - xn) / h - v_obst)
    s = ti.sqrt(u.dot(u) + eps * eps)
    return mu * fn * (T @ u) / s, mu * fn * h * (s - eps)


@ti.func
def coulomb_velocity(v, v_obst, n, dv_max, eps: ti.template()):
    """Explicit friction: shrink the tangential relative velocity by ``dv_max`` (m/s), not past 0."""
    rel = v - v_obst
    vn = rel.dot(n)
    t = rel - vn * n
    tn = ti.sqrt(t.dot(t) + eps * eps)
    return v_obst + vn * n + t * ti.max(0.0, 1.0 - dv_max / tn)
