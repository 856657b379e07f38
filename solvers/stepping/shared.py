"""Bookkeeping of an integration whose whole state takes one step size (ODE and SDE).

Time and step size live in Python floats, so the only host-device synchronisation per
step is reading the scalar error ratio (adaptive steps) or a finiteness flag (fixed
steps). How the next step size is chosen is a clock: :class:`AdaptiveClock` (error
control with a PI controller), :class:`FixedClock` (the uniform grid of an ODE solve)
or :class:`LandingFixedClock` (the grid of an SDE solve, which steps onto save times).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..ode.methods.base import AbstractExplicitRK, AbstractODESolver, dense_eval
from ..retcode import ReturnCode
from .loop import Bookkeeping, run
from .options import StepOptions
from .rhs import SegmentRHS
from .steppers import ODEStepper
from .trajectory import EVENT, Trajectory

_EPS = 2.220446049250313e-16


def _too_small(dt: float, t: float, dtmin: float) -> bool:
    """A step this small makes no progress (below ``dtmin`` or round-off at ``t``)."""
    return abs(dt) < max(dtmin, 16 * _EPS * abs(t))


class AdaptiveClock:
    """Step sizes from the error estimate: a PI controller, steps stretched by up to 1%
    to land on a target (``t1``, the next stop, or the next save time for steppers that
    step onto save times) instead of leaving a sliver (final).

    Args:
        opts: the step options; ``dt`` the first step (signed); ``error_order``: order of
            the error estimate (for the controller's exponents); ``direction``: +-1.
        lands: step onto save times (methods with a poor dense output, SDEs).
        sde_rules: the SDE solve's variant of the rule after an accepted step: a step
            shortened to land keeps the previous proposal (an ODE solve keeps it after
            any landing step), and the proposal is not raised to ``dtmin`` (an SDE solve
            uses ``dtmin`` only to give up on rejected steps).
    """

    adaptive = True

    def __init__(self, opts: StepOptions, dt: float, error_order: int, direction: float, t1: float, *,
                 lands: bool, sde_rules: bool = False):
        self.opts, self.dt, self.direction, self.t1 = opts, dt, direction, t1
        self.b1, self.b2 = opts.controller.exponents(error_order)
        self.lands, self.sde_rules = lands, sde_rules
        self.r_prev = 1e-4
        self.rejected_last = False
        self.hit = False

    def propose(self, t: float, save_t: float | None, stop_t: float | None) -> tuple[float, float]:
        """``(h, t_new)``: the step to attempt from ``t`` given the next save time and stop."""
        d = self.direction
        target = save_t if (self.lands and save_t is not None) else self.t1
        if stop_t is not None and d * (stop_t - target) < 0.0:
            target = stop_t
        self.hit = hit = d * (t + 1.01 * self.dt - target) >= 0.0
        if hit:
            return target - t, target
        return self.dt, t + self.dt

    def accepted(self, h: float, r: float, t: float) -> None:
        """Propose the step after an accepted one of size ``h`` with error ratio ``r``."""
        opts, dt = self.opts, self.dt
        fac = opts.controller.factor(r, self.r_prev, self.b1, self.b2)
        if self.rejected_last:
            fac = min(fac, 1.0)
        self.r_prev = max(r, 1e-4)
        if self.sde_rules:
            # A step shortened to land on a save time does not shrink the next one.
            self.dt = self.direction * min(opts.dtmax, max(abs(h * fac), abs(dt) if abs(h) < abs(dt) else 0.0))
        else:
            dt_new = h * fac
            if abs(dt_new) > opts.dtmax:
                dt_new = self.direction * opts.dtmax
            elif abs(dt_new) < opts.dtmin:
                dt_new = self.direction * opts.dtmin
            # Keep the controller's proposal, not the step shortened to hit a target.
            self.dt = dt_new if not self.hit else (dt if abs(dt) > abs(dt_new) else dt_new)
        self.rejected_last = False

    def rejected(self, h: float, r: float, finite: bool, t: float) -> ReturnCode | None:
        """Shrink after a rejected step; a return code when no smaller step can be taken."""
        opts = self.opts
        self.rejected_last = True
        if not finite:
            # A step that overflowed is retried much smaller; only a step that is already
            # at dtmin declares the solve non-finite.
            self.dt = h * 0.1
            if _too_small(self.dt, t, opts.dtmin):
                if opts.force_dtmin and abs(h) > opts.dtmin:
                    self.dt = self.direction * opts.dtmin
                    return None
                return ReturnCode.NON_FINITE
            return None
        self.dt = h * opts.controller.reject_factor(r, self.b1)
        if _too_small(self.dt, t, opts.dtmin):
            if opts.force_dtmin and abs(self.dt) < opts.dtmin:
                self.dt = self.direction * opts.dtmin
                return None
            return ReturnCode.DT_LESS_THAN_MIN
        return None


class FixedClock:
    """The uniform grid ``t0 + n dt`` of a fixed-step ODE solve, ending exactly on ``t1``;
    a stop between grid points is landed on, then the grid resumes (final)."""

    adaptive = False

    def __init__(self, t0: float, t1: float, dt: float, direction: float):
        self.t0, self.t1, self.dt, self.direction = t0, t1, dt, direction
        self.n = 0  # grid steps taken
        self.on_stop = False
        self.rejected_last = False

    def propose(self, t: float, save_t: float | None, stop_t: float | None) -> tuple[float, float]:
        d, dt, t1 = self.direction, self.dt, self.t1
        t_next = self.t0 + (self.n + 1) * dt
        last = d * (t_next - t1) >= -1e-12 * abs(dt)
        h = (t1 if last else t_next) - t
        self.on_stop = stop_t is not None and d * (stop_t - (t + h)) < -1e-12 * abs(dt)
        if self.on_stop:  # land on the stop, then resume the uniform grid
            return stop_t - t, stop_t
        return h, (t1 if last else t + h)

    def accepted(self, h: float, r, t: float) -> None:
        if not self.on_stop:
            self.n += 1
        self.rejected_last = False

    def rejected(self, h, r, finite, t):  # pragma: no cover - a fixed step is never rejected
        raise AssertionError("fixed steps are accepted or end the solve")


class LandingFixedClock:
    """The fixed steps of an SDE solve: ``dt`` at a time, shortened to land exactly on the
    next save time or ``t1`` when the grid point ``t0 + (n + 1) dt`` reaches it (final)."""

    adaptive = False

    def __init__(self, t0: float, t1: float, dt: float, direction: float):
        self.t0, self.t1, self.dt, self.direction = t0, t1, dt, direction
        self.n = 0
        self.rejected_last = False

    def propose(self, t: float, save_t: float | None, stop_t: float | None) -> tuple[float, float]:
        target = save_t if save_t is not None else self.t1
        dt = self.dt
        t_next = self.t0 + (self.n + 1) * dt
        h = dt if self.direction * (t_next - target) < -1e-12 * abs(dt) else target - t
        return h, (target if h == target - t else t + h)

    def accepted(self, h: float, r, t: float) -> None:
        self.n += 1
        self.rejected_last = False

    def rejected(self, h, r, finite, t):  # pragma: no cover - a fixed step is never rejected
        raise AssertionError("fixed steps are accepted or end the solve")


class Verdict:
    """A step's judgement: ``accepted``, its error ratio ``r`` (a float; None for fixed
    steps), ``ratio_t`` (the differentiable ratio when a regularizer needs it), ``finite``."""

    __slots__ = ("accepted", "r", "ratio_t", "finite")

    def __init__(self, accepted: bool, r, ratio_t, finite: bool):
        self.accepted, self.r, self.ratio_t, self.finite = accepted, r, ratio_t, finite


def stiffness_estimate(solver: AbstractExplicitRK, step, ws) -> torch.Tensor:
    """Shampine/Hairer's estimate of the dominant eigenvalue magnitude,
    ``||k_j - k_i|| / ||g_j - g_i||`` from two stages evaluated at the same time."""
    i, _ = solver.stiffness_stages
    st = ws.stages
    k_i = st.ks[i] if hasattr(st, "ks") else st.K[i].view(step.u1.shape)
    num = torch.linalg.vector_norm(step.f1 - k_i)
    den = torch.linalg.vector_norm(step.u1 - ws.stage_state)
    return num / (den + torch.finfo(num.dtype).tiny ** 0.5)


class SharedSteps(Bookkeeping):
    """One step size for the whole state (final). See :func:`integrate` for the arguments;
    ``stepper`` is an :class:`~solvers.stepping.steppers.ODEStepper` or an
    :class:`~solvers.stepping.steppers.SDEStepper`, ``start`` the first step's reused
    values (ODE: ``f(t0, u0)`` if known)."""

    def __init__(self, stepper, t0: float, t1: float, u0: torch.Tensor, opts: StepOptions, *, start=None,
                 saveat=None, save_steps: bool = False, dense: bool = False, reg: str | None = None,
                 on_accept: Callable | None = None, checkpoint_times=None, sample_step=None, events=None,
                 tstops=None, open_ends: tuple[bool, bool] = (False, False), sde_rules: bool = False):
        self.stepper, self.t0, self.t1, self.opts = stepper, t0, t1, opts
        self.max_steps = opts.max_steps
        self.direction = direction = -1.0 if t1 < t0 else 1.0
        self.out = out = Trajectory()
        self.reg, self.on_accept, self.sample_step, self.events = reg, on_accept, sample_step, events
        self.save_steps = save_steps
        self.stops = list(tstops) if tstops else []
        self.open_ends = open_ends
        self.ti = 0  # the next stop
        self.base_rhs = stepper.rhs
        if self.stops or any(open_ends):
            stepper.rhs = self._segment(0)
        self.start = stepper.start_values(t0, u0, start)
        if dense:
            out.dense = stepper.dense_output(t0, direction, u0)
        dt = stepper.initial_dt(t0, t1, u0, self.start, direction, opts)
        if stepper.adaptive:
            self.clock = AdaptiveClock(opts, dt, stepper.error_order(), direction, t1, lands=stepper.lands,
                                       sde_rules=sde_rules)
        elif sde_rules:
            self.clock = LandingFixedClock(t0, t1, dt, direction)
        else:
            self.clock = FixedClock(t0, t1, dt, direction)
        self.saves = list(saveat) if saveat is not None else []
        self.si = 0
        while self.si < len(self.saves) and self.saves[self.si][0] == t0:
            out.save(t0, u0, self.saves[self.si][1], dt)
            self.si += 1
        if save_steps:
            out.save(t0, u0, 0, dt)
        self.cps = list(checkpoint_times) if checkpoint_times is not None else []
        self.ci = 0
        self.t, self.u = t0, u0
        self.t_new = t0
        self.nfe_before = 0

    def _segment(self, k: int):
        """The rhs for the segment before stop k (after the last stop: up to t1)."""
        stops = self.stops
        a = self.t0 if k == 0 else stops[k - 1]
        b = stops[k] if k < len(stops) else self.t1
        open_a = self.open_ends[0] if k == 0 else True
        open_b = self.open_ends[1] if k == len(stops) else True
        return SegmentRHS(self.base_rhs, a, b, open_a, open_b) if (open_a or open_b) else self.base_rhs

    # ------------------------------------------------------------------ the loop's phases
    def running(self) -> bool:
        return self.direction * (self.t1 - self.t) > 0.0

    def out_of_steps(self) -> None:
        self.out.retcode = ReturnCode.MAX_STEPS

    def propose(self) -> float:
        si, ti = self.si, self.ti
        save_t = self.saves[si][0] if si < len(self.saves) else None
        stop_t = self.stops[ti] if ti < len(self.stops) else None
        h, self.t_new = self.clock.propose(self.t, save_t, stop_t)
        return h

    def attempt(self, h: float):
        if self.clock.adaptive:  # only adaptive steps are rejected (and count their evaluations)
            self.nfe_before = self.stepper.nfe
        return self.stepper.attempt(self.t, self.u, h, self.t_new, self.start)

    def judge(self, step, h: float) -> Verdict | None:
        opts, u, ratio_t = self.opts, self.u, None
        if self.clock.adaptive:
            if self.reg == "error":
                ratio_t = self.stepper.error(step, u, opts.rtol, opts.atol)
                r = float(ratio_t.detach())
            else:
                with torch.no_grad():
                    r = float(self.stepper.error(step, u, opts.rtol, opts.atol))
            if not math.isfinite(r):
                return Verdict(False, r, None, False)
            # force_dtmin: a step at (or below) dtmin is taken whatever its error.
            return Verdict(r <= 1.0 or (opts.force_dtmin and abs(h) <= opts.dtmin), r, ratio_t, True)
        if not bool(torch.isfinite(step.u1).all()):
            self.out.retcode = ReturnCode.NON_FINITE
            return None
        if self.reg == "error":  # fixed steps of a method with an estimate: still regularize
            ratio_t = self.stepper.error(step, u, opts.rtol, opts.atol)
        return Verdict(True, None, ratio_t, True)

    def reject(self, h: float, v: Verdict) -> bool:
        if v.accepted:
            return True
        out = self.out
        out.nreject += 1
        out.nfe_rejected += self.stepper.nfe - self.nfe_before
        code = self.clock.rejected(h, v.r, v.finite, self.t)
        if code is not None:
            out.retcode = code
            return False
        return True

    def accept(self, step, h: float, v: Verdict) -> bool:
        if not v.accepted:
            return True
        out, d, saves = self.out, self.direction, self.saves
        t, u, t_new, u1 = self.t, self.u, self.t_new, step.u1
        stepper = self.stepper
        rhs = stepper.rhs
        R = None

        def coeffs():
            nonlocal R
            if R is None:
                R = stepper.coeffs(t, u, h, step, rhs)
            return R

        if self.reg == "error":
            out.reg_terms.append(v.ratio_t * abs(h))
        elif self.reg == "stiffness":
            out.reg_terms.append(stiffness_estimate(stepper.solver, step, stepper.ws) * abs(h))
        hits = self.events.scan(t, h, u, u1, t_new, coeffs) if self.events is not None else ()
        stop = hits[-1] if hits and hits[-1].terminal else None
        t_lim = stop.t if stop is not None else t_new
        for hit_ in hits:  # save points before each crossing, then the crossing
            while self.si < len(saves) and d * (saves[self.si][0] - hit_.t) <= 0.0:
                self._save(saves[self.si], t, h, u, u1, t_new, coeffs)
                self.si += 1
            out.save(hit_.t, hit_.u, EVENT, h)
            out.event_ids.append(hit_.index)
        while self.si < len(saves) and d * (saves[self.si][0] - t_lim) <= 0.0:
            self._save(saves[self.si], t, h, u, u1, t_new, coeffs)
            self.si += 1
        if self.save_steps and stop is None:
            out.save(t_new, u1, 0, h)
        if self.sample_step is not None and self.sample_step.random() * (out.naccept + 1) < 1.0:
            out.sampled = (t, u, abs(h))
        if out.dense is not None:
            out.dense.record_step(t, h, t_new, u, u1, coeffs)
        if self.on_accept is not None:
            self.on_accept(t, h, u, u1, coeffs)
        out.step_starts.append(t)
        out.step_dts.append(h)
        out.naccept += 1
        self.clock.accepted(h, v.r, t)
        if stop is not None:
            out.retcode = ReturnCode.TERMINATED
            self.t, self.u, self.start = stop.t, stop.u, None
            if out.dense is not None:
                out.dense.stop = stop.t
            return False
        self.t, self.u, self.start = t_new, u1, stepper.carry(step)
        ti = self.ti
        if ti < len(self.stops) and d * (self.stops[ti] - t_new) <= 1e-12 * abs(h):
            self.ti = ti = ti + 1  # landed on a stop (exactly, or a fixed grid point within round-off)
            self.start = None  # f may jump at a stop: the next step evaluates it afresh
            stepper.rhs = self._segment(ti)
        cps = self.cps
        while self.ci < len(cps) and d * (cps[self.ci] - t_new) <= 0.0:
            out.checkpoints.append((t_new, u1.detach(), abs(self.clock.dt)))
            self.ci += 1
        return True

    def _save(self, save, t, h, u, u1, t_new, coeffs) -> None:
        ts, tag = save
        u_s = u1 if ts == t_new else dense_eval(u, coeffs(), (ts - t) / h)
        self.out.save(ts, u_s, tag, h)

    def finish(self) -> Trajectory:
        out = self.out
        out.t_end, out.u_end, out.f_end, out.dt_next = self.t, self.u, self.start, abs(self.clock.dt)
        out.niters = self.niters
        return out


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
    """Integrate ``u' = rhs(t, u)`` from ``t0`` to ``t1`` (either direction) with ``solver``,
    one step size for the whole state.

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
        events: an :class:`~solvers.ode.events.EventTracker`; crossings become saved
            points tagged ``EVENT``, and a terminal one ends the integration there
            (``retcode`` TERMINATED, ``t_end``/``u_end`` at the event).
        tstops: times strictly inside the span, ordered in the direction of
            integration, that steps must land on: discontinuities of ``f`` in time. Each
            segment between them sees ``f``'s one-sided limits at its ends
            (:class:`~solvers.stepping.rhs.SegmentRHS`), with no FSAL reuse across a stop.
        open_ends: whether ``t0`` / ``t1`` are themselves such discontinuities (a
            backward adjoint segment between two stops).
    """
    stepper = ODEStepper(solver, rhs, u0, adaptive=opts.adaptive, grad=grad, err_numel=err_numel, norm=opts.norm,
                         probe=reg == "stiffness")
    return run(SharedSteps(stepper, t0, t1, u0, opts, start=f0, saveat=saveat, save_steps=save_steps, dense=dense,
                           reg=reg, on_accept=on_accept, checkpoint_times=checkpoint_times,
                           sample_step=sample_step, events=events, tstops=tstops, open_ends=open_ends))
