"""``solve(ODEProblem, solver, ...)``: the method registered with diffsim's ``solve``."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from diffsim.dispatch import register, register_default
from diffsim.sensitivity import check_sensealg

from .._checks import no_unknown_kwargs
from ..adjoint import AbstractODESensitivity, DirectAdjoint
from ..adjoint.closure import check_closure
from ..regularization import (
    GlobalRegularization,
    LocalRegularization,
    check_regularization,
    draw_time,
    local_step_error,
)
from ..retcode import ReturnCode, SolveError
from ..solution import ODESolution, Stats
from ..stepping.controller import PIController
from ..stepping.job import SolveJob, adjoint_params
from ..stepping.options import check_saveat, check_tstops, error_norm, step_options
from ..stepping.rhs import RHS, check_rhs_output
from .events import Event, EventTracker, as_events, event_time
from .methods.base import AbstractAdaptiveSolver, AbstractODESolver
from .methods.tsit5 import Tsit5
from .problem import ODEProblem
from .pytree import StateLayout, flat_field
from .timegrad import at_times, needs_time_grad, shift_start

ALLOWED = (
    "saveat", "rtol", "atol", "dt", "adaptive", "dtmin", "dtmax", "force_dtmin", "max_steps", "controller", "dense",
    "sensealg", "regularization", "per_sample", "throw", "generator", "norm", "event", "tstops",
)


@register_default(ODEProblem)
def _default_ode_solver(prob: ODEProblem) -> AbstractODESolver:
    return Tsit5()


@register(ODEProblem, AbstractODESolver)
def solve_ode(
    prob: ODEProblem,
    alg: AbstractODESolver,
    *,
    saveat=None,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    dt: float | None = None,
    adaptive: bool = True,
    dtmin: float = 0.0,
    dtmax: float = math.inf,
    force_dtmin: bool = False,
    max_steps: int = 100_000,
    controller: PIController | None = None,
    dense: bool | None = None,
    sensealg: AbstractODESensitivity | None = None,
    regularization: GlobalRegularization | LocalRegularization | None = None,
    per_sample: bool = False,
    throw: bool = False,
    generator: torch.Generator | None = None,
    norm: str | Callable | None = None,
    event: Event | Sequence[Event] | None = None,
    tstops=None,
    **unknown: Any,
) -> ODESolution:
    """Solve an :class:`ODEProblem`.

    Args:
        prob: the problem.
        alg: the method (``Tsit5()`` when ``solve(prob)`` is called without one).
        saveat: times at which to return the state (a sequence or 1-D tensor, ordered in
            the direction of integration, inside ``tspan``); None saves every accepted
            step (and ``t0``).
        rtol, atol: relative and absolute tolerances of the scaled RMS error norm
            (numbers, or tensors broadcastable to ``u``).
        dt: initial step (adaptive) or the fixed step (fixed-step methods, required).
        adaptive: False runs an adaptive method with fixed ``dt``.
        dtmin, dtmax: bounds on the adaptive step size (magnitudes, seconds); only a step
            that lands on ``t1`` or a save time may be shorter than ``dtmin``. A step that
            would have to shrink below ``dtmin`` ends the solve with ``DT_LESS_THAN_MIN``.
        force_dtmin: instead take steps of ``dtmin`` whatever their error (torchdiffeq's
            ``min_step``, Julia's ``force_dtmin``): accuracy is no longer controlled.
        max_steps: cap on attempted steps (accepted + rejected).
        controller: :class:`PIController` (default ``PIController()``).
        dense: keep the dense output for ``sol(t)``; default True iff ``saveat`` is None.
        sensealg: :class:`DirectAdjoint` (default), :class:`BacksolveAdjoint`,
            :class:`InterpolatingAdjoint` or :class:`QuadratureAdjoint`.
        regularization: :class:`GlobalRegularization` or :class:`LocalRegularization`.
        per_sample: the leading dimension of ``u0`` is a batch whose samples each get
            their own step size and accept/reject decision (torchode style); ``f``
            then receives ``t`` of shape ``(batch,)``. ``saveat`` defaults to
            ``(t0, t1)``; ``sol(t)`` is not available (the per-sample dense output is
            kept only internally, for the continuous adjoints).
        throw: raise :class:`SolveError` instead of returning a failed solution.
        generator: ``torch.Generator`` for the local regularizer's random time.
        norm: the error norm a step must keep <= 1: "rms" (default, ``sqrt(mean(q**2))``
            of the scaled error ``q = err / (atol + rtol*max(|u|, |u1|))``), "max", or a
            callable ``norm(q) -> 0-d tensor`` with ``q`` in the state's structure
            (torchdiffeq's ``options=dict(norm=...)``, diffrax's ``PIDController(norm=)``);
            with ``per_sample=True`` it gets ``(batch, ...)`` and returns ``(batch,)``. It
            also scales Hairer's initial step. The continuous adjoints' backward solve has
            its own ``norm`` (their ``norm="seminorm"`` by default).
        event: an :class:`Event` or a list of them: zero crossings of ``g(u, p, t)``
            located on the dense output; a terminal one ends the solve at the crossing
            (retcode TERMINATED, its state the last point of ``sol.u``), every crossing is
            in ``sol.event_t`` / ``sol.event_u`` / ``sol.event_index``, differentiable
            (implicit function theorem). With a terminal event ``tspan`` may end at
            ``inf``. Not with ``per_sample=True``.

        tstops: times inside ``tspan`` that steps must land on (Julia's ``tstops``,
            torchdiffeq's ``jump_t``): put discontinuities of ``f`` in time here, so that
            no step straddles them; the step after each starts with a fresh evaluation
            of ``f``, and the continuous adjoints' backward solve stops there too. Not
            with ``per_sample=True``.

    Time gradients: ``tspan`` entries and a ``saveat`` tensor that require grad get
    ``dL/dt`` under every ``sensealg`` (see :mod:`solvers.ode.timegrad`).

    Returns:
        :class:`ODESolution`.

    Raises:
        TypeError: unknown keyword arguments, wrong argument types, ``f`` returning a
            non-tensor or the wrong dtype.
        ValueError: ``f`` returning the wrong shape, out-of-range options, a fixed-step
            method without ``dt``, incompatible regularization/sensealg choices.
        SolveError: only with ``throw=True``.
    """
    no_unknown_kwargs("solve(ODEProblem, ...)", unknown, ALLOWED)
    if not isinstance(per_sample, bool):
        raise TypeError(f"per_sample must be a bool, got {type(per_sample).__name__}")
    events = as_events(event)
    layout = None
    user_prob = prob
    if not isinstance(prob.u0, torch.Tensor):
        # A pytree state: solve the flat problem, give the answer its structure back.
        layout = StateLayout(prob.u0, batch=per_sample or getattr(alg, "jacobian", None) == "batch")
        if isinstance(rtol, torch.Tensor) and rtol.numel() > 1 or isinstance(atol, torch.Tensor) and atol.numel() > 1:
            raise ValueError("tensor rtol/atol (one per entry) need a tensor state; a pytree state takes numbers")
        if callable(norm):
            user_norm = norm
            norm = lambda q: user_norm(layout.tree(q))  # noqa: E731
        prob = ODEProblem(flat_field(prob.f, layout), layout.flat(prob.u0, name="u0"), prob.tspan, p=prob.p)
    u0 = prob.u0
    as_state = layout.tree if layout is not None else (lambda x: x)
    t0, t1 = prob.span
    t0_t, t1_t = (x if isinstance(x, torch.Tensor) else None for x in prob.tspan)
    direction = -1.0 if t1 < t0 else 1.0
    opts = step_options(alg, isinstance(alg, AbstractAdaptiveSolver), u0, rtol=rtol, atol=atol, dt=dt,
                        adaptive=adaptive, dtmin=dtmin, dtmax=dtmax, force_dtmin=force_dtmin, max_steps=max_steps,
                        controller=controller if controller is not None else PIController(),
                        norm=error_norm(norm, u0, per_sample))
    if sensealg is None:
        sensealg = DirectAdjoint()
    else:
        check_sensealg(sensealg, AbstractODESensitivity, "ODE solves",
                       "DirectAdjoint(), BacksolveAdjoint(), InterpolatingAdjoint() or QuadratureAdjoint()")
    if per_sample and u0.dim() < 1:
        raise ValueError("per_sample=True needs u0 with a leading batch dimension, got a 0-d u0")
    if events and per_sample:
        raise ValueError("events are not supported with per_sample=True (each sample would end at its own time); "
                         "solve without per_sample")
    if math.isinf(t1) and not any(e.terminal for e in events):
        raise ValueError(f"tspan ends at {t1}: an infinite span needs a terminal event (event=dss.Event(g)) to end it")
    save = check_saveat(saveat, t0, t1, u0)
    stops = check_tstops(tstops, t0, t1)
    if stops and per_sample:
        raise ValueError("tstops are not supported with per_sample=True")
    save_t = saveat if isinstance(saveat, torch.Tensor) and saveat.requires_grad else None
    if per_sample and save is None:
        save = [t0, t1]
    if dense is None:
        dense = save is None
    if dense and per_sample:
        dense = False  # per-sample dense output is kept only where an adjoint needs it
    direct_sens = isinstance(sensealg, DirectAdjoint)
    check_regularization(regularization, alg, direct_sens)
    if per_sample and isinstance(regularization, GlobalRegularization) and regularization.kind == "stiffness":
        raise ValueError("GlobalRegularization(kind='stiffness') is not supported with per_sample=True")
    if (per_sample and isinstance(regularization, LocalRegularization) and regularization.sampling == "biased"
            and not direct_sens):
        raise ValueError("LocalRegularization(sampling='biased') with per_sample=True draws one time per sample "
                         "and needs sensealg=DirectAdjoint(); use sampling='unbiased' with continuous adjoints")
    if math.isinf(t1) and isinstance(regularization, LocalRegularization) and regularization.sampling == "unbiased":
        raise ValueError("LocalRegularization(sampling='unbiased') draws its time from tspan, which is infinite; "
                         "use sampling='biased'")

    stats = Stats()
    rhs = RHS(prob.f, prob.p, u0.dtype, u0.device)
    params = adjoint_params(prob.f, prob.p)
    direct = isinstance(sensealg, DirectAdjoint)
    t_arg = rhs.time(t0) if not per_sample else torch.full((u0.shape[0],), t0, dtype=u0.dtype, device=u0.device)
    shift = needs_time_grad(t0_t)
    f0 = rhs(t_arg, u0 if direct and not shift else u0.detach())
    check_rhs_output("f", f0, u0)
    if not direct and torch.is_grad_enabled():
        check_closure(prob.f, f0, params, type(sensealg).__name__)
    u_in = u0
    if shift:
        # u0 enters the solve through the t0-gradient hook; under DirectAdjoint the first
        # stage must then be recorded from the hooked state (one more evaluation).
        u_in = shift_start(u0, t0_t, f0)
        if direct:
            f0 = rhs(t_arg, u_in)
    if not direct:
        f0 = f0.detach()

    job = SolveJob(prob=prob, u0=u_in, alg=alg, opts=opts, t0=t0, t1=t1, direction=direction, saveat=save,
                 dense=dense, reg=regularization, stats=stats, per_sample=per_sample, params=params, rhs=rhs,
                 f0=f0, generator=generator, unflatten=layout.tree if layout is not None else None)
    job.tstops = stops or None
    if events:
        job.events = EventTracker(events, prob.p, as_state, t0, u0.detach())
    if isinstance(regularization, LocalRegularization):
        if regularization.sampling == "unbiased":
            job.t_reg = draw_time(t0, t1, generator)
        else:
            seed = int(torch.randint(0, 2**62, (), generator=generator))
            job.reservoir = random.Random(seed)

    def rate(t, v):  # f at one saved point, for the time gradients
        tt = t.to(v.dtype) if not per_sample else t.to(v.dtype).expand(v.shape[0])
        return prob.f(v, prob.p, tt)

    ev_t = ev_u = ev_index = None
    if not bool(torch.isfinite(f0.detach()).all()):
        fwd_ts, u, retcode, reg_val, dense_out, t_final = [t0], u_in[None], ReturnCode.NON_FINITE, None, None, t0
    else:
        fwd = sensealg.run(job)
        traj = fwd.traj
        stats.nfe = rhs.nfe
        stats.njac = rhs.njac
        stats.naccept, stats.nreject = traj.naccept, traj.nreject
        stats.niters = traj.niters
        user = fwd.user_index()
        values = fwd.values
        u = values if len(user) == len(fwd.ts) else values[user]
        fwd_ts = [fwd.ts[i] for i in user]
        retcode, dense_out, t_final = traj.retcode, fwd.dense if dense else None, traj.t_end
        reg_val = _regularization_value(job, fwd, values)
        if events:
            ev_t, ev_u, ev_index = _event_points(job, fwd, values, rate)
    if reg_val is None:
        reg_val = torch.zeros((), dtype=u0.dtype, device=u0.device)
    t_out = torch.tensor(fwd_ts, dtype=u0.dtype, device=u0.device)
    times = _save_times(t_out, save_t, t1_t, saveat is None and retcode is ReturnCode.SUCCESS)
    if times is not None:
        t_out, u = times, at_times(u, times, rate)
    if retcode is ReturnCode.TERMINATED:  # the event state is the solution's last point
        t_out, u = torch.cat([t_out, ev_t[-1:]]), torch.cat([u, ev_u[-1:]])
    if throw and retcode not in (ReturnCode.SUCCESS, ReturnCode.TERMINATED):
        raise SolveError(retcode, t_final)
    if layout is not None:
        u = layout.tree(u)
        ev_u = layout.tree(ev_u) if ev_u is not None else None
    return ODESolution(t=t_out, u=u, stats=stats, retcode=retcode, reg=reg_val, dense=dense_out, prob=user_prob,
                       alg=alg, sensealg=sensealg, t_final=t_final, layout=layout, event_t=ev_t, event_u=ev_u,
                       event_index=ev_index)


def _save_times(t_out: torch.Tensor, save_t: torch.Tensor | None, t1_t: torch.Tensor | None,
                ends_at_t1: bool) -> torch.Tensor | None:
    """The save times as a tensor that carries gradients (None if none is wanted):
    ``saveat`` when it requires grad, or ``t1`` for the last point of a solve saved at
    every step."""
    if needs_time_grad(save_t):
        return save_t.reshape(-1)[: t_out.shape[0]].to(t_out.dtype)
    if save_t is None and ends_at_t1 and needs_time_grad(t1_t) and t_out.shape[0] > 0:
        return torch.cat([t_out[:-1], t1_t.reshape(1).to(t_out.dtype)])
    return None


def _event_points(job: SolveJob, fwd, values: torch.Tensor, rate):
    """Event times and states, differentiable by the implicit function theorem."""
    idx = fwd.event_index()
    ids = list(fwd.traj.event_ids)
    ts, us = [], []
    grad = torch.is_grad_enabled()
    for k, i in zip(idx, ids):
        u_k = values[k]
        if grad:
            t_k = event_time(job.events, i, fwd.ts[k], u_k, rate)
            u_k = at_times(u_k[None], t_k.reshape(1), rate)[0] if t_k.requires_grad else u_k
        else:
            t_k = torch.full((), fwd.ts[k], dtype=values.dtype, device=values.device)
        ts.append(t_k)
        us.append(u_k)
    if not ts:
        return values.new_zeros(0), values.new_zeros((0, *values.shape[1:])), []
    return torch.stack(ts), torch.stack(us), ids


def _regularization_value(job: SolveJob, fwd, values: torch.Tensor) -> torch.Tensor | None:
    reg = job.reg
    if reg is None:
        return None
    if isinstance(reg, GlobalRegularization):
        terms = fwd.traj.reg_terms
        if not terms:
            return None
        total = torch.stack(terms).sum() if not job.per_sample else terms_sum_per_sample(terms)
        return reg.coeff * total
    k = fwd.reg_index()
    if k is None:  # the solve failed before reaching t_r
        return None
    t_r = fwd.ts[k]
    u_r = values[k]
    rrhs = RHS(job.prob.f, job.prob.p, u_r.dtype, u_r.device)
    dt_r = fwd.reg_dt if reg.step == "solver" else None
    with torch.enable_grad() if torch.is_grad_enabled() else torch.no_grad():
        if job.per_sample:
            dims = tuple(range(1, u_r.dim()))
            if dt_r is not None and not isinstance(dt_r, torch.Tensor):
                dt_r = torch.full((u_r.shape[0],), float(dt_r), dtype=u_r.dtype, device=u_r.device)
            r = local_step_error(job.alg, rrhs, t_r, u_r, dt_r, job.opts.rtol, job.opts.atol, job.direction,
                                 per_sample_dims=dims)
        else:
            r = local_step_error(job.alg, rrhs, t_r, u_r, dt_r, job.opts.rtol, job.opts.atol, job.direction)
    job.stats.nfe_reg += rrhs.nfe
    return reg.coeff * r


def terms_sum_per_sample(terms: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample stepping keeps (batch,) terms per iteration: sum over steps, mean over samples."""
    return torch.stack(terms).sum(0).mean()
