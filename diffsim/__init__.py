"""diffsim: differentiable physics simulation on Taichi and PyTorch.

The public surface is re-exported here; see README.md for a tour.
"""

from .dispatch import solve
from .errors import SimulationError
from .runtime import init

__all__ = ["init", "solve", "SimulationError"]
__version__ = "0.1.0"
