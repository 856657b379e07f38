"""``Hybrid(sampler, gradient)``: sample globally, then refine the best samples with gradients."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

from diffsim.dispatch import register

from .base import AbstractControlAlgorithm, AbstractGradientMethod, AbstractSampler
from .checks import number, positive_int
from .problem import ControlProblem
from .result import ControlResult
from .retcode import ControlReturnCode
from .solve import Iteration, check_options, combine, finish, left, make_generator, run, spent
from .temporal import ExpandingHorizon


@dataclasses.dataclass(frozen=True)
class Hybrid(AbstractControlAlgorithm):
    """Run a sampler, then refine its best controls with a gradient method.

    Under contact the loss landscape has flat regions (no contact, zero gradient) and
    kinks, where gradient descent from a poor start stalls; a sampler finds the basin and
    the gradient method then converges inside it. ThinShellLab (Wang et al., "Thin-shell
    object manipulations with differentiable physics simulations", ICLR 2024) found this
    sample-then-refine scheme necessary for its contact-rich tasks.

    The budget of ``solve`` is shared: the sampler stage gets ``sampler_iters``
    iterations if given, else ``sampler_fraction`` of each budget (``maxevals``,
    ``maxtime``, else ``maxiters``); the gradient stage gets what is left. With
    ``restarts > 1`` the sampler stage is that many independent sampler runs (restart
    ``r`` draws its random numbers from seed ``seed + 7919 r``), each with an equal
    share of the sampler budget and each starting from ``u0``: a run whose Gaussian
    collapses into a poor basin is outvoted by the others. Each restart hands its
    ``top_k`` best distinct points to the gradient stage, which refines every start with
    an equal share of what is left (re-evaluating the start once, for its gradient); the
    best point of all stages is the result. ``res.stages`` holds every stage's result in
    the order they ran; ``history.stage`` tells the stages apart. A ``horizon=`` schedule
    of ``solve`` applies to the gradient stage only (samplers see the full loss).

    Args:
        sampler: a sampling method (``CEM``, ``MPPI``).
        gradient: a gradient method (``Adam``, ``LBFGS``).
        sampler_iters: iterations of the sampler stage, split among the restarts (None:
            use ``sampler_fraction``).
        sampler_fraction: share of the budget for the sampler stage, in (0, 1).
        restarts: independent sampler runs (>= 1).
        top_k: best distinct points of each restart refined by the gradient method (>= 1).

    Raises:
        TypeError: ``sampler``/``gradient`` of the wrong kind.
        ValueError: options out of range.
    """

    sampler: AbstractSampler
    gradient: AbstractGradientMethod
    sampler_iters: int | None = None
    sampler_fraction: float = 0.5
    restarts: int = 1
    top_k: int = 1

    def __post_init__(self):
        if not isinstance(self.sampler, AbstractSampler):
            raise TypeError(f"Hybrid's sampler must be a sampling method (CEM, MPPI), got "
                            f"{type(self.sampler).__name__}")
        if not isinstance(self.gradient, AbstractGradientMethod):
            raise TypeError(f"Hybrid's gradient must be a gradient method (Adam, LBFGS), got "
                            f"{type(self.gradient).__name__}")
        if self.sampler_iters is not None:
            positive_int("sampler_iters", self.sampler_iters)
        number("sampler_fraction", self.sampler_fraction, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        positive_int("restarts", self.restarts)
        positive_int("top_k", self.top_k)

    def split(self, maxiters: int | None, maxevals: int | None,
              maxtime: float | None = None) -> tuple[int | None, int | None, float | None]:
        """The whole sampler stage's (maxiters, maxevals, maxtime)."""
        if self.sampler_iters is not None:
            iters = self.sampler_iters if maxiters is None else min(self.sampler_iters, maxiters)
            return iters, maxevals, maxtime
        f = self.sampler_fraction
        evals = None if maxevals is None else max(1, math.floor(f * maxevals))
        secs = None if maxtime is None else f * maxtime
        if maxevals is None and maxtime is None:
            return max(1, round(f * maxiters)), None, None
        return maxiters, evals, secs


def _share(total, n: int, integer: bool):
    if total is None:
        return None
    return max(1, total // n) if integer else total / n


@register(ControlProblem, Hybrid)
def solve_hybrid(prob: ControlProblem, alg: Hybrid, *, maxiters: int | None = None,
                 maxevals: int | None = None, maxtime: float | None = None,
                 horizon: ExpandingHorizon | None = None, target: float | None = None,
                 progress: bool = False, callback: Callable[[Iteration], Any] | None = None,
                 seed: int | None = None, catch: Any = (), throw: bool = False,
                 **unknown: Any) -> ControlResult:
    """Minimise a :class:`ControlProblem` with :class:`Hybrid`; the keyword arguments are
    those of ``solve(ControlProblem, optimizer)``, shared by the stages."""
    opts = check_options(prob, maxiters, maxevals, maxtime, horizon, target, progress, callback,
                         seed, catch, throw, unknown, "solve(ControlProblem, Hybrid)")
    t0 = time.perf_counter()
    s_iters, s_evals, s_time = alg.split(opts.maxiters, opts.maxevals, opts.maxtime)
    R = alg.restarts
    stages: list[ControlResult] = []
    done = [0, 0, 0]   # iterations, evaluations, backward passes of the stages so far
    best = math.inf

    def go(method, u, gen, **budget):
        nonlocal best
        res = run(prob, method, u, opts, gen, offset=tuple(done), best_before=best, **budget)
        stages.append(res)
        done[0] += res.niters
        done[1] += res.nevals
        done[2] += res.nbackward
        best = min(best, res.loss)
        return res

    starts = []
    for r in range(R):
        gen = make_generator(opts.seed + 7919 * r, prob.u0.device)
        res = go(alg.sampler, prob.u0, gen, maxiters=_share(s_iters, R, True),
                 maxevals=_share(s_evals, R, True), maxtime=_share(s_time, R, False),
                 keep=alg.top_k)
        starts += list(res.top)
        if res.retcode is not ControlReturnCode.SUCCESS:
            break
    reached = opts.target is not None and best <= opts.target
    ok = stages[-1].retcode is ControlReturnCode.SUCCESS
    starts.sort(key=lambda p: p[0])
    g_iters, g_evals = left(opts.maxiters, done[0]), left(opts.maxevals, done[1])
    g_time = left(opts.maxtime, time.perf_counter() - t0)
    n = len(starts)
    if ok and not reached and n and not spent(g_iters, g_evals, g_time):
        gen = make_generator(opts.seed, prob.u0.device)
        for i, (_, u) in enumerate(starts):
            k = n - i   # later starts inherit what earlier ones left unused
            g_time = left(opts.maxtime, time.perf_counter() - t0)
            if spent(g_iters, g_evals, g_time):
                break
            res = go(alg.gradient, u, gen, maxiters=_share(g_iters, k, True),
                     maxevals=_share(g_evals, k, True), maxtime=_share(g_time, k, False),
                     horizon=opts.horizon)
            g_iters, g_evals = left(g_iters, res.niters), left(g_evals, res.nevals)
            if res.retcode is not ControlReturnCode.SUCCESS or (
                    opts.target is not None and res.loss <= opts.target):
                break
    # with a temporal schedule only the gradient stages' losses are at the full horizon
    pool = [s for s in stages if opts.horizon is None or s.horizon is not None]
    res = combine(stages, prob, alg, time.perf_counter() - t0, pool, alg.top_k)
    return finish(res, opts)
