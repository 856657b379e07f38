"""``SDEProblem``: the Itô SDE to solve (a value)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from .._checks import as_state, as_tspan, check_params


@dataclasses.dataclass(frozen=True, eq=False)
class SDEProblem:
    """The Itô SDE ``du = f(u, p, t) dt + g(u, p, t) dW`` with diagonal noise.

    Each entry of ``u`` is driven by its own independent Brownian motion, so ``g``
    returns a tensor of ``u``'s shape (the diagonal of the noise matrix).

    Args:
        f: drift ``f(u, p, t) -> tensor like u``.
        g: diffusion ``g(u, p, t) -> tensor like u`` (diagonal noise).
        u0: initial state (any shape, real floating).
        tspan: ``(t0, t1)`` in seconds; ``t1 < t0`` is allowed.
        p: parameters as in :class:`~solvers.ode.problem.ODEProblem`.

    Raises:
        TypeError, ValueError: as :class:`~solvers.ode.problem.ODEProblem`.
    """

    f: Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]
    u0: torch.Tensor
    tspan: tuple[float, float]
    p: Any = None

    def __post_init__(self):
        for name in ("f", "g"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name} must be callable as {name}(u, p, t), got {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "u0", as_state("u0", self.u0))
        object.__setattr__(self, "tspan", as_tspan(self.tspan))
        object.__setattr__(self, "p", check_params(self.p))

    def remake(self, **changes: Any) -> SDEProblem:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)
