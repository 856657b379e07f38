"""diffsim.solvers: ODE/SDE solvers, adjoints, regularizers and neural layers (PyTorch).

``solve`` is the same function as ``diffsim.solve``; every problem and algorithm
type registers its method with :func:`diffsim.dispatch.register`.
"""

from diffsim.dispatch import solve

__all__ = ["solve"]
