"""``NonlinearReturnCode``: how a root / steady-state / fixed-point solve ended, and the fix."""

from __future__ import annotations

from enum import Enum


class NonlinearReturnCode(str, Enum):
    """How ``solve`` of a ``NonlinearProblem``, ``SteadyStateProblem`` or ``FixedPointProblem``
    ended; each value says what to do about it.

    ``sol.successful`` is ``sol.retcode is NonlinearReturnCode.SUCCESS``. A failed solve
    returns the iterate with the smallest residual it saw (never NaN); its gradient
    (``ImplicitAdjoint``) raises, because the implicit function theorem needs a root.
    ``throw=True`` raises :class:`NonlinearSolveError` instead.
    """

    SUCCESS = "success: max|F(u)| <= max(abstol, reltol * max|F(u0)|)"
    MAX_ITERS = (
        "maxiters reached before the residual met the tolerance: raise maxiters, loosen abstol "
        "(float32 residuals rarely go below ~1e-6 relative to |u|), start nearer the solution, or "
        "use a faster method (NewtonRaphson, or Anderson with a larger m)"
    )
    NON_FINITE = (
        "non-finite residual or iterate (NaN/Inf): f overflowed or divided by zero along the "
        "iterates; start nearer the solution, use NewtonRaphson(linesearch='backtracking'), or damp "
        "the iteration (Anderson(beta<1), FixedPointIteration(damping<1))"
    )
    DIVERGED = (
        "the residual grew beyond 1e6 times its initial value: the iteration diverges (for a fixed "
        "point, g is not a contraction near u0); damp it (beta/damping < 1), start nearer the "
        "solution, or use NewtonRaphson"
    )
    STALLED = (
        "the residual stopped decreasing (the line search found no decrease of |F|^2, or the best "
        "max|F| fell by less than 1% over 25 iterations): a local minimum of |F| that is not a root, "
        "a (nearly) singular Jacobian, or a too inexact linear solve; start elsewhere, tighten "
        "linsolve_rtol or use linsolve='direct' (Newton), or raise m (Anderson)"
    )
    SINGULAR = (
        "the Jacobian dF/du is singular at an iterate (the direct linear solve failed): the "
        "root may not be isolated, or u0 sits on a critical point; start elsewhere or use "
        "linsolve='gmres'"
    )

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


class NonlinearSolveError(RuntimeError):
    """Raised by ``solve(..., throw=True)`` when a root / fixed-point solve does not succeed.

    Attributes:
        retcode: the :class:`NonlinearReturnCode`.
        iterations: iterations run.
        residual: ``max|F(u)|`` of the returned iterate.
    """

    def __init__(self, retcode: NonlinearReturnCode, iterations: int, residual: float):
        self.retcode, self.iterations, self.residual = retcode, iterations, residual
        super().__init__(f"nonlinear solve stopped after {iterations} iterations with max|F(u)| = "
                         f"{residual:.3g}: {retcode}")
