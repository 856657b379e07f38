"""The MP-PDE benchmark families E1, E2, E3 of the combined equation, as values.

A :class:`CEFamily` says how to draw an instance (coefficients, forcing) and on what
space-time grid to record it; ``family.problem(params, nx)`` builds the
``dss.ODEProblem`` of the finite-volume semi-discretisation, and ``family.solve``
integrates a batch with our adaptive solvers (``Tsit5`` by default).

Parameter choices (Brandstetter et al., ICLR 2022, Sec. 4.1):

* forcing and initial condition: ``J = 5`` sines on ``L = 16``, ``A_j ~ U[-0.5, 0.5]``,
  ``omega_j ~ U[-0.4, 0.4]``, ``l_j`` uniform in ``{1, 2, 3}``, ``phi_j ~ U[0, 2 pi)``;
  ``u(0, x) = delta(0, x)``.
* E1: Burgers without diffusion, ``(alpha, beta, gamma) = (0.5, 0, 0)``, ``t in [0, 4]``.
* E2: Burgers with diffusion ``beta ~ U[0, 0.2]``, ``t in [0, 4]``.
* E3: mixed Burgers/heat/KdV, ``alpha ~ U[0, 3]``, ``beta ~ U[0, 0.4]``,
  ``gamma ~ U[0, 1]``, ``t in [0, 2]``.
* ``nt = 250`` recorded time points, reference resolution ``nx = 200`` downsampled to
  100, 50, 40.

Where the paper's text and the authors' generation script differ we follow the text
and say so: the script draws ``l_j`` from ``{1, 2}`` (``torch.randint(1, 3)``) and E3's
``beta`` from ``[0.1, 0.4]``; pass ``lmax=2`` / ``beta=(0.1, 0.4)`` to reproduce it.
E3's horizon of 2 s is taken from the script.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from ..ode.methods.tsit5 import Tsit5
from ..ode.problem import ODEProblem
from .burgers import CombinedEquation, Forcing, cell_centres


def _range(name: str, v) -> tuple[float, float]:
    lo, hi = (float(v), float(v)) if isinstance(v, (int, float)) else (float(v[0]), float(v[1]))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name}={v!r} must be a finite range (lo, hi) with lo <= hi")
    return lo, hi


@dataclasses.dataclass(frozen=True)
class CEFamily:
    """A distribution of combined-equation instances and the grid they are recorded on.

    Args:
        name: label written into data files ("E1", ...).
        alpha, beta, gamma: ranges ``(lo, hi)`` (or a number) of the coefficients of
            ``u^2``, ``-u_x`` and ``u_xx`` in the flux, drawn uniformly per instance.
        tmax: end time (s); the trajectory is recorded at ``nt`` equispaced times in
            ``[0, tmax]`` (both ends included).
        nt: recorded time points.
        L: domain length.
        J: number of forcing sines.
        amplitude, omega: ``A_j ~ U[-amplitude, amplitude]``, ``omega_j ~ U[-omega, omega]``.
        lmin, lmax: wave numbers ``l_j`` uniform in ``{lmin, ..., lmax}``.
        forced: keep the forcing on during the run (the benchmark does); False solves
            the unforced equation from the same initial condition.
    """

    name: str
    alpha: tuple = (0.5, 0.5)
    beta: tuple = (0.0, 0.0)
    gamma: tuple = (0.0, 0.0)
    tmax: float = 4.0
    nt: int = 250
    L: float = 16.0
    J: int = 5
    amplitude: float = 0.5
    omega: float = 0.4
    lmin: int = 1
    lmax: int = 3
    forced: bool = True

    def __post_init__(self):
        for n in ("alpha", "beta", "gamma"):
            object.__setattr__(self, n, _range(n, getattr(self, n)))
        if self.alpha[0] < 0 or self.beta[0] < 0:
            raise ValueError("alpha and beta ranges must be >= 0")
        if not (self.tmax > 0 and isinstance(self.nt, int) and self.nt >= 2):
            raise ValueError(f"need tmax > 0 and an int nt >= 2, got tmax={self.tmax}, nt={self.nt}")
        if not (isinstance(self.J, int) and self.J >= 1 and 1 <= self.lmin <= self.lmax):
            raise ValueError(f"need J >= 1 and 1 <= lmin <= lmax, got J={self.J}, lmin={self.lmin}, lmax={self.lmax}")

    # ------------------------------------------------------------------ grid
    @property
    def dt(self) -> float:
        """Spacing of the recorded time points (s)."""
        return self.tmax / (self.nt - 1)

    def times(self, dtype=torch.float64) -> torch.Tensor:
        return torch.linspace(0.0, self.tmax, self.nt, dtype=dtype)

    def grid(self, nx: int, dtype=torch.float64) -> torch.Tensor:
        return cell_centres(nx, self.L, dtype)

    @property
    def varying(self) -> tuple[str, ...]:
        """Names of the coefficients that vary across instances (the conditioning inputs)."""
        return tuple(n for n in ("alpha", "beta", "gamma") if getattr(self, n)[0] != getattr(self, n)[1])

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, n: int = 1) -> dict[str, np.ndarray]:
        """Draw ``n`` instances: ``A, omega, phi`` (n, J) floats, ``l`` (n, J) ints,
        ``alpha, beta, gamma`` (n,)."""
        J = self.J
        out = {
            "A": rng.uniform(-self.amplitude, self.amplitude, (n, J)),
            "omega": rng.uniform(-self.omega, self.omega, (n, J)),
            "phi": rng.uniform(0.0, 2.0 * math.pi, (n, J)),
            "l": rng.integers(self.lmin, self.lmax + 1, (n, J)),
        }
        for name in ("alpha", "beta", "gamma"):
            lo, hi = getattr(self, name)
            out[name] = rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo)
        return out

    def sample_index(self, seed: int, index: int) -> dict[str, np.ndarray]:
        """The parameters of instance ``index`` of a data set with ``seed``: independent of
        how instances are batched, resumed or spread over processes."""
        rng = np.random.default_rng([int(seed), int(index)])
        return {k: v[0] for k, v in self.sample(rng, 1).items()}

    # ------------------------------------------------------------------ problems
    def rhs(self, params: dict, nx: int, *, flux: str = "godunov", weights: str = "js",
            dtype=torch.float64, device=None) -> CombinedEquation:
        """The semi-discretisation for a batch of instances (``params`` values with a leading
        batch axis, as from :meth:`sample`)."""
        t = {k: torch.as_tensor(np.asarray(params[k]), device=device) for k in params}
        forcing = Forcing(t["A"].to(dtype), t["omega"].to(dtype), t["phi"].to(dtype), t["l"], self.L)
        return CombinedEquation(nx, self.L, alpha=t["alpha"].to(dtype), beta=t["beta"].to(dtype),
                                gamma=t["gamma"].to(dtype), forcing=forcing if self.forced else None,
                                flux=flux, weights=weights)

    def initial_condition(self, params: dict, nx: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """(B, nx) cell averages of ``u(0, x) = delta(0, x)``."""
        t = {k: torch.as_tensor(np.asarray(params[k]), device=device) for k in ("A", "omega", "phi", "l")}
        forcing = Forcing(t["A"].to(dtype), t["omega"].to(dtype), t["phi"].to(dtype), t["l"], self.L)
        return forcing.cell_average(0.0, nx, dtype, device)

    def problem(self, params: dict, nx: int, *, flux: str = "godunov", weights: str = "js",
                dtype=torch.float64, device=None) -> ODEProblem:
        """``dss.ODEProblem`` of a batch: state (B, nx), ``tspan = (0, tmax)``."""
        f = self.rhs(params, nx, flux=flux, weights=weights, dtype=dtype, device=device)
        return ODEProblem(f, self.initial_condition(params, nx, dtype, device), (0.0, self.tmax))

    def solve(self, params: dict, nx: int, *, solver=None, rtol: float = 1e-6, atol: float = 1e-8,
              flux: str = "godunov", weights: str = "js", dtype=torch.float64, device=None,
              max_steps: int = 1_000_000, **solve_kwargs):
        """Integrate a batch on ``nx`` cells and return ``(u, sol)``: ``u`` (B, nt, nx) at
        :meth:`times`, ``sol`` the ``ODESolution`` (statistics, return code).

        Raises:
            SolveError: the integration failed (its message says how to fix it).
        """
        from diffsim.dispatch import solve

        prob = self.problem(params, nx, flux=flux, weights=weights, dtype=dtype, device=device)
        sol = solve(prob, solver or Tsit5(), saveat=self.times(dtype), rtol=rtol, atol=atol,
                        max_steps=max_steps, throw=True, **solve_kwargs)
        return sol.u.transpose(0, 1), sol

    def solve_timed(self, params: dict, nx: int, **kw):
        """:meth:`solve` plus its wall time in seconds."""
        t0 = time.perf_counter()
        with torch.no_grad():
            u, sol = self.solve(params, nx, **kw)
        return u, sol, time.perf_counter() - t0


E1 = CEFamily("E1", alpha=0.5, beta=0.0, gamma=0.0, tmax=4.0)
E2 = CEFamily("E2", alpha=0.5, beta=(0.0, 0.2), gamma=0.0, tmax=4.0)
E3 = CEFamily("E3", alpha=(0.0, 3.0), beta=(0.0, 0.4), gamma=(0.0, 1.0), tmax=2.0)
FAMILIES = {"E1": E1, "E2": E2, "E3": E3}


def family(name_or_family) -> CEFamily:
    """``"E1"``/``"E2"``/``"E3"`` or a :class:`CEFamily`."""
    if isinstance(name_or_family, CEFamily):
        return name_or_family
    if name_or_family not in FAMILIES:
        raise ValueError(f"unknown PDE family {name_or_family!r}; allowed: {', '.join(FAMILIES)} or a CEFamily")
    return FAMILIES[name_or_family]
