"""The SDE front-end (Itô, diagonal noise): the problem (``problem.py``), ``solve`` for it
(``solve.py``), the Brownian path that drives it (``brownian.py``) and the methods
(``methods/``, one file each). The loop that steps a solve is shared with the ODE
front-end (``solvers/stepping``)."""

from . import solve as _solve  # noqa: F401  (registers the SDEProblem methods of solve)
from .brownian import BrownianPath
from .methods.adaptive_milstein import AdaptiveMilstein
from .methods.base import AbstractAdaptiveSDESolver, AbstractSDESolver
from .methods.euler_maruyama import EulerMaruyama
from .methods.milstein import Milstein
from .problem import SDEProblem

__all__ = ["SDEProblem", "AbstractSDESolver", "AbstractAdaptiveSDESolver", "BrownianPath", "EulerMaruyama",
           "Milstein", "AdaptiveMilstein"]
