"""``Hybrid(sampler, gradient)``: sample globally, then refine the best sample with gradients."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from diffsim.dispatch import register

from .base import AbstractControlAlgorithm, AbstractGradientMethod, AbstractSampler
from .checks import number, positive_int
from .problem import ControlProblem
from .result import ControlHistory, ControlResult
from .retcode import ControlReturnCode
from .solve import Iteration, check_options, finish, make_generator, run


@dataclasses.dataclass(frozen=True)
class Hybrid(AbstractControlAlgorithm):
    """Run a sampler, then refine its best controls with a gradient method.

    Under contact the loss landscape has flat regions (no contact, zero gradient) and
    kinks, where gradient descent from a poor start stalls; a sampler finds the basin and
    the gradient method then converges inside it. ThinShellLab (Wang et al., "Thin-shell
    object manipulations with differentiable physics simulations", ICLR 2024) found this
    sample-then-refine scheme necessary for its contact-rich tasks.

    The budget of ``solve`` is shared: the sampler runs ``sampler_iters`` iterations if
    given, else ``sampler_fraction`` of ``maxevals`` (when given) or of ``maxiters``; the
    gradient stage gets what is left of both budgets and starts from the sampler's best
    point (re-evaluating it once, for its gradient). The result's ``stages`` holds both
    stage results; ``history.stage`` tells the stages apart.

    Args:
        sampler: a sampling method (``CEM``, ``MPPI``).
        gradient: a gradient method (``Adam``).
        sampler_iters: iterations of the sampler stage (None: use ``sampler_fraction``).
        sampler_fraction: share of the budget for the sampler, in (0, 1).

    Raises:
        TypeError: ``sampler``/``gradient`` of the wrong kind.
        ValueError: options out of range.
    """

    sampler: AbstractSampler
    gradient: AbstractGradientMethod
    sampler_iters: int | None = None
    sampler_fraction: float = 0.5

    def __post_init__(self):
        if not isinstance(self.sampler, AbstractSampler):
            raise TypeError(f"Hybrid's sampler must be a sampling method (CEM, MPPI), got "
                            f"{type(self.sampler).__name__}")
        if not isinstance(self.gradient, AbstractGradientMethod):
            raise TypeError(f"Hybrid's gradient must be a gradient method (Adam), got "
                            f"{type(self.gradient).__name__}")
        if self.sampler_iters is not None:
            positive_int("sampler_iters", self.sampler_iters)
        number("sampler_fraction", self.sampler_fraction, lo=0.0, hi=1.0, lo_open=True, hi_open=True)

    def split(self, maxiters: int | None, maxevals: int | None) -> tuple[int | None, int | None]:
        """The sampler stage's (maxiters, maxevals)."""
        if self.sampler_iters is not None:
            iters = self.sampler_iters if maxiters is None else min(self.sampler_iters, maxiters)
            return iters, maxevals
        if maxevals is not None:
            return maxiters, max(1, math.floor(self.sampler_fraction * maxevals))
        return max(1, round(self.sampler_fraction * maxiters)), None


def _left(total: int | None, used: int) -> int | None:
    return None if total is None else total - used


@register(ControlProblem, Hybrid)
def solve_hybrid(prob: ControlProblem, alg: Hybrid, *, maxiters: int | None = None,
                 maxevals: int | None = None, target: float | None = None, progress: bool = False,
                 callback: Callable[[Iteration], Any] | None = None, seed: int | None = None,
                 catch: Any = (), throw: bool = False, **unknown: Any) -> ControlResult:
    """Minimise a :class:`ControlProblem` with :class:`Hybrid`; the keyword arguments are
    those of ``solve(ControlProblem, optimizer)``, shared by both stages."""
    opts = check_options(prob, maxiters, maxevals, target, progress, callback, seed, catch, throw,
                         unknown, "solve(ControlProblem, Hybrid)")
    gen = make_generator(opts.seed, prob.u0.device)
    s_iters, s_evals = alg.split(opts.maxiters, opts.maxevals)
    first = run(prob, alg.sampler, prob.u0, opts, gen, maxiters=s_iters, maxevals=s_evals)
    stages = (first,)
    g_iters, g_evals = _left(opts.maxiters, first.niters), _left(opts.maxevals, first.nevals)
    reached = opts.target is not None and first.loss <= opts.target
    if first.retcode is ControlReturnCode.SUCCESS and not reached and g_iters != 0 and g_evals != 0:
        second = run(prob, alg.gradient, first.u, opts, gen, maxiters=g_iters, maxevals=g_evals,
                     offset=(first.niters, first.nevals, first.nbackward), best_before=first.loss)
        stages = (first, second)
    last = stages[-1]
    hist = ControlHistory()
    hist.extend(first.history)
    best_u, best_loss = first.u, first.loss
    if len(stages) == 2:
        hist.extend(last.history, nevals_offset=first.nevals, best_before=first.loss)
        if last.loss < best_loss:
            best_u, best_loss = last.u, last.loss
    res = ControlResult(
        u=best_u, loss=best_loss, history=hist,
        nevals=sum(s.nevals for s in stages), nbackward=sum(s.nbackward for s in stages),
        niters=sum(s.niters for s in stages), nnonfinite=sum(s.nnonfinite for s in stages),
        time=sum(s.time for s in stages), retcode=last.retcode, message=last.message,
        prob=prob, alg=alg, stages=stages)
    return finish(res, opts)
