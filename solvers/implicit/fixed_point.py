"""Fixed-point methods for ``u = g(u)``: Anderson acceleration and plain (Picard) iteration.

Both work on the residual ``f(u) = g(u) - u`` of a ``FixedPointProblem``. Anderson
acceleration (Anderson 1965; Walker & Ni, "Anderson acceleration for fixed-point
iterations", SIAM J. Numer. Anal. 49, 2011) mixes the last ``m`` iterates so that the
linearised residual vanishes in their span: with ``dX``, ``dF`` the differences of the
last ``m_k + 1`` iterates and residuals,

    gamma = argmin |f_k - dF gamma|_2,   u_{k+1} = u_k + beta f_k - (dX + beta dF) gamma,

the unconstrained form of Walker & Ni's Algorithm AA (``beta`` is their mixing
parameter; ``beta = 1`` is the undamped method), the forward solver of deep-equilibrium
models (Bai et al. 2019; torchdeq). The small least-squares problem is solved by a
QR factorisation in float64, per sample with ``per_sample=True``.
"""

from __future__ import annotations

import dataclasses

import torch

from .base import AbstractNonlinearSolver, Step
from .residual import Residual
from .retcode import NonlinearReturnCode


def _finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x.detach()).all())


def _least_squares(dF: torch.Tensor, f: torch.Tensor, rcond: float) -> torch.Tensor:
    """``gamma = argmin |f - dF^T gamma|`` per sample, by a QR factorisation of ``dF^T``
    (B, n, mk) in float64 (no squared condition number, as normal equations would have).
    A column whose ``|R_ii|`` falls below ``rcond * max |R_jj|`` depends on the others (a
    nearly collinear history, as a converging iteration makes): its coefficient is set to
    zero, i.e. the column is dropped, as Walker & Ni drop columns to bound the condition."""
    Q, R = torch.linalg.qr(dF.transpose(1, 2).double())            # (B, n, mk), (B, mk, mk)
    rhs = Q.transpose(1, 2) @ f.double().unsqueeze(-1)               # (B, mk, 1)
    diag = R.diagonal(dim1=1, dim2=2).abs()
    keep = diag > rcond * diag.amax(dim=1, keepdim=True)
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    mask = keep.unsqueeze(-1) & keep.unsqueeze(-2)
    R = torch.where(mask, R, eye)                                    # dropped columns: gamma_i = 0
    rhs = torch.where(keep.unsqueeze(-1), rhs, torch.zeros_like(rhs))
    return torch.linalg.solve_triangular(R, rhs, upper=True).to(dF.dtype)


def _least_squares_smooth(dF: torch.Tensor, f: torch.Tensor, lam: float) -> torch.Tensor:
    """The same least squares by Tikhonov-regularised normal equations (float64), for
    unrolled differentiation: QR's backward divides by ``R_ii`` and turns the exactly zero
    columns of a converged sample into NaN gradients; these equations are smooth. A sample
    whose differences all vanish gets ``gamma = 0`` without a solve."""
    dFd = dF.double()
    A = dFd @ dFd.transpose(1, 2)                                    # (B, mk, mk)
    rhs = dFd @ f.double().unsqueeze(-1)
    scale = A.diagonal(dim1=1, dim2=2).mean(-1)                      # (B,)
    dead = ~(scale > 0)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    reg = torch.where(dead, torch.ones_like(scale), lam * scale)
    A = torch.where(dead[:, None, None], eye, A) + reg[:, None, None] * eye
    rhs = torch.where(dead[:, None, None], torch.zeros_like(rhs), rhs)
    return torch.linalg.solve(A, rhs).to(dF.dtype)


@dataclasses.dataclass(frozen=True)
class FixedPointIteration(AbstractNonlinearSolver):
    """Picard iteration ``u <- u + damping (g(u) - u)``: converges linearly, at the
    contraction rate of ``g``, when ``g`` is a contraction. The baseline that
    :class:`Anderson` accelerates; one evaluation of ``g`` per iteration.

    Args:
        damping: relaxation in (0, 1]; below 1 it can tame oscillating iterations.
    """

    damping: float = 1.0
    supports_per_sample = True

    def __post_init__(self):
        if not (0.0 < float(self.damping) <= 1.0):
            raise ValueError(f"damping must be in (0, 1], got {self.damping!r}")

    def init(self, F: Residual, u, Fu):
        return None

    def step(self, F: Residual, u, Fu, carry, *, unrolled: bool) -> Step:
        u_new = u + self.damping * Fu
        return Step(u_new, F(u_new), carry)


@dataclasses.dataclass(frozen=True)
class Anderson(AbstractNonlinearSolver):
    """Anderson acceleration of ``u = g(u)`` (Walker & Ni 2011), the DEQ forward solver.

    Args:
        m: history length (iterates mixed); ``m = 0`` is damped Picard iteration.
        beta: mixing (damping) parameter in (0, 1]; 1 uses ``g``'s values undamped.
        rcond: the least-squares problem is solved by QR of the residual differences,
            dropping columns whose ``|R_ii|`` is below ``rcond`` times the largest (Walker &
            Ni drop columns for the same reason: nearly collinear histories);
            None: ``1e3 eps`` of the dtype (2.2e-13 in float64, 1.2e-4 in float32). Under
            ``sensealg=DirectAdjoint()`` (unrolled) the least squares is solved by
            normal equations with this relative Tikhonov term instead, whose derivative
            exists everywhere.

    Cost per iteration: one evaluation of ``g`` plus ``O(m n)`` work. Supports
    ``solve(..., per_sample=True)``: each sample of the leading dimension gets its own
    mixing coefficients and its own convergence test (a batch of DEQ inputs).
    """

    m: int = 5
    beta: float = 1.0
    rcond: float | None = None
    supports_per_sample = True

    def __post_init__(self):
        if isinstance(self.m, bool) or not isinstance(self.m, int) or self.m < 0:
            raise ValueError(f"m must be an int >= 0, got {self.m!r}")
        if not (0.0 < float(self.beta) <= 1.0):
            raise ValueError(f"beta must be in (0, 1], got {self.beta!r}")
        if self.rcond is not None and not (0.0 <= float(self.rcond) < 1.0):
            raise ValueError(f"rcond must be None or in [0, 1), got {self.rcond!r}")

    def _rcond(self, dtype: torch.dtype) -> float:
        return float(self.rcond) if self.rcond is not None else 1e3 * torch.finfo(dtype).eps

    def init(self, F: Residual, u, Fu):
        return {"dX": [], "dF": [], "prev": None}

    def step(self, F: Residual, u, Fu, carry, *, unrolled: bool) -> Step:
        B = u.shape[0] if F.per_sample else 1
        x, f = u.reshape(B, -1), Fu.reshape(B, -1)
        if carry["prev"] is not None and self.m > 0:
            xp, fp = carry["prev"]
            carry["dX"].append(x - xp)
            carry["dF"].append(f - fp)
            if len(carry["dX"]) > min(self.m, x.shape[1]):   # more columns than unknowns: rank deficient
                carry["dX"].pop(0)
                carry["dF"].pop(0)
        carry["prev"] = (x, f)
        step = x + self.beta * f
        if carry["dF"]:
            dX = torch.stack(carry["dX"], dim=1)   # (B, mk, n)
            dF = torch.stack(carry["dF"], dim=1)
            solve = _least_squares_smooth if unrolled else _least_squares
            gamma = solve(dF, f, self._rcond(u.dtype))                # (B, mk, 1)
            step = step - ((dX + self.beta * dF).transpose(1, 2) @ gamma).squeeze(-1)
        u_new = step.reshape(u.shape)
        if not _finite(u_new):
            return Step(u, Fu, carry, NonlinearReturnCode.NON_FINITE)
        return Step(u_new, F(u_new), carry)
