"""Reference problems from the DETEST set of Hull, Enright, Fellen & Sedgwick, with
exact solutions where they exist, and two classic stiff problems.

Each :class:`ReferenceProblem` builds an :class:`ODEProblem` in a requested dtype and
gives the exact final state (None where only a numerical reference exists; tests and
benchmarks then compute one with scipy's DOP853 at rtol=1e-13).

Reference: T. E. Hull, W. H. Enright, B. M. Fellen, A. E. Sedgwick, "Comparing
numerical methods for ordinary differential equations", SIAM J. Numer. Anal. 9(4)
(1972).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from .ode.problem import ODEProblem


@dataclasses.dataclass(frozen=True)
class ReferenceProblem:
    """A named test problem ``u' = f(u, t)`` with ``u(t0) = u0`` on ``tspan``."""

    name: str
    f: Callable[[torch.Tensor, object, torch.Tensor], torch.Tensor]
    u0: tuple[float, ...]
    tspan: tuple[float, float]
    exact: Callable[[float], list[float]] | None = None
    stiff: bool = False

    def problem(self, dtype=torch.float64, device=None) -> ODEProblem:
        return ODEProblem(self.f, torch.tensor(self.u0, dtype=dtype, device=device), self.tspan)

    def numpy_rhs(self):
        """``fun(t, y)`` for scipy's ``solve_ivp``."""

        def fun(t, y):
            u = torch.as_tensor(y, dtype=torch.float64)
            return self.f(u, None, torch.tensor(t, dtype=torch.float64)).numpy()

        return fun


def _kepler(e: float) -> Callable[[float], list[float]]:
    def exact(t: float) -> list[float]:
        E = t
        for _ in range(100):  # Newton on Kepler's equation E - e sin E = t
            dE = (E - e * math.sin(E) - t) / (1 - e * math.cos(E))
            E -= dE
            if abs(dE) < 1e-16:
                break
        s = math.sqrt(1 - e * e)
        d = 1 - e * math.cos(E)
        return [math.cos(E) - e, s * math.sin(E), -math.sin(E) / d, s * math.cos(E) / d]

    return exact


def _orbit(u, p, t):
    x, y, vx, vy = u.unbind(-1)
    r3 = (x * x + y * y) ** 1.5
    return torch.stack([vx, vy, -x / r3, -y / r3], -1)


def _orbit_problem(name: str, e: float) -> ReferenceProblem:
    return ReferenceProblem(name, _orbit, (1 - e, 0.0, 0.0, math.sqrt((1 + e) / (1 - e))), (0.0, 20.0), _kepler(e))


A1 = ReferenceProblem("A1", lambda u, p, t: -u, (1.0,), (0.0, 20.0), lambda t: [math.exp(-t)])
A2 = ReferenceProblem("A2", lambda u, p, t: -0.5 * u**3, (1.0,), (0.0, 20.0), lambda t: [1 / math.sqrt(t + 1)])
A3 = ReferenceProblem("A3", lambda u, p, t: u * torch.cos(t), (1.0,), (0.0, 20.0), lambda t: [math.exp(math.sin(t))])
A4 = ReferenceProblem("A4", lambda u, p, t: 0.25 * u * (1 - u / 20), (1.0,), (0.0, 20.0),
                      lambda t: [20 / (1 + 19 * math.exp(-t / 4))])
B1 = ReferenceProblem(
    "B1", lambda u, p, t: torch.stack([2 * (u[0] - u[0] * u[1]), -(u[1] - u[0] * u[1])]), (1.0, 3.0), (0.0, 20.0)
)
B5 = ReferenceProblem(
    "B5", lambda u, p, t: torch.stack([u[1] * u[2], -u[0] * u[2], -0.51 * u[0] * u[1]]), (0.0, 1.0, 1.0), (0.0, 20.0)
)
D1 = _orbit_problem("D1", 0.1)
D3 = _orbit_problem("D3", 0.5)
D5 = _orbit_problem("D5", 0.9)

#: the non-stiff set used by the tests and ``benchmarks/ode.py``
NONSTIFF = (A1, A2, A3, A4, B1, B5, D1, D3, D5)


def _robertson(u, p, t):
    y1, y2, y3 = u.unbind(-1)
    return torch.stack([-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 * y2, 3e7 * y2 * y2], -1)


def _van_der_pol(mu: float):
    def f(u, p, t):
        x, v = u.unbind(-1)
        return torch.stack([v, mu * ((1 - x * x) * v) - x], -1)

    return f


#: Robertson's chemical kinetics (Hairer & Wanner, Solving ODEs II, Sec. IV.1), stiff.
ROBERTSON = ReferenceProblem("Robertson", _robertson, (1.0, 0.0, 0.0), (0.0, 1e5), stiff=True)
#: Van der Pol with mu = 1000 (Hairer & Wanner II, Sec. IV.1), stiff.
VAN_DER_POL_1000 = ReferenceProblem("VanDerPol(mu=1000)", _van_der_pol(1000.0), (2.0, 0.0), (0.0, 3000.0), stiff=True)
