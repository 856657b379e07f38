"""Constitutive models of the MPM simulator as Taichi functions.

Each model is a class of static ``@ti.func``s chosen per particle group with
``ti.static`` (never an integer branch over material ids inside a kernel):

``update(F, U, sig, V, Jp, prm, C) -> (F_e, Jp_new, tau)``
    ``F`` is the trial deformation gradient ``(I + dt C) F_old``; ``U, sig, V``
    its SVD (only computed for models with ``needs_svd``); ``Jp`` the plastic
    volume ratio; ``prm`` the material's internal parameter vector (see
    ``Material.internal``); ``C`` the APIC affine velocity matrix. Returns the
    elastic deformation gradient to store, the new ``Jp`` and the Kirchhoff
    stress ``tau = P F^T`` (Pa).

Gradient treatments of the non-smooth parts (documented in the README):

* SVD: the backward pass is the closed form with ``1 / (s_j^2 - s_i^2)`` clamped
  away from zero (``svd.py``); the terms it multiplies vanish as singular values
  meet, so the clamp bounds the error instead of producing infinities.
* Logarithms of singular values and of ``J`` are taken of values clamped to
  ``>= 1e-6``, so inverted or crushed particles give large but finite stresses.
* Return mappings use the smoothed norm ``sqrt(|dev eps|^2 + 1e-20)``, so the
  flow direction has a finite derivative at zero deviatoric strain; the yield
  test itself is a branch (the gradient is that of the active side).
"""


import taichi as ti

from ..materials import Elastic, Fluid, NeoHookean, Plasticine, Sand, Snow

_TINY = 1e-6


@ti.func
def _diag(v):
    d = ti.static(v.n)
    m = ti.Matrix.zero(float, d, d)
    for i in ti.static(range(d)):
        m[i, i] = v[i]
    return m


@ti.func
def _log_clamped(sig):
    out = ti.Vector.zero(float, sig.n)
    for i in ti.static(range(sig.n)):
        out[i] = ti.log(ti.max(sig[i], _TINY))
    return out


@ti.func
def _hencky_tau(U, eps, mu, lam):
    # Kirchhoff stress of the St.Venant-Kirchhoff model in log strain:
    # tau = U diag(2 mu eps + lam tr(eps)) U^T
    d = ti.static(eps.n)
    tr = eps.sum()
    t = ti.Vector.zero(float, d)
    for i in ti.static(range(d)):
        t[i] = 2 * mu * eps[i] + lam * tr
    return U @ _diag(t) @ U.transpose()


@ti.func
def _corotated_tau(F, U, sig, V, mu, lam):
    d = ti.static(sig.n)
    R = U @ V.transpose()
    J = 1.0
    for i in ti.static(range(d)):
        J *= sig[i]
    return 2 * mu * (F - R) @ F.transpose() + ti.Matrix.identity(float, d) * lam * (J - 1) * J


class FixedCorotated:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        return F, Jp, _corotated_tau(F, U, sig, V, prm[0], prm[1])


class NeoHookeanModel:
    needs_svd = False

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        d = ti.static(F.n)
        mu, lam = prm[0], prm[1]
        J = ti.max(F.determinant(), _TINY)
        eye = ti.Matrix.identity(float, d)
        return F, Jp, mu * (F @ F.transpose() - eye) + lam * ti.log(J) * eye


class VonMisesHencky:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        d = ti.static(F.n)
        mu, lam, yield_stress = prm[0], prm[1], prm[2]
        eps = _log_clamped(sig)
        eps_hat = eps - eps.sum() / d
        norm = ti.sqrt(eps_hat.norm_sqr() + 1e-20)
        dgamma = norm - yield_stress / (2 * mu)
        if dgamma > 0:
            eps = eps - dgamma / norm * eps_hat
        sig_new = ti.exp(eps)
        F_e = U @ _diag(sig_new) @ V.transpose()
        return F_e, Jp, _hencky_tau(U, eps, mu, lam)


class DruckerPrager:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        d = ti.static(F.n)
        mu, lam, alpha = prm[0], prm[1], prm[2]
        eps = _log_clamped(sig)
        tr = eps.sum()
        eps_hat = eps - tr / d
        norm = ti.sqrt(eps_hat.norm_sqr() + 1e-20)
        if tr >= 0:
            # tension: cohesionless grains separate, the elastic strain is released
            eps = ti.Vector.zero(float, d)
        else:
            dgamma = norm + (d * lam + 2 * mu) / (2 * mu) * tr * alpha
            if dgamma > 0:
                eps = eps - dgamma / norm * eps_hat
        F_e = U @ _diag(ti.exp(eps)) @ V.transpose()
        return F_e, Jp, _hencky_tau(U, eps, mu, lam)


class ClampedSnow:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        d = ti.static(F.n)
        mu0, lam0, xi, theta_c, theta_s = prm[0], prm[1], prm[2], prm[3], prm[4]
        sig_c = ti.Vector.zero(float, d)
        ratio = 1.0
        for i in ti.static(range(d)):
            sig_c[i] = ti.min(ti.max(sig[i], 1 - theta_c), 1 + theta_s)
            ratio *= sig[i] / sig_c[i]
        Jp_new = Jp * ratio
        # hardening capped as in Stomakhin et al.'s reference implementation
        h = ti.min(ti.max(ti.exp(xi * (1 - Jp_new)), 0.1), 5.0)
        F_e = U @ _diag(sig_c) @ V.transpose()
        return F_e, Jp_new, _corotated_tau(F_e, U, sig_c, V, mu0 * h, lam0 * h)


class WeaklyCompressibleFluid:
    needs_svd = False

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        d = ti.static(F.n)
        K, visc = prm[0], prm[1]
        J = ti.max(F.determinant(), _TINY)
        eye = ti.Matrix.identity(float, d)
        F_e = eye * ti.pow(J, 1.0 / d)
        tau = K * (J - 1) * J * eye + visc * J * (C + C.transpose())
        return F_e, Jp, tau


MODELS = {
    Elastic: FixedCorotated,
    NeoHookean: NeoHookeanModel,
    Plasticine: VonMisesHencky,
    Sand: DruckerPrager,
    Snow: ClampedSnow,
    Fluid: WeaklyCompressibleFluid,
}


def model_for(material) -> type:
    """The constitutive model class for a material instance."""
    for cls in type(material).__mro__:
        if cls in MODELS:
            return MODELS[cls]
    raise TypeError(f"material {type(material).__name__} has no MPM constitutive model; "
                    f"supported: {', '.join(c.__name__ for c in MODELS)}")
