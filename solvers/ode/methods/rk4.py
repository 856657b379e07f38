"""The classical fourth-order Runge–Kutta method."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=np.array([0.0, 0.5, 0.5, 1.0]),
    a=np.array([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]], dtype=float),
    b=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_err=None,
    # The free third-order continuous extension of classical RK4 (Hairer, Nørsett &
    # Wanner, Solving ODEs I, Sec. II.6, eq. 6.12).
    dense=np.array(
        [
            [1.0, -1.5, 2 / 3],
            [0.0, 1.0, -2 / 3],
            [0.0, 1.0, -2 / 3],
            [0.0, -0.5, 2 / 3],
        ]
    ),
)


@dataclasses.dataclass(frozen=True)
class RK4(AbstractExplicitRK):
    """Classical Runge–Kutta method of order 4. Fixed step; pass ``dt``.

    Four evaluations of ``f`` per step; third-order dense output without extra
    evaluations. Reference: W. Kutta, "Beitrag zur näherungsweisen Integration totaler
    Differentialgleichungen", Z. Math. Phys. 46 (1901).
    """

    tableau = _TABLEAU

    def order(self) -> int:
        return 4

    def dense_order(self) -> int:
        return 3
