"""Neural PDE layers: learned fluxes and closures inside a finite-volume method of lines,
integrated by ``dss.solve`` (any solver, any ``sensealg``, any regularizer).

    du_i/dt = -(F_{i+1/2} - F_{i-1/2}) / dx + closure(u)_i + source(t)_i
    F = physics flux (e.g. WENO5 Godunov of the known convection) + learned flux

The learned flux is a function of the ``stencil`` cells around each face, so the
scheme stays conservative (the fluxes telescope) and translation equivariant, and it
is evaluated by convolutions over the periodic grid. This is the "learned
discretisation" idea (Bar-Sinai et al., PNAS 2019; Kochkov et al., PNAS 2021) as a
neural ODE: the solver's adaptivity, the adjoints and the local regularizer of Pal et
al. (ICML 2023) apply unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffsim.dispatch import solve

from ..ode.methods.tsit5 import Tsit5
from ..ode.problem import ODEProblem
from ..pde.burgers import CombinedEquation, Forcing


class StencilFlux(nn.Module):
    """A learned numerical flux ``F_{j+1/2} = net(u_{j-k+1}, ..., u_{j+k})``, ``k = stencil / 2``.

    Args:
        stencil: cells per face (even, >= 2).
        hidden: width of the pointwise MLP; layers: its hidden layers.
        n_cond: per-sample coefficients appended as constant inputs.
        activation: "tanh" (smooth, good for adaptive solvers) or "gelu".

    Call: ``flux(u, cond=None)`` with ``u`` (B, nx) periodic cell averages -> (B, nx + 1)
    fluxes at faces ``j + 1/2``, ``j = -1 .. nx - 1``.
    """

    def __init__(self, stencil: int = 4, hidden: int = 32, layers: int = 2, n_cond: int = 0,
                 activation: str = "tanh"):
        super().__init__()
        if stencil < 2 or stencil % 2:
            raise ValueError(f"stencil={stencil} must be an even int >= 2")
        act = {"tanh": nn.Tanh, "gelu": nn.GELU}.get(activation)
        if act is None:
            raise ValueError(f"activation={activation!r}; allowed: 'tanh', 'gelu'")
        self.stencil, self.n_cond = stencil, n_cond
        mods: list[nn.Module] = [nn.Conv1d(1 + n_cond, hidden, stencil, bias=True), act()]
        for _ in range(layers - 1):
            mods += [nn.Conv1d(hidden, hidden, 1), act()]
        mods.append(nn.Conv1d(hidden, 1, 1))
        self.net = nn.Sequential(*mods)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, u: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        k = self.stencil // 2
        up = torch.cat((u[..., u.shape[-1] - k:], u, u[..., :k]), -1)[:, None]
        if self.n_cond:
            up = torch.cat((up, cond[:, :, None].expand(-1, -1, up.shape[-1])), 1)
        return self.net(up)[:, 0]


class FiniteVolume1D(nn.Module):
    """Method-of-lines right-hand side ``f(u, p, t)`` on a periodic 1D grid with a learned part.

    Args:
        nx, L: cells and domain length.
        flux: a learned flux module (``StencilFlux``) or None.
        physics: a :class:`CombinedEquation` whose flux is added (the known part of the
            physics, e.g. WENO5 convection at this resolution) or None.
        closure: a module ``closure(u, cond) -> (B, nx)`` added to du/dt (non-conservative),
            or None.

    Per-sample data (forcing, coefficients) are bound per solve by :class:`NeuralPDE`.
    """

    def __init__(self, nx: int, L: float, flux: nn.Module | None = None, physics: CombinedEquation | None = None,
                 closure: nn.Module | None = None):
        super().__init__()
        if flux is None and physics is None and closure is None:
            raise ValueError("FiniteVolume1D needs at least one of flux, physics, closure")
        self.nx, self.L, self.dx = int(nx), float(L), float(L) / nx
        self.flux, self.physics, self.closure = flux, physics, closure

    def rate(self, u: torch.Tensor, t, forcing: Forcing | None, cond: torch.Tensor | None) -> torch.Tensor:
        F = None
        if self.physics is not None:
            F = self.physics.flux_faces(u)
        if self.flux is not None:
            learned = self.flux(u, cond)
            F = learned if F is None else F + learned
        du = torch.zeros_like(u) if F is None else -(F[..., 1:] - F[..., :-1]) / self.dx
        if self.closure is not None:
            du = du + self.closure(u, cond)
        if forcing is not None:
            du = du + forcing.cell_average(t, self.nx, u.dtype, u.device)
        return du


class _Bound(nn.Module):
    """The right-hand side with one batch's forcing and coefficients attached; an
    ``nn.Module`` so that every ``sensealg`` finds the learned parameters."""

    def __init__(self, rhs: FiniteVolume1D, forcing, cond):
        super().__init__()
        self.rhs = rhs
        self.forcing, self.cond = forcing, cond

    def forward(self, u, p, t):
        return self.rhs.rate(u, t, self.forcing, self.cond)


class NeuralPDE(nn.Module):
    """A neural PDE layer: ``layer(u0, saveat, forcing=..., cond=...) -> ODESolution``.

    Args:
        rhs: a :class:`FiniteVolume1D` (or any module with ``rate(u, t, forcing, cond)``).
        tspan: default ``(t0, t1)``; ``forward(..., tspan=...)`` overrides it.
        solver: ODE method (default ``Tsit5()``).
        sensealg: sensitivity algorithm (default ``DirectAdjoint()``): ``BacksolveAdjoint``,
            ``InterpolatingAdjoint``, ``QuadratureAdjoint`` all reach the learned flux.
        regularization: ``LocalRegularization``/``GlobalRegularization``; add ``sol.reg``
            to the loss to make the learned dynamics cheap to integrate.
        **solve_kwargs: defaults for ``solve`` (``rtol``, ``atol``, ...).

    Reference: A. Pal, A. Edelman, C. Rackauckas, ICML 2023 (local regularization);
    R. T. Q. Chen et al., NeurIPS 2018 (neural ODEs).
    """

    def __init__(self, rhs: nn.Module, tspan=(0.0, 1.0), solver=None, sensealg=None, regularization=None,
                 **solve_kwargs: Any):
        super().__init__()
        self.rhs = rhs
        self.tspan = tuple(float(t) for t in tspan)
        self.solver = solver or Tsit5()
        self.sensealg, self.regularization = sensealg, regularization
        self.solve_kwargs = solve_kwargs

    def forward(self, u0: torch.Tensor, saveat=None, *, forcing: Forcing | None = None,
                cond: torch.Tensor | None = None, tspan=None, **overrides: Any):
        kwargs = dict(self.solve_kwargs)
        kwargs.update(sensealg=self.sensealg, regularization=self.regularization)
        if saveat is not None:
            kwargs["saveat"] = saveat
        kwargs.update(overrides)
        prob = ODEProblem(_Bound(self.rhs, forcing, cond), u0, tspan or self.tspan)
        return solve(prob, self.solver, **kwargs)
