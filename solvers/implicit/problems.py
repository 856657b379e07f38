"""Problem values of implicit layers: a root, a steady state, a fixed point.

Each is a frozen value, like ``ODEProblem``; ``solve(problem, algorithm, sensealg=...)``
joins it with a method (``NewtonRaphson``, ``Anderson``, ``FixedPointIteration``) and
returns a :class:`~diffsim.solvers.implicit.solution.NonlinearSolution`. Internally every
problem is the root of a residual ``F(u, p) = 0`` of ``u0``'s shape (``residual``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from .._checks import as_state


def _check_callable(name: str, fn: Any, signature: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {signature}, got {type(fn).__name__}")


@dataclasses.dataclass(frozen=True, eq=False)
class NonlinearProblem:
    """Find ``u`` with ``f(u, p) = 0`` (as many equations as unknowns), starting at ``u0``.

    Args:
        f: the residual ``f(u, p) -> tensor of u's shape and dtype``. ``u`` has ``u0``'s
            shape (any shape: a leading batch dimension is part of the system). Tensors
            ``f`` uses -- in ``p``, parameters of modules it calls, tensors it closes
            over -- all get gradients under ``ImplicitAdjoint``.
        u0: the initial guess, a finite real floating tensor; its dtype and device are
            those of the solve. Non-tensors are converted.
        p: parameters handed to ``f``, any object (a tensor, a tuple or dict of tensors,
            a module, None): gradients reach the tensors ``f`` uses through autograd, so
            ``p`` is never unpacked.

    Raises:
        TypeError: ``f`` not callable, ``u0`` not real floating.
        ValueError: ``u0`` empty or with NaN/Inf entries.
    """

    f: Callable[[torch.Tensor, Any], torch.Tensor]
    u0: torch.Tensor
    p: Any = None

    def __post_init__(self):
        _check_callable("f", self.f, "f(u, p)")
        object.__setattr__(self, "u0", as_state("u0", self.u0))

    def residual(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u) = f(u, p)``."""
        return self.f(u, self.p)

    def remake(self, **changes: Any) -> NonlinearProblem:
        """A copy with some fields replaced (``u0=``, ``p=``, ``f=``)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, eq=False)
class SteadyStateProblem:
    """Find the steady state of ``du/dt = f(u, p, t)``: ``f(u, p, inf) = 0``, near ``u0``.

    As in SciML's ``SteadyStateProblem``, ``f`` is an ODE right-hand side and root
    finders call it with ``t = inf`` (a 0-d tensor of ``u0``'s dtype), so write it
    autonomous or well defined at ``t = inf``. ``NewtonRaphson`` finds the nearest root,
    stable or not; check the Jacobian's eigenvalues if stability matters.

    Args:
        f: ``f(u, p, t) -> du/dt`` of ``u``'s shape.
        u0, p: as in :class:`NonlinearProblem`.
    """

    f: Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]
    u0: torch.Tensor
    p: Any = None

    def __post_init__(self):
        _check_callable("f", self.f, "f(u, p, t)")
        object.__setattr__(self, "u0", as_state("u0", self.u0))

    def residual(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u) = f(u, p, inf)``."""
        return self.f(u, self.p, torch.full((), float("inf"), dtype=u.dtype, device=u.device))

    def remake(self, **changes: Any) -> SteadyStateProblem:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, eq=False)
class FixedPointProblem:
    """Find ``u = g(u, p)``, starting at ``u0`` (the residual is ``g(u, p) - u``).

    The form of deep-equilibrium layers (``z = tanh(W z + U x + b)``). ``Anderson`` and
    ``FixedPointIteration`` iterate ``g``; ``NewtonRaphson`` solves ``g(u) - u = 0``.

    Args:
        g: ``g(u, p) -> tensor of u's shape``.
        u0, p: as in :class:`NonlinearProblem`.
    """

    g: Callable[[torch.Tensor, Any], torch.Tensor]
    u0: torch.Tensor
    p: Any = None

    def __post_init__(self):
        _check_callable("g", self.g, "g(u, p)")
        object.__setattr__(self, "u0", as_state("u0", self.u0))

    def residual(self, u: torch.Tensor) -> torch.Tensor:
        """``F(u) = g(u, p) - u``."""
        return self.g(u, self.p) - u

    def remake(self, **changes: Any) -> FixedPointProblem:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)


IMPLICIT_PROBLEMS = (NonlinearProblem, SteadyStateProblem, FixedPointProblem)
