"""Dense output: what a solve leaves behind to be evaluated at any t.

``DenseOutput``: the piecewise polynomial of a shared-step ODE solve; ``LinearDense``: the
piecewise-linear path of an SDE solve; ``BatchedDenseOutput``: per-sample steps (kept
for the continuous adjoints). The integration loop feeds each accepted step to
``record_step(t, h, t_new, u, u1, coeffs)``.
"""

from __future__ import annotations

import bisect

import torch

from ..ode.methods.base import dense_eval


class DenseOutput:
    """Continuous extension over the accepted steps of a shared-step solve.

    Each step ``[t_k, t_k + dt_k]`` keeps its start state and monomial coefficients
    ``R_k`` (``(d, *shape)``), so ``u(t) = u_k + sum_j theta**(j+1) R_k[j]`` with
    ``theta = (t - t_k) / dt_k``. Under ``DirectAdjoint`` the values are differentiable.
    """

    def __init__(self, t0: float, direction: float, u0: torch.Tensor | None = None):
        self.t0, self.direction, self.u0 = t0, direction, u0  # u0: the value of an empty span
        self.stop: float | None = None  # a terminal event's time: the end, inside the last step
        self.starts: list[float] = []  # direction * t_k, increasing
        self.dts: list[float] = []
        self.u0s: list[torch.Tensor] = []
        self.Rs: list[torch.Tensor] = []

    def record_step(self, t: float, h: float, t_new: float, u: torch.Tensor, u1: torch.Tensor, coeffs) -> None:
        """Keep the accepted step ``[t, t + h]`` from ``u``; ``coeffs()`` is its ``R``."""
        self.starts.append(self.direction * t)
        self.dts.append(h)
        self.u0s.append(u)
        self.Rs.append(coeffs())

    @property
    def t_end(self) -> float:
        if self.stop is not None:
            return self.stop
        if not self.dts:
            return self.t0
        return self.direction * self.starts[-1] + self.dts[-1]

    def __len__(self) -> int:
        return len(self.dts)

    def locate(self, t: float) -> int:
        s = self.direction * t
        k = bisect.bisect_right(self.starts, s) - 1
        return min(max(k, 0), len(self.starts) - 1)

    def eval(self, t) -> torch.Tensor:
        """State at time ``t`` (a float, or a 0-d tensor to differentiate in time)."""
        tf = float(t.detach()) if isinstance(t, torch.Tensor) else float(t)
        lo, hi = sorted((self.t0, self.t_end))
        slack = 1e-12 * max(1.0, abs(lo), abs(hi))
        if not self.dts and self.u0 is not None and tf == self.t0:
            return self.u0
        if not self.dts or not (lo - slack <= tf <= hi + slack):
            raise ValueError(f"t={tf} lies outside the solved interval [{lo}, {hi}]; dense output does not extrapolate")
        k = self.locate(tf)
        theta = (t - self.direction * self.starts[k]) / self.dts[k]
        return dense_eval(self.u0s[k], self.Rs[k], theta)


class LinearDense:
    """Piecewise-linear interpolation of an SDE path between accepted steps (the
    path between steps is not smooth, so a higher-order interpolant gains nothing)."""

    def __init__(self, t0: float, direction: float, u0: torch.Tensor):
        self.ts, self.us, self.direction = [t0], [u0], direction
        self._keys = [direction * t0]

    def record_step(self, t: float, h: float, t_new: float, u: torch.Tensor, u1: torch.Tensor, coeffs) -> None:
        """Keep the end point ``(t_new, u1)`` of an accepted step."""
        self.ts.append(t_new)
        self.us.append(u1)
        self._keys.append(self.direction * t_new)

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
