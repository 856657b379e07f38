"""Abstract trajectory optimizers and what one iteration hands back.

An optimizer is a small immutable value with ``init`` and ``step``; the loop in
``solve.py`` owns the budget (``maxiters``/``maxevals``/``maxtime``), the history, the callback,
the progress bar and the return code. Capabilities are marker bases:
:class:`AbstractGradientMethod` differentiates the loss, :class:`AbstractSampler`
only evaluates it (populations, vectorised through ``batch_loss_fn``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import torch

from .evaluator import Evaluator
from .problem import ControlProblem


@dataclasses.dataclass(frozen=True)
class Context:
    """What a method may know about the run when it starts.

    Attributes:
        generator: the run's ``torch.Generator`` (on ``u0``'s device), seeded by ``solve``.
        maxiters: the iteration budget of this run, or None.
        maxevals: the evaluation budget of this run, or None.
        maxtime: the wall-clock budget of this run (s), or None.
    """

    generator: torch.Generator
    maxiters: int | None
    maxevals: int | None
    maxtime: float | None = None


@dataclasses.dataclass
class StepInfo:
    """What one iteration did.

    Attributes:
        losses: ``(n,)`` losses of the iteration's evaluations (``inf`` where non-finite).
        failed: the iteration hit a non-finite value that ends the run.
        converged: the method cannot make progress any more (e.g. L-BFGS at a zero
            projected gradient): the run ends with ``SUCCESS`` and saves the rest of the
            budget (a ``Hybrid`` hands it to its next start).
    """

    losses: torch.Tensor
    failed: bool = False
    converged: bool = False


class AbstractControlAlgorithm:
    """Base of every algorithm for :class:`ControlProblem` (frozen dataclasses: values);
    not instantiated itself."""

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"


class AbstractOptimizer(AbstractControlAlgorithm, abc.ABC):
    """An iterative method: ``init`` once, then ``step`` until the budget is spent."""

    @abc.abstractmethod
    def init(self, prob: ControlProblem, u: torch.Tensor, ctx: Context) -> Any:
        """The method's state, starting from the controls ``u`` (inside the bounds)."""

    @abc.abstractmethod
    def step(self, prob: ControlProblem, state: Any, ev: Evaluator) -> tuple[Any, StepInfo]:
        """One iteration: evaluate through ``ev`` (never more than ``ev.remaining`` times,
        which is >= 1 when ``step`` is called) and update the state."""


class AbstractGradientMethod(AbstractOptimizer):
    """Marker: the method differentiates the loss (each evaluation is a rollout and a
    backward pass; ``Adam`` makes one per iteration, ``LBFGS`` several)."""


class AbstractSampler(AbstractOptimizer):
    """Marker: derivative-free; each iteration evaluates a population of candidates."""
