"""diffsim.solvers: ODE/SDE solvers, adjoints, regularizers and neural layers (PyTorch).

``solve`` is the same function as ``diffsim.solve``; every problem and algorithm
type registers its method with :func:`diffsim.dispatch.register`.

    prob = ODEProblem(f, u0, tspan=(0.0, 1.0), p=theta)       # f(u, p, t) -> du/dt; u0 a tensor or pytree
    sol = solve(prob, Tsit5(), rtol=1e-6, atol=1e-8, saveat=ts, sensealg=InterpolatingAdjoint(),
                event=Event(g), tstops=[0.5], norm="max")       # all optional
    sol.t, sol.u, sol(0.5), sol.stats, sol.retcode, sol.reg, sol.event_t

    sol = solve(NonlinearProblem(f, u0, p), NewtonRaphson(), sensealg=ImplicitAdjoint())  # f(u, p) = 0

Submodules: ``implicit`` (roots, steady states, fixed points), ``pde`` (reference PDE solvers, data generation, evaluation) and ``nn``
(neural PDE surrogates, neural PDE layers, training).
"""

from diffsim.dispatch import solve
from diffsim.implicit import ImplicitGradientError

from . import detest, implicit, nn, pde
from .adjoint import (
    AbstractContinuousAdjoint,
    AbstractODESensitivity,
    AbstractSensitivity,
    BacksolveAdjoint,
    DirectAdjoint,
    InterpolatingAdjoint,
    QuadratureAdjoint,
)
from .control import (
    CEM,
    LBFGS,
    MPC,
    MPPI,
    AbstractControlAlgorithm,
    AbstractGradientMethod,
    AbstractOptimizer,
    AbstractSampler,
    ActionBasis,
    Adam,
    ControlError,
    ControlHistory,
    ControlProblem,
    ControlResult,
    ControlReturnCode,
    ExpandingHorizon,
    Hybrid,
    MPCResult,
    Restarts,
    receding_horizon,
    step_weights,
)
from .implicit import (
    AbstractNonlinearSolver,
    Anderson,
    DynamicSS,
    FixedPointIteration,
    FixedPointProblem,
    ImplicitAdjoint,
    NewtonRaphson,
    NonlinearProblem,
    NonlinearReturnCode,
    NonlinearSolution,
    NonlinearSolveError,
    NonlinearStats,
    SteadyStateProblem,
)
from .neural import ModuleField, NeuralODE, NeuralSDE
from .ode import (
    BS3,
    DP5,
    DP8,
    RK4,
    AbstractAdaptiveSolver,
    AbstractExplicitRK,
    AbstractODESolver,
    AbstractRosenbrock,
    AbstractStiffSolver,
    ButcherTableau,
    Euler,
    Event,
    Heun,
    Midpoint,
    ODEProblem,
    Rodas5P,
    Rosenbrock23,
    Tsit5,
)
from .regularization import GlobalRegularization, LocalRegularization
from .retcode import ReturnCode, SolveError
from .sde import (
    AbstractAdaptiveSDESolver,
    AbstractSDESolver,
    AdaptiveMilstein,
    BrownianPath,
    EulerMaruyama,
    Milstein,
    SDEProblem,
)
from .solution import ODESolution, Stats
from .stepping.controller import PIController

__all__ = [
    "solve", "detest", "pde", "nn", "implicit",
    "ODEProblem", "SDEProblem", "Event",
    "ODESolution", "Stats", "ReturnCode", "SolveError",
    "AbstractODESolver", "AbstractAdaptiveSolver", "AbstractStiffSolver", "AbstractExplicitRK",
    "AbstractRosenbrock", "ButcherTableau", "PIController",
    "Euler", "Midpoint", "Heun", "RK4", "BS3", "DP5", "Tsit5", "DP8", "Rosenbrock23", "Rodas5P",
    "AbstractSensitivity", "AbstractODESensitivity", "AbstractContinuousAdjoint",
    "DirectAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint",
    "GlobalRegularization", "LocalRegularization",
    "AbstractSDESolver", "AbstractAdaptiveSDESolver", "BrownianPath", "EulerMaruyama", "Milstein",
    "AdaptiveMilstein",
    "NonlinearProblem", "SteadyStateProblem", "FixedPointProblem", "NonlinearSolution", "NonlinearStats",
    "NonlinearReturnCode", "NonlinearSolveError", "AbstractNonlinearSolver", "NewtonRaphson", "DynamicSS", "Anderson",
    "FixedPointIteration", "ImplicitAdjoint", "ImplicitGradientError",
    "NeuralODE", "NeuralSDE", "ModuleField",
    "ControlProblem", "ControlResult", "ControlHistory", "ControlReturnCode", "ControlError",
    "AbstractControlAlgorithm", "AbstractOptimizer", "AbstractGradientMethod", "AbstractSampler",
    "Adam", "LBFGS", "CEM", "MPPI", "Hybrid", "Restarts", "MPC", "MPCResult", "receding_horizon",
    "ActionBasis", "ExpandingHorizon", "step_weights",
]
