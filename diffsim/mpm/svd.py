"""Backward pass of the SVD ``A = U diag(s) V^T`` for 2x2 and 3x3 matrices.

Differentiating Taichi's iterative SVD by autodiff is unstable (and warns); the
closed form is used instead (Townsend 2016, as in PyTorch's ``svd_backward`` and
PlasticineLab):

    dA = U [ (Fm o (U^T gU - gU^T U)) S + diag(gs) + S (Fm o (V^T gV - gV^T V)) ] V^T

with ``Fm_ij = 1 / (s_j^2 - s_i^2)`` off the diagonal. Where singular values
meet, the denominator is clamped to ``+-clamp``. In every stress of
``constitutive.py`` the bracketed numerators vanish at the same rate
(``(s_j - s_i)``), so the clamp replaces a 0/0 by a bounded value instead of
an infinity.
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
    S = ti.Matrix.zero(float, d, d)
    gS = ti.Matrix.zero(float, d, d)
    Fm = ti.Matrix.zero(float, d, d)
    for i in ti.static(range(d)):
        S[i, i] = sig[i]
        gS[i, i] = gsig[i]
    for i, j in ti.static(ti.ndrange(d, d)):
        if ti.static(i != j):
            Fm[i, j] = 1.0 / _clamp_away(sig[j] * sig[j] - sig[i] * sig[i], eps)
    Ut, Vt = U.transpose(), V.transpose()
    u_term = (Fm * (Ut @ gU - gU.transpose() @ U)) @ S
    v_term = S @ (Fm * (Vt @ gV - gV.transpose() @ V))
    return U @ (u_term + gS + v_term) @ Vt
