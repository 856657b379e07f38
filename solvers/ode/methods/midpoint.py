"""The explicit midpoint method."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=np.array([0.0, 0.5]),
    a=np.array([[0.0, 0.0], [0.5, 0.0]]),
    b=np.array([0.0, 1.0]),
    b_err=None,
    # u(theta) = u0 + dt (theta k1 + theta^2 (k2 - k1)): second order (k2 - k1 ~ dt/2 u'').
    dense=np.array([[1.0, -1.0], [0.0, 1.0]]),
)


@dataclasses.dataclass(frozen=True)
class Midpoint(AbstractExplicitRK):
    """Explicit midpoint (Runge's second-order method). Fixed step; pass ``dt``.

    Second order, two evaluations of ``f`` per step, quadratic dense output.
    Reference: C. Runge, "Über die numerische Auflösung von Differentialgleichungen",
    Math. Ann. 46 (1895); Hairer, Nørsett & Wanner, *Solving ODEs I*, Sec. II.1.
    """

    tableau = _TABLEAU

    def order(self) -> int:
        return 2
