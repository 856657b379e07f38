"""Rosenbrock23: the L-stable Rosenbrock pair of MATLAB's ode23s."""

from __future__ import annotations

import dataclasses
import math

import torch

from .base import StepResult, time_at
from .rosenbrock import AbstractRosenbrock

_D = 1.0 / (2.0 + math.sqrt(2.0))
_E32 = 6.0 + math.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class Rosenbrock23(AbstractRosenbrock):
    """Shampine–Reichelt Rosenbrock 2(3): second-order, L-stable, with a third-order
    error estimate and a free second-order dense output. Cheap per step (one
    Jacobian, one LU, two stage solves plus one for the error); best at loose
    tolerances on stiff problems, e.g. neural ODEs whose dynamics turned stiff.

    Args:
        jacobian: "dense" (all entries of u coupled) or "batch" (leading dimension =
            independent samples, block-diagonal Jacobian).

    Reference: L. F. Shampine, M. W. Reichelt, "The MATLAB ODE suite", SIAM J. Sci.
    Comput. 18(1):1–22 (1997).
    """

    jacobian: str = "dense"

    def __post_init__(self):
        self._check()

    fsal = True

    def order(self) -> int:
        return 2

    def error_order(self) -> int:
        return 2

    def step(self, rhs, t, u, dt, f0, ws):
        per_sample = isinstance(dt, torch.Tensor)
        # W = I - dt*d*J  ==  dt*d * (I/(dt*d) - J): solve with the latter, rescale.
        F0, lu, ft = self.factor(rhs, t, u, dt, _D, ws, per_sample=per_sample)
        hd = dt * _D

        def wsolve(b):
            return self.solve(lu, b) / hd

        k1 = wsolve(F0 + hd * ft)
        F1 = rhs(time_at(t, 0.5, dt), u + (0.5 * dt) * k1)
        k2 = wsolve(F1 - k1) + k1
        u1 = u + dt * k2
        F2 = rhs(time_at(t, 1.0, dt), u1)
        k3 = wsolve(F2 - _E32 * (k2 - F1) - 2.0 * (k1 - F0) + hd * ft)
        err = (dt / 6.0) * (k1 - 2.0 * k2 + k3)
        ws.stage_state = (k1, k2)
        return StepResult(u1, err, F2)

    def dense_coeffs(self, rhs, t, u, dt, step, ws):
        k1, k2 = ws.stage_state
        s = 1.0 / (1.0 - 2.0 * _D)
        return torch.stack([(k1 - 2.0 * _D * k2) * s, (k2 - k1) * s]) * dt
