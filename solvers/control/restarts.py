"""``Restarts(method)``: when a method converges with budget left, run it again from its
best point perturbed at random, and keep the best of all runs."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from diffsim.dispatch import register

from .base import AbstractControlAlgorithm, AbstractOptimizer
from .checks import number, positive_int
from .problem import ControlProblem
from .result import ControlResult
from .retcode import ControlReturnCode
from .solve import Iteration, check_options, combine, finish, left, make_generator, run, spent
from .temporal import ExpandingHorizon


@dataclasses.dataclass(frozen=True)
class Restarts(AbstractControlAlgorithm):
    """Run ``method``; each time it ends converged with budget left, run it again from the
    best point so far plus Gaussian noise (basin hopping: Wales & Doye, J. Phys. Chem. A
    101, 1997), until the budget is spent; the result is the best point of all runs.

    Gradient methods on contact-rich losses end in shallow local minima next to a cliff (a
    grip about to slip): ``Adam(reject=...)`` steps back from the cliff and halves its rate
    until it converges, often with most of a wall-clock budget left (Fold-v3: after 230-340
    s of 600). The perturbation hops the barrier; the method descends again from there.
    A method that never reports convergence (``Adam`` without ``reject``, samplers) runs
    once, as without ``Restarts``.

    The first run follows the solve's ``horizon=`` schedule; restarts optimise the whole
    horizon (their start is already a plan for it). Run ``r`` draws the perturbation
    and its own random numbers from seed ``seed + 7919 r``, so a solve is reproducible.

    Args:
        method: the method to run (``Adam(reject=...)``, ``LBFGS``, ...).
        scale: the perturbation's standard deviation per entry, as a fraction of the
            entry's bound width (``hi - lo``: of the weights' bounds with a basis); the
            perturbed point is clipped into the bounds.
        max_restarts: the most restarts after the first run (None: as the budget allows).

    Raises:
        TypeError: ``method`` is not an iterative method.
        ValueError: options out of range (named in the message).
    """

    method: AbstractOptimizer
    scale: float = 0.1
    max_restarts: int | None = None

    def __post_init__(self):
        if not isinstance(self.method, AbstractOptimizer):
            raise TypeError(f"Restarts' method must be an iterative method (Adam, LBFGS, CEM, "
                            f"...), got {type(self.method).__name__}")
        number("scale", self.scale, lo=0.0, lo_open=True)
        if self.max_restarts is not None:
            positive_int("max_restarts", self.max_restarts)


def _perturbed(prob: ControlProblem, u: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
    gen = make_generator(seed, u.device)
    noise = torch.randn(u.shape, generator=gen, dtype=u.dtype, device=u.device)
    return prob.project(u + scale * (prob.hi - prob.lo) * noise)


@register(ControlProblem, Restarts)
def solve_restarts(prob: ControlProblem, alg: Restarts, *, maxiters: int | None = None,
                   maxevals: int | None = None, maxtime: float | None = None,
                   horizon: ExpandingHorizon | None = None, target: float | None = None,
                   progress: bool = False, callback: Callable[[Iteration], Any] | None = None,
                   seed: int | None = None, catch: Any = (), throw: bool = False,
                   **unknown: Any) -> ControlResult:
    """Minimise a :class:`ControlProblem` with :class:`Restarts`; the keyword arguments are
    those of ``solve(ControlProblem, optimizer)``, shared by the runs."""
    opts = check_options(prob, maxiters, maxevals, maxtime, horizon, target, progress, callback,
                         seed, catch, throw, unknown, "solve(ControlProblem, Restarts)")
    t0 = time.perf_counter()
    stages: list[ControlResult] = []
    done = [0, 0, 0]   # iterations, evaluations, backward passes of the runs so far
    best, u = math.inf, prob.u0
    for r in itertools.count():
        iters, evals = left(opts.maxiters, done[0]), left(opts.maxevals, done[1])
        secs = left(opts.maxtime, time.perf_counter() - t0)
        if stages and spent(iters, evals, secs):
            break
        res = run(prob, alg.method, u, opts, make_generator(opts.seed + 7919 * r, prob.u0.device),
                  maxiters=iters, maxevals=evals, maxtime=secs,
                  horizon=opts.horizon if r == 0 else None, offset=tuple(done), best_before=best)
        if res.nevals == 0 and stages:   # the budget ran out before the restart evaluated
            break
        stages.append(res)
        done[0] += res.niters
        done[1] += res.nevals
        done[2] += res.nbackward
        best = min(best, res.loss)
        # the runs whose losses are over the whole horizon (the first may end short of it)
        full = [s for s in stages if s.horizon is None or s.horizon >= prob.steps]
        if (res.retcode is not ControlReturnCode.SUCCESS or not full
                or (opts.target is not None and best <= opts.target)
                or (alg.max_restarts is not None and r >= alg.max_restarts)):
            break
        u = _perturbed(prob, min(full, key=lambda s: s.loss).u, alg.scale, opts.seed + 7919 * (r + 1))
    return finish(combine(stages, prob, alg, time.perf_counter() - t0, full), opts)
