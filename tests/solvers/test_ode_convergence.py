"""Convergence order of every ODE method and of its dense output."""

import math

import numpy as np
import pytest
import torch

from diffsim import solvers as dss

# A non-autonomous, nonlinear scalar-pair problem with a known solution:
# u = (sin t + 2, exp(-t/2) cos t) solves u' = f(u, t) below.
T1 = 2.0


def f(u, p, t):
    return torch.stack([torch.cos(t) + 0.3 * ((u[0] - 2.0) - torch.sin(t)) ** 2,
                        -0.5 * u[1] - torch.exp(-0.5 * t) * torch.sin(t) + (u[0] - 2.0 - torch.sin(t))])


def exact(t):
    return torch.tensor([math.sin(t) + 2.0, math.exp(-0.5 * t) * math.cos(t)], dtype=torch.float64)


PROB = dss.ODEProblem(f, exact(0.0), (0.0, T1))

# (method, step counts): the ranges keep errors between round-off and the asymptotic regime.
CASES = [
    (dss.Euler(), [64, 128, 256, 512]),
    (dss.Midpoint(), [32, 64, 128, 256]),
    (dss.Heun(), [32, 64, 128, 256]),
    (dss.RK4(), [16, 32, 64, 128]),
    (dss.BS3(), [16, 32, 64, 128]),
    (dss.DP5(), [8, 16, 32, 64]),
    (dss.Tsit5(), [16, 24, 32, 48]),
    (dss.DP8(), [4, 6, 8, 12]),
    (dss.Rosenbrock23(), [32, 64, 128, 256]),
    (dss.Rodas5P(), [8, 16, 32, 64]),
]


def slope(ns, errs):
    return -np.polyfit(np.log(ns), np.log(errs), 1)[0]


@pytest.mark.parametrize("alg,ns", CASES, ids=lambda x: type(x).__name__ if not isinstance(x, list) else "")
def test_solution_order(alg, ns):
    errs = []
    for n in ns:
        sol = dss.solve(PROB, alg, dt=T1 / n, adaptive=False, saveat=[T1])
        errs.append(float((sol.u[-1] - exact(T1)).abs().max()))
    assert abs(slope(ns, errs) - alg.order()) < 0.25, (errs, slope(ns, errs))


@pytest.mark.parametrize("alg,ns", CASES, ids=lambda x: type(x).__name__ if not isinstance(x, list) else "")
def test_dense_output_order(alg, ns):
    """Inside a step the error is the global error plus the interpolant's local error,
    so it converges like min(order, dense_order + 1)."""
    errs = []
    for n in ns:
        sol = dss.solve(PROB, alg, dt=T1 / n, adaptive=False, dense=True)
        h = T1 / n
        ts = [h * (k + 0.37) for k in range(0, n, max(1, n // 4))]
        errs.append(max(float((sol(t) - exact(t)).abs().max()) for t in ts))
    expected = min(alg.order(), alg.dense_order() + 1)
    assert slope(ns, errs) > expected - 0.25, (errs, slope(ns, errs))


def test_dense_output_hits_step_ends_and_saveat_matches():
    sol = dss.solve(PROB, dss.Tsit5(), rtol=1e-8, atol=1e-10)
    for t, u in zip(sol.t[:10], sol.u[:10]):
        assert torch.allclose(sol(float(t)), u, rtol=0, atol=1e-13)
    ts = torch.linspace(0, T1, 11)
    sol2 = dss.solve(PROB, dss.Tsit5(), rtol=1e-8, atol=1e-10, saveat=ts)
    assert torch.allclose(sol2.u, torch.stack([sol(float(t)) for t in ts]), atol=1e-12)
    assert torch.allclose(sol(ts), sol2.u, atol=1e-12)
    assert (sol2.u - torch.stack([exact(float(t)) for t in ts])).abs().max() < 1e-7


@pytest.mark.parametrize("alg", [dss.BS3(), dss.DP5(), dss.Tsit5(), dss.DP8(), dss.Rosenbrock23(), dss.Rodas5P()],
                         ids=lambda a: type(a).__name__)
def test_adaptive_error_is_tolerance_proportional(alg):
    errs, nfes = [], []
    for tol in (1e-5, 1e-8):
        sol = dss.solve(PROB, alg, rtol=tol, atol=tol, saveat=[T1])
        assert sol.successful
        errs.append(float((sol.u[-1] - exact(T1)).abs().max()))
        nfes.append(sol.stats.nfe)
    assert errs[0] < 1e-5 * 50
    assert errs[1] < errs[0] / 50  # 1000x tighter tolerance: well over 50x smaller error
    assert nfes[1] > nfes[0]
