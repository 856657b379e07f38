"""L-BFGS on the controls: ``torch.optim.LBFGS`` steps, clipped to the bounds."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .base import AbstractGradientMethod, Context, StepInfo
from .checks import number, positive_int
from .evaluator import Evaluator
from .problem import ControlProblem

LINE_SEARCHES = (None, "strong_wolfe")


class _Stop(Exception):
    """Raised inside the closure to leave ``torch.optim.LBFGS.step`` early."""


@dataclasses.dataclass
class LBFGSState:
    x: torch.Tensor
    opt: torch.optim.LBFGS
    fresh: bool = True   # no curvature pairs yet (just made or reset)
    #: failed steps in a row without progress (restarts from the best point)
    backtracks: int = 0
    #: the step length's factor: halved at each failed step, doubled back after good ones
    lr_scale: float = 1.0
    #: the best point the last good step evaluated (None before one)
    good: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class LBFGS(AbstractGradientMethod):
    """Limited-memory BFGS (Liu & Nocedal, "On the limited memory BFGS method for large
    scale optimization", Math. Programming 1989) through ``torch.optim.LBFGS``.

    One iteration is one ``torch.optim.LBFGS.step``: up to ``inner`` quasi-Newton
    iterations, each with a line search (``"strong_wolfe"``: Nocedal & Wright, Alg. 3.5)
    that may evaluate the loss several times; every evaluation is a rollout and a
    backward pass, counted against ``maxevals`` (the closure stops the step when the
    budget or the time is spent, so budgets are never exceeded).

    Bounds: torch's L-BFGS is unconstrained, so the loss is evaluated at the controls
    clipped into the bounds (``loss(clip(x))``), the gradient handed to torch is the
    projected one (zero for a coordinate on a bound whose descent direction leaves the
    box) and the iterate is clipped after each step. This is projected L-BFGS, not
    L-BFGS-B (Byrd et al. 1995, scipy's ``L-BFGS-B``): with many active bounds its
    quasi-Newton model is poorer. When a step does not move the iterate, the curvature
    pairs are dropped and the next step starts afresh; a fresh step that does not move
    either ends the run (``SUCCESS``, the rest of the budget unspent). It shines on
    smooth losses (few evaluations to high accuracy) and stalls, like any gradient
    method, on flat ones.

    Failed evaluations: where a trial point of the line search fails (a NaN/Inf loss or
    gradient, or a simulation error the solve catches), the step is abandoned, the
    iterate goes back to the best point that evaluated, the curvature pairs are dropped
    and the step length halved (it doubles back with each good step), up to
    ``backtrack`` times in a row without progress; then, or when nothing evaluated yet,
    the run ends with ``ControlReturnCode.NON_FINITE``, as ``Adam`` does. torch's line
    search cannot step over a non-finite value itself (its interpolation turns NaN), and a
    non-finite point it proposes (its float32 arithmetic overflowed) is treated the same
    way, without being evaluated.

    Args:
        lr: step length of torch's L-BFGS (1 is the natural step with a line search).
        inner: quasi-Newton iterations per iteration of ``solve`` (torch's ``max_iter``).
        history_size: curvature pairs kept (m in the paper).
        line_search: ``"strong_wolfe"`` or None (fixed steps of ``lr``: only safe on
            well-scaled problems).
        tolerance_grad, tolerance_change: torch's stopping tolerances within a step.
        backtrack: failed steps in a row that restart from the best point (halving the
            step length) before the run ends with ``NON_FINITE``; 0 ends it at the first.

    Raises:
        ValueError, TypeError: options out of range (named in the message).
    """

    lr: float = 1.0
    inner: int = 10
    history_size: int = 10
    line_search: str | None = "strong_wolfe"
    tolerance_grad: float = 1e-9
    tolerance_change: float = 1e-12
    backtrack: int = 4

    def __post_init__(self):
        number("lr", self.lr, lo=0.0, lo_open=True)
        positive_int("inner", self.inner)
        positive_int("history_size", self.history_size)
        if self.line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search must be 'strong_wolfe' or None, got {self.line_search!r}")
        number("tolerance_grad", self.tolerance_grad, lo=0.0)
        number("tolerance_change", self.tolerance_change, lo=0.0)
        positive_int("backtrack", self.backtrack, minimum=0)

    def _optimizer(self, x: torch.Tensor, lr_scale: float = 1.0) -> torch.optim.LBFGS:
        return torch.optim.LBFGS([x], lr=self.lr * lr_scale, max_iter=self.inner, history_size=self.history_size,
                                 line_search_fn=self.line_search, tolerance_grad=self.tolerance_grad,
                                 tolerance_change=self.tolerance_change)

    def init(self, prob: ControlProblem, u: torch.Tensor, ctx: Context) -> LBFGSState:
        x = u.detach().clone().requires_grad_(True)
        return LBFGSState(x, self._optimizer(x))

    def step(self, prob: ControlProblem, state: LBFGSState, ev: Evaluator) -> tuple[LBFGSState, StepInfo]:
        x = state.x
        x_before = x.detach().clone()
        losses: list[float] = []
        failed = False
        best: list = []   # [value, point] of the best evaluation of this step

        def closure() -> Any:
            nonlocal failed
            if ev.remaining < 1 or (losses and ev.out_of_time):
                raise _Stop
            if not bool(torch.isfinite(x).all()):
                # torch's line search overflowed (float32 controls, a trial loss of 1e5
                # and more): a failed step, not a point to evaluate
                failed = True
                ev.failure = "the line search proposed a non-finite point"
                raise _Stop
            value, grad = ev.value_and_grad(x, transform=prob.project)
            losses.append(value)
            if grad is None:
                failed = True
                raise _Stop
            if not best or value < best[0]:
                best[:] = [value, x.detach().clone()]
            with torch.no_grad():   # the projected gradient: no push out of the box
                xd = x.detach()
                grad[((xd <= prob.lo) & (grad > 0)) | ((xd >= prob.hi) & (grad < 0))] = 0.0
            return torch.tensor(value, dtype=x.dtype)

        try:
            state.opt.step(closure)
        except _Stop:
            pass
        if best and len(losses) > 1 and best[0] < losses[0]:
            state.backtracks = 0   # the step made progress before it failed
        if failed and state.backtracks < self.backtrack and (best or state.good is not None):
            # abandon the step: back to the best point that evaluated, no curvature
            # pairs, half the step length
            with torch.no_grad():
                x.copy_(best[1] if best else state.good)
            state.backtracks += 1
            state.lr_scale *= 0.5
            state.opt, state.fresh = self._optimizer(x, state.lr_scale), True
            return state, StepInfo(losses=torch.tensor(losses or [float("inf")], dtype=x.dtype))
        if not failed:
            state.backtracks = 0
            if best:
                state.good = best[1]
            if state.lr_scale < 1.0:   # grows back while steps succeed
                state.lr_scale = min(1.0, 2.0 * state.lr_scale)
                for group in state.opt.param_groups:
                    group["lr"] = self.lr * state.lr_scale
        with torch.no_grad():
            x.copy_(prob.project(x))
        # torch's step returns without moving when the projected gradient is below
        # tolerance_grad or the line search finds no decrease: drop the curvature pairs
        # (they may describe directions the bounds now block) and try once afresh
        stalled = not failed and torch.equal(x.detach(), x_before)
        converged = stalled and state.fresh
        if stalled and not state.fresh:
            state.opt = self._optimizer(x, state.lr_scale)
        state.fresh = stalled
        info = StepInfo(losses=torch.tensor(losses, dtype=x.dtype), failed=failed,
                        converged=converged)
        if not losses:
            info.losses = torch.full((1,), float("inf"), dtype=x.dtype)
        return state, info
