"""The SDE integration loop (one step size for the whole state)."""

from __future__ import annotations

import bisect
import math

import torch

from ..retcode import ReturnCode
from ..sde.methods.base import AbstractAdaptiveSDESolver
from .controller import error_ratio
from .integrate import StepOptions, Trajectory

_EPS = 2.220446049250313e-16


class LinearDense:
    """Piecewise-linear interpolation of an SDE path between accepted steps (the
    path between steps is not smooth, so a higher-order interpolant gains nothing)."""

    def __init__(self, ts: list[float], us: list[torch.Tensor], direction: float):
        self.ts, self.us, self.direction = ts, us, direction
        self._keys = [direction * t for t in ts]

    def eval(self, t) -> torch.Tensor:
        tf = float(t)
        lo, hi = sorted((self.ts[0], self.ts[-1]))
        if not lo - 1e-12 * max(1.0, abs(lo), abs(hi)) <= tf <= hi + 1e-12 * max(1.0, abs(hi)):
            raise ValueError(f"t={tf} lies outside the solved interval [{lo}, {hi}]; dense output does not extrapolate")
        k = min(max(bisect.bisect_right(self._keys, self.direction * tf) - 1, 0), len(self.ts) - 2)
        if len(self.ts) == 1:
            return self.us[0]
        ta, tb = self.ts[k], self.ts[k + 1]
        s = (tf - ta) / (tb - ta)
        return torch.lerp(self.us[k], self.us[k + 1], s)


def error_of(err, u, u1, rtol, atol):
    e_drift, e_diff = err
    return error_ratio(e_drift, u, u1, rtol, atol) + error_ratio(e_diff, u, u1, rtol, atol)


def integrate_sde(alg, drift, diffusion, W, t0, t1, u0, opts: StepOptions, *, saves, save_steps, dense, reg_kind,
                  reservoir) -> Trajectory:
    out = Trajectory()
    direction = 1.0 if t1 > t0 else -1.0
    adaptive = opts.adaptive and isinstance(alg, AbstractAdaptiveSDESolver)
    b1, b2 = opts.controller.exponents(1)
    if opts.dt is not None:
        dt = direction * opts.dt
    else:
        # No Hairer heuristic for SDEs: start at 1% of the span and let control adapt.
        dt = direction * min(opts.dtmax, 0.01 * abs(t1 - t0))
    saves = list(saves or [])
    si = 0
    while si < len(saves) and saves[si][0] == t0:
        out.save(t0, u0, saves[si][1], dt)
        si += 1
    if save_steps:
        out.save(t0, u0, 0, dt)
    dense_ts, dense_us = [t0], [u0]

    t, u = t0, u0
    f0 = g0 = None
    r_prev = 1e-4
    attempts = 0
    n_fixed = 0
    rejected_last = False
    while direction * (t1 - t) > 0.0:
        if attempts >= opts.max_steps:
            out.retcode = ReturnCode.MAX_STEPS
            break
        attempts += 1
        # Land exactly on the next save time (or t1): the path is not smooth, so save
        # points are stepped to, not interpolated.
        target = saves[si][0] if si < len(saves) else t1
        if adaptive:
            h = dt
            if direction * (t + 1.01 * h - target) >= 0.0:
                h = target - t
        else:
            t_next = t0 + (n_fixed + 1) * dt
            h = dt if direction * (t_next - target) < -1e-12 * abs(dt) else target - t
        t_new = target if h == target - t else t + h
        dW = W(t_new) - W(t)
        step = alg.step(drift, diffusion, t, u, h, dW, f0, g0)
        ratio_t = None
        if adaptive:
            if reg_kind == "error":
                ratio_t = error_of(step.err, u, step.u1, opts.rtol, opts.atol)
                r = float(ratio_t.detach())
            else:
                with torch.no_grad():
                    r = float(error_of(step.err, u, step.u1, opts.rtol, opts.atol))
            finite = math.isfinite(r)
            accept = finite and r <= 1.0
        else:
            finite = accept = bool(torch.isfinite(step.u1).all())
            if not accept:
                out.retcode = ReturnCode.NON_FINITE
                break
        if not accept:
            out.nreject += 1
            rejected_last = True
            dt = h * (0.1 if not finite else opts.controller.reject_factor(r, b1))
            if abs(dt) < max(opts.dtmin, 16 * _EPS * abs(t)):
                out.retcode = ReturnCode.NON_FINITE if not finite else ReturnCode.DT_LESS_THAN_MIN
                break
            continue
        if reg_kind == "error":
            out.reg_terms.append(ratio_t * abs(h))
        if reservoir is not None and reservoir.random() * (out.naccept + 1) < 1.0:
            out.sampled = (t, u, abs(h))
        out.step_starts.append(t)
        out.step_dts.append(h)
        out.naccept += 1
        n_fixed += 1
        t, u = t_new, step.u1
        f0, g0 = step.f1, step.g1
        while si < len(saves) and saves[si][0] == t:
            out.save(t, u, saves[si][1], h)
            si += 1
        if save_steps:
            out.save(t, u, 0, h)
        if dense:
            dense_ts.append(t)
            dense_us.append(u)
        if adaptive:
            fac = opts.controller.factor(r, r_prev, b1, b2)
            if rejected_last:
                fac = min(fac, 1.0)
            r_prev = max(r, 1e-4)
            # A step shortened to land on a save time does not shrink the next one.
            dt = direction * min(opts.dtmax, max(abs(h * fac), abs(dt) if abs(h) < abs(dt) else 0.0))
        rejected_last = False
    out.t_end, out.u_end, out.dt_next = t, u, abs(dt)
    if dense:
        out.dense = LinearDense(dense_ts, dense_us, direction)
    return out
