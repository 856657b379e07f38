"""The combined Burgers / heat / KdV equation of the MP-PDE benchmark as a finite-volume
method-of-lines right-hand side.

    u_t + (alpha u^2 - beta u_x + gamma u_xx)_x = delta(t, x),   x in [0, L) periodic,
    delta(t, x) = sum_j A_j sin(omega_j t + 2 pi l_j x / L + phi_j),   u(0, x) = delta(0, x).

The state is the vector of cell averages on ``nx`` equal cells centred at ``x_i = i L/nx``.
The convective flux is a WENO5 reconstruction with an exact Riemann (Godunov) or
Rusanov flux; the diffusive and dispersive fluxes are fourth-order central face
derivatives of the cell averages; the forcing is averaged over each cell exactly.
``CombinedEquation`` is an ``f(u, p, t)`` for ``dss.ODEProblem``: any of our solvers
integrate it, and it is differentiable in ``u`` and in the coefficients.

Reference: J. Brandstetter, D. E. Worrall, M. Welling, "Message Passing Neural PDE
Solvers", ICLR 2022 (the equation family and its parameters).
"""

from __future__ import annotations

import math

import torch

from .weno import (
    divergence,
    face_gradient,
    face_second_derivative,
    face_stencils,
    godunov_burgers,
    rusanov_burgers,
    weno5,
)

FLUXES = ("godunov", "rusanov")


def cell_centres(nx: int, L: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """``x_i = i L / nx``, the centres of the ``nx`` cells of ``[0, L)`` (shifted by half a cell)."""
    return torch.arange(nx, dtype=dtype, device=device) * (L / nx)


class Forcing:
    """``delta(t, x) = sum_j A_j sin(omega_j t + 2 pi l_j x / L + phi_j)`` per sample, averaged
    over grid cells exactly (each sine is scaled by ``sinc(k dx / 2)``).

    Args:
        A, omega, phi: (B, J) amplitudes, angular frequencies (1/s), phases (rad).
        l: (B, J) integer wave numbers.
        L: domain length.
    """

    def __init__(self, A, omega, phi, l, L: float):
        self.A, self.omega, self.phi, self.l = (torch.as_tensor(v) for v in (A, omega, phi, l))
        if not (self.A.shape == self.omega.shape == self.phi.shape == self.l.shape and self.A.dim() == 2):
            raise ValueError("A, omega, phi and l must all have shape (batch, J); got "
                             f"{[tuple(v.shape) for v in (self.A, self.omega, self.phi, self.l)]}")
        self.L = float(L)
        self._grid: dict = {}

    @property
    def batch(self) -> int:
        return self.A.shape[0]

    def _tables(self, nx: int, dtype, device):
        key = (nx, dtype, device)
        if key not in self._grid:
            k = 2.0 * math.pi * self.l.to(dtype=dtype, device=device) / self.L  # (B, J)
            dx = self.L / nx
            half = 0.5 * k * dx
            sinc = torch.where(half == 0, torch.ones_like(half), torch.sin(half) / half)
            amp = (self.A.to(dtype=dtype, device=device) * sinc)[..., None]  # (B, J, 1)
            kx = k[..., None] * cell_centres(nx, self.L, dtype, device)  # (B, J, nx)
            # sin(wt + kx + phi) = sin(wt + phi) cos(kx) + cos(wt + phi) sin(kx)
            self._grid[key] = (amp * torch.cos(kx), amp * torch.sin(kx),
                               self.omega.to(dtype=dtype, device=device),
                               self.phi.to(dtype=dtype, device=device))
        return self._grid[key]

    def cell_average(self, t, nx: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """(B, nx) cell averages of ``delta(t, .)``; ``t`` a float or a 0-d / (B,) tensor."""
        C, S, w, phi = self._tables(nx, dtype, device)
        t = torch.as_tensor(t, dtype=dtype, device=device)
        arg = w * (t[..., None] if t.dim() else t) + phi  # (B, J)
        return (torch.sin(arg)[..., None] * C + torch.cos(arg)[..., None] * S).sum(-2)

    def select(self, idx) -> Forcing:
        return Forcing(self.A[idx], self.omega[idx], self.phi[idx], self.l[idx], self.L)


class CombinedEquation:
    """Finite-volume semi-discretisation of the combined equation: ``f(u, p, t) -> du/dt``.

    Args:
        nx: number of cells (>= 6).
        L: domain length (16 in the benchmark).
        alpha, beta, gamma: convection (coefficient of ``u^2``), diffusion and
            dispersion coefficients: numbers or (B,) tensors (one per sample of a
            batched state). ``alpha >= 0``; Burgers' ``u u_x`` is ``alpha = 0.5``.
        forcing: a :class:`Forcing` for the batch, or None.
        flux: "godunov" (exact Riemann solver of the convex flux, default) or "rusanov".
        weights: WENO weights, "js" (Jiang-Shu, as in MP-PDE) or "z" (WENO-Z).

    The state ``u`` has shape (B, nx) (or (nx,) with scalar coefficients and no
    forcing); ``p`` is unused (pass coefficients at construction).

    Raises:
        ValueError: ``nx < 6``, negative ``alpha`` or ``beta``, unknown ``flux``/``weights``.
    """

    def __init__(self, nx: int, L: float = 16.0, alpha=0.5, beta=0.0, gamma=0.0,
                 forcing: Forcing | None = None, flux: str = "godunov", weights: str = "js"):
        if not (isinstance(nx, int) and nx >= 6):
            raise ValueError(f"nx={nx!r} is not allowed: a periodic WENO5 grid needs an int nx >= 6")
        if not (L > 0 and math.isfinite(L)):
            raise ValueError(f"L={L!r} must be a finite length > 0")
        if flux not in FLUXES:
            raise ValueError(f"flux={flux!r} is not supported; allowed: {', '.join(FLUXES)}")
        if weights not in ("js", "z"):
            raise ValueError(f"weights={weights!r} is not supported; allowed: 'js', 'z'")
        self.nx, self.L, self.dx = nx, float(L), float(L) / nx
        self.alpha, self.beta, self.gamma = (self._coeff(n, v) for n, v in
                                             (("alpha", alpha), ("beta", beta), ("gamma", gamma)))
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if float(torch.as_tensor(v).min()) < 0:
                raise ValueError(f"{name} must be >= 0, got min {float(torch.as_tensor(v).min())}")
        self.has = {n: bool(torch.as_tensor(getattr(self, n)).abs().max() > 0)
                    for n in ("alpha", "beta", "gamma")}
        self.forcing = forcing
        self.flux, self.weights = flux, weights
        self._riemann = godunov_burgers if flux == "godunov" else rusanov_burgers

    @staticmethod
    def _coeff(name, v):
        if isinstance(v, torch.Tensor):
            if v.dim() > 1:
                raise ValueError(f"{name} must be a number or a (batch,) tensor, got shape {tuple(v.shape)}")
            return v[:, None] if v.dim() == 1 else v
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"{name}={v!r} must be finite")
        return v

    def _c(self, v, u):
        return v.to(dtype=u.dtype, device=u.device) if isinstance(v, torch.Tensor) else v

    def flux_faces(self, u: torch.Tensor) -> torch.Tensor:
        """Total numerical flux ``alpha u^2 - beta u_x + gamma u_xx`` at the nx + 1 faces."""
        s = face_stencils(u)
        F = torch.zeros((), dtype=u.dtype, device=u.device)
        if self.has["alpha"]:
            eps = 1e-6 if self.weights == "js" else 1e-40
            left = torch.stack((s[0], s[1], s[2], s[3], s[4]))
            right = torch.stack((s[5], s[4], s[3], s[2], s[1]))
            lr = weno5(*torch.stack((left, right), dim=1), weights=self.weights, eps=eps)
            # alpha u^2 = (2 alpha) * (u^2 / 2): the Riemann solver of u^2/2 scaled (alpha >= 0)
            F = 2.0 * self._c(self.alpha, u) * self._riemann(lr[0], lr[1])
        if self.has["beta"]:
            F = F - self._c(self.beta, u) * face_gradient(s, self.dx)
        if self.has["gamma"]:
            F = F + self._c(self.gamma, u) * face_second_derivative(s, self.dx)
        return F

    def __call__(self, u: torch.Tensor, p=None, t=None) -> torch.Tensor:
        du = -divergence(self.flux_faces(u), self.dx)
        if self.forcing is not None:
            du = du + self.forcing.cell_average(0.0 if t is None else t, self.nx, u.dtype, u.device)
        return du

    def max_wave_speed(self, u: torch.Tensor) -> float:
        """``max |f'(u)| = 2 alpha max |u|``, for CFL estimates."""
        a = torch.as_tensor(self.alpha).abs().max()
        return float(2.0 * a * u.detach().abs().max())

    def __repr__(self) -> str:
        return (f"CombinedEquation(nx={self.nx}, L={self.L}, flux={self.flux!r}, weights={self.weights!r}, "
                f"terms={[k for k, v in self.has.items() if v]}, forced={self.forcing is not None})")
