"""Hyperelastic models of ``ds.FEM`` as Taichi functions, with analytic Hessians.

Each model is a class of static ``@ti.func``s, chosen per body with ``ti.static``:

``energy(F, U, sig, V, a, b)``
    strain energy density (J/m^3; J/m^2 in 2D).
``parts(F, U, sig, V) -> (A, B)``
    the first Piola-Kirchhoff stress is ``P = a A + b B`` (every model here is linear
    in its two moduli), which gives the stress and its derivative in the moduli.
``hessian(sig, a, b, project) -> (Hs, lam_sym, lam_asym)``
    ``dP/dF`` in the rotated frame of the SVD ``F = U diag(sig) V^T`` (Smith, de Goes
    and Kim 2019, "Analytic eigensystems for isotropic distortion energies"): with
    ``S = U^T dF V``, the diagonal of ``S`` maps through the d x d matrix ``Hs =
    d^2 psi / d sig^2``; each off-diagonal pair ``(S_ij, S_ji)`` has eigenvalue
    ``lam_sym = (psi_i - psi_j) / (sig_i - sig_j)`` on its symmetric part and
    ``lam_asym = (psi_i + psi_j) / (sig_i + sig_j)`` on its antisymmetric part
    (``psi_i = d psi / d sig_i``). The closed forms below have no ``0/0`` at equal
    singular values. ``project`` clamps the eigenvalues at zero (``Hs`` through its
    symmetric eigen decomposition), which makes the element Hessian positive
    semi-definite for Newton's method; the exact Hessian (``project=False``) serves
    adjoint solves and the backward pass.

Energies are written in the principal stretches' deviations ``s = sig - 1`` with no
cancellation between terms of first order in ``s`` (for example ``|F|^2 - d - 2 log J``
as ``|s|^2 - 2 sum_{i<j} s_i s_j - 2 prod s + 2 (e - log(1 + e))``, ``e = J - 1`` expanded
in ``s``): evaluated literally, a float32 energy of a body strained by 1e-3 carries a
relative rounding error of 5e-3 (1e-4 strain: 50%), which blinds the Newton line
search; in this form it is about 1e-6 at any rotation. Only the line search and
``sim.energy`` read energies (stresses and Hessians come from ``parts`` and
``hessian``).

The SVD is rotation-variant (``det U = det V = 1``; the smallest singular value
carries the sign of ``det F``), so inverted elements have well-defined energies for
the corotated and stable neo-Hookean models. ``NeoHookean`` (``log J``) clamps
``J`` and the singular values at ``1e-6``: it is not meant for inverted elements.

Moduli ``(a, b)`` of each model from Lame's ``(mu, lam)`` (``lame_to_ab``): linear,
corotated, neo-Hookean ``(mu, lam)``; stable neo-Hookean ``(mu, lam + mu)``.
"""


import taichi as ti

from ..materials import Elastic, LinearElastic, NeoHookean, StableNeoHookean
from ..taichi_math import vec_prod
from .linalg import psd

_TINY = 1e-6


# ------------------------------------------------------------------------------ helpers
@ti.func
def svd_rv(F):
    """Rotation-variant SVD: ``U, V`` proper rotations, ``sig`` (vector) may be negative."""
    d = ti.static(F.n)
    U, S, V = ti.svd(F)
    sig = ti.Vector.zero(float, d)
    for i in ti.static(range(d)):
        sig[i] = S[i, i]
    if ti.static(d == 2):
        # ti.svd in 2D returns reflections and non-negative singular values
        if U.determinant() < 0:
            for i in ti.static(range(2)):
                U[i, 1] = -U[i, 1]
            sig[1] = -sig[1]
        if V.determinant() < 0:
            for i in ti.static(range(2)):
                V[i, 1] = -V[i, 1]
            sig[1] = -sig[1]
    return U, sig, V


@ti.func
def cofactor(F):
    """``dJ/dF = J F^{-T}`` (defined for singular ``F``)."""
    d = ti.static(F.n)
    C = ti.Matrix.zero(float, d, d)
    if ti.static(d == 2):
        C = ti.Matrix([[F[1, 1], -F[1, 0]], [-F[0, 1], F[0, 0]]])
    else:
        c0 = ti.Vector([F[0, 1], F[1, 1], F[2, 1]]).cross(ti.Vector([F[0, 2], F[1, 2], F[2, 2]]))
        c1 = ti.Vector([F[0, 2], F[1, 2], F[2, 2]]).cross(ti.Vector([F[0, 0], F[1, 0], F[2, 0]]))
        c2 = ti.Vector([F[0, 0], F[1, 0], F[2, 0]]).cross(ti.Vector([F[0, 1], F[1, 1], F[2, 1]]))
        for i in ti.static(range(3)):
            C[i, 0] = c0[i]
            C[i, 1] = c1[i]
            C[i, 2] = c2[i]
    return C


@ti.func
def _prod_others(sig):
    """``pi_i = prod_{k != i} sig_k``."""
    d = ti.static(sig.n)
    p = ti.Vector.zero(float, d)
    if ti.static(d == 2):
        p = ti.Vector([sig[1], sig[0]])
    else:
        p = ti.Vector([sig[1] * sig[2], sig[0] * sig[2], sig[0] * sig[1]])
    return p


@ti.func
def _third(sig, pair: ti.template()):
    """``sig_k`` for the index k outside the pair (1 in 2D)."""
    out = 1.0
    if ti.static(sig.n == 3):
        out = sig[ti.static(3 - PAIRS3[pair][0] - PAIRS3[pair][1])]
    return out


@ti.func
def x_minus_log1p(x):
    """``x - log(1 + x)`` (``x > -1``) without cancellation: for ``|x| < 1/2`` as
    ``x^2 / (2 + x) - 2 sum_k z^(2k+3) / (2k+3)``, ``z = x / (2 + x)`` (from ``log(1 + x) =
    2 atanh z``; truncated at ``z^19``: relative error below 1e-15), else literally."""
    out = 0.0
    if ti.abs(x) < 0.5:
        z = x / (2.0 + x)
        z2 = z * z
        acc = 0.0
        for k in ti.static(range(8, -1, -1)):
            acc = acc * z2 + 1.0 / (2 * k + 3)
        out = x * x / (2.0 + x) - 2.0 * z * z2 * acc
    else:
        out = x - ti.log(1.0 + x)
    return out


@ti.func
def log1p(x):
    """``log(1 + x)``, accurate for small ``x``."""
    return x - x_minus_log1p(x)


@ti.func
def stretch_sums(sig):
    """``(sum s_i^2, sum_{i<j} s_i s_j, prod s_i (3D; 0 in 2D))`` of ``s = sig - 1``;
    ``J - 1 = sum s_i + sum_{i<j} s_i s_j + prod s_i`` exactly."""
    s = sig - 1.0
    sq = s.dot(s)
    pairs_ = 0.0
    triple = 0.0
    if ti.static(sig.n == 2):
        pairs_ = s[0] * s[1]
    else:
        pairs_ = s[0] * s[1] + s[0] * s[2] + s[1] * s[2]
        triple = s[0] * s[1] * s[2]
    return s, sq, pairs_, triple


PAIRS2 = ((0, 1),)
PAIRS3 = ((0, 1), (0, 2), (1, 2))


def pairs(d: int):
    return PAIRS2 if d == 2 else PAIRS3


@ti.func
def _project_sym(H, project: ti.template()):
    out = H
    if ti.static(project):
        out = psd(H)
    return out


@ti.func
def _clamp_pos(v, project: ti.template()):
    out = v
    if ti.static(project):
        out = ti.max(v, 0.0)
    return out


@ti.func
def apply_hessian(U, V, Hs, lam_sym, lam_asym, dF):
    """``dP = dP/dF : dF`` from the rotated-frame representation."""
    d = ti.static(dF.n)
    S = U.transpose() @ dF @ V
    R = ti.Matrix.zero(float, d, d)
    for i in ti.static(range(d)):
        acc = 0.0
        for j in ti.static(range(d)):
            acc += Hs[i, j] * S[j, j]
        R[i, i] = acc
    for p in ti.static(range(len(pairs(d)))):
        i, j = ti.static(pairs(d)[p][0], pairs(d)[p][1])
        asym = 0.5 * (S[i, j] - S[j, i])
        sym = 0.5 * (S[i, j] + S[j, i])
        R[i, j] = lam_asym[p] * asym + lam_sym[p] * sym
        R[j, i] = -lam_asym[p] * asym + lam_sym[p] * sym
    return U @ R @ V.transpose()


# ------------------------------------------------------------------------------ models
class LinearModel:
    """``psi = a |eps|^2 + b/2 tr(eps)^2``, ``eps = sym(F) - I``; constant Hessian."""

    needs_svd = False

    @staticmethod
    def lame_to_ab(mu, lam):
        return mu, lam

    @staticmethod
    @ti.func
    def energy(F, U, sig, V, a, b):
        d = ti.static(F.n)
        eps = 0.5 * (F + F.transpose()) - ti.Matrix.identity(float, d)
        return a * (eps * eps).sum() + 0.5 * b * eps.trace() ** 2

    @staticmethod
    @ti.func
    def parts(F, U, sig, V):
        d = ti.static(F.n)
        eye = ti.Matrix.identity(float, d)
        return F + F.transpose() - 2 * eye, (F.trace() - d) * eye

    @staticmethod
    @ti.func
    def hessian(sig, a, b, project: ti.template()):
        d = ti.static(sig.n)
        Hs = 2 * a * ti.Matrix.identity(float, d) + b * ti.Matrix.one(float, d, d)
        n = ti.static(len(pairs(d)))
        return Hs, ti.Vector.one(float, n) * (2 * a), ti.Vector.zero(float, n)


class CorotatedModel:
    """Fixed corotated (Stomakhin et al. 2012): ``psi = a sum (sig_i - 1)^2 + b/2 (J - 1)^2``."""

    needs_svd = True

    @staticmethod
    def lame_to_ab(mu, lam):
        return mu, lam

    @staticmethod
    @ti.func
    def energy(F, U, sig, V, a, b):
        s, sq, pairs_, triple = stretch_sums(sig)
        e = s.sum() + pairs_ + triple   # J - 1
        return a * sq + 0.5 * b * e * e

    @staticmethod
    @ti.func
    def parts(F, U, sig, V):
        J = F.determinant()
        return 2 * (F - U @ V.transpose()), (J - 1) * cofactor(F)

    @staticmethod
    @ti.func
    def hessian(sig, a, b, project: ti.template()):
        d = ti.static(sig.n)
        pi = _prod_others(sig)
        J = sig.x * pi.x
        Hs = ti.Matrix.zero(float, d, d)
        n = ti.static(len(pairs(d)))
        ls = ti.Vector.zero(float, n)
        la = ti.Vector.zero(float, n)
        for i in ti.static(range(d)):
            Hs[i, i] = 2 * a + b * pi[i] ** 2
        for p in ti.static(range(n)):
            i, j = ti.static(pairs(d)[p][0], pairs(d)[p][1])
            sk = _third(sig, p)
            Hs[i, j] = b * pi[i] * pi[j] + b * (J - 1) * sk
            Hs[j, i] = Hs[i, j]
            s = sig[i] + sig[j]
            s = ti.select(s >= 0, ti.max(s, _TINY), ti.min(s, -_TINY))
            ls[p] = _clamp_pos(2 * a - b * (J - 1) * sk, project)
            la[p] = _clamp_pos(2 * a * (1 - 2 / s) + b * (J - 1) * sk, project)
        return _project_sym(Hs, project), ls, la


class StableNeoHookeanModel:
    """Smith et al.: ``psi = a (|F|^2 - d)/2 - a (J - 1) + b/2 (J - 1)^2`` with ``b = lam + mu``."""

    needs_svd = True

    @staticmethod
    def lame_to_ab(mu, lam):
        return mu, lam + mu

    @staticmethod
    @ti.func
    def energy(F, U, sig, V, a, b):
        # (|F|^2 - d)/2 - (J - 1) = |s|^2/2 - sum_{i<j} s_i s_j - prod s
        s, sq, pairs_, triple = stretch_sums(sig)
        e = s.sum() + pairs_ + triple   # J - 1
        return a * (0.5 * sq - pairs_ - triple) + 0.5 * b * e * e

    @staticmethod
    @ti.func
    def parts(F, U, sig, V):
        J = F.determinant()
        C = cofactor(F)
        return F - C, (J - 1) * C

    @staticmethod
    @ti.func
    def hessian(sig, a, b, project: ti.template()):
        d = ti.static(sig.n)
        pi = _prod_others(sig)
        J = sig.x * pi.x
        c = b * (J - 1) - a
        Hs = ti.Matrix.zero(float, d, d)
        n = ti.static(len(pairs(d)))
        ls = ti.Vector.zero(float, n)
        la = ti.Vector.zero(float, n)
        for i in ti.static(range(d)):
            Hs[i, i] = a + b * pi[i] ** 2
        for p in ti.static(range(n)):
            i, j = ti.static(pairs(d)[p][0], pairs(d)[p][1])
            sk = _third(sig, p)
            Hs[i, j] = b * pi[i] * pi[j] + c * sk
            Hs[j, i] = Hs[i, j]
            ls[p] = _clamp_pos(a - c * sk, project)
            la[p] = _clamp_pos(a + c * sk, project)
        return _project_sym(Hs, project), ls, la


class NeoHookeanFEMModel:
    """Classic compressible neo-Hookean: ``psi = a (|F|^2 - d)/2 - a log J + b/2 log^2 J``."""

    needs_svd = True

    @staticmethod
    def lame_to_ab(mu, lam):
        return mu, lam

    @staticmethod
    @ti.func
    def energy(F, U, sig, V, a, b):
        # (|F|^2 - d)/2 - log J with J clamped at _TINY, e = J - 1 and ec the clamped one:
        # |s|^2/2 - sum_{i<j} s_i s_j - prod s + (e - ec) + (ec - log(1 + ec))
        s, sq, pairs_, triple = stretch_sums(sig)
        e = s.sum() + pairs_ + triple
        ec = ti.max(e, _TINY - 1.0)
        logJ = log1p(ec)
        return a * (0.5 * sq - pairs_ - triple + (e - ec) + x_minus_log1p(ec)) + 0.5 * b * logJ * logJ

    @staticmethod
    @ti.func
    def parts(F, U, sig, V):
        J = ti.max(F.determinant(), _TINY)
        FinvT = cofactor(F) / J
        return F - FinvT, ti.log(J) * FinvT

    @staticmethod
    @ti.func
    def hessian(sig, a, b, project: ti.template()):
        d = ti.static(sig.n)
        s = ti.max(sig, _TINY)
        J = vec_prod(s)
        c = b * ti.log(J) - a
        Hs = ti.Matrix.zero(float, d, d)
        n = ti.static(len(pairs(d)))
        ls = ti.Vector.zero(float, n)
        la = ti.Vector.zero(float, n)
        for i in ti.static(range(d)):
            Hs[i, i] = a + (b - c) / s[i] ** 2
        for p in ti.static(range(n)):
            i, j = ti.static(pairs(d)[p][0], pairs(d)[p][1])
            Hs[i, j] = b / (s[i] * s[j])
            Hs[j, i] = Hs[i, j]
            ls[p] = _clamp_pos(a - c / (s[i] * s[j]), project)
            la[p] = _clamp_pos(a + c / (s[i] * s[j]), project)
        return _project_sym(Hs, project), ls, la


MODELS = {
    LinearElastic: LinearModel,
    StableNeoHookean: StableNeoHookeanModel,
    Elastic: CorotatedModel,
    NeoHookean: NeoHookeanFEMModel,
}


def model_for(material) -> type:
    """The FEM constitutive model class of a material instance."""
    for cls in type(material).__mro__:
        if cls in MODELS:
            return MODELS[cls]
    raise TypeError(f"material {type(material).__name__} has no FEM model; supported: "
                    "ds.LinearElastic, ds.Elastic (corotated), ds.StableNeoHookean, ds.NeoHookean")


# ------------------------------------------------------------------------------ damping
@ti.func
def damping_stress(F, Fdot, beta, mu, lam):
    """Rayleigh stiffness damping: ``P_d = F beta (2 mu Edot + lam tr(Edot) I)``,
    ``Edot = sym(F^T Fdot)``: at rest ``beta K`` of linear elasticity, invariant under
    rotations (rigid motion is not damped) and dissipative."""
    d = ti.static(F.n)
    M = F.transpose() @ Fdot
    Ed = 0.5 * (M + M.transpose())
    return F @ (beta * (2 * mu * Ed + lam * Ed.trace() * ti.Matrix.identity(float, d)))
