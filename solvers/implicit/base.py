"""``AbstractNonlinearSolver``: what a root / fixed-point method implements.

A method is two functions, as diffrax's solvers: ``init`` builds its carry (history,
counters) from the first iterate, ``step`` makes one iteration. The loop in ``solve.py``
owns everything else: tolerances, the residual history, divergence and NaN detection,
the best iterate, statistics and the sensitivity.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import torch

from .residual import Residual
from .retcode import NonlinearReturnCode


@dataclasses.dataclass
class Step:
    """One iteration's outcome: the new iterate and its residual, the carry, or why it
    failed (then ``u``/``Fu`` are the old ones)."""

    u: torch.Tensor
    Fu: torch.Tensor
    carry: Any
    failure: NonlinearReturnCode | None = None


class AbstractNonlinearSolver(abc.ABC):
    """Base of the methods of ``solve(NonlinearProblem | SteadyStateProblem |
    FixedPointProblem, method)``. Subclasses are frozen dataclasses."""

    #: whether ``solve(..., per_sample=True)`` is supported (samples iterated independently)
    supports_per_sample: bool = False

    def default_abstol(self, u0: torch.Tensor) -> float:
        """``abstol`` when ``solve`` gets none: NonlinearSolve.jl's ``eps^(4/5)`` (3.0e-13 in
        float64, 2.9e-6 in float32)."""
        return torch.finfo(u0.dtype).eps ** 0.8

    def check(self, F: Residual, *, unrolled: bool) -> None:  # noqa: B027 (optional hook)
        """Raise early if this method cannot run on ``F`` (e.g. in unrolled mode)."""

    @abc.abstractmethod
    def init(self, F: Residual, u: torch.Tensor, Fu: torch.Tensor) -> Any:
        """The carry before the first step."""

    @abc.abstractmethod
    def step(self, F: Residual, u: torch.Tensor, Fu: torch.Tensor, carry: Any, *, unrolled: bool) -> Step:
        """One iteration from ``u`` (with ``Fu = F(u)``). ``unrolled``: keep the autograd
        graph through the update (``sensealg=DirectAdjoint()``)."""

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"
