"""``ImplicitAdjoint``: gradients of a root by one adjoint linear solve (implicit function theorem).

With ``F(u*, theta) = 0`` the backward pass solves ``(dF/du)^T w = u_bar`` matrix-free on
torch vector-Jacobian products (GMRES, CG) or densely, and sends ``-w`` back through one
evaluation of ``F`` at the detached ``u*``, so every tensor ``F`` uses -- ``p``, module
parameters, closed-over tensors -- receives ``-(dF/dtheta)^T w``. The bookkeeping is
``diffsim.implicit`` (shared with ``ds.FEM``'s equilibria).

References: SciMLSensitivity ``SteadyStateAdjoint``; Blondel et al., "Efficient and
Modular Implicit Differentiation", NeurIPS 2022 (``custom_root``, ``custom_fixed_point``);
Bai, Kolter & Koltun, "Deep Equilibrium Models", NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch

from diffsim.implicit import ImplicitGradientError, ImplicitLinearization, implicit_solution
from diffsim.sensitivity import AbstractSensitivity

from .._checks import one_of
from ..ode.methods.jacobian import _rows
from .linsolve import cg_definite, gmres
from .residual import Residual
from .retcode import NonlinearReturnCode
from .solution import NonlinearStats

LinSolve = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class ImplicitJob:
    """What the gradient of one root needs: the residual, the (best) iterate ``u`` and the
    start ``u0``, how the forward solve ended, its statistics and the problem's name."""

    F: Residual
    u: torch.Tensor
    u0: torch.Tensor
    retcode: NonlinearReturnCode
    stats: NonlinearStats
    problem_name: str


@dataclasses.dataclass(frozen=True)
class ImplicitAdjoint(AbstractSensitivity):
    """Differentiate a root / steady state / fixed point by the implicit function theorem.

    The forward iterations run without autograd (memory independent of their number);
    the backward pass costs one linear solve with ``(dF/du)^T``. ``u0`` gets a zero
    gradient: the root does not depend on where the search started (where the root is
    isolated). First-order only (no ``create_graph`` through the adjoint solve).

    Args:
        linsolve: ``"gmres"`` (default; any invertible ``dF/du``), ``"cg"`` (symmetric
            definite ``dF/du``: a gradient system ``F = grad E``, or ``F = -grad E`` for
            a gradient flow -- a negative definite operator is detected and negated),
            ``"direct"`` (dense ``dF/du`` from ``n`` batched vector-Jacobian products and
            an LU solve; small systems), or a callable ``linsolve(vjp, b) -> w`` solving
            ``A w = b`` for the operator ``vjp(v) = (dF/du)^T v`` (plug in your own
            preconditioned solver).
        rtol: relative tolerance of the Krylov solve, ``|A w - b| <= rtol |b|``; None:
            ``eps^(2/3)`` of the dtype (3.7e-11 in float64, 2.4e-5 in float32).
        atol: absolute tolerance of the Krylov solve.
        maxiter: Krylov iteration cap (default ``min(10 n, 1000)``).
        restart: GMRES restart length.

    Raises (in ``backward``):
        diffsim.implicit.ImplicitGradientError: the forward solve did not succeed (the
            theorem needs ``F(u*) = 0``), or the adjoint solve did not converge.
    """

    linsolve: str | LinSolve = "gmres"
    rtol: float | None = None
    atol: float = 0.0
    maxiter: int | None = None
    restart: int = 30

    def __post_init__(self):
        if not callable(self.linsolve):
            one_of("linsolve", self.linsolve, ("gmres", "cg", "direct"))
        if self.rtol is not None and not (0.0 < float(self.rtol) < 1.0):
            raise ValueError(f"rtol must be None or in (0, 1), got {self.rtol!r}")
        if not float(self.atol) >= 0.0:
            raise ValueError(f"atol must be >= 0, got {self.atol!r}")
        if isinstance(self.restart, bool) or not isinstance(self.restart, int) or self.restart < 1:
            raise ValueError(f"restart must be an int >= 1, got {self.restart!r}")

    differentiates: ClassVar[str] = "root, steady-state and fixed-point solves"

    def tolerance(self, dtype: torch.dtype) -> float:
        return float(self.rtol) if self.rtol is not None else torch.finfo(dtype).eps ** (2.0 / 3.0)

    def run(self, job: ImplicitJob) -> torch.Tensor:
        """``job.u`` with gradients by the implicit function theorem, when anything needs them."""
        F, u0, stats = job.F, job.u0, job.stats
        u = job.u.detach()
        if not torch.is_grad_enabled():
            return u
        with torch.enable_grad():
            R = F.fn(u)   # one evaluation with the graph to p / modules / closures (u itself detached)
        stats.nfev += 1
        with_u0 = u0.requires_grad
        if not R.requires_grad:
            return u + 0.0 * u0 if with_u0 else u   # nothing but u0 requires grad: its gradient is zero
        lin = TorchLinearization(F, u, self, stats, job.retcode, job.problem_name, with_u0)
        inputs = (R, u0) if with_u0 else (R,)
        return implicit_solution(lin, u, *inputs)


class TorchLinearization(ImplicitLinearization):
    """The adjoint system of a torch residual at ``u*``.

    Inputs handed to ``implicit_solution``: the residual ``R = F(u*.detach())`` with its
    autograd graph (``input_vjp`` sends ``-w`` into it), then ``u0`` if it requires
    grad (zero gradient).
    """

    def __init__(self, F: Residual, u_star: torch.Tensor, adjoint: ImplicitAdjoint, stats: NonlinearStats,
                 retcode: NonlinearReturnCode, problem_name: str, with_u0: bool):
        self.F, self.u_star, self.adjoint, self.stats = F, u_star.detach(), adjoint, stats
        self.retcode, self.with_u0 = retcode, with_u0
        self.name = problem_name

    def adjoint_solve(self, u_bar: torch.Tensor) -> torch.Tensor:
        if self.retcode is not NonlinearReturnCode.SUCCESS:
            raise ImplicitGradientError(
                f"{self.name}: no implicit gradient, the forward solve ended with {self.retcode.name} "
                f"(the implicit function theorem needs F(u*) = 0). Fix the forward solve "
                f"(sol.retcode says how), or differentiate the iterations with sensealg=DirectAdjoint()")
        adj, stats = self.adjoint, self.stats
        if not bool((u_bar != 0).any()):
            return torch.zeros_like(u_bar)
        with torch.enable_grad():
            x = self.u_star.clone().requires_grad_(True)
            y = self.F.fn(x)
        if not y.requires_grad:
            raise ImplicitGradientError(f"{self.name}: the residual does not depend on u, so dF/du = 0 is "
                                        "singular and the root is not an implicit function of the parameters")

        def vjp(v: torch.Tensor) -> torch.Tensor:
            stats.nvjp_backward += 1
            (g,) = torch.autograd.grad(y, x, v, retain_graph=True, allow_unused=True)
            return torch.zeros_like(v) if g is None else g

        rtol = adj.tolerance(u_bar.dtype)
        if callable(adj.linsolve):
            w = adj.linsolve(vjp, u_bar)
            if not isinstance(w, torch.Tensor) or w.shape != u_bar.shape:
                raise TypeError(f"ImplicitAdjoint.linsolve must return a tensor of shape {tuple(u_bar.shape)}, "
                                f"got {type(w).__name__} {getattr(w, 'shape', '')}")
            res = vjp(w) - u_bar
            rel = float(torch.linalg.vector_norm(res)) / max(float(torch.linalg.vector_norm(u_bar)), 1e-300)
            stats.residual_backward = rel
            return w
        if adj.linsolve == "direct":
            n = self.F.n
            eye = torch.eye(n, dtype=u_bar.dtype, device=u_bar.device).reshape(n, *u_bar.shape)
            (rows,) = _rows(y, (x,), eye, False)
            stats.nvjp_backward += n
            J = rows.reshape(n, n)   # row i is e_i^T J
            try:
                w = torch.linalg.solve(J.T, u_bar.reshape(-1)).reshape(u_bar.shape)
            except RuntimeError as exc:
                raise ImplicitGradientError(f"{self.name}: dF/du is singular at the solution; the root is "
                                            "not isolated, so it has no derivative") from exc
            res = vjp(w) - u_bar
            stats.residual_backward = (float(torch.linalg.vector_norm(res))
                                       / max(float(torch.linalg.vector_norm(u_bar)), 1e-300))
            return w
        if adj.linsolve == "gmres":
            result = gmres(vjp, u_bar, rtol=rtol, atol=adj.atol, restart=adj.restart, maxiter=adj.maxiter)
        else:
            result = cg_definite(vjp, u_bar, rtol=rtol, atol=adj.atol, maxiter=adj.maxiter)
        stats.nlinear_backward += result.iterations
        bnorm = max(float(torch.linalg.vector_norm(u_bar)), 1e-300)
        stats.residual_backward = result.residual / bnorm
        if not result.converged:
            hint = ("raise ImplicitAdjoint(maxiter=...) or restart, loosen rtol, or use linsolve='direct' for small "
                    "systems; a slowly converging adjoint means dF/du is nearly singular")
            if adj.linsolve == "cg":
                hint = ("CG needs a symmetric definite dF/du: if yours is not, use linsolve='gmres'; otherwise "
                        + hint)
            raise ImplicitGradientError(
                f"{self.name}: the adjoint solve (dF/du)^T w = u_bar by {adj.linsolve} did not converge "
                f"({result.iterations} iterations, relative residual {result.residual / bnorm:.2e} > "
                f"{rtol:.1e}{', ' + result.breakdown if result.breakdown else ''}): {hint}")
        return result.x

    def input_vjp(self, w: torch.Tensor) -> Sequence[torch.Tensor | None]:
        grads = [-w]
        if self.with_u0:
            grads.append(torch.zeros_like(w))
        return grads
