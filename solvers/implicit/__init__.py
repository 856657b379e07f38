"""Implicit layers: roots, steady states and fixed points, differentiated implicitly.

    prob = NonlinearProblem(f, u0, p)            # f(u, p) = 0
    prob = SteadyStateProblem(f, u0, p)          # f(u, p, t) = du/dt = 0
    prob = FixedPointProblem(g, u0, p)           # u = g(u, p)
    sol = solve(prob, NewtonRaphson(), sensealg=ImplicitAdjoint(linsolve="gmres"))
    sol = solve(prob, Anderson(m=5), sensealg=ImplicitAdjoint())
    sol = solve(steady_prob, DynamicSS(Tsit5()))  # integrate to the stable steady state
    sol.u, sol.retcode, sol.stats.iterations, sol.stats.residual, sol.stats.nfev

Gradients: ``ImplicitAdjoint`` (implicit function theorem, one adjoint linear solve) or
``DirectAdjoint`` (backpropagation through the iterations).
"""

from . import solve as _solve  # noqa: F401  (registers the methods)
from .base import AbstractNonlinearSolver
from .dynamic_ss import DynamicSS
from .fixed_point import Anderson, FixedPointIteration
from .linsolve import LinearSolveResult, cg, gmres
from .newton import NewtonRaphson
from .problems import FixedPointProblem, NonlinearProblem, SteadyStateProblem
from .retcode import NonlinearReturnCode, NonlinearSolveError
from .sensitivity import ImplicitAdjoint, TorchLinearization
from .solution import NonlinearSolution, NonlinearStats

__all__ = [
    "NonlinearProblem", "SteadyStateProblem", "FixedPointProblem",
    "AbstractNonlinearSolver", "NewtonRaphson", "DynamicSS", "Anderson", "FixedPointIteration",
    "ImplicitAdjoint", "TorchLinearization",
    "NonlinearSolution", "NonlinearStats", "NonlinearReturnCode", "NonlinearSolveError",
    "gmres", "cg", "LinearSolveResult",
]
