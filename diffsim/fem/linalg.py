"""Small symmetric eigen decompositions (2x2, 3x3) that are robust at repeated eigenvalues.

``ti.sym_eig`` divides by differences of eigenvalues and returns NaN for multiples of
the identity, which are common here (node mass blocks, undeformed elements). These
use Jacobi rotations with the numerically stable angle formula instead.
"""


import taichi as ti

_SWEEPS = 6


@ti.func
def _rotate(A, Q, p: ti.template(), q: ti.template()):
    apq = A[p, q]
    if ti.abs(apq) > 1e-300:
        theta = (A[q, q] - A[p, p]) / (2 * apq)
        t = 1.0 / (ti.abs(theta) + ti.sqrt(theta * theta + 1.0))
        if theta < 0:
            t = -t
        c = 1.0 / ti.sqrt(t * t + 1.0)
        s = t * c
        J = ti.Matrix.identity(float, A.n)
        J[p, p] = c
        J[q, q] = c
        J[p, q] = s
        J[q, p] = -s
        A = J.transpose() @ A @ J
        Q = Q @ J
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
