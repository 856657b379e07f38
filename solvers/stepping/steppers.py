"""What one attempted step computes, for the integration loop: an ODE method on a
right-hand side, or an SDE method on a drift, a diffusion and a Brownian path.

The loop (``loop.py``) and its bookkeeping (``shared.py``, ``per_sample.py``) know time,
step sizes, saving and events; a stepper knows how to take a step of a given size and
how large its error is. The two differ in what a step needs beyond ``(t, u, h)``: the
ODE method reuses ``f`` at the step's start (FSAL), the SDE method draws the Brownian
increment ``W(t + h) - W(t)`` and reuses ``f`` and ``g`` at the start.
"""

from __future__ import annotations

import torch

from ..ode.methods.base import AbstractAdaptiveSolver
from .controller import error_ratio, initial_step
from .dense import DenseOutput, LinearDense


class ODEStepper:
    """An ODE method (``AbstractODESolver``) stepping ``u' = rhs(t, u)`` (final).

    Args:
        solver: the method.
        rhs: the right-hand side (``RHS``, ``SegmentRHS`` or an adjoint's dynamics);
            the bookkeeping swaps it for a :class:`~solvers.stepping.rhs.SegmentRHS` at ``tstops``.
        u0: the start state (its shape, dtype and device size the stage buffers).
        adaptive: the solve adapts its steps (``opts.adaptive``); only a method with an
            error estimate does.
        grad: autograd records the steps (stage tensors kept separately).
        err_numel: control the error of only the first entries of the state.
        norm: the error norm (``StepOptions.norm``).
        dims: reduce the error over these dims only (per-sample steps), else over all.
        probe: keep the input of the stiffness-probe stage (``GlobalRegularization(kind="stiffness")``).
    """

    __slots__ = ("solver", "rhs", "ws", "adaptive", "err_numel", "norm", "dims", "lands")

    def __init__(self, solver, rhs, u0: torch.Tensor, *, adaptive: bool, grad: bool, err_numel=None, norm=None,
                 dims=None, probe: bool = False):
        self.solver, self.rhs = solver, rhs
        self.adaptive = adaptive and isinstance(solver, AbstractAdaptiveSolver)
        self.ws = solver.workspace(u0, grad=grad)
        if probe:
            self.ws.probe = True
        self.err_numel, self.norm, self.dims = err_numel, norm, dims
        # Methods whose dense output is much less accurate than their steps step onto the
        # save times instead of interpolating them.
        self.lands = self.adaptive and solver.dense_order() < solver.order() - 1

    @property
    def nfe(self) -> int:
        return self.rhs.nfe

    def error_order(self) -> int | None:
        return self.solver.error_order()

    def start_values(self, t0, u0, f0):
        """What the first step reuses: ``f(t0, u0)`` when the method or the controller
        needs it (computed here unless given), else None."""
        if f0 is None and (self.solver.fsal or self.adaptive):
            f0 = self.rhs(t0, u0)
        return f0

    def initial_dt(self, t0, t1, u0, f0, direction: float, opts) -> float:
        """The first step (signed): ``opts.dt`` or Hairer's estimate, at least ``dtmin``."""
        if not self.adaptive:
            return direction * opts.dt
        if opts.dt is not None:
            dt = direction * opts.dt
        else:
            dt = direction * min(opts.dtmax, initial_step(self.rhs, t0, u0, f0, direction, self.error_order(),
                                                            opts.rtol, opts.atol, norm=opts.norm))
        return direction * max(abs(dt), opts.dtmin)  # dtmin bounds every step but a landing one

    def attempt(self, t, u, h, t_new, start):
        """One step of size ``h`` from ``(t, u)``; ``start`` from :meth:`start_values` or
        :meth:`carry` (``t_new`` is the step's end, which an ODE step does not need)."""
        return self.solver.step(self.rhs, t, u, h, start, self.ws)

    def error(self, step, u, rtol, atol):
        """The step's scaled error norm (accept if <= 1), a 0-d tensor (``(batch,)`` per sample)."""
        return error_ratio(step.err, u, step.u1, rtol, atol, numel=self.err_numel, dims=self.dims, norm=self.norm)

    @staticmethod
    def carry(step):
        """What the next step reuses after accepting ``step`` (FSAL: ``f(t1, u1)``)."""
        return step.f1

    def coeffs(self, t, u, h, step, rhs):
        """The accepted step's dense coefficients (call before the next attempt)."""
        return self.solver.dense_coeffs(rhs, t, u, h, step, self.ws)

    @staticmethod
    def dense_output(t0: float, direction: float, u0: torch.Tensor) -> DenseOutput:
        return DenseOutput(t0, direction, u0)


def sde_error_ratio(err, u, u1, rtol, atol) -> torch.Tensor:
    """Error norm of an SDE step whose estimate has a drift and a diffusion part: the sum
    of their scaled RMS norms."""
    e_drift, e_diff = err
    return error_ratio(e_drift, u, u1, rtol, atol) + error_ratio(e_diff, u, u1, rtol, atol)


class SDEStepper:
    """An SDE method (``AbstractSDESolver``) stepping ``du = f dt + g dW`` on the path ``W``
    (final). Rejected steps retry on the same path (``BrownianPath`` samples bridges).

    Args:
        alg: the method; ``drift``/``diffusion``: ``RHS`` of ``f`` and ``g``; ``noise``:
            the Brownian path, ``noise(t)`` its value at ``t``; ``adaptive``: the solve
            adapts its steps (an adaptive method and ``opts.adaptive``).
    """

    __slots__ = ("alg", "drift", "diffusion", "noise", "adaptive")

    #: The path between steps is not smooth: save times are stepped to, not interpolated.
    lands = True
    rhs = None  # no right-hand side to swap at tstops (SDE solves have none)

    def __init__(self, alg, drift, diffusion, noise, *, adaptive: bool):
        self.alg, self.drift, self.diffusion, self.noise = alg, drift, diffusion, noise
        self.adaptive = adaptive

    @property
    def nfe(self) -> int:
        return self.drift.nfe + self.diffusion.nfe

    @staticmethod
    def error_order() -> int:
        return 1

    @staticmethod
    def start_values(t0, u0, f0):
        return None  # f and g at the start are evaluated by the first step

    def initial_dt(self, t0, t1, u0, f0, direction: float, opts) -> float:
        """``opts.dt``, or 1% of the span: no Hairer heuristic for SDEs, control adapts."""
        if opts.dt is not None:
            return direction * opts.dt
        return direction * min(opts.dtmax, 0.01 * abs(t1 - t0))

    def attempt(self, t, u, h, t_new, start):
        """One step from ``(t, u)`` to ``t_new = t + h`` with the path's increment over it."""
        f0, g0 = start if start is not None else (None, None)
        dW = self.noise(t_new) - self.noise(t)
        return self.alg.step(self.drift, self.diffusion, t, u, h, dW, f0, g0)

    @staticmethod
    def error(step, u, rtol, atol):
        return sde_error_ratio(step.err, u, step.u1, rtol, atol)

    @staticmethod
    def carry(step):
        return step.f1, step.g1

    @staticmethod
    def coeffs(t, u, h, step, rhs):
        """Linear interpolation between the step's ends (``u + theta (u1 - u)``)."""
        return (step.u1 - u)[None]

    @staticmethod
    def dense_output(t0: float, direction: float, u0: torch.Tensor) -> LinearDense:
        return LinearDense(t0, direction, u0)
