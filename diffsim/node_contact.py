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

Signed distances come from the shared ``diffsim/sdf.py`` (analytic gradients, so the
implicit solver's gradient is exactly the derivative of its energy). Squared norms are
written ``v.dot(v)``: Taichi 1.7's reverse mode of ``norm_sqr``/``** 2`` returns NaN in
float32 when advanced optimisation is off (``ds.init``'s default).
"""


import taichi as ti


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
