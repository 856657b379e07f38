"""Milstein with an embedded error estimate, for adaptive steps."""

from __future__ import annotations

import dataclasses

from .base import AbstractAdaptiveSDESolver, SDEStep, g_dg


@dataclasses.dataclass(frozen=True)
class AdaptiveMilstein(AbstractAdaptiveSDESolver):
    """Milstein step (strong order 1, diagonal commutative noise) with a local error
    estimate of its leading neglected terms, for adaptive step sizes:

    ``E = |dt/2 (f(u1) - f(u))| + |dW/2 (g(u1) - g(u)) - 1/2 g g' dW^2|``

    (elementwise; the scaled RMS norm of the two terms is summed). The first term
    estimates the drift's ``f' g I_(1,0)`` error, the second the diffusion's
    ``g' f I_(0,1)`` and ``I_(1,1,1)`` terms; both are O(dt^1.5). ``f(u1)`` and ``g(u1)``
    are reused by the next step, so a step costs one drift, one diffusion and one
    Jacobian-vector product. Rejected steps retry on the same Brownian path (bridge
    sampling), so rejection introduces no bias.

    Reference: H. Lamba, "An adaptive timestepping algorithm for stochastic differential
    equations", J. Comput. Appl. Math. 161 (2003); C. Rackauckas, Q. Nie (2017), see
    :class:`BrownianPath`.
    """

    derivative_free: bool = False

    def strong_order(self) -> float:
        return 1.0

    def step(self, drift, diffusion, t, u, dt, dW, f0, g0):
        f0 = drift(t, u) if f0 is None else f0
        g0 = diffusion(t, u) if g0 is None else g0
        gg = g_dg(diffusion, t, u, g0, self.derivative_free, dt)
        u1 = u + dt * f0 + g0 * dW + 0.5 * gg * (dW * dW - dt)
        f1 = drift(t + dt, u1)
        g1 = diffusion(t + dt, u1)
        e_drift = (0.5 * dt) * (f1 - f0)
        e_diff = 0.5 * dW * (g1 - g0) - 0.5 * gg * dW * dW
        return SDEStep(u1, (e_drift, e_diff), f1, g1)
