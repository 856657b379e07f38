"""Thin-shell energies of ``ds.Shell`` as Taichi functions.

Membrane (per triangle, plane stress, moduli already multiplied by the thickness): with
``F = Ds Dm^-1`` (3 x 2, ``Dm`` the rest edges in the triangle's own 2D frame),
``C = F^T F``:

* St. Venant-Kirchhoff: ``psi = mu |E|^2 + lam/2 tr(E)^2``, ``E = (C - I)/2``,
  ``S = 2 mu E + lam tr(E) I``;
* neo-Hookean: ``psi = mu/2 (tr C - 2 - 2 log J) + lam/2 log^2 J``, ``J = sqrt(det C)``,
  ``S = mu (I - C^-1) + lam log(J) C^-1``.

``P = F S`` and the tangent ``dP = dF S + F dS`` with ``dS = 2 c1 Ci dE Ci + lam tr(Ci dE)
Ci`` (``dE = sym(F^T dF)``; StVK: ``Ci = I, c1 = mu``; neo-Hookean: ``Ci = C^-1, c1 = mu -
lam log J``). The projected tangent replaces ``S`` by its positive part in the geometric
term and clamps ``c1`` at zero, which makes it positive semi-definite.

Bending (per interior edge, "hinge"; Grinspun et al. 2003): ``E = k w (theta - theta0)^2``
with the signed dihedral angle ``theta``, ``w = 3 |e|^2 / (A1 + A2)`` from the rest
shape and ``k = D / 6``. On an equilateral mesh a quadratic deflection with Hessian
``W`` bends the hinge across edge direction ``t`` (normal ``n``) by ``theta = h (n.W.n -
t.W.t / 3)`` (``h`` the triangle height), so the energy density over the three edge
directions is exactly ``k (3 (tr W)^2 - 8 det W)``: with ``k = D/6`` this is Kirchhoff's
``D/2 (tr W)^2 - D (1 - nu) det W`` with an effective ``nu = -1/3`` in the Gaussian-
curvature term, which integrates to zero when the boundary deflection is zero (clamped
or simply supported plates). On other meshes the hinge energy is anisotropic;
``ds.Rectangle`` meshes are near-equilateral.
The dihedral gradient is the closed form of Bridson et al. (2003); the Gauss-Newton
Hessian ``2 k w grad(theta) grad(theta)^T`` serves Newton's method, the exact one
(through Taichi's autodiff) the adjoint solves.
"""


import taichi as ti

from .constitutive import log1p, x_minus_log1p

HINGE_FACTOR = 1.0 / 6.0
_TINY = 1e-12


@ti.func
def membrane_stress(F, mu, lam, neo: ti.template()):
    """``(S, Ci, c1)`` of the membrane at ``F`` (3 x 2)."""
    C = F.transpose() @ F
    eye = ti.Matrix.identity(float, 2)
    S = ti.Matrix.zero(float, 2, 2)
    Ci = eye
    c1 = mu
    if ti.static(neo):
        detC = ti.max(C.determinant(), _TINY)
        Ci = ti.Matrix([[C[1, 1], -C[0, 1]], [-C[1, 0], C[0, 0]]]) / detC
        logJ = 0.5 * ti.log(detC)
        S = mu * (eye - Ci) + lam * logJ * Ci
        c1 = mu - lam * logJ
    else:
        E = 0.5 * (C - eye)
        S = 2 * mu * E + lam * E.trace() * eye
    return S, Ci, c1


@ti.func
def membrane_energy(F, mu, lam, neo: ti.template()):
    """Membrane energy density ``psi`` at ``F`` (3 x 2), from ``E = (C - I)/2`` with no
    cancellation between first-order terms (neo-Hookean: ``tr C - 2 - 2 log J = (q -
    log(1 + q)) - 4 det E``, ``q = det C - 1 = 2 tr E + 4 det E``; see ``constitutive.py``
    on why the line search needs this in float32)."""
    E = 0.5 * (F.transpose() @ F - ti.Matrix.identity(float, 2))
    trE = E.trace()
    psi = 0.0
    if ti.static(neo):
        detE = E.determinant()
        q = 2 * trE + 4 * detE
        qc = ti.max(q, _TINY - 1.0)     # det C clamped at _TINY, as in the stress
        logJ = 0.5 * log1p(qc)
        psi = 0.5 * mu * ((q - qc) + x_minus_log1p(qc) - 4 * detE) + 0.5 * lam * logJ * logJ
    else:
        psi = mu * (E * E).sum() + 0.5 * lam * trE * trE
    return psi


@ti.func
def membrane_tangent(F, S, Ci, c1, lam, dF):
    """``dP`` for ``dF`` (3 x 2)."""
    M = F.transpose() @ dF
    dE = 0.5 * (M + M.transpose())
    dS = 2 * c1 * Ci @ dE @ Ci + lam * (Ci * dE).sum() * Ci
    return dF @ S + F @ dS


@ti.func
def membrane_damping(Fn, Fdot, beta, mu, lam):
    """Rayleigh stiffness damping of the membrane: ``Fn beta (2 mu Edot + lam tr(Edot) I)``."""
    M = Fn.transpose() @ Fdot
    Ed = 0.5 * (M + M.transpose())
    return Fn @ (beta * (2 * mu * Ed + lam * Ed.trace() * ti.Matrix.identity(float, 2)))


@ti.func
def bend_angle(theta, rest):
    """``theta - rest`` wrapped to ``[-pi, pi]``: how far a hinge is bent from its rest
    angle. ``dihedral`` wraps from ``pi`` to ``-pi`` when a hinge folds flat onto itself;
    the plain difference then jumps by ``2 pi`` and the bending energy
    ``k (theta - rest)^2`` by ``4 pi k |rest|`` (a creased hinge, ``rest != 0``), which
    stalled Newton's line search on Fold's sheet. Wrapped, the energy is continuous
    (``2 pi``-periodic, a cusp at ``pi`` from rest) and its gradient unchanged
    elsewhere (the wrap's derivative is 1)."""
    d = theta - rest
    return ti.atan2(ti.sin(d), ti.cos(d))     # (Taichi's autodiff has no derivative of round)


@ti.func
def dihedral(x0, x1, x2, x3):
    """Signed dihedral angle at edge ``x0 -> x1`` between faces ``(x0, x1, x2)`` and
    ``(x1, x0, x3)``, and its gradient (four 3-vectors)."""
    e = x1 - x0
    le = ti.sqrt(e.dot(e) + 1e-30)
    nA = e.cross(x2 - x0)
    nB = (x0 - x1).cross(x3 - x1)
    lA = nA.dot(nA) + 1e-30
    lB = nB.dot(nB) + 1e-30
    a = nA / ti.sqrt(lA)
    b = nB / ti.sqrt(lB)
    theta = ti.atan2(a.cross(b).dot(e) / le, a.dot(b))
    qA = nA / lA
    qB = nB / lB
    g2 = -le * qA
    g3 = -le * qB
    g0 = ((x1 - x2).dot(e) / le) * qA + ((x1 - x3).dot(e) / le) * qB
    g1 = ((x2 - x0).dot(e) / le) * qA + ((x3 - x0).dot(e) / le) * qB
    return theta, g0, g1, g2, g3
