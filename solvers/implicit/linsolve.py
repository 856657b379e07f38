"""Matrix-free Krylov solvers on torch tensors: restarted GMRES and conjugate gradients.

torch has no iterative linear solver, and scipy's (``scipy.sparse.linalg``) work on
NumPy arrays only: they would move every product off the GPU and out of autograd. These
two are small, follow the textbook algorithms (Saad, *Iterative Methods for Sparse
Linear Systems*, 2003: Alg. 6.9 GMRES with Givens rotations, Alg. 6.18 CG) and are
checked against scipy's in the tests.

``matvec`` maps a tensor of ``b``'s shape to one of the same shape (any shape: it is
flattened inside), so Jacobian-vector or vector-Jacobian products from autograd plug
in directly. Convergence, as in scipy: ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class LinearSolveResult:
    """What a linear solve returns.

    Attributes:
        x: the solution, shaped like ``b``.
        iterations: Krylov iterations (matrix-vector products, not counting the one per
            GMRES restart that recomputes the true residual).
        residual: ``||b - A x||_2`` at the end (GMRES: the true residual after the last
            cycle; CG: the recursively updated one).
        converged: the tolerance was met.
        breakdown: why a solve stopped early, or None: ``"indefinite"`` (CG met
            ``p^T A p <= 0``: the matrix is not symmetric positive definite),
            ``"non-finite"`` (NaN/Inf in a product).
    """

    x: torch.Tensor
    iterations: int
    residual: float
    converged: bool
    breakdown: str | None = None


def _default_maxiter(n: int, maxiter: int | None) -> int:
    if maxiter is None:
        return max(min(10 * n, 1000), 1)
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
        raise ValueError(f"maxiter must be None or an int >= 1, got {maxiter!r}")
    return maxiter


def _flat_matvec(matvec: MatVec, shape: torch.Size) -> Callable[[torch.Tensor], torch.Tensor]:
    def mv(v: torch.Tensor) -> torch.Tensor:
        out = matvec(v.reshape(shape))
        if out.shape != shape:
            raise ValueError(f"matvec returned shape {tuple(out.shape)} for a vector of shape {tuple(shape)}; "
                             "the operator must be square")
        return out.reshape(-1)
    return mv


def gmres(matvec: MatVec, b: torch.Tensor, *, x0: torch.Tensor | None = None, rtol: float = 1e-8,
          atol: float = 0.0, restart: int = 20, maxiter: int | None = None) -> LinearSolveResult:
    """Solve ``A x = b`` by restarted GMRES(``restart``) for any invertible ``A``.

    Arnoldi with classical Gram-Schmidt applied twice (as accurate as modified
    Gram-Schmidt, and two matrix products per iteration instead of ``j`` dot products,
    which suits GPUs); the small least-squares problem by Givens rotations in float64 on
    the host (one synchronisation per iteration, for the convergence test).

    Args:
        matvec: ``v -> A v`` on tensors of ``b``'s shape.
        b: right-hand side, any shape.
        x0: initial guess (default zero).
        rtol, atol: stop when ``||r|| <= max(rtol ||b||, atol)``.
        restart: Krylov subspace dimension per cycle.
        maxiter: cap on iterations over all cycles (default ``min(10 n, 1000)``).

    Returns:
        :class:`LinearSolveResult`.
    """
    if isinstance(restart, bool) or not isinstance(restart, int) or restart < 1:
        raise ValueError(f"restart must be an int >= 1, got {restart!r}")
    shape, n = b.shape, b.numel()
    maxiter = _default_maxiter(n, maxiter)
    mv = _flat_matvec(matvec, shape)
    bf = b.reshape(-1)
    x = torch.zeros_like(bf) if x0 is None else x0.reshape(-1).clone()
    bnorm = float(torch.linalg.vector_norm(bf))
    target = max(rtol * bnorm, atol)
    r = bf - mv(x) if x0 is not None else bf.clone()
    beta = float(torch.linalg.vector_norm(r))
    it = 0
    m = min(restart, n)
    while True:
        if not math.isfinite(beta):
            return LinearSolveResult(x.reshape(shape), it, beta, False, "non-finite")
        if beta <= target:
            return LinearSolveResult(x.reshape(shape), it, beta, True)
        if it >= maxiter:
            return LinearSolveResult(x.reshape(shape), it, beta, False)
        V = torch.empty((m + 1, n), dtype=b.dtype, device=b.device)
        V[0] = r / beta
        H = [[0.0] * m for _ in range(m + 1)]  # Hessenberg, column j in H[.][j]
        cs, sn = [0.0] * m, [0.0] * m
        g = [beta] + [0.0] * m   # rotated right-hand side beta e1
        k = 0
        for j in range(m):
            w = mv(V[j])
            Vj = V[: j + 1]
            h = Vj @ w
            w = w - Vj.T @ h
            h2 = Vj @ w          # second pass: re-orthogonalise (CGS2)
            w = w - Vj.T @ h2
            h = (h + h2).double().cpu().tolist()
            hn = float(torch.linalg.vector_norm(w))
            it += 1
            k = j + 1
            col = h + [hn]
            for i in range(j):   # apply the earlier rotations to the new column
                a, c = col[i], col[i + 1]
                col[i], col[i + 1] = cs[i] * a + sn[i] * c, -sn[i] * a + cs[i] * c
            denom = math.hypot(col[j], col[j + 1])
            if denom == 0.0 or not math.isfinite(denom):
                cs[j], sn[j] = 1.0, 0.0
            else:
                cs[j], sn[j] = col[j] / denom, col[j + 1] / denom
            col[j], col[j + 1] = denom, 0.0
            g[j + 1] = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            for i in range(j + 2):
                H[i][j] = col[i]
            if not math.isfinite(hn):
                break
            lucky = hn <= 1e-14 * max(1.0, abs(h[j]) if h else 1.0)
            if not lucky:
                V[j + 1] = w / hn
            if abs(g[j + 1]) <= target or lucky or it >= maxiter:
                break
        # back substitution for the k coefficients of this cycle
        y = [0.0] * k
        for i in range(k - 1, -1, -1):
            s = g[i] - sum(H[i][c] * y[c] for c in range(i + 1, k))
            y[i] = s / H[i][i] if H[i][i] != 0.0 else 0.0
        yt = torch.tensor(y, dtype=b.dtype, device=b.device)
        x = x + V[:k].T @ yt
        r = bf - mv(x)   # the true residual, not the rotated estimate
        beta = float(torch.linalg.vector_norm(r))


def cg(matvec: MatVec, b: torch.Tensor, *, x0: torch.Tensor | None = None, rtol: float = 1e-8,
       atol: float = 0.0, maxiter: int | None = None) -> LinearSolveResult:
    """Solve ``A x = b`` by conjugate gradients; ``A`` must be symmetric positive definite.

    Stops with ``breakdown="indefinite"`` when a search direction has ``p^T A p <= 0``
    (then ``A`` is not SPD and CG's answer means nothing: use GMRES).

    Args:
        matvec, b, x0, rtol, atol, maxiter: as :func:`gmres`.
    """
    shape, n = b.shape, b.numel()
    maxiter = _default_maxiter(n, maxiter)
    mv = _flat_matvec(matvec, shape)
    bf = b.reshape(-1)
    x = torch.zeros_like(bf) if x0 is None else x0.reshape(-1).clone()
    r = bf - mv(x) if x0 is not None else bf.clone()
    target = max(rtol * float(torch.linalg.vector_norm(bf)), atol)
    p = r.clone()
    rr = float(r @ r)
    for it in range(maxiter + 1):
        res = math.sqrt(rr) if rr >= 0 else math.nan
        if not math.isfinite(res):
            return LinearSolveResult(x.reshape(shape), it, res, False, "non-finite")
        if res <= target:
            return LinearSolveResult(x.reshape(shape), it, res, True)
        if it == maxiter:
            return LinearSolveResult(x.reshape(shape), it, res, False)
        Ap = mv(p)
        pAp = float(p @ Ap)
        if not math.isfinite(pAp):
            return LinearSolveResult(x.reshape(shape), it + 1, res, False, "non-finite")
        if pAp <= 0.0:
            return LinearSolveResult(x.reshape(shape), it + 1, res, False, "indefinite")
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    raise AssertionError("unreachable")


def cg_definite(matvec: MatVec, b: torch.Tensor, **kw) -> LinearSolveResult:
    """:func:`cg` for a symmetric definite ``A`` of either sign: a negative definite one (the
    Jacobian of a gradient flow ``du/dt = -grad E``) shows ``p^T A p < 0`` at the first
    iteration and is solved as ``(-A) x = -b``."""
    result = cg(matvec, b, **kw)
    if result.breakdown == "indefinite" and result.iterations == 1:
        neg = cg(lambda v: -matvec(v), -b, **kw)
        return dataclasses.replace(neg, iterations=neg.iterations + 1)
    return result
