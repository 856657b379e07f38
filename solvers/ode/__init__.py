"""The ODE front-end: the problem (``problem.py``), ``solve`` for it (``solve.py``),
events, time gradients and PyTree states, and the methods (``methods/``, one file each).

The loop that steps a solve is shared with the SDE front-end (``solvers/stepping``);
how a solve is differentiated is in ``solvers/adjoint``.
"""

from . import solve as _solve  # noqa: F401  (registers the ODEProblem methods of solve)
from .events import Event
from .methods import (
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
    Heun,
    Midpoint,
    Rodas5P,
    Rosenbrock23,
    Tsit5,
)
from .problem import ODEProblem

__all__ = [
    "ODEProblem", "Event",
    "AbstractODESolver", "AbstractAdaptiveSolver", "AbstractStiffSolver", "AbstractExplicitRK",
    "AbstractRosenbrock", "ButcherTableau",
    "Euler", "Midpoint", "Heun", "RK4", "BS3", "DP5", "Tsit5", "DP8", "Rosenbrock23", "Rodas5P",
]
