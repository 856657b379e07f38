"""Gradients with respect to time: the start ``t0``, the save times and event times.

The solvers keep time in Python floats, so time enters autograd through two small
functions at the edges of a solve, the same for every ``sensealg`` (as torchdiffeq's
adjoint does it, from the flow of the exact ODE):

* a save time ``s``: ``du(s)/ds = f(u(s), s)``, so ``dL/ds = <dL/du(s), f(u(s), s)>``;
* the start ``t0``: the solution from ``(t0 + d, u0)`` is the one from
  ``(t0, u0 - d f(u0, t0))``, so ``dL/dt0 = -<dL/du0, f(u0, t0)>``, with ``dL/du0`` the
  total adjoint at ``t0`` (save points at ``t0`` included: with ``saveat[0] == t0`` the
  two terms cancel for that point, as ``u(t0) = u0`` does not move).

``t1`` matters only through a point saved at ``t1`` because it is the end (``saveat``
None): that point gets ``t1`` as its save time. Steps in between are fixed times.
These are gradients of the exact flow, accurate to the solve's tolerance, also under
``DirectAdjoint`` (whose other gradients are those of the discrete solution).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class _StartTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u0, t0, f0):
        ctx.t_dtype = t0.dtype  # times may be float64 for a float32 state (torchdiffeq does so)
        ctx.save_for_backward(f0)
        return u0.view_as(u0)

    @staticmethod
    def backward(ctx, g):
        (f0,) = ctx.saved_tensors
        g_t0 = -(g * f0).sum().reshape(()).to(ctx.t_dtype) if ctx.needs_input_grad[1] else None
        return g, g_t0, None


class _SaveTimes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, times, rate):
        ctx.rate = rate
        ctx.save_for_backward(values.detach(), times.detach())
        return values.view_as(values)

    @staticmethod
    def backward(ctx, g):
        g_times = None
        if ctx.needs_input_grad[1]:
            values, times = ctx.saved_tensors
            with torch.no_grad():
                F = torch.stack([ctx.rate(t, v) for t, v in zip(times, values)])
            g_times = (g * F).reshape(g.shape[0], -1).sum(1).to(times.dtype)
        return g, g_times, None


def shift_start(u0: torch.Tensor, t0: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    """``u0`` as the solve's input, carrying ``dL/dt0 = -<dL/du0, f0>`` to ``t0``
    (a 0-d tensor); ``f0 = f(u0, p, t0)``."""
    return _StartTime.apply(u0, t0, f0.detach())


def at_times(values: torch.Tensor, times: torch.Tensor, rate: Callable) -> torch.Tensor:
    """``values`` (``(T, *shape)``, the states at ``times``) carrying ``dL/dt_i =
    <dL/du_i, rate(t_i, u_i)>`` to ``times`` (``(T,)``). ``rate(t, u)`` is ``f`` at
    one point; it is evaluated in the backward pass only."""
    return _SaveTimes.apply(values, times, rate)


def needs_time_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in ts)
