"""Backward pass of the SVD ``A = U diag(s) V^T`` for 2x2 and 3x3 matrices.

Differentiating Taichi's iterative SVD by autodiff is unstable (and warns); the
closed form is used instead (Townsend 2016; PyTorch's ``svd_backward``):

    dA = U [ (Fm o Ka) S + diag(gs) + S (Fm o Kb) ] V^T,   Fm_ij = 1 / (s_j^2 - s_i^2),

with the skew matrices ``Ka = U^T gU - gU^T U`` and ``Kb = V^T gV - gV^T V``.
Off the diagonal this is ``Fm_ij (Ka_ij s_j + s_i Kb_ij)``, which we evaluate as

    (Ka_ij + Kb_ij) / (2 (s_j - s_i)) + (Ka_ij - Kb_ij) / (2 (s_j + s_i)).

The second part carries everything a rotation-like output (the polar factor
``U V^T`` of the corotated models) contributes and stays exact when singular
values meet (an undeformed particle has all of them equal). Only the first,
``1 / (s_j - s_i)``, is singular there; its numerator vanishes at the same rate
for the isotropic stresses of ``constitutive.py``, and its denominator is
clamped away from zero by ``eps``. (Clamping ``s_j^2 - s_i^2`` as a whole, as
some simulators do, gets the rotation part wrong by O(1) near equal values.)
"""

import taichi as ti


@ti.func
def _clamp_away(a, eps):
    out = a
    if a >= 0:
        out = ti.max(a, eps)
    else:
        out = ti.min(a, -eps)
    return out


@ti.func
def svd_backward(gU, gsig, gV, U, sig, V, eps):
    """Gradient w.r.t. ``A`` given gradients w.r.t. ``U``, ``sig`` (vector) and ``V``."""
    d = ti.static(sig.n)
    Ka = U.transpose() @ gU - gU.transpose() @ U
    Kb = V.transpose() @ gV - gV.transpose() @ V
    M = ti.Matrix.zero(float, d, d)
    for i, j in ti.static(ti.ndrange(d, d)):
        if ti.static(i == j):
            M[i, i] = gsig[i]
        else:
            M[i, j] = (0.5 * (Ka[i, j] + Kb[i, j]) / _clamp_away(sig[j] - sig[i], eps)
                       + 0.5 * (Ka[i, j] - Kb[i, j]) / ti.max(sig[j] + sig[i], eps))
    return U @ M @ V.transpose()


@ti.func
def svd2x2(F):
    """Accurate SVD ``F = U diag(sig) V^T`` of a 2x2 matrix (``U``, ``V`` rotations).

    Taichi's 2D ``ti.svd`` treats small off-diagonals as zero with a fixed
    tolerance, which loses about 1e-6 of accuracy when singular values nearly
    meet (reconstruction error 2e-6 in float64 for a gap of 1e-5); the
    derivative terms of ``svd_backward`` amplify that into O(1) gradient errors.
    This version is exact to rounding: a polar rotation, then one Jacobi
    rotation that diagonalises the symmetric factor. ``sig[1]`` is negative
    when ``det F < 0``.
    """
    x = F[0, 0] + F[1, 1]
    y = F[1, 0] - F[0, 1]
    r = ti.sqrt(x * x + y * y)
    c, s = 1.0, 0.0
    if r > 0:
        c = x / r
        s = y / r
    R = ti.Matrix([[c, -s], [s, c]])
    S = R.transpose() @ F  # symmetric up to rounding
    a, b, d = S[0, 0], 0.5 * (S[0, 1] + S[1, 0]), S[1, 1]
    cj, sj = 1.0, 0.0
    if b != 0:
        tau = 0.5 * (d - a) / b
        t = 1.0 / (ti.abs(tau) + ti.sqrt(1.0 + tau * tau))
        if tau < 0:
            t = -t
        cj = 1.0 / ti.sqrt(1.0 + t * t)
        sj = t * cj
    V = ti.Matrix([[cj, sj], [-sj, cj]])
    sig = ti.Vector([a * cj * cj - 2.0 * b * cj * sj + d * sj * sj,
                     a * sj * sj + 2.0 * b * cj * sj + d * cj * cj])
    return R @ V, sig, V
