"""ODE methods: explicit Runge–Kutta pairs and Rosenbrock methods, one file each, on the
abstract bases of ``base.py`` (``rosenbrock.py`` for the linearly implicit ones)."""

from .base import AbstractAdaptiveSolver, AbstractExplicitRK, AbstractODESolver, AbstractStiffSolver
from .bs3 import BS3
from .dp5 import DP5
from .dp8 import DP8
from .euler import Euler
from .heun import Heun
from .midpoint import Midpoint
from .rk4 import RK4
from .rodas5p import Rodas5P
from .rosenbrock import AbstractRosenbrock
from .rosenbrock23 import Rosenbrock23
from .tableau import ButcherTableau
from .tsit5 import Tsit5

__all__ = [
    "AbstractODESolver", "AbstractAdaptiveSolver", "AbstractStiffSolver", "AbstractExplicitRK",
    "AbstractRosenbrock", "ButcherTableau",
    "Euler", "Midpoint", "Heun", "RK4", "BS3", "DP5", "Tsit5", "DP8", "Rosenbrock23", "Rodas5P",
]
