"""SDE methods (Itô, diagonal noise) and the Brownian path that drives them."""

from . import solve as _solve  # noqa: F401  (registers SDEProblem methods)
from .adaptive_milstein import AdaptiveMilstein
from .base import AbstractAdaptiveSDESolver, AbstractSDESolver
from .brownian import BrownianPath
from .euler_maruyama import EulerMaruyama
from .milstein import Milstein

__all__ = ["AbstractSDESolver", "AbstractAdaptiveSDESolver", "BrownianPath", "EulerMaruyama", "Milstein",
           "AdaptiveMilstein"]
