"""Projected Adam: ``torch.optim.Adam`` steps, then a projection onto the bounds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from .base import AbstractGradientMethod, Context, StepInfo
from .checks import number, positive_int
from .evaluator import Evaluator
from .problem import ControlProblem

SCHEDULES = ("constant", "cosine", "exponential")
#: ``Adam(reject=...)`` ends converged once rejections halved the rate this far
MIN_LR_SCALE = 2.0 ** -10


@dataclasses.dataclass
class AdamState:
    x: torch.Tensor
    opt: torch.optim.Adam
    sched: Any
    #: the last iterate whose loss and gradient evaluated (None before the first)
    good: torch.Tensor | None = None
    #: failed evaluations in a row (steps taken back since the last good iterate)
    backtracks: int = 0
    #: the learning rate's factor after rejected steps (1: none; it grows back by 2 per
    #: accepted step)
    lr_scale: float = 1.0
    #: the most ``lr_scale`` grows back to: halved for good by each rejected step
    #: (``Adam(reject=...)``), so that a rejection cannot recur in a cycle
    lr_cap: float = 1.0
    #: the lowest loss of this (re)start and its iterate (None before the first)
    best: float | None = None
    best_x: torch.Tensor | None = None
    best_grad: torch.Tensor | None = None


def _scale_lr(state: AdamState, factor: float) -> None:
    """Multiply the learning rate of every later step by ``factor`` (through the
    scheduler's base rates, which set the rate at each step)."""
    state.lr_scale *= factor
    sched = state.sched
    if hasattr(sched, "base_lrs"):
        sched.base_lrs = [lr * factor for lr in sched.base_lrs]
    for group in state.opt.param_groups:
        group["lr"] *= factor
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.min_lrs = [lr * factor for lr in sched.min_lrs]


def check_scheduler(scheduler: Any) -> None:
    if scheduler is not None and not callable(scheduler):
        raise TypeError("scheduler must be None or a factory optimizer -> torch.optim.lr_scheduler "
                        "scheduler (e.g. lambda opt: torch.optim.lr_scheduler.StepLR(opt, 50)), got "
                        f"{type(scheduler).__name__}")


def make_scheduler(scheduler: Callable, opt: torch.optim.Optimizer):
    sched = scheduler(opt)
    if not isinstance(sched, (torch.optim.lr_scheduler.LRScheduler,
                              torch.optim.lr_scheduler.ReduceLROnPlateau)):
        raise TypeError(f"scheduler(opt) must return a torch.optim.lr_scheduler scheduler, got "
                        f"{type(sched).__name__}")
    return sched


def scheduler_step(sched, loss: float) -> None:
    """Advance a torch scheduler by one iteration (``ReduceLROnPlateau`` reads the loss)."""
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(loss)
    else:
        sched.step()


@dataclasses.dataclass(frozen=True)
class Adam(AbstractGradientMethod):
    """Adam (Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015) on the
    controls, projected onto the bounds after every step (projected gradient descent).

    Each iteration evaluates the loss and its gradient at the current iterate (1
    evaluation + 1 backward pass), clips the gradient, takes an Adam step and clips the
    controls into ``[lo, hi]``. An iterate whose evaluation fails (a NaN/Inf loss or
    gradient, or a simulation error the solve catches, e.g. a contact solve that does not
    converge) is rejected: the step is halved back towards the last iterate that evaluated
    (Adam's moments untouched) and the learning rate of the later steps halved (a
    shrinking trust region; it doubles back with each accepted step), up to ``backtrack``
    times in a row; then, or at a failed first iterate, the run ends with
    ``ControlReturnCode.NON_FINITE`` and the best finite iterate in ``res.u``. Non-finite
    values never reach the optimizer state.

    Args:
        lr: step size (in control units; Adam's steps are about ``lr`` per entry).
        betas: Adam's moment decay rates, each in [0, 1).
        eps: Adam's denominator guard (> 0).
        grad_clip: clip the gradient's 2-norm to this value (None: no clipping).
        schedule: learning-rate schedule: ``"constant"``, ``"cosine"`` (from ``lr`` to
            ``lr_min`` over the run's ``maxiters``, else ``maxevals``), ``"exponential"``
            (``lr * gamma**k``), or a callable ``k -> factor`` multiplying ``lr`` at
            iteration ``k`` (0-based; torch's ``LambdaLR``).
        lr_min: the final learning rate of ``"cosine"``.
        gamma: the decay factor of ``"exponential"``, in (0, 1].
        scheduler: instead of ``schedule``, any ``torch.optim.lr_scheduler``: a factory
            called with the run's ``torch.optim.Adam`` that returns the scheduler, e.g.
            ``lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1,
            total_steps=200)``; stepped once per iteration (``ReduceLROnPlateau`` with the
            iteration's loss). A fresh scheduler is made at every (re)start of the method.
        backtrack: failed evaluations in a row that step back (halving) before the run
            ends with ``NON_FINITE``; 0 ends it at the first.
        reject: a finite loss above ``reject`` times the lowest of the run so far (> 1;
            None: never) sends the iterate back to that best point, with fresh moments and
            the learning rate halved for the rest of the run, to step from there again;
            the run ends converged once the rate is 2**-10 of ``lr``. For losses with cliffs (a
            grip or a contact lost): there one step lands far above the best, and Adam's
            momentum carries it on over a plateau whose gradient does not lead back. For
            losses >= 0 (off while the best is <= 0).

    Raises:
        ValueError, TypeError: options out of range (named in the message).
    """

    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float | None = None
    schedule: str | Callable[[int], float] = "constant"
    lr_min: float = 0.0
    gamma: float = 0.99
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None
    backtrack: int = 4
    reject: float | None = None

    def __post_init__(self):
        number("lr", self.lr, lo=0.0, lo_open=True)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {self.betas!r}")
        for i, b in enumerate(self.betas):
            number(f"betas[{i}]", b, lo=0.0, hi=1.0, hi_open=True)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        number("eps", self.eps, lo=0.0, lo_open=True)
        if self.grad_clip is not None:
            number("grad_clip", self.grad_clip, lo=0.0, lo_open=True)
        if not callable(self.schedule) and self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))} or a "
                             f"callable k -> factor, got {self.schedule!r}")
        number("lr_min", self.lr_min, lo=0.0, hi=float(self.lr))
        number("gamma", self.gamma, lo=0.0, hi=1.0, lo_open=True)
        check_scheduler(self.scheduler)
        positive_int("backtrack", self.backtrack, minimum=0)
        if self.reject is not None:
            number("reject", self.reject, lo=1.0, lo_open=True)
        if self.scheduler is not None and self.schedule != "constant":
            raise ValueError(f"give either schedule= ({self.schedule!r}) or scheduler=, not both")

    def _factor(self, ctx: Context) -> Callable[[int], float]:
        if callable(self.schedule):
            return self.schedule
        if self.schedule == "exponential":
            return lambda k: self.gamma**k
        if self.schedule == "cosine":
            budgets = [x for x in (ctx.maxiters, ctx.maxevals) if x is not None]
            if not budgets:
                raise ValueError("schedule='cosine' needs maxiters= or maxevals= to know the run's "
                                 "length; under maxtime= alone use scheduler= (e.g. "
                                 "ReduceLROnPlateau) or schedule='exponential'")
            n = min(budgets)
            floor = self.lr_min / self.lr
            return lambda k: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(k, n) / max(n - 1, 1)))
        return lambda k: 1.0

    def _step(self, prob: ControlProblem, state: AdamState) -> None:
        """One projected Adam step from ``state.x`` with the gradient in ``x.grad``."""
        x = state.x
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([x], self.grad_clip)
        state.opt.step()
        with torch.no_grad():
            x.copy_(prob.project(x))

    def _too_high(self, state: AdamState, value: float) -> bool:
        return (self.reject is not None and state.best is not None and state.best > 0
                and value > self.reject * state.best)

    def init(self, prob: ControlProblem, u: torch.Tensor, ctx: Context) -> AdamState:
        x = u.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=self.lr, betas=self.betas, eps=self.eps)
        if self.scheduler is not None:
            sched = make_scheduler(self.scheduler, opt)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, self._factor(ctx))
        return AdamState(x, opt, sched)

    def step(self, prob: ControlProblem, state: AdamState, ev: Evaluator) -> tuple[AdamState, StepInfo]:
        x = state.x
        value, grad = ev.value_and_grad(x)
        info = StepInfo(losses=torch.tensor([value], dtype=x.dtype))
        if grad is None:
            if state.good is None or state.backtracks >= self.backtrack:
                info.failed = True
                return state, info
            # reject the step: halfway back towards the last iterate that evaluated, and
            # halve the learning rate (a trust region: Adam's steps are about lr whatever
            # the gradient, so at full rate the next ones would walk into the same failure)
            state.backtracks += 1
            with torch.no_grad():
                x.copy_(state.good + 0.5 * (x - state.good))
            _scale_lr(state, 0.5)
            return state, info
        if self._too_high(state, value):
            # back to the best point with fresh moments (the momentum that carried the
            # iterate over the cliff would carry it on) and half the rate, and step from
            # there with its stored gradient
            with torch.no_grad():
                x.copy_(state.best_x)
            x.grad = state.best_grad.clone()
            state.opt.state.clear()
            state.good, state.backtracks = state.best_x.clone(), 0
            state.lr_cap *= 0.5
            _scale_lr(state, min(1.0, state.lr_cap / state.lr_scale))
            info.converged = state.lr_cap < MIN_LR_SCALE
            self._step(prob, state)
            return state, info
        if state.best is None or value < state.best:
            state.best, state.best_x, state.best_grad = value, x.detach().clone(), grad.detach().clone()
        state.good, state.backtracks = x.detach().clone(), 0
        if state.lr_scale < state.lr_cap:   # grows back while steps succeed
            _scale_lr(state, min(2.0, state.lr_cap / state.lr_scale))
        self._step(prob, state)
        scheduler_step(state.sched, value)
        return state, info
