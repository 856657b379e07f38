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

* SVD: a closed-form backward pass split into a rotation part, exact at
  coinciding singular values, and a stretch part whose ``1 / (s_j - s_i)`` is
  clamped (``svd.py``). The plastic models return the trial ``F`` itself while
  they do not yield, and use fixed-corotated elasticity (whose dependence on
  ``U`` and ``V`` is through the rotation ``U V^T`` alone), so undeformed and
  elastically deformed particles - whose singular values coincide - get exact
  derivatives; a yielding particle has well-separated singular values.
* Logarithms of singular values and of ``J`` are taken of values clamped to
  ``>= 1e-6``, so inverted or crushed particles give large but finite stresses.
* Return mappings use the smoothed norm ``sqrt(|dev eps|^2 + 1e-20)``, so the
  flow direction has a finite derivative at zero deviatoric strain; the yield
  test itself is a branch (the gradient is that of the active side).
"""


import taichi as ti

from ..materials import Elastic, Fluid, NeoHookean, Plasticine, Sand, Snow
from ..taichi_math import vec_prod

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
def _corotated_tau(F, U, sig, V, mu, lam):
    d = ti.static(sig.n)
    R = U @ V.transpose()
    J = vec_prod(sig)
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


class VonMisesCorotated:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        # von Mises return mapping on the Hencky (log) strain, fixed-corotated
        # elasticity on the projected deformation (PlasticineLab's model). A
        # particle inside the yield surface keeps F itself rather than U sig V^T,
        # so its derivative is exact even when singular values coincide.
        d = ti.static(F.n)
        mu, lam, yield_stress = prm[0], prm[1], prm[2]
        eps = _log_clamped(sig)
        eps_hat = eps - eps.sum() / d
        norm = ti.sqrt(eps_hat.norm_sqr() + 1e-20)
        dgamma = norm - yield_stress / (2 * mu)
        F_e = F
        sig_e = sig
        if dgamma > 0:
            sig_e = ti.exp(eps - dgamma / norm * eps_hat)
            F_e = U @ _diag(sig_e) @ V.transpose()
        return F_e, Jp, _corotated_tau(F_e, U, sig_e, V, mu, lam)


class DruckerPrager:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        # Drucker-Prager return mapping on the Hencky strain (Klar et al. 2016);
        # fixed-corotated elasticity on the projected deformation, which keeps the
        # derivative exact at coinciding singular values (see VonMisesCorotated)
        d = ti.static(F.n)
        mu, lam, alpha = prm[0], prm[1], prm[2]
        eps = _log_clamped(sig)
        tr = eps.sum()
        eps_hat = eps - tr / d
        norm = ti.sqrt(eps_hat.norm_sqr() + 1e-20)
        F_e = F
        sig_e = sig
        if tr >= 0:
            # tension: cohesionless grains separate, the elastic strain is released
            sig_e = ti.Vector.one(float, d)
            F_e = U @ V.transpose()
        else:
            dgamma = norm + (d * lam + 2 * mu) / (2 * mu) * tr * alpha
            if dgamma > 0:
                sig_e = ti.exp(eps - dgamma / norm * eps_hat)
                F_e = U @ _diag(sig_e) @ V.transpose()
        return F_e, Jp, _corotated_tau(F_e, U, sig_e, V, mu, lam)


class ClampedSnow:
    needs_svd = True

    @staticmethod
    @ti.func
    def update(F, U, sig, V, Jp, prm, C):
        mu0, lam0, xi, theta_c, theta_s = prm[0], prm[1], prm[2], prm[3], prm[4]
        sig_c = ti.min(ti.max(sig, 1 - theta_c), 1 + theta_s)
        clamped = (sig_c != sig).any()
        Jp_new = Jp * vec_prod(sig / sig_c)
        # hardening capped as in Stomakhin et al.'s reference implementation
        h = ti.min(ti.max(ti.exp(xi * (1 - Jp_new)), 0.1), 5.0)
        F_e = F  # exact derivative while nothing is clamped (see VonMisesCorotated)
        if clamped:
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
    Plasticine: VonMisesCorotated,
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
