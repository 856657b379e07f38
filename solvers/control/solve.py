"""``solve(ControlProblem, optimizer, ...)``: the loop every iterative method shares.

The loop owns the budget (``maxiters`` / ``maxevals`` / ``maxtime``), the temporal
schedule (``horizon=``), the history, the callback, the progress bar and the return
code; a method only implements ``init`` and ``step``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from diffsim.dispatch import register, register_default

from .._checks import no_unknown_kwargs
from .adam import Adam
from .base import AbstractOptimizer, Context
from .checks import number, positive_int
from .evaluator import Evaluator
from .problem import ControlProblem
from .result import ControlHistory, ControlResult
from .retcode import ControlError, ControlReturnCode
from .temporal import ExpandingHorizon, HorizonState

ALLOWED = ("maxiters", "maxevals", "maxtime", "horizon", "target", "progress", "callback", "seed",
           "catch", "throw")


@dataclasses.dataclass(frozen=True)
class Iteration:
    """What ``callback`` receives after each iteration (return a true value to stop).

    Attributes:
        iteration: iterations run so far (1-based; counts every stage of a ``Hybrid``).
        stage: the algorithm that ran it (``"CEM"``, ``"Adam"``, ...).
        u: the best controls so far (do not modify in place).
        loss: the best loss so far.
        mean: the mean finite loss of this iteration.
        nevals, nbackward: evaluations and backward passes so far.
        time: seconds since the run (of this stage) started.
        horizon: the loss horizon of a temporal schedule (None without one).
    """

    iteration: int
    stage: str
    u: torch.Tensor
    loss: float
    mean: float
    nevals: int
    nbackward: int
    time: float = 0.0
    horizon: int | None = None


@dataclasses.dataclass(frozen=True)
class Options:
    """The validated keyword arguments of a solve."""

    maxiters: int | None
    maxevals: int | None
    maxtime: float | None
    horizon: ExpandingHorizon | None
    target: float | None
    progress: bool
    callback: Callable[[Iteration], Any] | None
    seed: int
    catch: tuple[type[BaseException], ...]
    throw: bool


def check_options(prob: ControlProblem, maxiters, maxevals, maxtime, horizon, target, progress,
                  callback, seed, catch, throw, unknown: dict, where: str) -> Options:
    no_unknown_kwargs(where, unknown, ALLOWED)
    if maxiters is None and maxevals is None and maxtime is None:
        raise ValueError(f"{where} needs a budget: give maxiters= (iterations), maxevals= (loss "
                         "evaluations, i.e. simulated rollouts) and/or maxtime= (seconds)")
    if maxiters is not None:
        positive_int("maxiters", maxiters)
    if maxevals is not None:
        positive_int("maxevals", maxevals)
    if maxtime is not None:
        maxtime = number("maxtime", maxtime, lo=0.0, lo_open=True)
    if horizon is not None and not isinstance(horizon, ExpandingHorizon):
        raise TypeError(f"horizon must be None or a dss.ExpandingHorizon (an optimiser-side "
                        f"schedule of the loss horizon), got {type(horizon).__name__}")
    if target is not None:
        target = number("target", target)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if not isinstance(throw, bool):
        raise TypeError(f"throw must be True or False, got {throw!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be None or callable as callback(it: Iteration) -> bool, got "
                        f"{type(callback).__name__}")
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()))  # follows torch.manual_seed
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"seed must be None or an int >= 0, got {seed!r}")
    if isinstance(catch, type):
        catch = (catch,)
    if not isinstance(catch, (tuple, list)) or not all(
            isinstance(c, type) and issubclass(c, Exception) for c in catch):
        raise TypeError(f"catch must be an exception class or a tuple of them, got {catch!r}")
    return Options(maxiters, maxevals, maxtime, horizon, target, progress, callback, seed,
                   tuple(catch), throw)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _progress(it: int, ev: Evaluator, t: float, maxiters, maxevals, maxtime) -> float:
    """The spent fraction of the tightest budget, in [0, 1]."""
    out = 0.0
    if maxiters is not None:
        out = max(out, it / maxiters)
    if maxevals is not None:
        out = max(out, ev.nevals / maxevals)
    if maxtime is not None:
        out = max(out, t / maxtime)
    return min(out, 1.0)


def run(prob: ControlProblem, alg: AbstractOptimizer, u: torch.Tensor, opts: Options,
        generator: torch.Generator, *, maxiters: int | None, maxevals: int | None,
        maxtime: float | None = None, horizon: ExpandingHorizon | None = None, keep: int = 1,
        offset: tuple[int, int, int] = (0, 0, 0), best_before: float = math.inf) -> ControlResult:
    """Run ``alg`` from ``u`` under the given budget (iterations, evaluations, seconds).

    ``horizon``: a temporal schedule for this run (its weights reach ``loss_fn``; at each
    expansion the method restarts from the best point of the shorter horizon). ``keep``:
    how many of the best distinct points the result's ``top`` holds. ``offset``
    (iterations, evaluations, backward passes) and ``best_before`` are those of earlier
    stages, for the callback and the progress bar only; the result counts this run alone.
    """
    t0 = time.perf_counter()
    deadline = None if maxtime is None else t0 + maxtime
    sched: HorizonState | None = None if horizon is None else horizon.init(prob.steps)
    weights = None
    if sched is not None:
        def weights():
            return sched.weights(prob.u0)
    ev = Evaluator(prob, maxevals, opts.catch, deadline=deadline, weights=weights, keep=keep)
    name = type(alg).__name__
    hist = ControlHistory()
    retcode, message, it = ControlReturnCode.SUCCESS, "", 0
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm

        if maxiters is not None:
            total, unit = maxiters, "it"
        elif maxevals is not None:
            total, unit = maxevals, "eval"
        else:
            total, unit = round(maxtime, 1), "s"
        bar = tqdm(total=total, unit=unit, desc=name, dynamic_ncols=True)
    ctx = Context(generator, maxiters, maxevals, maxtime)
    force = False  # one more iteration after an expansion, so the new horizon is evaluated
    try:
        state = alg.init(prob, u, ctx)
        while ((maxiters is None or it < maxiters) and ev.remaining >= 1
               and (force or not ev.out_of_time)):
            force = False
            before = ev.nevals
            state, info = alg.step(prob, state, ev)
            it += 1
            best = min(ev.best_loss, best_before)
            hist.record(info.losses, best, ev.nevals, name,
                        None if sched is None else sched.horizon)
            elapsed = time.perf_counter() - t0
            if bar is not None:
                if unit == "s":
                    bar.n = round(min(elapsed, maxtime), 1)
                    bar.refresh()
                else:
                    bar.update(1 if unit == "it" else ev.nevals - before)
                post = dict(best=f"{best:.4g}", mean=f"{hist.mean[-1]:.4g}", nevals=ev.nevals + offset[1])
                if sched is not None:
                    post["horizon"] = sched.horizon
                bar.set_postfix(**post)
            if info.failed:
                retcode = ControlReturnCode.NON_FINITE
                message = f"{ev.failure or 'non-finite loss'} in iteration {it + offset[0]} ({name})"
                break
            if info.converged and (sched is None or sched.horizon >= sched.steps):
                break
            if opts.callback is not None and opts.callback(Iteration(
                    it + offset[0], name, ev.best_u, best, hist.mean[-1], ev.nevals + offset[1],
                    ev.nbackward + offset[2], elapsed, None if sched is None else sched.horizon)):
                retcode = ControlReturnCode.TERMINATED
                break
            if sched is not None and sched.horizon < sched.steps:
                more = (maxiters is None or it < maxiters) and ev.remaining >= 1
                progress = _progress(it, ev, elapsed, maxiters, maxevals, maxtime)
                if more and sched.observe(hist.minimum[-1], progress):
                    # the loss changed: restart the method from the best plan so far, and
                    # forget losses of the shorter horizon (not comparable)
                    state = alg.init(prob, ev.best_u, ctx)
                    ev.reset_best()
                    best_before = math.inf
                    force = True
                    continue
            if opts.target is not None and best <= opts.target and (
                    sched is None or sched.horizon >= sched.steps):
                break
    finally:
        if bar is not None:
            bar.close()
    return ControlResult(u=ev.best_u, loss=ev.best_loss, history=hist, nevals=ev.nevals,
                         nbackward=ev.nbackward, niters=it, nnonfinite=ev.nnonfinite,
                         time=time.perf_counter() - t0, retcode=retcode, message=message,
                         prob=prob, alg=alg, top=tuple(ev.top),
                         horizon=None if sched is None else sched.horizon)


def left(total, used):
    """What is left of a budget ``total`` (None: unlimited) after ``used``."""
    return None if total is None else total - used


def spent(iters, evals, secs) -> bool:
    """Whether any of the budgets left (None: unlimited) is used up."""
    return any(x is not None and x <= 0 for x in (iters, evals, secs))


def combine(stages: list, prob: ControlProblem, alg, seconds: float, pool: list,
            top_k: int = 1) -> ControlResult:
    """One result of a method run in stages (``Hybrid``'s sampler and gradient runs,
    ``Restarts``' runs): the best point of the stages in ``pool`` (those whose losses
    compare: with a temporal schedule, not a stage that ended on a shorter horizon; all
    stages if none), one history, summed counts, the last stage's return code."""
    hist = ControlHistory()
    nev, best_so_far = 0, math.inf
    for s in stages:
        hist.extend(s.history, nevals_offset=nev, best_before=best_so_far)
        nev += s.nevals
        best_so_far = min(best_so_far, s.loss)
    winner = min(pool or stages, key=lambda s: s.loss)
    last = stages[-1]
    return ControlResult(
        u=winner.u, loss=winner.loss, history=hist,
        nevals=sum(s.nevals for s in stages), nbackward=sum(s.nbackward for s in stages),
        niters=sum(s.niters for s in stages), nnonfinite=sum(s.nnonfinite for s in stages),
        time=seconds, retcode=last.retcode, message=last.message,
        prob=prob, alg=alg, stages=tuple(stages),
        top=tuple(sorted((p for s in stages for p in s.top), key=lambda p: p[0])[:top_k]),
        horizon=last.horizon)


def finish(res: ControlResult, opts: Options) -> ControlResult:
    if opts.throw and not res.successful:
        raise ControlError(res.retcode, res.niters, res.message, res)
    return res


@register_default(ControlProblem)
def _default_control_algorithm(prob: ControlProblem) -> AbstractOptimizer:
    return Adam()


@register(ControlProblem, AbstractOptimizer)
def solve_control(prob: ControlProblem, alg: AbstractOptimizer, *, maxiters: int | None = None,
                  maxevals: int | None = None, maxtime: float | None = None,
                  horizon: ExpandingHorizon | None = None, target: float | None = None,
                  progress: bool = False, callback: Callable[[Iteration], Any] | None = None,
                  seed: int | None = None, catch: Any = (), throw: bool = False,
                  **unknown: Any) -> ControlResult:
    """Minimise a :class:`ControlProblem` with an iterative method (``Adam``, ``LBFGS``,
    ``CEM``, ``MPPI``).

    Args:
        prob: the problem.
        alg: the method (``Adam()`` when ``solve(prob)`` gets none).
        maxiters: iteration budget (an iteration is one gradient step, or one population).
        maxevals: evaluation budget (rollouts); the run never exceeds it (a sampler's last
            population shrinks to fit).
        maxtime: wall-clock budget in seconds, checked between iterations and between the
            candidates of a population evaluated one by one (a gradient step or a batched
            population is never cut, so a run may overshoot by one of them). At least one
            of the three budgets is required; the first one spent ends the run.
        horizon: an :class:`ExpandingHorizon` schedule: ``loss_fn`` is called as
            ``loss_fn(U, weights=w)`` with the schedule's ``(T,)`` step weights, which grow
            during the run (``res.horizon`` is the final horizon).
        target: stop as soon as the best loss is <= target (at the full horizon).
        progress: show a tqdm progress bar (stderr) with the best and mean loss. Off by
            default: library calls never print unless asked.
        callback: ``callback(it: Iteration)`` after every iteration; a true return value
            stops the run (``TERMINATED``).
        seed: seed of the samplers' random numbers (a ``torch.Generator`` on ``u0``'s
            device); None draws one from torch's global generator (so
            ``torch.manual_seed`` also makes runs reproducible).
        catch: exception class(es) that ``loss_fn`` may raise for a bad candidate, counted
            as a non-finite loss instead of propagating (e.g. ``ds.SimulationError``).
        throw: raise :class:`ControlError` instead of returning a failed result.

    Returns:
        :class:`ControlResult`.

    Raises:
        TypeError: unknown keyword arguments or wrongly typed options; ``loss_fn``
            returning a non-scalar.
        ValueError: no budget, out-of-range options, a loss without a graph to ``U`` for
            a gradient method, ``batch_loss_fn`` returning the wrong shape.
        ControlError: only with ``throw=True``.
    """
    opts = check_options(prob, maxiters, maxevals, maxtime, horizon, target, progress, callback,
                         seed, catch, throw, unknown, f"solve(ControlProblem, {type(alg).__name__})")
    res = run(prob, alg, prob.u0, opts, make_generator(opts.seed, prob.u0.device),
              maxiters=opts.maxiters, maxevals=opts.maxevals, maxtime=opts.maxtime,
              horizon=opts.horizon)
    return finish(res, opts)
