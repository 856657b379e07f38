"""``DynamicSS``: a steady state by integrating ``du/dt = f(u, p, t)`` until ``f`` vanishes.

SciML's ``DynamicSS`` (SteadyStateDiffEq.jl): time stepping finds the *stable* equilibrium
the dynamics relaxes to from ``u0``, where Newton's method finds whichever root is
nearest (stable or not). Each iteration integrates one chunk ``[t_k, t_k + T_k]`` with an
ODE method and doubles the chunk (``T_0 = tspan0``), so a slowly relaxing system is
reached in ``O(log(t_relax))`` iterations; the shared loop stops when ``max|f(u, p,
inf)| <= abstol``. Gradients: ``ImplicitAdjoint`` (SciMLSensitivity's
``SteadyStateAdjoint``) at the steady state, or ``DirectAdjoint`` through the ODE solves.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..ode.methods.base import AbstractODESolver
from ..ode.problem import ODEProblem
from .base import AbstractNonlinearSolver, Step
from .residual import Residual
from .retcode import NonlinearReturnCode


@dataclasses.dataclass(frozen=True)
class DynamicSS(AbstractNonlinearSolver):
    """Integrate a ``SteadyStateProblem``'s ODE until it is steady.

    Args:
        solver: the ODE method (default ``Tsit5()``; a stiff problem wants ``Rodas5P()``).
        rtol, atol: tolerances of the ODE solves. Near the steady state an adaptive method
            steps at its stability limit and keeps ``u`` only to about ``rtol |u| + atol``,
            so the residual cannot go far below that: ``solve``'s default ``abstol`` is
            ``10 (atol + rtol max(1, max|u0|))`` (1e-7 for ``|u0| <= 1`` at the defaults).
        tspan0: length (s) of the first chunk; each next chunk is twice as long.
        max_steps: ``max_steps`` of each ODE solve (a chunk that needs more ends the solve
            with ``MAX_ITERS``).

    ``f`` is called with real times here (``t`` from 0 on) and with ``t = inf`` for the
    residual, so it should be autonomous (a steady state of a time-dependent ``f`` is not
    defined).
    """

    solver: Any = None
    rtol: float = 1e-8
    atol: float = 1e-10
    tspan0: float = 1.0
    max_steps: int = 10_000

    def __post_init__(self):
        if self.solver is not None and not isinstance(self.solver, AbstractODESolver):
            raise TypeError(f"solver must be an ODE method such as Tsit5() or Rodas5P(), got "
                            f"{type(self.solver).__name__}")
        if not (math.isfinite(float(self.tspan0)) and float(self.tspan0) > 0):
            raise ValueError(f"tspan0 must be a finite number > 0, got {self.tspan0!r}")
        for name in ("rtol", "atol"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def default_abstol(self, u0: torch.Tensor) -> float:
        scale = max(1.0, float(u0.detach().abs().max()))
        return max(10.0 * (float(self.atol) + float(self.rtol) * scale), torch.finfo(u0.dtype).eps ** 0.8)

    def init(self, F: Residual, u, Fu):
        return {"t": 0.0, "T": float(self.tspan0)}

    def step(self, F: Residual, u, Fu, carry, *, unrolled: bool) -> Step:
        from ..adjoint import DirectAdjoint
        from ..ode import Tsit5
        from ..ode.solve import solve_ode

        prob = F.problem
        t0, T = carry["t"], carry["T"]
        ode = ODEProblem(prob.f, u, (t0, t0 + T), p=prob.p)
        sol = solve_ode(ode, self.solver if self.solver is not None else Tsit5(), saveat=[t0 + T],
                        rtol=self.rtol, atol=self.atol, max_steps=self.max_steps, sensealg=DirectAdjoint())
        F.stats.nfev += sol.stats.nfe
        if not sol.successful:
            failure = (NonlinearReturnCode.NON_FINITE if sol.retcode.name == "NON_FINITE"
                       else NonlinearReturnCode.MAX_ITERS)
            return Step(u, Fu, carry, failure)
        u_new = sol.u[-1]
        carry = {"t": t0 + T, "T": 2.0 * T}
        return Step(u_new, F(u_new), carry)
