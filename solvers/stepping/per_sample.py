"""Per-sample stepping: every sample of a batch has its own time, step size and
accept/reject decision (as in torchode), all advanced together by vectorized steps.

A finished sample keeps stepping with a negligible ``dt`` whose result is discarded,
so the batch stays rectangular; one host synchronisation per loop iteration reads a
few flags. Save times are shared by the batch; a sample records a save point when its
own accepted step crosses it, by dense output.
"""

from __future__ import annotations

import torch

from ..ode.methods.base import AbstractAdaptiveSolver, dense_eval
from ..retcode import ReturnCode
from .controller import error_ratio, initial_step
from .integrate import Trajectory


class BatchedDenseOutput:
    """Dense output of a per-sample solve: per iteration, each sample's step start,
    size, acceptance flag, start state and coefficients."""

    def __init__(self, starts, hs, accepted, u0s, Rs, direction, t0, t_end):
        self.starts = torch.stack(starts)  # (I, B)
        self.hs = torch.stack(hs)  # (I, B)
        self.accepted = torch.stack(accepted)  # (I, B)
        self.u0s = torch.stack(u0s)  # (I, B, ...)
        self.Rs = torch.stack(Rs)  # (I, d, B, ...)
        self.direction, self.t0, self.t_end = direction, t0, t_end

    def eval(self, t) -> torch.Tensor:
        tf = float(t.detach()) if isinstance(t, torch.Tensor) else float(t)
        lo, hi = sorted((self.t0, self.t_end))
        slack = 1e-12 * max(1.0, abs(lo), abs(hi))
        if not (lo - slack <= tf <= hi + slack):
            raise ValueError(f"t={tf} lies outside the solved interval [{lo}, {hi}]; dense output does not extrapolate")
        d = self.direction
        ends = self.starts + self.hs
        cover = self.accepted & (d * (tf - self.starts) >= -slack) & (d * (tf - ends) <= slack)
        idx = cover.to(torch.int8).argmax(0)  # first covering iteration of each sample
        b = torch.arange(self.starts.shape[1], device=self.starts.device)
        start, h = self.starts[idx, b], self.hs[idx, b]
        u0 = self.u0s[idx, b]
        R = self.Rs[idx, :, b].transpose(0, 1)  # (d, B, ...)
        theta = ((t - start) / h).view((-1,) + (1,) * (u0.dim() - 1))
        return dense_eval(u0, R, theta)


def integrate_per_sample(job, *, dense: bool, grad: bool) -> Trajectory:
    alg, rhs, opts = job.alg, job.rhs, job.opts
    u0, t0, t1, direction = job.u0, job.t0, job.t1, job.direction
    B = u0.shape[0]
    dtype, device = u0.dtype, u0.device
    bview = (B,) + (1,) * (u0.dim() - 1)
    dims = tuple(range(1, u0.dim()))
    adaptive = opts.adaptive and isinstance(alg, AbstractAdaptiveSolver)
    ws = alg.workspace(u0, grad=grad)
    out = Trajectory()
    reg_kind = job.global_reg_kind()

    t = torch.full((B,), t0, dtype=dtype, device=device)
    f0 = job.f0 if (alg.fsal or adaptive) else None
    if adaptive:
        b1, b2 = opts.controller.exponents(alg.error_order())
        if opts.dt is not None:
            dt = torch.full((B,), direction * opts.dt, dtype=dtype, device=device)
        else:
            h0 = initial_step(rhs, t, u0, f0, direction, alg.error_order(), opts.rtol, opts.atol, dims=dims,
                              norm=opts.norm)
            dt = direction * h0.clamp(max=opts.dtmax)
        if opts.dtmin > 0:
            dt = direction * dt.abs().clamp(min=opts.dtmin)
    else:
        dt = torch.full((B,), direction * opts.dt, dtype=dtype, device=device)
    r_prev = torch.full((B,), 1e-4, dtype=dtype, device=device)
    rejected_last = torch.zeros(B, dtype=torch.bool, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    failed = torch.zeros(B, dtype=torch.bool, device=device)
    nonfinite_fail = torch.zeros(B, dtype=torch.bool, device=device)
    tiny = torch.finfo(dtype).tiny ** 0.5
    n_fixed = torch.zeros(B, dtype=dtype, device=device)

    saves = job.save_list() or []
    S = torch.tensor([s for s, _ in saves], dtype=dtype, device=device)
    n_s = len(saves)
    next_idx = torch.zeros(B, dtype=torch.long, device=device)
    src = torch.full((n_s, B), -1, dtype=torch.long, device=device)
    hsave = torch.zeros((n_s, B), dtype=dtype, device=device)  # step that produced each point
    vals: list[torch.Tensor] = []
    brange = torch.arange(B, device=device)
    # Points at t0 are the initial state for everyone.
    k = 0
    while k < n_s and saves[k][0] == t0:
        vals.append(u0)
        src[k] = len(vals) - 1
        hsave[k] = dt.abs()
        k += 1
    next_idx.fill_(k)

    naccept = torch.zeros((), dtype=torch.long, device=device)
    nreject = torch.zeros((), dtype=torch.long, device=device)
    d_starts, d_hs, d_acc, d_u0s, d_Rs = [], [], [], [], []
    res_t = res_u = res_h = None
    if job.reservoir is not None:
        gen = torch.Generator(device=device)
        gen.manual_seed(job.reservoir.randrange(2**62))
        res_count = torch.zeros(B, dtype=dtype, device=device)
        res_t, res_u, res_h = t.clone(), u0, dt.abs()

    # As in the shared loop: methods with a much less accurate dense output step onto
    # the save times instead of interpolating them.
    land = adaptive and alg.dense_order() < alg.order() - 1
    u = u0
    niters = 0
    while t0 != t1:  # an empty span has nothing to integrate
        active = ~done
        if adaptive:
            if land and n_s:
                target = torch.where(next_idx < n_s, S[next_idx.clamp(max=n_s - 1)], torch.full_like(t, t1))
            else:
                target = torch.full_like(t, t1)
            hit = direction * (t + 1.01 * dt - target) >= 0
            last = hit & (target == t1)
            h = torch.where(hit, target - t, dt)
        else:
            t_next = t0 + (n_fixed + 1) * dt
            last = direction * (t_next - t1) >= -1e-12 * dt.abs()
            h = torch.where(last, torch.full_like(t, t1), t_next) - t
        h = torch.where(done, torch.full_like(h, direction * tiny), h)
        step = alg.step(rhs, t, u, h.view(bview), f0, ws)
        niters += 1
        if adaptive:
            ratio = error_ratio(step.err, u, step.u1, opts.rtol, opts.atol, dims=dims, norm=opts.norm)
            r = ratio.detach()
            finite = torch.isfinite(r)
            ok = r <= 1.0
            if opts.force_dtmin:  # a step at dtmin is taken whatever its error
                ok = ok | (h.abs() <= opts.dtmin)
            accept = active & finite & ok
        else:
            finite = torch.isfinite(step.u1.detach()).reshape(B, -1).all(1)
            accept = active & finite
            r = None
        reject = active & ~accept
        acc_v = accept.view(bview)
        t_new = torch.where(last, torch.full_like(t, t1), t + h)
        if adaptive:
            t_new = torch.where(hit, target, t_new)

        # ---- record saved points crossed by accepted steps
        R = None
        while True:
            idx = next_idx.clamp(max=max(n_s - 1, 0))
            crossed = accept & (next_idx < n_s) & (direction * (S[idx] - t_new) <= 0) if n_s else accept & False
            if not bool(crossed.any()):
                break
            if R is None:
                R = alg.dense_coeffs(rhs, t, u, h.view(bview), step, ws)
            ts = S[idx]
            theta = ((ts - t) / h).view(bview)
            at_end = (ts == t_new).view(bview)
            val = torch.where(at_end, step.u1, dense_eval(u, R, theta))
            vals.append(val)
            src[idx[crossed], brange[crossed]] = len(vals) - 1
            hsave[idx[crossed], brange[crossed]] = h.abs()[crossed]
            next_idx = next_idx + crossed.long()

        if reg_kind == "error" and adaptive:
            out.reg_terms.append(torch.where(accept, ratio * h.abs(), torch.zeros_like(ratio)))
        if dense:
            if R is None:
                R = alg.dense_coeffs(rhs, t, u, h.view(bview), step, ws)
            d_starts.append(t)
            d_hs.append(h)
            d_acc.append(accept)
            d_u0s.append(u)
            d_Rs.append(R)
        if res_t is not None:
            res_count = res_count + accept.to(dtype)
            take = accept & (torch.rand(B, generator=gen, dtype=dtype, device=device) * res_count < 1.0)
            res_t = torch.where(take, t, res_t)
            res_h = torch.where(take, h.abs(), res_h)
            res_u = torch.where(take.view(bview), u, res_u)

        # ---- advance accepted samples
        u = torch.where(acc_v, step.u1, u)
        if step.f1 is not None:
            f0 = torch.where(acc_v, step.f1, f0)
        elif f0 is not None:
            f0 = None
        t = torch.where(accept, t_new, t)
        naccept = naccept + accept.sum()
        nreject = nreject + reject.sum()
        if not adaptive:
            n_fixed = n_fixed + accept.to(dtype)
            failed = failed | reject
            done = done | (accept & last) | reject
        else:
            fac_acc = (opts.controller.safety * r.clamp_min(1e-300) ** (-b1) * r_prev**b2)
            fac_acc = torch.where(r == 0, torch.full_like(r, opts.controller.factor_max), fac_acc)
            fac_acc = fac_acc.clamp(opts.controller.factor_min, opts.controller.factor_max)
            fac_acc = torch.where(rejected_last, fac_acc.clamp(max=1.0), fac_acc)
            fac_rej = (opts.controller.safety * r.clamp_min(1e-300) ** (-b1)).clamp(opts.controller.factor_min, 1.0)
            fac_rej = torch.where(finite, fac_rej, torch.full_like(r, 0.1))
            dt_acc = (h * fac_acc).clamp(-opts.dtmax, opts.dtmax)
            if opts.dtmin > 0:
                dt_acc = torch.where(dt_acc.abs() < opts.dtmin, direction * torch.full_like(dt_acc, opts.dtmin), dt_acc)
            # Keep the proposal, not a step shortened to land on a target.
            dt_acc = torch.where(hit & (dt.abs() > dt_acc.abs()), dt, dt_acc)
            dt = torch.where(accept, dt_acc, torch.where(reject, h * fac_rej, dt))
            r_prev = torch.where(accept, r.clamp_min(1e-4), r_prev)
            rejected_last = torch.where(active, reject, rejected_last)
            if opts.force_dtmin:
                retry = reject & (dt.abs() < opts.dtmin) & (h.abs() > opts.dtmin)
                dt = torch.where(retry, direction * torch.full_like(dt, opts.dtmin), dt)
            too_small = reject & (dt.abs() < torch.clamp_min(16 * 2.2e-16 * t.abs(), opts.dtmin))
            failed = failed | too_small
            nonfinite_fail = nonfinite_fail | (too_small & ~finite)
            done = done | (accept & last) | too_small
        if bool(done.all()):
            break
        if niters >= opts.max_steps:
            failed = failed | ~done
            out.retcode = ReturnCode.MAX_STEPS
            break

    if bool(failed.any()) and out.retcode is ReturnCode.SUCCESS:
        if not adaptive or bool(nonfinite_fail.any()):
            out.retcode = ReturnCode.NON_FINITE
        else:
            out.retcode = ReturnCode.DT_LESS_THAN_MIN
    # Keep only the save points every sample reached (a failed sample stops early).
    complete = (src >= 0).all(1).tolist() if n_s else []
    n_ok = 0
    while n_ok < n_s and complete[n_ok]:
        n_ok += 1
    if n_ok:
        stacked = torch.stack(vals)  # (E, B, ...)
        gathered = stacked[src[:n_ok], brange[None, :]]  # (n_ok, B, ...)
        out.us = list(gathered.unbind(0))
    out.ts = [s for s, _ in saves[:n_ok]]
    out.tags = [tag for _, tag in saves[:n_ok]]
    out.save_h = list(hsave[:n_ok].unbind(0))
    out.naccept, out.nreject, out.niters = int(naccept), int(nreject), niters
    out.t_end = t1 if out.retcode is ReturnCode.SUCCESS else float((direction * t).min() * direction)
    out.u_end, out.f_end = u, f0
    out.dt_next = float(dt.abs().min())
    if dense and d_starts:
        out.dense = BatchedDenseOutput(d_starts, d_hs, d_acc, d_u0s, d_Rs, direction, t0, out.t_end)
    if res_t is not None and int(res_count.min()) > 0:
        out.sampled = (res_t, res_u, res_h)
    return out
