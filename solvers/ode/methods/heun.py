"""Heun's method (explicit trapezoidal rule)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=np.array([0.0, 1.0]),
    a=np.array([[0.0, 0.0], [1.0, 0.0]]),
    b=np.array([0.5, 0.5]),
    b_err=None,
    # u(theta) = u0 + dt (theta k1 + theta^2/2 (k2 - k1)): second order (k2 - k1 ~ dt u'').
    dense=np.array([[1.0, -0.5], [0.0, 0.5]]),
)


@dataclasses.dataclass(frozen=True)
class Heun(AbstractExplicitRK):
    """Heun's method (the explicit trapezoidal rule). Fixed step; pass ``dt``.

    Second order, two evaluations of ``f`` per step, quadratic dense output.
    Reference: K. Heun, "Neue Methoden zur approximativen Integration der
    Differentialgleichungen einer unabhängigen Veränderlichen", Z. Math. Phys. 45 (1900).
    """

    tableau = _TABLEAU

    def order(self) -> int:
        return 2
