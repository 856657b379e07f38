"""Dense output: the piecewise polynomial a solve leaves behind, evaluable at any t."""

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

    def append(self, t: float, dt: float, u0: torch.Tensor, R: torch.Tensor) -> None:
        self.starts.append(self.direction * t)
        self.dts.append(dt)
        self.u0s.append(u0)
        self.Rs.append(R)

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
