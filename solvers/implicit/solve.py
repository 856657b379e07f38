"""``solve`` for ``NonlinearProblem``, ``SteadyStateProblem`` and ``FixedPointProblem``.

The loop every method shares: tolerances, residual history, divergence / NaN detection,
the best iterate, statistics, and the sensitivity (``ImplicitAdjoint`` by default, or
``DirectAdjoint`` to differentiate the iterations themselves).
"""

from __future__ import annotations

import math

import torch

from diffsim.dispatch import register, register_default
from diffsim.sensitivity import check_sensealg

from .._checks import no_unknown_kwargs, positive
from ..adjoint import AbstractODESensitivity, DirectAdjoint
from .base import AbstractNonlinearSolver
from .dynamic_ss import DynamicSS
from .fixed_point import Anderson
from .newton import NewtonRaphson
from .problems import FixedPointProblem, NonlinearProblem, SteadyStateProblem
from .residual import Residual, residual_of
from .retcode import NonlinearReturnCode, NonlinearSolveError
from .sensitivity import ImplicitAdjoint, ImplicitJob
from .solution import NonlinearSolution, NonlinearStats

ALLOWED = ("abstol", "reltol", "maxiters", "sensealg", "per_sample", "throw")

#: the residual may grow this much above its initial value before the solve is
#: declared divergent (retcode DIVERGED)
DIVERGENCE_FACTOR = 1e6
#: the solve has stalled when the best residual fell by less than STALL_DECREASE (1%)
#: over the last STALL_WINDOW iterations (retcode STALLED)
STALL_WINDOW, STALL_DECREASE = 25, 0.01


def _check_sensealg(sensealg):
    if sensealg is None:
        return ImplicitAdjoint()
    if isinstance(sensealg, (ImplicitAdjoint, DirectAdjoint)):
        return sensealg
    if isinstance(sensealg, AbstractODESensitivity):
        raise TypeError(f"sensealg={type(sensealg).__name__}() is an ODE adjoint; root and fixed-point solves take "
                        "ImplicitAdjoint() (implicit function theorem) or DirectAdjoint() (unrolled iterations)")
    check_sensealg(sensealg, (ImplicitAdjoint, DirectAdjoint), "root and fixed-point solves",
                   "ImplicitAdjoint(...), DirectAdjoint() or None")
    return sensealg


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def solve_nonlinear(prob, alg: AbstractNonlinearSolver, *, abstol: float | None = None, reltol: float = 0.0,
                    maxiters: int = 1000, sensealg=None, per_sample: bool = False, throw: bool = False,
                    **unknown) -> NonlinearSolution:
    """Solve a root, steady-state or fixed-point problem.

    Args:
        prob: ``NonlinearProblem``, ``SteadyStateProblem`` or ``FixedPointProblem``.
        alg: ``NewtonRaphson(...)`` (every problem), ``DynamicSS(...)``
            (``SteadyStateProblem``), ``Anderson(...)`` or ``FixedPointIteration(...)``
            (``FixedPointProblem``).
        abstol, reltol: converged when ``max|F(u)| <= max(abstol, reltol * max|F(u0)|)``
            (per sample with ``per_sample``); ``abstol`` defaults to ``eps^(4/5)`` of
            ``u0``'s dtype (3.0e-13 float64, 2.9e-6 float32), as NonlinearSolve.jl
            (``DynamicSS``: from its ODE tolerances).
        maxiters: iteration cap (retcode ``MAX_ITERS``).
        sensealg: ``ImplicitAdjoint(...)`` (default): gradients by one adjoint linear
            solve at the solution; ``DirectAdjoint()``: backpropagation through every
            iteration (memory grows with the iterations; the gradient is that of the
            computed iterate, including its small dependence on ``u0``).
        per_sample: the leading dimension of ``u0`` indexes independent problems (a
            batch): each sample gets its own convergence test, and ``Anderson`` its own
            mixing coefficients. Not for ``NewtonRaphson``.
        throw: raise :class:`NonlinearSolveError` instead of returning a failed solution.

    Returns:
        :class:`NonlinearSolution`; on failure ``u`` is the iterate with the smallest
        residual seen.

    Raises:
        TypeError, ValueError: bad options, or a residual of the wrong shape / dtype
            (naming the function and the shapes).
    """
    no_unknown_kwargs(f"solve({type(prob).__name__}, {type(alg).__name__})", unknown, ALLOWED)
    u0 = prob.u0
    abstol = alg.default_abstol(u0) if abstol is None else positive("abstol", abstol, allow_zero=True)
    reltol = positive("reltol", reltol, allow_zero=True)
    maxiters = _positive_int("maxiters", maxiters)
    sensealg = _check_sensealg(sensealg)
    if not isinstance(per_sample, bool) or not isinstance(throw, bool):
        raise TypeError(f"per_sample and throw must be True or False, got {per_sample!r}, {throw!r}")
    if per_sample and not alg.supports_per_sample:
        raise ValueError(f"per_sample=True is not supported by {type(alg).__name__} (its Jacobian couples the "
                         "whole state); use Anderson or FixedPointIteration, or solve the batch as one system")
    if per_sample and u0.dim() < 1:
        raise ValueError("per_sample=True needs u0 with a leading batch dimension, got a 0-d u0")

    stats = NonlinearStats()
    F = Residual(residual_of(prob), u0, stats, per_sample, problem=prob)
    unrolled = isinstance(sensealg, DirectAdjoint) and torch.is_grad_enabled()
    alg.check(F, unrolled=unrolled)
    with torch.enable_grad() if unrolled else torch.no_grad():
        u, Fu, retcode, history = _iterate(F, alg, u0 if unrolled else u0.detach(), abstol, reltol, maxiters,
                                           unrolled)
    stats.residual = history[-1] if retcode is NonlinearReturnCode.SUCCESS else float(F.norm(Fu).max())
    if isinstance(sensealg, ImplicitAdjoint):
        u = sensealg.run(ImplicitJob(F, u, u0, retcode, stats, type(prob).__name__))
    elif not unrolled:  # DirectAdjoint without grad mode: nothing to differentiate
        u = u.detach()
    if throw and retcode is not NonlinearReturnCode.SUCCESS:
        raise NonlinearSolveError(retcode, stats.iterations, stats.residual)
    return NonlinearSolution(u=u, resid=Fu.detach(), retcode=retcode, stats=stats, prob=prob, alg=alg,
                             sensealg=sensealg, history=history)


def _finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x.detach()).all())


def _iterate(F: Residual, alg: AbstractNonlinearSolver, u: torch.Tensor, abstol: float, reltol: float,
             maxiters: int, unrolled: bool):
    """The shared loop; returns ``(u, F(u), retcode, history)`` (the best iterate on failure)."""
    Fu = F(u)
    if not _finite(Fu):
        return u, Fu, NonlinearReturnCode.NON_FINITE, [math.inf]
    norm = F.norm(Fu)
    tol = torch.clamp(reltol * norm, min=abstol)
    limit = DIVERGENCE_FACTOR * max(float(norm.max()), abstol)
    history = [float(norm.max())]
    best = (u, Fu, history[0])
    best_history = [history[0]]   # best residual after each iteration
    carry = alg.init(F, u, Fu)
    k = 0
    while True:
        if bool((norm <= tol).all()):
            return u, Fu, NonlinearReturnCode.SUCCESS, history
        if history[-1] > limit:
            retcode = NonlinearReturnCode.DIVERGED
            break
        if k == maxiters:
            retcode = NonlinearReturnCode.MAX_ITERS
            break
        if k >= STALL_WINDOW and best_history[-1] > (1.0 - STALL_DECREASE) * best_history[-1 - STALL_WINDOW]:
            retcode = NonlinearReturnCode.STALLED
            break
        step = alg.step(F, u, Fu, carry, unrolled=unrolled)
        if step.failure is not None:
            retcode = step.failure
            break
        k += 1
        F.stats.iterations = k
        u, Fu, carry = step.u, step.Fu, step.carry
        if not (_finite(Fu) and _finite(u)):
            retcode = NonlinearReturnCode.NON_FINITE
            break
        norm = F.norm(Fu)
        history.append(float(norm.max()))
        if history[-1] < best[2]:
            best = (u, Fu, history[-1])
        best_history.append(best[2])
    return best[0], best[1], retcode, history


# ---------------------------------------------------------------------- registration
register(NonlinearProblem, NewtonRaphson)(solve_nonlinear)
register(SteadyStateProblem, NewtonRaphson)(solve_nonlinear)
register(SteadyStateProblem, DynamicSS)(solve_nonlinear)
register(FixedPointProblem, AbstractNonlinearSolver)(solve_nonlinear)


@register_default(NonlinearProblem)
def _default_root(prob):
    return NewtonRaphson()


@register_default(SteadyStateProblem)
def _default_steady(prob):
    return NewtonRaphson()


@register_default(FixedPointProblem)
def _default_fixed_point(prob):
    return Anderson()
