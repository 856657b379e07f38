"""Euler's method."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=np.array([0.0]),
    a=np.zeros((1, 1)),
    b=np.array([1.0]),
    b_err=None,
    dense=np.array([[1.0]]),  # linear interpolation
)


@dataclasses.dataclass(frozen=True)
class Euler(AbstractExplicitRK):
    """Explicit (forward) Euler: ``u1 = u0 + dt f(t0, u0)``. Fixed step; pass ``dt``.

    First order, one evaluation of ``f`` per step, linear dense output.
    Reference: L. Euler, *Institutiones calculi integralis* (1768); Hairer, Nørsett &
    Wanner, *Solving ODEs I*, Sec. I.7.
    """

    tableau = _TABLEAU

    def order(self) -> int:
        return 1
