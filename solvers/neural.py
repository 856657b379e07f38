"""Neural differential equations as ``torch.nn.Module`` layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffsim.dispatch import solve

from ._checks import as_tspan
from .ode.problem import ODEProblem
from .sde.problem import SDEProblem
from .solution import ODESolution


class ModuleField(nn.Module):
    """Adapts a network to the ``f(u, p, t)`` signature of the problems: calls
    ``net(u)``, or ``net(u, t)`` when ``time_dependent``. Being a module, its parameters
    are found by every ``sensealg``."""

    def __init__(self, net: nn.Module, time_dependent: bool = False):
        super().__init__()
        self.net, self.time_dependent = net, time_dependent

    def forward(self, u, p, t):
        return self.net(u, t) if self.time_dependent else self.net(u)


def _as_field(f, time_dependent: bool, name: str):
    if isinstance(f, nn.Module):
        return ModuleField(f, time_dependent)
    if callable(f):
        return f
    raise TypeError(f"{name} must be an nn.Module or a callable f(u, p, t), got {type(f).__name__}")


class NeuralODE(nn.Module):
    """``u' = net(u)`` (or ``net(u, t)``) as a layer: ``layer(u0)`` returns the solution.

    Args:
        f: an ``nn.Module`` (called as ``f(u)``, or ``f(u, t)`` with
            ``time_dependent=True``), or a callable ``f(u, p, t)`` used with ``p``.
        tspan: ``(t0, t1)``.
        solver: ODE method (default ``Tsit5()``).
        sensealg: sensitivity algorithm (default ``DirectAdjoint()``); module
            parameters receive gradients under all of them.
        regularization: ``GlobalRegularization`` / ``LocalRegularization``; add
            ``sol.reg`` to the loss.
        p: parameters for a callable ``f``.
        **solve_kwargs: defaults for ``solve`` (``rtol``, ``atol``, ``saveat``, ...).

    Call: ``layer(u0, saveat=None, **overrides) -> ODESolution``; ``sol.u[-1]`` is the
    state at ``t1`` when ``t1`` is saved.

    Reference: R. T. Q. Chen et al., "Neural Ordinary Differential Equations", NeurIPS
    2018.
    """

    def __init__(self, f, tspan, solver=None, sensealg=None, regularization=None, *, time_dependent: bool = False,
                 p: Any = None, **solve_kwargs: Any):
        super().__init__()
        self.f = _as_field(f, time_dependent, "f")
        self.tspan = as_tspan(tspan)
        self.solver, self.sensealg, self.regularization = solver, sensealg, regularization
        self.p = p
        self.solve_kwargs = solve_kwargs

    def forward(self, u0: torch.Tensor, saveat=None, **overrides: Any) -> ODESolution:
        kwargs = dict(self.solve_kwargs)
        kwargs.update(sensealg=self.sensealg, regularization=self.regularization)
        if saveat is not None:
            kwargs["saveat"] = saveat
        kwargs.update(overrides)
        prob = ODEProblem(self.f, u0, self.tspan, p=self.p)
        return solve(prob, self.solver, **kwargs)

    def extra_repr(self) -> str:
        return f"tspan={self.tspan}, solver={self.solver!r}, sensealg={self.sensealg!r}, regularization={self.regularization!r}"


class NeuralSDE(nn.Module):
    """``du = drift(u) dt + diffusion(u) dW`` (Itô, diagonal noise) as a layer.

    Args:
        drift, diffusion: ``nn.Module``s (called as ``m(u)`` or ``m(u, t)``) or callables
            ``(u, p, t)``; ``diffusion`` returns a tensor shaped like ``u``.
        tspan: ``(t0, t1)``.
        solver: SDE method (default ``AdaptiveMilstein()``).
        sensealg: ``DirectAdjoint()`` (the only one for SDEs).
        regularization: as for :class:`NeuralODE` (needs the adaptive method).
        **solve_kwargs: defaults for ``solve`` (``dt``, ``rtol``, ``seed``, ...).

    Call: ``layer(u0, saveat=None, seed=None, **overrides) -> ODESolution``.

    Reference: X. Li, T.-K. L. Wong, R. T. Q. Chen, D. Duvenaud, "Scalable Gradients for
    Stochastic Differential Equations", AISTATS 2020 (neural SDEs); Pal et al. (2021,
    2023) for the regularizers.
    """

    def __init__(self, drift, diffusion, tspan, solver=None, sensealg=None, regularization=None, *,
                 time_dependent: bool = False, p: Any = None, **solve_kwargs: Any):
        super().__init__()
        self.drift = _as_field(drift, time_dependent, "drift")
        self.diffusion = _as_field(diffusion, time_dependent, "diffusion")
        self.tspan = as_tspan(tspan)
        self.solver, self.sensealg, self.regularization = solver, sensealg, regularization
        self.p = p
        self.solve_kwargs = solve_kwargs

    def forward(self, u0: torch.Tensor, saveat=None, seed: int | None = None, **overrides: Any) -> ODESolution:
        kwargs = dict(self.solve_kwargs)
        kwargs.update(sensealg=self.sensealg, regularization=self.regularization)
        if saveat is not None:
            kwargs["saveat"] = saveat
        if seed is not None:
            kwargs["seed"] = seed
        kwargs.update(overrides)
        prob = SDEProblem(self.drift, self.diffusion, u0, self.tspan, p=self.p)
        return solve(prob, self.solver, **kwargs)

