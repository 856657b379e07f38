"""The Milstein method for diagonal noise."""

from __future__ import annotations

import dataclasses

from .base import AbstractSDESolver, SDEStep, g_dg


@dataclasses.dataclass(frozen=True)
class Milstein(AbstractSDESolver):
    """Itô Milstein for diagonal noise: ``u1 = u + f dt + g dW + 1/2 g g' (dW^2 - dt)``.
    Fixed step; pass ``dt``.

    Strong order 1 when entry ``i`` of ``g`` depends on ``u_i`` only (diagonal,
    commutative noise); with cross-dependence the missing Lévy areas reduce it to 1/2.
    ``g g'`` comes from a Jacobian-vector product by autograd (exact, composes with backprop), or
    with ``derivative_free=True`` from one extra diffusion evaluation (the
    Runge–Kutta form of Kloeden & Platen, eq. 11.1.5).

    Reference: G. N. Milstein, "Approximate integration of stochastic differential
    equations", Theory Probab. Appl. 19 (1974); Kloeden & Platen (1992), Sec. 10.3.
    """

    derivative_free: bool = False

    def strong_order(self) -> float:
        return 1.0

    def step(self, drift, diffusion, t, u, dt, dW, f0, g0):
        f0 = drift(t, u) if f0 is None else f0
        g0 = diffusion(t, u) if g0 is None else g0
        gg = g_dg(diffusion, t, u, g0, self.derivative_free, dt)
        return SDEStep(u + dt * f0 + g0 * dW + 0.5 * gg * (dW * dW - dt), None)
