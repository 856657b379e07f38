"""Dormand–Prince 5(4)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import AbstractAdaptiveSolver, AbstractExplicitRK
from .tableau import ButcherTableau

_A = np.zeros((7, 7))
_A[1, :1] = [1 / 5]
_A[2, :2] = [3 / 40, 9 / 40]
_A[3, :3] = [44 / 45, -56 / 15, 32 / 9]
_A[4, :4] = [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729]
_A[5, :5] = [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]
_A[6, :6] = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]

_TABLEAU = ButcherTableau(
    c=np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]),
    a=_A,
    b=_A[6].copy(),
    b_err=np.array([71 / 57600, 0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]),
    # Shampine's fourth-order continuous extension (the optimal c6 choice of
    # "Some practical Runge-Kutta formulas", Math. Comp. 46 (1986)), in monomial form.
    dense=np.array(
        [
            [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
            [0, 0, 0, 0],
            [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
            [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
            [0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
            [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
            [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
        ]
    ),
    fsal=True,
)


@dataclasses.dataclass(frozen=True)
class DP5(AbstractExplicitRK, AbstractAdaptiveSolver):
    """Dormand–Prince 5(4): the method of scipy's ``RK45``, MATLAB's ``ode45`` and
    torchdiffeq's ``dopri5``. FSAL (6 new evaluations per step), fourth-order dense
    output, local extrapolation (steps with the fifth-order solution).

    Reference: J. R. Dormand, P. J. Prince, "A family of embedded Runge–Kutta formulae",
    J. Comput. Appl. Math. 6(1):19–26 (1980); dense output from L. F. Shampine, Math.
    Comp. 46(173):135–150 (1986).
    """

    tableau = _TABLEAU
    stiffness_stages = (5, 6)

    def order(self) -> int:
        return 5

    def error_order(self) -> int:
        return 4

    def dense_order(self) -> int:
        return 4
