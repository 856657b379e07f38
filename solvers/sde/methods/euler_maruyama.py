"""Euler–Maruyama."""

from __future__ import annotations

import dataclasses

from .base import AbstractSDESolver, SDEStep


@dataclasses.dataclass(frozen=True)
class EulerMaruyama(AbstractSDESolver):
    """Euler–Maruyama: ``u1 = u + f dt + g dW``. Fixed step; pass ``dt``.

    Strong order 1/2, weak order 1 (strong order 1 for additive noise). One drift and
    one diffusion evaluation per step.

    Reference: G. Maruyama, "Continuous Markov processes and stochastic equations",
    Rend. Circ. Mat. Palermo 4 (1955); P. E. Kloeden, E. Platen, *Numerical Solution of
    Stochastic Differential Equations*, Springer (1992), Sec. 10.2.
    """

    def strong_order(self) -> float:
        return 0.5

    def step(self, drift, diffusion, t, u, dt, dW, f0, g0):
        f0 = drift(t, u) if f0 is None else f0
        g0 = diffusion(t, u) if g0 is None else g0
        return SDEStep(u + dt * f0 + g0 * dW, None)
