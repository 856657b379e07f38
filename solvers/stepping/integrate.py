"""The integration loop with one step size shared by the whole state.

Time and step size live in Python floats, so the only host-device synchronisation
per step is reading the scalar error ratio (adaptive methods) or a finiteness flag
(fixed-step methods). Stage arithmetic is fused (see ``ode/base.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from ..ode.methods.base import (
    AbstractAdaptiveSolver,
    AbstractExplicitRK,
    AbstractODESolver,
    dense_eval,
)
from ..retcode import ReturnCode
from .controller import PIController, error_ratio, initial_step
from .dense import DenseOutput
from .rhs import SegmentRHS

_EPS = 2.220446049250313e-16
#: tag of the saved points that are event crossings (``job.py`` names the others)
EVENT_TAG = 2


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """Step-size options of one integration (see ``solve`` for their meaning)."""

    rtol: float | torch.Tensor = 1e-3
    atol: float | torch.Tensor = 1e-6
    dt: float | None = None
    adaptive: bool = True
    dtmin: float = 0.0
    dtmax: float = math.inf
    max_steps: int = 100_000
    controller: PIController = PIController()
    force_dtmin: bool = False
    norm: Callable | None = None  # norm(scaled error) -> 0-d tensor; None: RMS


class Trajectory:
    """What one integration produced (internal; ``solve`` wraps it in a solution)."""

    def __init__(self):
        self.ts: list[float] = []
        self.us: list[torch.Tensor] = []
        self.tags: list[int] = []  # per saved point: the tag given with its time
        self.save_h: list[float] = []  # size of the step that produced each saved point
        self.sampled: tuple[float, torch.Tensor, float] | None = None
        self.nfe_rejected = 0
        self.retcode = ReturnCode.SUCCESS
        self.t_end = 0.0
        self.u_end: torch.Tensor | None = None
        self.f_end: torch.Tensor | None = None
        self.dt_next: float = 0.0
        self.dense: DenseOutput | None = None
        self.step_starts: list[float] = []
        self.step_dts: list[float] = []
        self.naccept = 0
        self.nreject = 0
        self.niters = 0  # loop iterations (attempted steps; per-sample: batch-wide iterations)
        self.reg_terms: list[torch.Tensor] = []
        self.checkpoints: list[tuple[float, torch.Tensor, float]] = []
        self.event_ids: list[int] = []  # which event, per saved point tagged EVENT_TAG

    def save(self, t: float, u: torch.Tensor, tag: int, h: float) -> None:
        """Record a saved point ``u`` at ``t`` with its tag and the producing step size."""
        self.ts.append(t)
        self.us.append(u)
        self.tags.append(tag)
        self.save_h.append(abs(h))


def stiffness_estimate(solver: AbstractExplicitRK, step, ws) -> torch.Tensor:
    """Shampine/Hairer's estimate of the dominant eigenvalue magnitude,
    ``||k_j - k_i|| / ||g_j - g_i||`` from two stages evaluated at the same time."""
    i, _ = solver.stiffness_stages
    st = ws.stages
    k_i = st.ks[i] if hasattr(st, "ks") else st.K[i].view(step.u1.shape)
    num = torch.linalg.vector_norm(step.f1 - k_i)
    den = torch.linalg.vector_norm(step.u1 - ws.stage_state)
    return num / (den + torch.finfo(num.dtype).tiny ** 0.5)


def _save_interpolated(out: Trajectory, save, t, h, u, u1, t_new, coeffs) -> None:
    ts, tag = save
    u_s = u1 if ts == t_new else dense_eval(u, coeffs(), (ts - t) / h)
    out.save(ts, u_s, tag, h)


def integrate(
    solver: AbstractODESolver,
    rhs,
    t0: float,
    t1: float,
    u0: torch.Tensor,
    opts: StepOptions,
    *,
    f0: torch.Tensor | None = None,
    saveat: list[tuple[float, int]] | None = None,
    save_steps: bool = False,
    dense: bool = False,
    grad: bool = False,
    err_numel: int | None = None,
    reg: str | None = None,
    on_accept: Callable | None = None,
    checkpoint_times: list[float] | None = None,
    sample_step=None,
    events=None,
    tstops: list[float] | None = None,
    open_ends: tuple[bool, bool] = (False, False),
) -> Trajectory:
    """Integrate ``u' = rhs(t, u)`` from ``t0`` to ``t1`` (either direction).

    Args:
        saveat: ``(time, tag)`` pairs, times ordered in the direction of integration and
            inside the span, at which to record the state (dense output between step
            ends); the tag is copied to ``Trajectory.tags``.
        save_steps: record the state after every accepted step (and at ``t0``).
        dense: keep the continuous extension of every accepted step.
        grad: autograd records the steps (stage tensors kept separately).
        err_numel: control the error of only the first entries of the state.
        reg: accumulate "error" (E_est * |dt|) or "stiffness" (rho * |dt|) per step.
        on_accept: ``on_accept(t, dt, u, u1, coeffs)`` after each accepted step;
            ``coeffs()`` returns that step's dense coefficients.
        checkpoint_times: record ``(t, u, next dt)`` at the first step end at or after
            each of these times.
        sample_step: a ``random.Random``; keeps ``(t, u, dt)`` of one accepted step drawn
            uniformly (reservoir sampling, O(1) memory) in ``Trajectory.sampled``.
        events: an :class:`~solvers.events.EventTracker`; crossings become saved points
            tagged ``EVENT_TAG``, and a terminal one ends the integration there
            (``retcode`` TERMINATED, ``t_end``/``u_end`` at the event).
        tstops: times strictly inside the span, ordered in the direction of
            integration, that steps must land on: discontinuities of ``f`` in time. Each
            segment between them sees ``f``'s one-sided limits at its ends
            (:class:`~solvers.rhs.SegmentRHS`), with no FSAL reuse across a stop.
        open_ends: whether ``t0`` / ``t1`` are themselves such discontinuities (a
            backward adjoint segment between two stops).
    """
    out = Trajectory()
    direction = -1.0 if t1 < t0 else 1.0
    adaptive = opts.adaptive and isinstance(solver, AbstractAdaptiveSolver)
    ws = solver.workspace(u0, grad=grad)
    if reg == "stiffness":
        ws.probe = True
    stops = list(tstops) if tstops else []
    base_rhs = rhs

    def segment(k):
        """The rhs for the segment before stop k (after the last stop: up to t1)."""
        a = t0 if k == 0 else stops[k - 1]
        b = stops[k] if k < len(stops) else t1
        open_a = open_ends[0] if k == 0 else True
        open_b = open_ends[1] if k == len(stops) else True
        return SegmentRHS(base_rhs, a, b, open_a, open_b) if (open_a or open_b) else base_rhs

    rhs = segment(0)
    if f0 is None and (solver.fsal or adaptive):
        f0 = rhs(t0, u0)
    if dense:
        out.dense = DenseOutput(t0, direction, u0)
    b1 = b2 = 0.0
    if adaptive:
        b1, b2 = opts.controller.exponents(solver.error_order())
        if opts.dt is not None:
            dt = direction * opts.dt
        else:
            dt = direction * min(opts.dtmax, initial_step(rhs, t0, u0, f0, direction, solver.error_order(),
                                                            opts.rtol, opts.atol, norm=opts.norm))
        dt = direction * max(abs(dt), opts.dtmin)  # dtmin bounds every step but a landing one
    else:
        dt = direction * opts.dt

    saves = list(saveat) if saveat is not None else []
    si = 0
    while si < len(saves) and saves[si][0] == t0:
        out.save(t0, u0, saves[si][1], dt)
        si += 1
    if save_steps:
        out.save(t0, u0, 0, dt)
    cps = list(checkpoint_times) if checkpoint_times is not None else []
    ci = 0

    land = adaptive and solver.dense_order() < solver.order() - 1
    ti = 0
    t, u = t0, u0
    r_prev = 1e-4
    n_attempts = 0
    n_fixed = 0
    rejected_last = False
    rtol, atol = opts.rtol, opts.atol
    while direction * (t1 - t) > 0.0:
        if n_attempts >= opts.max_steps:
            out.retcode = ReturnCode.MAX_STEPS
            break
        n_attempts += 1
        if adaptive:
            # Stretch the step by up to 1% to land on t1 (or, for methods whose dense
            # output is much less accurate than their steps, on the next save time)
            # instead of leaving a sliver.
            target = saves[si][0] if (land and si < len(saves)) else t1
            if ti < len(stops) and direction * (stops[ti] - target) < 0.0:
                target = stops[ti]
            hit = direction * (t + 1.01 * dt - target) >= 0.0
            last = hit and target == t1
            h = target - t if hit else dt
            on_stop = False
        else:
            t_next = t0 + (n_fixed + 1) * dt
            last = direction * (t_next - t1) >= -1e-12 * abs(dt)
            h = (t1 if last else t_next) - t
            on_stop = ti < len(stops) and direction * (stops[ti] - (t + h)) < -1e-12 * abs(dt)
            if on_stop:  # land on the stop, then resume the uniform grid
                h, last = stops[ti] - t, False
        nfe_before = rhs.nfe
        step = solver.step(rhs, t, u, h, f0, ws)

        ratio_t = None
        if adaptive:
            if reg == "error":
                ratio_t = error_ratio(step.err, u, step.u1, rtol, atol, numel=err_numel, norm=opts.norm)
                r = float(ratio_t.detach())
            else:
                with torch.no_grad():
                    r = float(error_ratio(step.err, u, step.u1, rtol, atol, numel=err_numel, norm=opts.norm))
            if not math.isfinite(r):
                # A step that overflowed is retried much smaller; only a step that is
                # already at dtmin declares the solve non-finite.
                out.nreject += 1
                out.nfe_rejected += rhs.nfe - nfe_before
                rejected_last = True
                dt = h * 0.1
                if abs(dt) < max(opts.dtmin, 16 * _EPS * abs(t)):
                    if opts.force_dtmin and abs(h) > opts.dtmin:
                        dt = direction * opts.dtmin
                        continue
                    out.retcode = ReturnCode.NON_FINITE
                    break
                continue
            # force_dtmin: a step at (or below) dtmin is taken whatever its error.
            accept = r <= 1.0 or (opts.force_dtmin and abs(h) <= opts.dtmin)
        else:
            accept = bool(torch.isfinite(step.u1).all())
            if not accept:
                out.retcode = ReturnCode.NON_FINITE
                break
            if reg == "error":  # fixed steps of a method with an estimate: still regularize
                ratio_t = error_ratio(step.err, u, step.u1, rtol, atol, numel=err_numel, norm=opts.norm)

        if not accept:
            out.nreject += 1
            out.nfe_rejected += rhs.nfe - nfe_before
            rejected_last = True
            dt = h * opts.controller.reject_factor(r, b1)
            if abs(dt) < max(opts.dtmin, 16 * _EPS * abs(t)):
                if opts.force_dtmin and abs(dt) < opts.dtmin:
                    dt = direction * opts.dtmin
                    continue
                out.retcode = ReturnCode.DT_LESS_THAN_MIN
                break
            continue

        # ---- accepted
        t_new = t1 if last else (target if (adaptive and hit) else (stops[ti] if on_stop else t + h))
        u1 = step.u1
        R = None

        def coeffs(t=t, u=u, h=h, step=step, rhs=rhs):
            nonlocal R
            if R is None:
                R = solver.dense_coeffs(rhs, t, u, h, step, ws)
            return R

        if reg == "error":
            out.reg_terms.append(ratio_t * abs(h))
        elif reg == "stiffness":
            out.reg_terms.append(stiffness_estimate(solver, step, ws) * abs(h))
        hits = events.scan(t, h, u, u1, t_new, coeffs) if events is not None else ()
        stop = hits[-1] if hits and hits[-1].terminal else None
        t_lim = stop.t if stop is not None else t_new
        for hit_ in hits:  # save points before each crossing, then the crossing
            while si < len(saves) and direction * (saves[si][0] - hit_.t) <= 0.0:
                _save_interpolated(out, saves[si], t, h, u, u1, t_new, coeffs)
                si += 1
            out.save(hit_.t, hit_.u, EVENT_TAG, h)
            out.event_ids.append(hit_.index)
        while si < len(saves) and direction * (saves[si][0] - t_lim) <= 0.0:
            _save_interpolated(out, saves[si], t, h, u, u1, t_new, coeffs)
            si += 1
        if save_steps and stop is None:
            out.save(t_new, u1, 0, h)
        if sample_step is not None and sample_step.random() * (out.naccept + 1) < 1.0:
            out.sampled = (t, u, abs(h))
        if dense:
            out.dense.append(t, h, u, coeffs())
        if on_accept is not None:
            on_accept(t, h, u, u1, coeffs)
        out.step_starts.append(t)
        out.step_dts.append(h)
        out.naccept += 1
        if not (on_stop and not adaptive):
            n_fixed += 1

        if adaptive:
            fac = opts.controller.factor(r, r_prev, b1, b2)
            if rejected_last:
                fac = min(fac, 1.0)
            r_prev = max(r, 1e-4)
            dt_new = h * fac
            if abs(dt_new) > opts.dtmax:
                dt_new = direction * opts.dtmax
            elif abs(dt_new) < opts.dtmin:
                dt_new = direction * opts.dtmin
            # Keep the controller's proposal, not the step shortened to hit a target.
            dt = dt_new if not hit else (dt if abs(dt) > abs(dt_new) else dt_new)
        rejected_last = False
        if stop is not None:
            out.retcode = ReturnCode.TERMINATED
            t, u, f0 = stop.t, stop.u, None
            if dense:
                out.dense.stop = stop.t
            break
        t, u, f0 = t_new, u1, step.f1
        if ti < len(stops) and direction * (stops[ti] - t) <= 1e-12 * abs(h):
            ti += 1  # landed on a stop (exactly, or a fixed grid point within round-off)
            f0 = None  # f may jump at a stop: the next step evaluates it afresh
            rhs = segment(ti)
        while ci < len(cps) and direction * (cps[ci] - t) <= 0.0:
            out.checkpoints.append((t, u.detach(), abs(dt)))
            ci += 1

    out.t_end, out.u_end, out.f_end, out.dt_next = t, u, f0, abs(dt)
    out.niters = n_attempts
    return out
