"""Abstract SDE solvers (Itô, diagonal noise)."""

from __future__ import annotations

import abc

import torch


class SDEStep:
    """Proposed state, error estimate (or None) and the drift/diffusion at the new
    point when the method computed them (reused as the next step's start values)."""

    __slots__ = ("u1", "err", "f1", "g1")

    def __init__(self, u1, err, f1=None, g1=None):
        self.u1, self.err, self.f1, self.g1 = u1, err, f1, g1


class AbstractSDESolver(abc.ABC):
    """Base of the SDE methods: ``step(drift, diffusion, t, u, dt, dW, f0, g0)``.

    ``drift(t, u)``/``diffusion(t, u)`` evaluate ``f``/``g``; ``dW`` is the Brownian
    increment over the step (shape of ``u``); ``f0``/``g0`` are ``f``/``g`` at
    ``(t, u)`` when already known, else None.
    """

    @abc.abstractmethod
    def strong_order(self) -> float:
        """Strong order of convergence (E|u_N - u(T)| ~ dt**order)."""

    def weak_order(self) -> float:
        return 1.0

    def order(self) -> float:
        return self.strong_order()

    @abc.abstractmethod
    def step(self, drift, diffusion, t, u, dt, dW, f0, g0) -> SDEStep: ...

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in fields)})"


class AbstractAdaptiveSDESolver(AbstractSDESolver):
    """Marker: the step returns an error estimate, so ``dt`` can be adapted."""


def g_dg(diffusion, t, u, g0, derivative_free: bool, dt: float):
    """``g * dg/du`` along the diagonal (for diagonal noise whose entry i depends on
    u_i only): the Jacobian-vector product ``(dg/du) g``, by two reverse-mode passes
    (the transpose trick; it composes with an outer backward pass), or its
    derivative-free approximation ``(g(u + g sqrt|dt|) - g(u)) / sqrt|dt|`` (Kloeden &
    Platen, eq. 11.1.5)."""
    if derivative_free:
        s = abs(dt) ** 0.5
        return (diffusion(t, u + g0 * s) - g0) / s
    outer = torch.is_grad_enabled() and (u.requires_grad or g0.requires_grad)
    with torch.enable_grad():
        x = u if (outer and u.requires_grad) else u.detach().requires_grad_(True)
        y = diffusion(t, x)
        if not y.requires_grad:  # g does not depend on u
            return torch.zeros_like(u)
        w = torch.zeros_like(y, requires_grad=True)
        (jtw,) = torch.autograd.grad(y, x, w, create_graph=True)
        (jv,) = torch.autograd.grad(jtw, w, g0 if outer else g0.detach(), create_graph=outer, allow_unused=True)
    if jv is None:
        return torch.zeros_like(u)
    return jv if outer else jv.detach()
