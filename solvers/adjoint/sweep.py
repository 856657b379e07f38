"""Continuous adjoints as one ``torch.autograd.Function``: a no-grad forward pass,
then a backward sweep from the last save time to ``t0`` with jumps at save times."""

from __future__ import annotations

import dataclasses

import torch
from torch.autograd.function import once_differentiable

from ..ode.methods.base import AbstractExplicitRK
from ..retcode import ReturnCode, SolveError
from ..stepping.forward import Forward
from ..stepping.job import SolveJob
from ..stepping.options import StepOptions
from ..stepping.shared import integrate
from .base import AbstractContinuousAdjoint
from .dynamics import AdjointDynamics, GaussLegendreAccumulator


class _AdjointFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sens: AbstractContinuousAdjoint, job: SolveJob, holder, u0, *params):
        fwd = sens.forward_pass(job)
        holder.append(fwd)
        ctx.sens, ctx.job, ctx.fwd = sens, job, fwd
        return fwd.values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_values):
        # ctx keeps the forward pass so that backward can run again (retain_graph=True,
        # gradcheck, autograd.functional.jacobian); autograd frees ctx with the graph.
        g_u0, g_params = ctx.sens.backward_sweep(ctx.job, ctx.fwd, grad_values)
        return (None, None, None, g_u0, *g_params)


def apply_adjoint(sens: AbstractContinuousAdjoint, job: SolveJob) -> Forward:
    """``sens.forward_pass(job)`` with ``sens.backward_sweep`` as its autograd backward."""
    holder: list[Forward] = []
    values = _AdjointFunction.apply(sens, job, holder, job.u0, *job.params)
    fwd = holder[0]
    fwd.values = values
    return fwd


def backward_options(sens: AbstractContinuousAdjoint, job: SolveJob) -> StepOptions:
    opts = job.opts
    changes = {"norm": None}  # the forward norm does not apply to the augmented state
    if sens.rtol is not None:
        changes["rtol"] = sens.rtol
    if sens.atol is not None:
        changes["atol"] = sens.atol
    if opts.adaptive:
        changes["dt"] = None  # the first backward interval picks its own start
    return dataclasses.replace(opts, **changes)


def sweep(sens: AbstractContinuousAdjoint, job: SolveJob, fwd: Forward, grad_values: torch.Tensor, *, mode: str, u_provider=None,
          breakpoints=None, quad_nodes: int = 3):
    """Integrate the adjoint from the last saved time back to ``t0``.

    Args:
        mode: "backsolve", "interp" or "quad" (lam only, parameters by Gauss–Legendre).
        u_provider: ``u_provider(t_hi, t_lo) -> callable u(t)`` valid on that interval.
        breakpoints: extra times at which the backward solve must stop (segment ends).

    Returns:
        ``(dL/du0, [dL/dparam for each param])``.
    """
    alg = sens.solver if sens.solver is not None else job.alg
    opts = backward_options(sens, job)
    u0 = job.u0
    explicit = isinstance(alg, AbstractExplicitRK)
    with_quad = explicit and mode != "quad"
    stack_dim = 1 if getattr(alg, "jacobian", "dense") == "batch" else 0
    dyn = AdjointDynamics(
        job.prob.f, job.prob.p, job.params, u0.shape, u0.dtype, u0.device,
        mode="backsolve" if mode == "backsolve" else "interp", with_quadrature=with_quad, stack_dim=stack_dim,
    )
    direction = job.direction
    # Tolerances given per entry of the state hold for u and lam alike in the augmented
    # backward state (the parameter integral gets the tightest one).
    opts = dataclasses.replace(opts, rtol=_augmented(opts.rtol, dyn, u0), atol=_augmented(opts.atol, dyn, u0))
    norm = getattr(sens, "norm", "seminorm")
    err_numel = dyn.controlled_numel if norm == "seminorm" else None
    if callable(norm):
        opts = dataclasses.replace(opts, norm=dyn.parts_norm(norm, job.unflatten))

    # Gradients at equal times add up (the regularizer's point may repeat a save time).
    times: list[float] = []
    gs: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    for t, g, v in zip(fwd.ts, grad_values, fwd.values):
        if times and t == times[-1]:
            gs[-1] = gs[-1] + g
        else:
            times.append(t)
            gs.append(g)
            values.append(v)
    g_at = dict(zip(times, gs))
    v_at = dict(zip(times, values))

    stops = set(times[:-1])
    stops.add(job.t0)
    # The backward solve also stops at the forward tstops (discontinuities of f), and
    # evaluates f only inside each segment between them.
    jumps = set(job.tstops or [])
    breakpoints = list(breakpoints or []) + list(jumps)
    if breakpoints:
        stops.update(b for b in breakpoints if direction * (b - times[-1]) < 0 and direction * (b - job.t0) > 0)
    targets = sorted(stops, key=lambda s: -direction * s)  # backward order

    lam = gs[-1].detach().clone()
    u = v_at[times[-1]].detach() if mode == "backsolve" else None
    Q = u0.new_zeros(dyn.P)
    cur = times[-1]
    dt_next = None
    nfe0 = job.stats.nfe_backward
    for target in targets:
        if target == cur:
            continue
        if mode != "backsolve":
            dyn.u_of_t = u_provider(cur, target)
        o = opts if dt_next is None or not opts.adaptive else dataclasses.replace(opts, dt=dt_next)
        if with_quad:
            z0 = dyn.pack(u, lam, Q)
            traj = integrate(alg, dyn, cur, target, z0, o, err_numel=err_numel,
                             open_ends=(cur in jumps, target in jumps))
            u, lam, Qn = dyn.unpack(traj.u_end)
            Q = Qn.clone()
        else:
            acc = GaussLegendreAccumulator(dyn, Q, quad_nodes) if dyn.P else None
            traj = integrate(alg, dyn, cur, target, dyn.pack(u, lam, None), o, on_accept=acc,
                             open_ends=(cur in jumps, target in jumps))
            u, lam, _ = dyn.unpack(traj.u_end)
        job.stats.naccept_backward += traj.naccept
        job.stats.nreject_backward += traj.nreject
        if traj.retcode is not ReturnCode.SUCCESS:
            job.stats.nfe_backward = nfe0 + dyn.nfe
            raise SolveError(traj.retcode, traj.t_end) from RuntimeError(
                f"the backward (adjoint) solve of {type(sens).__name__} failed; try DirectAdjoint, "
                "InterpolatingAdjoint (more stable than BacksolveAdjoint), or tighter rtol/atol"
            )
        dt_next = traj.dt_next
        lam = lam.clone()
        if target in g_at:
            lam = lam + g_at[target]
            if mode == "backsolve":
                # Restart the re-integrated state from the stored forward value (as
                # torchdiffeq does): backward integration of u drifts on dissipative
                # problems.
                u = v_at[target].detach()
        cur = target
    job.stats.nfe_backward = nfe0 + dyn.nfe
    job.stats.njac += dyn.njac
    grads, k = [], 0
    for prm in job.params:
        grads.append(Q[k : k + prm.numel()].view(prm.shape).to(prm.dtype))
        k += prm.numel()
    return lam, grads


def _augmented(tol, dyn: AdjointDynamics, u0: torch.Tensor):
    if not isinstance(tol, torch.Tensor):
        return tol
    full = torch.broadcast_to(tol, u0.shape)
    q = full.min().expand(dyn.P) if dyn.with_quad else None
    return dyn.pack(full, full, q)
