"""Per-sample stepping: every sample of a batch has its own time, step size and
accept/reject decision (as in torchode), all advanced together by vectorized steps.

The bookkeeping of the one integration loop (``loop.py``) with ``(batch,)`` tensors
where ``shared.py`` has floats. A finished sample keeps stepping with a negligible ``dt``
whose result is discarded, so the batch stays rectangular; one host synchronisation per
loop iteration reads a few flags. Save times are shared by the batch; a sample records a
save point when its own accepted step crosses it, by dense output.
"""

from __future__ import annotations

import torch

from ..ode.methods.base import dense_eval
from ..retcode import ReturnCode
from .controller import initial_step
from .dense import BatchedDenseOutput
from .loop import Bookkeeping, run
from .steppers import ODEStepper
from .trajectory import Trajectory


class PerSampleVerdict:
    """Which samples took part (``active``), were accepted or rejected, and their error
    ratios (``r`` detached, ``ratio`` differentiable; None for fixed steps)."""

    __slots__ = ("active", "accept", "reject", "r", "ratio", "finite")

    def __init__(self, active, accept, reject, r, ratio, finite):
        self.active, self.accept, self.reject, self.r, self.ratio, self.finite = active, accept, reject, r, ratio, finite


class PerSampleSteps(Bookkeeping):
    """Every sample with its own step (final); ``job`` is the solve's
    :class:`~solvers.stepping.job.SolveJob` (``u0`` of shape ``(batch, ...)``)."""

    def __init__(self, job, *, dense: bool, grad: bool):
        alg, rhs, opts = job.alg, job.rhs, job.opts
        u0, t0, t1, direction = job.u0, job.t0, job.t1, job.direction
        self.opts, self.max_steps = opts, opts.max_steps
        self.t0, self.t1, self.direction = t0, t1, direction
        self.B = B = u0.shape[0]
        self.dtype, self.device = dtype, device = u0.dtype, u0.device
        self.bview = (B,) + (1,) * (u0.dim() - 1)
        dims = tuple(range(1, u0.dim()))
        self.stepper = stepper = ODEStepper(alg, rhs, u0, adaptive=opts.adaptive, grad=grad, norm=opts.norm,
                                            dims=dims)
        self.adaptive = adaptive = stepper.adaptive
        self.out = Trajectory()
        self.reg_kind = job.global_reg_kind()
        self.dense = dense

        self.t = t = torch.full((B,), t0, dtype=dtype, device=device)
        self.f0 = job.f0 if (alg.fsal or adaptive) else None
        if adaptive:
            self.b1, self.b2 = opts.controller.exponents(alg.error_order())
            if opts.dt is not None:
                dt = torch.full((B,), direction * opts.dt, dtype=dtype, device=device)
            else:
                h0 = initial_step(rhs, t, u0, self.f0, direction, alg.error_order(), opts.rtol, opts.atol, dims=dims,
                                  norm=opts.norm)
                dt = direction * h0.clamp(max=opts.dtmax)
            if opts.dtmin > 0:
                dt = direction * dt.abs().clamp(min=opts.dtmin)
        else:
            dt = torch.full((B,), direction * opts.dt, dtype=dtype, device=device)
        self.dt = dt
        self.r_prev = torch.full((B,), 1e-4, dtype=dtype, device=device)
        self.rejected_last = torch.zeros(B, dtype=torch.bool, device=device)
        self.done = torch.zeros(B, dtype=torch.bool, device=device)
        self.failed = torch.zeros(B, dtype=torch.bool, device=device)
        self.nonfinite_fail = torch.zeros(B, dtype=torch.bool, device=device)
        self.tiny = torch.finfo(dtype).tiny ** 0.5
        self.n_fixed = torch.zeros(B, dtype=dtype, device=device)

        self.saves = saves = job.save_list() or []
        self.S = torch.tensor([s for s, _ in saves], dtype=dtype, device=device)
        self.n_s = n_s = len(saves)
        self.next_idx = torch.zeros(B, dtype=torch.long, device=device)
        self.src = torch.full((n_s, B), -1, dtype=torch.long, device=device)
        self.hsave = torch.zeros((n_s, B), dtype=dtype, device=device)  # step that produced each point
        self.vals: list[torch.Tensor] = []
        self.brange = torch.arange(B, device=device)
        # Points at t0 are the initial state for everyone.
        k = 0
        while k < n_s and saves[k][0] == t0:
            self.vals.append(u0)
            self.src[k] = len(self.vals) - 1
            self.hsave[k] = dt.abs()
            k += 1
        self.next_idx.fill_(k)

        self.naccept = torch.zeros((), dtype=torch.long, device=device)
        self.nreject = torch.zeros((), dtype=torch.long, device=device)
        self.d_starts, self.d_hs, self.d_acc, self.d_u0s, self.d_Rs = [], [], [], [], []
        self.res_t = self.res_u = self.res_h = None
        if job.reservoir is not None:
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(job.reservoir.randrange(2**62))
            self.res_count = torch.zeros(B, dtype=dtype, device=device)
            self.res_t, self.res_u, self.res_h = t.clone(), u0, dt.abs()
        # As with shared steps: methods with a much less accurate dense output step onto
        # the save times instead of interpolating them.
        self.land = stepper.lands
        self.u = u0

    # ------------------------------------------------------------------ the loop's phases
    def running(self) -> bool:
        return self.t0 != self.t1 and not bool(self.done.all())  # an empty span has nothing to integrate

    def out_of_steps(self) -> None:
        self.failed = self.failed | ~self.done
        self.out.retcode = ReturnCode.MAX_STEPS

    def propose(self):
        d, t, t1, dt = self.direction, self.t, self.t1, self.dt
        if self.adaptive:
            n_s = self.n_s
            if self.land and n_s:
                target = torch.where(self.next_idx < n_s, self.S[self.next_idx.clamp(max=n_s - 1)],
                                     torch.full_like(t, t1))
            else:
                target = torch.full_like(t, t1)
            self.hit = hit = d * (t + 1.01 * dt - target) >= 0
            last = hit & (target == t1)
            h = torch.where(hit, target - t, dt)
        else:
            t_next = self.t0 + (self.n_fixed + 1) * dt
            last = d * (t_next - t1) >= -1e-12 * dt.abs()
            h = torch.where(last, torch.full_like(t, t1), t_next) - t
        self.last = last
        h = torch.where(self.done, torch.full_like(h, d * self.tiny), h)
        t_new = torch.where(last, torch.full_like(t, t1), t + h)
        self.t_new = torch.where(hit, target, t_new) if self.adaptive else t_new
        return h

    def attempt(self, h):
        return self.stepper.attempt(self.t, self.u, h.view(self.bview), None, self.f0)

    def judge(self, step, h) -> PerSampleVerdict:
        opts, active = self.opts, ~self.done
        if self.adaptive:
            ratio = self.stepper.error(step, self.u, opts.rtol, opts.atol)
            r = ratio.detach()
            finite = torch.isfinite(r)
            ok = r <= 1.0
            if opts.force_dtmin:  # a step at dtmin is taken whatever its error
                ok = ok | (h.abs() <= opts.dtmin)
            accept = active & finite & ok
        else:
            ratio = r = None
            finite = torch.isfinite(step.u1.detach()).reshape(self.B, -1).all(1)
            accept = active & finite
        return PerSampleVerdict(active, accept, active & ~accept, r, ratio, finite)

    def accept(self, step, h, v: PerSampleVerdict) -> bool:
        accept, bview, n_s, d = v.accept, self.bview, self.n_s, self.direction
        acc_v = accept.view(bview)
        t, u, t_new = self.t, self.u, self.t_new
        stepper = self.stepper

        # ---- record saved points crossed by accepted steps
        R = None
        while True:
            idx = self.next_idx.clamp(max=max(n_s - 1, 0))
            crossed = accept & (self.next_idx < n_s) & (d * (self.S[idx] - t_new) <= 0) if n_s else accept & False
            if not bool(crossed.any()):
                break
            if R is None:
                R = stepper.coeffs(t, u, h.view(bview), step, stepper.rhs)
            ts = self.S[idx]
            theta = ((ts - t) / h).view(bview)
            at_end = (ts == t_new).view(bview)
            self.vals.append(torch.where(at_end, step.u1, dense_eval(u, R, theta)))
            self.src[idx[crossed], self.brange[crossed]] = len(self.vals) - 1
            self.hsave[idx[crossed], self.brange[crossed]] = h.abs()[crossed]
            self.next_idx = self.next_idx + crossed.long()

        if self.reg_kind == "error" and self.adaptive:
            ratio = v.ratio
            self.out.reg_terms.append(torch.where(accept, ratio * h.abs(), torch.zeros_like(ratio)))
        if self.dense:
            if R is None:
                R = stepper.coeffs(t, u, h.view(bview), step, stepper.rhs)
            self.d_starts.append(t)
            self.d_hs.append(h)
            self.d_acc.append(accept)
            self.d_u0s.append(u)
            self.d_Rs.append(R)
        if self.res_t is not None:
            dtype, device = self.dtype, self.device
            self.res_count = self.res_count + accept.to(dtype)
            take = accept & (torch.rand(self.B, generator=self.gen, dtype=dtype, device=device) * self.res_count < 1.0)
            self.res_t = torch.where(take, t, self.res_t)
            self.res_h = torch.where(take, h.abs(), self.res_h)
            self.res_u = torch.where(take.view(bview), u, self.res_u)

        # ---- advance accepted samples
        self.u = torch.where(acc_v, step.u1, u)
        if step.f1 is not None:
            self.f0 = torch.where(acc_v, step.f1, self.f0)
        elif self.f0 is not None:
            self.f0 = None
        self.t = torch.where(accept, t_new, t)
        self.naccept = self.naccept + accept.sum()
        if not self.adaptive:
            self.n_fixed = self.n_fixed + accept.to(self.dtype)
            self.done = self.done | (accept & self.last)
            return True
        # ---- the controller's next step for the accepted samples
        opts, r, dt = self.opts, v.r, self.dt
        ctrl = opts.controller
        fac_acc = (ctrl.safety * r.clamp_min(1e-300) ** (-self.b1) * self.r_prev**self.b2)
        fac_acc = torch.where(r == 0, torch.full_like(r, ctrl.factor_max), fac_acc)
        fac_acc = fac_acc.clamp(ctrl.factor_min, ctrl.factor_max)
        fac_acc = torch.where(self.rejected_last, fac_acc.clamp(max=1.0), fac_acc)
        dt_acc = (h * fac_acc).clamp(-opts.dtmax, opts.dtmax)
        if opts.dtmin > 0:
            dt_acc = torch.where(dt_acc.abs() < opts.dtmin, d * torch.full_like(dt_acc, opts.dtmin), dt_acc)
        # Keep the proposal, not a step shortened to land on a target.
        dt_acc = torch.where(self.hit & (dt.abs() > dt_acc.abs()), dt, dt_acc)
        self.dt = torch.where(accept, dt_acc, dt)
        self.r_prev = torch.where(accept, r.clamp_min(1e-4), self.r_prev)
        self.done = self.done | (accept & self.last)
        return True

    def reject(self, h, v: PerSampleVerdict) -> bool:
        reject = v.reject
        self.nreject = self.nreject + reject.sum()
        if not self.adaptive:
            self.failed = self.failed | reject
            self.done = self.done | reject
            return True
        opts, d = self.opts, self.direction
        ctrl = opts.controller
        r, finite = v.r, v.finite
        fac_rej = (ctrl.safety * r.clamp_min(1e-300) ** (-self.b1)).clamp(ctrl.factor_min, 1.0)
        fac_rej = torch.where(finite, fac_rej, torch.full_like(r, 0.1))
        dt = torch.where(reject, h * fac_rej, self.dt)
        self.rejected_last = torch.where(v.active, reject, self.rejected_last)
        if opts.force_dtmin:
            retry = reject & (dt.abs() < opts.dtmin) & (h.abs() > opts.dtmin)
            dt = torch.where(retry, d * torch.full_like(dt, opts.dtmin), dt)
        self.dt = dt
        too_small = reject & (dt.abs() < torch.clamp_min(16 * 2.2e-16 * self.t.abs(), opts.dtmin))
        self.failed = self.failed | too_small
        self.nonfinite_fail = self.nonfinite_fail | (too_small & ~finite)
        self.done = self.done | too_small
        return True

    def finish(self) -> Trajectory:
        out, n_s, saves, d = self.out, self.n_s, self.saves, self.direction
        if bool(self.failed.any()) and out.retcode is ReturnCode.SUCCESS:
            if not self.adaptive or bool(self.nonfinite_fail.any()):
                out.retcode = ReturnCode.NON_FINITE
            else:
                out.retcode = ReturnCode.DT_LESS_THAN_MIN
        # Keep only the save points every sample reached (a failed sample stops early).
        complete = (self.src >= 0).all(1).tolist() if n_s else []
        n_ok = 0
        while n_ok < n_s and complete[n_ok]:
            n_ok += 1
        if n_ok:
            stacked = torch.stack(self.vals)  # (E, B, ...)
            gathered = stacked[self.src[:n_ok], self.brange[None, :]]  # (n_ok, B, ...)
            out.us = list(gathered.unbind(0))
        out.ts = [s for s, _ in saves[:n_ok]]
        out.tags = [tag for _, tag in saves[:n_ok]]
        out.save_h = list(self.hsave[:n_ok].unbind(0))
        out.naccept, out.nreject, out.niters = int(self.naccept), int(self.nreject), self.niters
        out.t_end = self.t1 if out.retcode is ReturnCode.SUCCESS else float((d * self.t).min() * d)
        out.u_end, out.f_end = self.u, self.f0
        out.dt_next = float(self.dt.abs().min())
        if self.dense and self.d_starts:
            out.dense = BatchedDenseOutput(self.d_starts, self.d_hs, self.d_acc, self.d_u0s, self.d_Rs, d, self.t0,
                                           out.t_end)
        if self.res_t is not None and int(self.res_count.min()) > 0:
            out.sampled = (self.res_t, self.res_u, self.res_h)
        return out


def integrate_per_sample(job, *, dense: bool, grad: bool) -> Trajectory:
    """Integrate ``job`` with per-sample steps (``solve(..., per_sample=True)``)."""
    return run(PerSampleSteps(job, dense=dense, grad=grad))
