"""Temporal losses: per-step weights of a trajectory loss, and a horizon that expands.

A rollout loss may be a weighted sum of per-step losses, ``L(U) = sum_t w[t] l(x_t)``
(``x_t``: the state after ``t + 1`` controls). :func:`step_weights` spells the usual
choices; :class:`ExpandingHorizon` is an optimiser-side schedule that starts with the
first few steps and grows the horizon when the loss stops improving (FluidLab: Xian et
al., "FluidLab: a differentiable environment for benchmarking complex fluid
manipulation", ICLR 2023, ``fluidengine/losses/*_loss.py``, ``temporal_range_type =
'expand'``). Short horizons are easy (few contact events, little chaos); each
expansion starts from the best plan of the shorter problem, which lies in a good basin
of the longer one more often than the zero plan does.

A problem used with a schedule must accept the weights: ``loss_fn(U, weights=w)``
with ``w`` a ``(T,)`` tensor (``env.unwrapped.rollout_loss`` does; it stops simulating
after the last nonzero weight, so short horizons are also cheap).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .checks import number, positive_int

WEIGHTINGS = ("final", "sum", "mean")


def step_weights(kind: str, steps: int, horizon: int | None = None, *, dtype=torch.float64,
                 device=None) -> torch.Tensor:
    """``(steps,)`` weights of the per-step losses.

    Args:
        kind: ``"final"`` (the loss of the state after the last control of the horizon),
            ``"sum"`` (every step of the horizon, weight 1: FluidLab's temporal loss) or
            ``"mean"`` (every step, weight 1 / horizon).
        steps: T, the length of the control sequence.
        horizon: only steps ``< horizon`` count (default: all T).

    Raises:
        ValueError: unknown ``kind``, ``horizon`` outside [1, T].
    """
    if kind not in WEIGHTINGS:
        raise ValueError(f"weights must be one of {', '.join(map(repr, WEIGHTINGS))} or a (T,) "
                         f"tensor, got {kind!r}")
    positive_int("steps", steps)
    h = steps if horizon is None else positive_int("horizon", horizon)
    if h > steps:
        raise ValueError(f"horizon ({h}) must be <= steps ({steps})")
    w = torch.zeros(steps, dtype=dtype, device=device)
    if kind == "final":
        w[h - 1] = 1.0
    else:
        w[:h] = 1.0 if kind == "sum" else 1.0 / h
    return w


@dataclasses.dataclass(frozen=True)
class ExpandingHorizon:
    """A loss horizon that starts at ``start`` steps and grows by ``step`` when the loss
    plateaus (FluidLab's expanding temporal range), reaching all T steps at the latest
    when ``full_at`` of the run's budget is spent.

    After each iteration the schedule compares the iteration's loss with the best loss
    at the current horizon: an improvement below ``max(atol, rtol * |best|)`` counts as
    a plateau iteration; after ``patience`` of them the horizon grows. Independently, the
    horizon is at least ``start + (T - start) * progress / full_at`` (rounded down to
    the ``step`` grid; T once ``progress >= full_at``), where ``progress`` is the spent fraction of the budget (iterations,
    rollouts or seconds, whichever is furthest), so that a run under a budget always ends
    on the full problem. At each expansion ``solve`` restarts the method from the best
    controls found at the shorter horizon (its moments / line-search history belong to
    the old loss) and forgets the best loss (the losses of different horizons are not
    comparable); ``res.loss`` is a loss at the final horizon.

    Args:
        start: first horizon (steps, >= 1).
        step: steps added per expansion (>= 1).
        patience: plateau iterations before an expansion (>= 1).
        rtol, atol: what counts as an improvement (>= 0).
        full_at: budget fraction in (0, 1] by which the horizon is complete.
        weighting: how the steps inside the horizon are weighted (see
            :func:`step_weights`): ``"final"`` (the state at the horizon's end; at full
            horizon this is the usual terminal loss), ``"sum"`` (FluidLab) or ``"mean"``.

    Raises:
        TypeError, ValueError: options out of range (named in the message).
    """

    start: int = 10
    step: int = 10
    patience: int = 5
    rtol: float = 1e-2
    atol: float = 0.0
    full_at: float = 0.6
    weighting: str = "final"

    def __post_init__(self):
        positive_int("start", self.start)
        positive_int("step", self.step)
        positive_int("patience", self.patience)
        number("rtol", self.rtol, lo=0.0)
        number("atol", self.atol, lo=0.0)
        number("full_at", self.full_at, lo=0.0, hi=1.0, lo_open=True)
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(map(repr, WEIGHTINGS))}, got "
                             f"{self.weighting!r}")

    def init(self, steps: int) -> HorizonState:
        """The schedule's state for a run over ``steps`` control steps."""
        return HorizonState(self, positive_int("steps", steps), min(self.start, steps))


@dataclasses.dataclass
class HorizonState:
    """The running state of an :class:`ExpandingHorizon` (made by ``init``)."""

    schedule: ExpandingHorizon
    steps: int
    horizon: int
    best: float = math.inf
    plateau: int = 0

    def weights(self, like: torch.Tensor) -> torch.Tensor:
        """``(T,)`` weights of the current horizon (``like``'s dtype and device)."""
        return step_weights(self.schedule.weighting, self.steps, self.horizon, dtype=like.dtype,
                            device=like.device)

    def observe(self, loss: float, progress: float) -> bool:
        """Record an iteration's loss; ``progress`` in [0, 1] is the spent budget fraction.
        Returns True when the horizon grew (the caller restarts the method)."""
        s = self.schedule
        if self.horizon >= self.steps:
            return False
        if math.isfinite(loss) and self.best - loss > max(s.atol, s.rtol * abs(self.best)
                                                          if math.isfinite(self.best) else 0.0):
            self.plateau = 0
        else:
            self.plateau += 1
        self.best = min(self.best, loss) if math.isfinite(loss) else self.best
        new = self.horizon
        if self.plateau >= s.patience:
            new = self.horizon + s.step
        if progress >= s.full_at:
            floor = self.steps
        else:  # the linear ramp, rounded down to the step grid
            ramp = (self.steps - s.start) * progress / s.full_at
            floor = s.start + s.step * math.floor(ramp / s.step)
        new = min(self.steps, max(new, floor))
        if new <= self.horizon:
            return False
        self.horizon, self.best, self.plateau = new, math.inf, 0
        return True
