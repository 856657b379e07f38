"""Bogacki–Shampine 3(2)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import AbstractAdaptiveSolver, AbstractExplicitRK
from .tableau import ButcherTableau

_B = np.array([2 / 9, 1 / 3, 4 / 9, 0.0])
_TABLEAU = ButcherTableau(
    c=np.array([0.0, 0.5, 0.75, 1.0]),
    a=np.array([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.75, 0, 0], [2 / 9, 1 / 3, 4 / 9, 0]]),
    b=_B,
    # b minus the embedded second-order weights (7/24, 1/4, 1/3, 1/8).
    b_err=np.array([5 / 72, -1 / 12, -1 / 9, 1 / 8]),
    # Cubic Hermite interpolation through (u0, f0) and (u1, f1), written in the stages.
    dense=np.array([[1.0, -4 / 3, 5 / 9], [0.0, 1.0, -2 / 3], [0.0, 4 / 3, -8 / 9], [0.0, -1.0, 1.0]]),
    fsal=True,
)


@dataclasses.dataclass(frozen=True)
class BS3(AbstractExplicitRK, AbstractAdaptiveSolver):
    """Bogacki–Shampine 3(2) pair, FSAL (3 new evaluations per step), cubic Hermite
    dense output. Good at loose tolerances (rtol >= 1e-4); scipy's ``RK23``,
    MATLAB's ``ode23``.

    Reference: P. Bogacki, L. F. Shampine, "A 3(2) pair of Runge–Kutta formulas",
    Appl. Math. Lett. 2(4):321–325 (1989).
    """

    tableau = _TABLEAU

    def order(self) -> int:
        return 3

    def error_order(self) -> int:
        return 2
