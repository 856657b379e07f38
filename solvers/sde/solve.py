"""``solve(SDEProblem, solver, ...)``: the method registered with diffsim's ``solve``."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from diffsim.dispatch import register, register_default

from .._checks import no_unknown_kwargs
from ..adjoint import AbstractODESensitivity, DirectAdjoint
from ..regularization import GlobalRegularization, LocalRegularization, draw_time
from ..retcode import ReturnCode, SolveError
from ..solution import ODESolution, Stats
from ..stepping.controller import PIController
from ..stepping.forward import collect
from ..stepping.job import SolveJob, adjoint_params
from ..stepping.loop import run
from ..stepping.options import check_saveat, step_options
from ..stepping.rhs import RHS, check_rhs_output
from ..stepping.shared import SharedSteps
from ..stepping.steppers import SDEStepper, sde_error_ratio
from .brownian import BrownianPath
from .methods.adaptive_milstein import AdaptiveMilstein
from .methods.base import AbstractAdaptiveSDESolver, AbstractSDESolver
from .problem import SDEProblem

ALLOWED = (
    "saveat", "rtol", "atol", "dt", "adaptive", "dtmin", "dtmax", "max_steps", "controller", "dense",
    "sensealg", "regularization", "throw", "seed", "noise", "generator",
)


@register_default(SDEProblem)
def _default_sde_solver(prob: SDEProblem) -> AbstractSDESolver:
    return AdaptiveMilstein()


@register(SDEProblem, AbstractSDESolver)
def solve_sde(
    prob: SDEProblem,
    alg: AbstractSDESolver,
    *,
    saveat=None,
    rtol: float = 1e-2,
    atol: float = 1e-2,
    dt: float | None = None,
    adaptive: bool = True,
    dtmin: float = 0.0,
    dtmax: float = math.inf,
    max_steps: int = 100_000,
    controller: PIController | None = None,
    dense: bool | None = None,
    sensealg: AbstractODESensitivity | None = None,
    regularization: GlobalRegularization | LocalRegularization | None = None,
    throw: bool = False,
    seed: int | None = None,
    noise: BrownianPath | None = None,
    generator: torch.Generator | None = None,
    **unknown: Any,
) -> ODESolution:
    """Solve an :class:`SDEProblem` (Itô, diagonal noise).

    Args:
        prob: the problem.
        alg: ``EulerMaruyama()``, ``Milstein()`` (fixed ``dt``) or ``AdaptiveMilstein()``
            (the default).
        saveat: save times (stepped to exactly); None saves every accepted step.
        rtol, atol: tolerances of the adaptive method (SDE errors are O(dt^1.5), so
            defaults are loose: 1e-2).
        dt: fixed step, or initial step for the adaptive method (default 1% of span).
        adaptive, dtmin, dtmax, max_steps, controller, dense, throw: as for ODEs; the
            dense output of an SDE solution is piecewise linear between steps.
        sensealg: ``DirectAdjoint()`` only (backpropagation through the steps).
        regularization: ``GlobalRegularization(kind="error")`` or
            ``LocalRegularization`` (needs the adaptive method's error estimate).
        seed: seed of the Brownian path (reproducible solves); ignored with ``noise``.
        noise: a :class:`BrownianPath` to drive the solve (share one path between
            solves, e.g. to compare step sizes on the same path).
        generator: ``torch.Generator`` for the local regularizer's random time.

    Returns:
        :class:`ODESolution`; ``sol.noise`` is the Brownian path used.
    """
    no_unknown_kwargs("solve(SDEProblem, ...)", unknown, ALLOWED)
    u0 = prob.u0
    t0, t1 = prob.tspan
    direction = 1.0 if t1 > t0 else -1.0
    adaptive_alg = isinstance(alg, AbstractAdaptiveSDESolver)
    opts = step_options(alg, adaptive_alg, u0, rtol=rtol, atol=atol, dt=dt, adaptive=adaptive, dtmin=dtmin,
                        dtmax=dtmax, max_steps=max_steps,
                        controller=controller if controller is not None else PIController(beta2=0.0))
    rtol, atol = opts.rtol, opts.atol
    if sensealg is None:
        sensealg = DirectAdjoint()
    if not isinstance(sensealg, DirectAdjoint):
        raise ValueError(
            f"SDE solves support sensealg=DirectAdjoint() only (got {type(sensealg).__name__}); "
            "continuous stochastic adjoints are not implemented"
        )
    if regularization is not None:
        if not isinstance(regularization, (GlobalRegularization, LocalRegularization)):
            raise TypeError(f"regularization must be GlobalRegularization, LocalRegularization or None, "
                            f"got {type(regularization).__name__}")
        if not (adaptive_alg and adaptive):
            raise ValueError(f"{type(regularization).__name__} needs an adaptive SDE method with an error "
                             "estimate (AdaptiveMilstein) and adaptive=True")
        if isinstance(regularization, GlobalRegularization) and regularization.kind != "error":
            raise ValueError("for SDEs GlobalRegularization supports kind='error' only")
    if noise is None:
        noise = BrownianPath(t0, u0.shape, seed=seed, dtype=u0.dtype, device=u0.device)
    elif not isinstance(noise, BrownianPath):
        raise TypeError(f"noise must be a BrownianPath, got {type(noise).__name__}")
    elif noise.shape != u0.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)} but u0 has shape {tuple(u0.shape)}")
    save = check_saveat(saveat, t0, t1, u0)
    if dense is None:
        dense = save is None
    stats = Stats()
    drift = RHS(prob.f, prob.p, u0.dtype, u0.device)
    diffusion = RHS(prob.g, prob.p, u0.dtype, u0.device, name="g")
    with torch.no_grad():
        check_rhs_output("f", drift(t0, u0), u0)
        check_rhs_output("g", diffusion(t0, u0), u0)
    drift.nfe = diffusion.nfe = 0
    job = SolveJob(prob=prob, u0=u0, alg=alg, opts=opts, t0=t0, t1=t1, direction=direction, saveat=save, dense=dense,
                 reg=regularization, stats=stats, per_sample=False, params=adjoint_params(prob.f, prob.p),
                 rhs=drift, f0=u0, generator=generator)  # f0 is unused by the SDE path
    if isinstance(regularization, LocalRegularization):
        if regularization.sampling == "unbiased":
            job.t_reg = draw_time(t0, t1, generator)
        else:
            job.reservoir = random.Random(int(torch.randint(0, 2**62, (), generator=generator)))
    # The shared-step loop with the SDE's step-size rules (``SharedSteps(sde_rules=True)``).
    stepper = SDEStepper(alg, drift, diffusion, noise, adaptive=opts.adaptive)
    traj = run(SharedSteps(stepper, t0, t1, u0, opts, saveat=job.save_list(), save_steps=save is None, dense=dense,
                           reg="error" if isinstance(regularization, GlobalRegularization) else None,
                           sample_step=job.reservoir, sde_rules=True))
    fwd = collect(job, traj)
    stats.nfe, stats.ng, stats.naccept, stats.nreject = drift.nfe, diffusion.nfe, traj.naccept, traj.nreject
    stats.niters = traj.naccept + traj.nreject
    user = fwd.user_index()
    u = fwd.values if len(user) == len(fwd.ts) else fwd.values[user]
    reg_val = torch.zeros((), dtype=u0.dtype, device=u0.device)
    if isinstance(regularization, GlobalRegularization) and traj.reg_terms:
        reg_val = regularization.coeff * torch.stack(traj.reg_terms).sum()
    elif isinstance(regularization, LocalRegularization) and fwd.reg_index() is not None:
        k = fwd.reg_index()
        t_r, u_r, h = fwd.ts[k], fwd.values[k], direction * fwd.reg_dt
        rd = RHS(prob.f, prob.p, u0.dtype, u0.device)
        rg = RHS(prob.g, prob.p, u0.dtype, u0.device, name="g")
        step = alg.step(rd, rg, t_r, u_r, h, noise(t_r + h) - noise(t_r), None, None)
        reg_val = regularization.coeff * sde_error_ratio(step.err, u_r, step.u1, rtol, atol) * abs(h)
        stats.nfe_reg = rd.nfe
    if throw and traj.retcode is not ReturnCode.SUCCESS:
        raise SolveError(traj.retcode, traj.t_end)
    sol = ODESolution(t=torch.tensor([fwd.ts[i] for i in user], dtype=u0.dtype, device=u0.device), u=u, stats=stats,
                      retcode=traj.retcode, reg=reg_val, dense=traj.dense, prob=prob, alg=alg, sensealg=sensealg,
                      t_final=traj.t_end)
    sol.noise = noise
    return sol

