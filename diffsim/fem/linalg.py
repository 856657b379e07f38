"""Small symmetric eigen decompositions (2x2, 3x3) that are robust at repeated eigenvalues.

``ti.sym_eig`` divides by differences of eigenvalues and returns NaN for multiples of
the identity, which are common here (node mass blocks, undeformed elements). These
use cyclic Jacobi rotations with the numerically stable angle formula instead; each
rotation touches only the affected rows and columns (small code, quick to compile).
"""


import taichi as ti

_SWEEPS = 5


@ti.func
def _rotate(A, Q, p: ti.template(), q: ti.template()):
    n = ti.static(A.n)
    apq = A[p, q]
    if ti.abs(apq) > 1e-300:
        theta = (A[q, q] - A[p, p]) / (2 * apq)
        t = 1.0 / (ti.abs(theta) + ti.sqrt(theta * theta + 1.0))
        if theta < 0:
            t = -t
        c = 1.0 / ti.sqrt(t * t + 1.0)
        s = t * c
        app, aqq = A[p, p], A[q, q]
        A[p, p] = app - t * apq
        A[q, q] = aqq + t * apq
        A[p, q] = 0.0
        A[q, p] = 0.0
        for r in ti.static(range(n)):
            if ti.static(r != p and r != q):
                arp, arq = A[r, p], A[r, q]
                A[r, p] = c * arp - s * arq
                A[p, r] = A[r, p]
                A[r, q] = s * arp + c * arq
                A[q, r] = A[r, q]
        for r in ti.static(range(n)):
            qrp, qrq = Q[r, p], Q[r, q]
            Q[r, p] = c * qrp - s * qrq
            Q[r, q] = s * qrp + c * qrq
    return A, Q


@ti.func
def sym_eig(A):
    """Eigenvalues (vector) and orthonormal eigenvectors (columns) of a symmetric 2x2/3x3."""
    n = ti.static(A.n)
    Q = ti.Matrix.identity(float, n)
    B = 0.5 * (A + A.transpose())
    if ti.static(n == 2):
        B, Q = _rotate(B, Q, 0, 1)
    else:
        for _ in ti.static(range(_SWEEPS)):
            B, Q = _rotate(B, Q, 0, 1)
            B, Q = _rotate(B, Q, 0, 2)
            B, Q = _rotate(B, Q, 1, 2)
    e = ti.Vector.zero(float, n)
    for i in ti.static(range(n)):
        e[i] = B[i, i]
    return e, Q


@ti.func
def psd(A):
    """Projection of a symmetric matrix onto the positive semi-definite cone."""
    e, Q = sym_eig(A)
    D = ti.Matrix.zero(float, A.n, A.n)
    for i in ti.static(range(A.n)):
        D[i, i] = ti.max(e[i], 0.0)
    return Q @ D @ Q.transpose()
