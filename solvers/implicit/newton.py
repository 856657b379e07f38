"""``NewtonRaphson``: Newton's method with a backtracking line search, dense or matrix-free.

Each iteration solves ``J delta = -F(u)`` with ``J = dF/du`` -- by an LU solve of the
dense Jacobian (formed from ``n`` batched vector-Jacobian products) for small systems,
or matrix-free by GMRES (or CG for symmetric definite ``J``) on Jacobian-vector
products for large ones (autograd, reverse over reverse, linearised once per step) -- then backtracks along ``delta`` until the
merit ``phi(u) = |F(u)|_2^2 / 2`` decreases enough (Armijo).

Inexact Newton: the Krylov solve stops at a relative residual ``eta_k = min(0.1,
|F(u_k)| / |F(u_0)|)`` (Dembo, Eisenstat & Steihaug 1982: ``eta_k = O(|F(u_k)|)`` keeps
quadratic convergence), unless ``linsolve_rtol`` fixes it. Line search: Dennis & Schnabel,
*Numerical Methods for Unconstrained Optimization and Nonlinear Equations* (1996), Alg.
A6.3.1 (sufficient decrease 1e-4, quadratic interpolation safeguarded to [0.1, 0.5] of the
previous step).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._checks import one_of
from .base import AbstractNonlinearSolver, Step
from .linsolve import cg_definite, gmres
from .residual import Residual
from .retcode import NonlinearReturnCode

#: ``linsolve="auto"`` forms the dense Jacobian up to this many unknowns
DENSE_MAX = 512


@dataclasses.dataclass(frozen=True)
class NewtonRaphson(AbstractNonlinearSolver):
    """Newton's method for ``F(u) = 0`` (SciML's ``NewtonRaphson``).

    Args:
        linesearch: ``"backtracking"`` (default; Armijo on ``|F|^2/2``) or ``"none"``
            (full steps: fastest near a root, may diverge far from one).
        linsolve: how ``J delta = -F`` is solved: ``"direct"`` (dense Jacobian and LU,
            ``O(n^3)``; exact), ``"gmres"`` (matrix-free, any invertible ``J``), ``"cg"``
            (matrix-free, only for symmetric definite ``J``: ``F`` the gradient of a convex
            energy, or minus it for a gradient flow), or ``"auto"`` (direct up to 512 unknowns, GMRES
            above).
        linsolve_rtol: relative tolerance of the Krylov solve; None: the adaptive
            forcing term above.
        linsolve_maxiter: cap on Krylov iterations per Newton step (default
            ``min(10 n, 1000)``).
        restart: GMRES restart length.
        max_backtracks: line-search trials before the step is declared failed
            (retcode ``STALLED``).
    """

    linesearch: str = "backtracking"
    linsolve: str = "auto"
    linsolve_rtol: float | None = None
    linsolve_maxiter: int | None = None
    restart: int = 30
    max_backtracks: int = 30

    def __post_init__(self):
        one_of("linesearch", self.linesearch, ("backtracking", "none"))
        one_of("linsolve", self.linsolve, ("auto", "direct", "gmres", "cg"))
        if self.linsolve_rtol is not None and not (0.0 < float(self.linsolve_rtol) < 1.0):
            raise ValueError(f"linsolve_rtol must be None or in (0, 1), got {self.linsolve_rtol!r}")
        for name in ("restart", "max_backtracks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")

    def method(self, F: Residual) -> str:
        """The linear solver actually used on ``F``."""
        if self.linsolve != "auto":
            return self.linsolve
        return "direct" if F.n <= DENSE_MAX else "gmres"

    def check(self, F: Residual, *, unrolled: bool) -> None:
        if unrolled and self.method(F) != "direct":
            raise ValueError(
                f"sensealg=DirectAdjoint() differentiates through Newton's linear solves, which needs "
                f"NewtonRaphson(linsolve='direct') (got linsolve={self.linsolve!r} for {F.n} unknowns); "
                "for large systems use sensealg=ImplicitAdjoint()")

    def init(self, F: Residual, u: torch.Tensor, Fu: torch.Tensor):
        return {"norm0": float(torch.linalg.vector_norm(Fu.detach()))}

    def step(self, F: Residual, u: torch.Tensor, Fu: torch.Tensor, carry, *, unrolled: bool) -> Step:
        method = self.method(F)
        fnorm = float(torch.linalg.vector_norm(Fu.detach()))
        eta = 0.0
        if method == "direct":
            _, J = F.jacobian(u, create_graph=unrolled)
            if not bool(torch.isfinite(J).all()):
                return Step(u, Fu, carry, NonlinearReturnCode.NON_FINITE)
            rhs = -(Fu if unrolled else Fu.detach()).reshape(-1)
            try:
                delta = torch.linalg.solve(J, rhs).reshape(u.shape)
            except RuntimeError:   # torch raises on an exactly singular matrix
                return Step(u, Fu, carry, NonlinearReturnCode.SINGULAR)
            if not bool(torch.isfinite(delta).all()):
                return Step(u, Fu, carry, NonlinearReturnCode.SINGULAR)
        else:
            eta = (self.linsolve_rtol if self.linsolve_rtol is not None
                   else min(0.1, fnorm / max(carry["norm0"], 1e-300)))
            eta = max(eta, 10 * torch.finfo(u.dtype).eps)
            b = -Fu.detach()
            solver = gmres if method == "gmres" else cg_definite
            kw = {"restart": self.restart} if method == "gmres" else {}
            res = solver(F.linear_operator(u), b, rtol=eta, maxiter=self.linsolve_maxiter, **kw)
            F.stats.nlinear += res.iterations
            if res.breakdown == "non-finite":
                return Step(u, Fu, carry, NonlinearReturnCode.NON_FINITE)
            if res.breakdown == "indefinite":
                return Step(u, Fu, carry, NonlinearReturnCode.STALLED)
            delta = res.x
            # an unconverged Krylov solve still gives a usable inexact direction; its
            # achieved residual bounds the slope below
            eta = min(res.residual / max(fnorm, 1e-300), 0.99)
        if self.linesearch == "none":
            u_new = u + delta
            return Step(u_new, F(u_new), carry)
        alpha, u_new, F_new = self._backtrack(F, u, Fu, delta, fnorm, eta, unrolled)
        if u_new is None:
            return Step(u, Fu, carry, NonlinearReturnCode.STALLED)
        return Step(u_new, F_new, carry)

    def _backtrack(self, F: Residual, u, Fu, delta, fnorm, eta, unrolled):
        """Armijo backtracking on ``phi = |F|^2 / 2``; the step length is a constant for
        autograd (its choice is not differentiated, as step sizes in ODE solvers)."""
        phi0 = 0.5 * fnorm**2
        # slope of phi along delta: F.J delta = -|F|^2 + F.r with |r| <= eta |F|
        slope = -(1.0 - eta) * fnorm**2
        alpha = 1.0
        for _ in range(self.max_backtracks):
            u_try = u + alpha * delta
            F_try = F(u_try)
            phi = 0.5 * float(torch.linalg.vector_norm(F_try.detach())) ** 2
            if math.isfinite(phi) and phi <= phi0 + 1e-4 * alpha * slope:
                return alpha, u_try, F_try
            F.stats.nbacktrack += 1
            if math.isfinite(phi):
                denom = 2.0 * (phi - phi0 - slope * alpha)
                a_q = -slope * alpha**2 / denom if denom > 0 else 0.5 * alpha
                alpha = min(max(a_q, 0.1 * alpha), 0.5 * alpha)
            else:
                alpha *= 0.1
        return alpha, None, None
