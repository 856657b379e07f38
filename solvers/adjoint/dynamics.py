"""The vector fields the continuous adjoints integrate backwards in time.

For ``u' = f(u, p, t)`` and a loss of the states at the save times, the adjoint
``lam = dL/du(t)`` obeys ``lam' = -(df/du)^T lam`` between save times and jumps by
``dL/du(t_k)`` at them; ``dL/dp = int_{t0}^{tK} (df/dp)^T lam dt`` and ``dL/du0 =
lam(t0)``. One reverse-mode call with cotangent ``-lam`` gives both products.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ode.methods.base import dense_eval
from ..ode.methods.jacobian import jacobian


def gauss_legendre(n: int) -> tuple[list[float], list[float]]:
    """Nodes and weights of the n-point Gauss–Legendre rule on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return [float((xi + 1) / 2) for xi in x], [float(wi / 2) for wi in w]


def _zeros_if_none(grads, like):
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, like)]


class AdjointDynamics:
    """Right-hand sides of the backward solve, in the interface of :class:`~solvers.stepping.rhs.RHS`.

    Args:
        f, p, params: the problem's ``f``, its ``p`` and the tensors whose gradients
            are wanted (tensors of ``p`` and parameters of an ``nn.Module`` f).
        shape: state shape.
        mode: "backsolve" (state ``[u, lam]``, ``u`` re-integrated backwards),
            "interp" (state ``lam``, ``u`` from ``u_of_t``).
        with_quadrature: the state carries the parameter integral as a flat tail
            (explicit Runge–Kutta backward solvers: its stages come free with the vjp).
        stack_dim: layout of the backsolve state ``[u, lam]`` when not flat: 0 (dense
            Jacobians) or 1 (batch Jacobians, samples first).
    """

    def __init__(self, f, p, params, shape, dtype, device, *, mode, with_quadrature, u_of_t=None, stack_dim=0):
        self.f, self.p, self.params = f, p, list(params)
        self.shape, self.dtype, self.device = shape, dtype, device
        self.mode, self.with_quad, self.u_of_t, self.stack_dim = mode, with_quadrature, u_of_t, stack_dim
        self.n = int(np.prod(shape)) if len(shape) else 1
        self.P = sum(t.numel() for t in self.params)
        self.nfe = 0
        self.njac = 0

    # ---- state layout

    def pack(self, u, lam, Q):
        if self.with_quad:
            parts = ([u.reshape(-1)] if self.mode == "backsolve" else []) + [lam.reshape(-1), Q]
            return torch.cat(parts)
        if self.mode == "backsolve":
            return torch.stack([u, lam], dim=self.stack_dim)
        return lam

    def unpack(self, z):
        """``(u or None, lam, Q or None)`` as views of the state."""
        if self.with_quad:
            n = self.n
            if self.mode == "backsolve":
                return z[:n].view(self.shape), z[n : 2 * n].view(self.shape), z[2 * n :]
            return None, z[:n].view(self.shape), z[n:]
        if self.mode == "backsolve":
            u, lam = z.unbind(self.stack_dim)
            return u, lam, None
        return None, z, None

    def parts_norm(self, norm, unflatten=None):
        """The backward solve's error norm from a user's ``norm(parts)``: the scaled
        error of the augmented state split into ``(u, lam, *param_parts)`` (``u`` in
        backsolve mode only, parameter parts only when the integral is in the state),
        ``u`` and ``lam`` given the state's structure by ``unflatten``."""
        shape = self.shape
        sizes = [t.numel() for t in self.params]
        params = self.params

        def as_state(x):
            return unflatten(x) if unflatten is not None else x

        def parts_of(q):
            u, lam, Q = self.unpack(q)
            parts = ([as_state(u.reshape(shape))] if u is not None else []) + [as_state(lam.reshape(shape))]
            if Q is not None:
                parts += [g.view(p.shape) for g, p in zip(Q.split(sizes), params)]
            return tuple(parts)

        return lambda q: norm(parts_of(q))

    @property
    def controlled_numel(self) -> int | None:
        """Entries under error control: all but the parameter integral (seminorm)."""
        if not self.with_quad:
            return None
        return 2 * self.n if self.mode == "backsolve" else self.n

    def time(self, t):
        return t if isinstance(t, torch.Tensor) else torch.full((), t, dtype=self.dtype, device=self.device)

    # ---- products

    def _vjp(self, tt, u, lam, wrt_params, create_graph=False):
        with torch.enable_grad():
            x = u if (create_graph and u.requires_grad) else u.detach().requires_grad_(True)
            out = self.f(x, self.p, tt)
            inputs = (x, *self.params) if wrt_params else (x,)
            # An f that depends on neither u nor the parameters (u' = cos t) has no graph:
            # its vector-Jacobian products are zero.
            grads = (torch.autograd.grad(out, inputs, grad_outputs=-lam, allow_unused=True,
                                         create_graph=create_graph)
                     if out.requires_grad else [None] * len(inputs))
        grads = _zeros_if_none(grads, inputs)
        return (out if create_graph else out.detach()), grads[0], grads[1:]

    def param_integrand(self, t, u, lam) -> torch.Tensor:
        """``-(df/dp)^T lam`` at ``(t, u)``, flattened (for Gauss–Legendre sums)."""
        self.nfe += 1
        with torch.enable_grad():
            out = self.f(u.detach(), self.p, self.time(t))
            grads = (torch.autograd.grad(out, self.params, grad_outputs=-lam, allow_unused=True)
                     if out.requires_grad else [None] * len(self.params))
        grads = _zeros_if_none(grads, self.params)
        return torch.cat([g.reshape(-1) for g in grads]) if grads else lam.new_zeros(0)

    def __call__(self, t, z):
        self.nfe += 1
        tt = self.time(t)
        u, lam, _ = self.unpack(z)
        if self.mode != "backsolve":
            u = self.u_of_t(float(tt) if not isinstance(t, float) else t)
        out, du_lam, dps = self._vjp(tt, u, lam, wrt_params=self.with_quad)
        if self.with_quad:
            parts = ([out.reshape(-1)] if self.mode == "backsolve" else []) + [du_lam.reshape(-1)]
            parts += [g.reshape(-1) for g in dps]
            return torch.cat(parts)
        if self.mode == "backsolve":
            return torch.stack([out, du_lam], dim=self.stack_dim)
        return du_lam

    def jacobian(self, t, z, *, batch, create_graph):
        """For Rosenbrock backward solvers: the Jacobian of the adjoint field, by
        differentiating the vector-Jacobian product once more (needs f twice
        differentiable); ``u(t)`` of "interp" mode is differentiated through the
        dense output so the time derivative is exact."""
        self.nfe += 1
        self.njac += 1

        def g(x, tt):
            u, lam, _ = self.unpack(x)
            if self.mode != "backsolve":
                u = self.u_of_t(tt)
            out, du_lam, _ = self._vjp(tt, u, lam, wrt_params=False, create_graph=True)
            if self.mode == "backsolve":
                return torch.stack([out, du_lam], dim=self.stack_dim)
            return du_lam

        return jacobian(g, t, z, batch=batch, create_graph=create_graph)


class GaussLegendreAccumulator:
    """Adds ``dt * sum_k w_k q(t + theta_k dt)`` of each accepted backward step to ``Q``,
    reading ``lam`` (and ``u``) from the step's dense output."""

    def __init__(self, dyn: AdjointDynamics, Q: torch.Tensor, n_nodes: int):
        self.dyn, self.Q = dyn, Q
        self.nodes, self.weights = gauss_legendre(n_nodes)

    def __call__(self, t, h, x0, x1, coeffs):
        R = coeffs()
        for th, w in zip(self.nodes, self.weights):
            x = dense_eval(x0, R, th)
            u, lam, _ = self.dyn.unpack(x)
            tk = t + th * h
            if self.dyn.mode != "backsolve":
                u = self.dyn.u_of_t(tk)
            self.Q.add_(self.dyn.param_integrand(tk, u, lam), alpha=h * w)
