"""Accuracy on DETEST reference problems, stiff problems, time direction, shapes and
return codes."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from diffsim import solvers as dss

detest = dss.detest


def reference(P):
    if P.exact is not None:
        return torch.tensor(P.exact(P.tspan[1]), dtype=torch.float64)
    r = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method="DOP853", rtol=1e-13, atol=1e-13)
    return torch.tensor(r.y[:, -1])


@pytest.mark.parametrize("P", detest.NONSTIFF, ids=lambda P: P.name)
@pytest.mark.parametrize("alg", [dss.DP5(), dss.Tsit5(), dss.DP8()], ids=lambda a: type(a).__name__)
def test_detest_accuracy_and_cost_vs_scipy(P, alg):
    """At rtol = atol = 1e-8 the global error stays within a modest multiple of the
    tolerance and the work is within 1.6x of scipy's matching method (RK45 for the
    5th-order pairs, DOP853 for DP8)."""
    tol = 1e-8
    sol = dss.solve(P.problem(), alg, rtol=tol, atol=tol, saveat=[P.tspan[1]])
    assert sol.successful
    ref = reference(P)
    err = float((sol.u[-1] - ref).abs().max() / max(1.0, float(ref.abs().max())))
    assert err < 2000 * tol, err
    method = "DOP853" if isinstance(alg, dss.DP8) else "RK45"
    r = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method=method, rtol=tol, atol=tol)
    assert sol.stats.nfe < 1.6 * r.nfev, (sol.stats.nfe, r.nfev)


def test_bs3_detest_loose():
    for P in (detest.A3, detest.B5, detest.D1):
        sol = dss.solve(P.problem(), dss.BS3(), rtol=1e-5, atol=1e-5, saveat=[P.tspan[1]])
        assert float((sol.u[-1] - reference(P)).abs().max()) < 5e-3


@pytest.mark.parametrize("alg", [dss.Rodas5P(), dss.Rosenbrock23()], ids=lambda a: type(a).__name__)
def test_robertson_stiff(alg):
    P = detest.ROBERTSON
    tol = 1e-6 if isinstance(alg, dss.Rodas5P) else 1e-4
    sol = dss.solve(P.problem(), alg, rtol=tol, atol=1e-10, saveat=[1.0, 1e2, 1e5])
    assert sol.successful
    r = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method="Radau", rtol=1e-10, atol=1e-14, t_eval=[1.0, 1e2, 1e5])
    ref = torch.tensor(r.y.T)
    rel = ((sol.u - ref).abs() / (ref.abs() + 1e-10)).max()
    assert rel < (1e-3 if isinstance(alg, dss.Rodas5P) else 2e-2), rel
    assert torch.allclose(sol.u.sum(-1), torch.ones(3), atol=1e-8)  # mass conservation
    assert sol.stats.naccept < 400 and sol.stats.njac > 0


def test_explicit_method_on_stiff_problem_reports_max_steps():
    sol = dss.solve(detest.ROBERTSON.problem(), dss.Tsit5(), rtol=1e-6, atol=1e-10, max_steps=300)
    assert sol.retcode is dss.ReturnCode.MAX_STEPS
    assert "stiff solver" in sol.retcode.value
    with pytest.raises(dss.SolveError, match="max_steps"):
        dss.solve(detest.ROBERTSON.problem(), dss.Tsit5(), max_steps=50, throw=True)


def test_backwards_in_time_matches_forward():
    P = detest.D3
    fwd = dss.solve(P.problem(), dss.Tsit5(), rtol=1e-10, atol=1e-10, saveat=[20.0])
    back = dss.ODEProblem(P.f, fwd.u[-1], (20.0, 0.0))
    sol = dss.solve(back, dss.Tsit5(), rtol=1e-10, atol=1e-10, saveat=torch.tensor([20.0, 10.0, 0.0]), dense=True)
    assert sol.successful and sol.t.tolist() == [20.0, 10.0, 0.0]
    assert (sol.u[-1] - P.problem().u0).abs().max() < 1e-6
    assert (sol.u[1] - torch.tensor(P.exact(10.0))).abs().max() < 1e-6
    assert sol(5.0).shape == (4,)


def test_any_state_shape_and_batch_independence():
    A = torch.randn(3, 4, 4) * 0.3
    u0 = torch.randn(3, 4, 2)

    def f(u, p, t):
        return torch.tanh(A @ u)

    sol = dss.solve(dss.ODEProblem(f, u0, (0.0, 1.0)), dss.Tsit5(), rtol=1e-9, atol=1e-9, saveat=[0.5, 1.0])
    assert sol.u.shape == (2, 3, 4, 2)
    one = dss.solve(dss.ODEProblem(lambda u, p, t: torch.tanh(A[1] @ u), u0[1], (0.0, 1.0)), dss.Tsit5(),
                    rtol=1e-9, atol=1e-9, saveat=[1.0])
    assert torch.allclose(sol.u[-1, 1], one.u[-1], atol=1e-7)


def test_float32_state_stays_float32():
    u0 = torch.tensor([1.0, 0.0], dtype=torch.float32)
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: torch.stack([u[1], -u[0]]), u0, (0.0, 6.0)), dss.Tsit5(),
                    rtol=1e-5, atol=1e-6)
    assert sol.u.dtype == torch.float32 and sol.t.dtype == torch.float32
    assert abs(float(sol.u[-1, 0]) - math.cos(6.0)) < 1e-3


def test_finite_time_blowup_ends_with_retcode_not_nan():
    # u' = u^2, u(0) = 1 blows up at t = 1.
    prob = dss.ODEProblem(lambda u, p, t: u * u, torch.tensor([1.0]), (0.0, 2.0))
    sol = dss.solve(prob, dss.Tsit5())
    assert sol.retcode in (dss.ReturnCode.DT_LESS_THAN_MIN, dss.ReturnCode.NON_FINITE, dss.ReturnCode.MAX_STEPS)
    assert torch.isfinite(sol.u).all() and float(sol.t[-1]) < 1.0 + 1e-6
    fixed = dss.solve(prob, dss.RK4(), dt=0.3)
    assert fixed.retcode is dss.ReturnCode.NON_FINITE and torch.isfinite(fixed.u).all()
    nan_f = dss.ODEProblem(lambda u, p, t: u * float("nan"), torch.tensor([1.0]), (0.0, 1.0))
    assert dss.solve(nan_f, dss.Tsit5()).retcode is dss.ReturnCode.NON_FINITE


def test_stats_and_default_solver():
    sol = dss.solve(detest.A3.problem())  # Tsit5 by default
    assert isinstance(sol.alg, dss.Tsit5)
    s = sol.stats
    assert s.naccept == len(sol.t) - 1 and s.nfe >= 6 * s.naccept + 1
    assert s.nfe_backward == 0 and s.nfe_total == s.nfe
    assert "naccept" in repr(sol)


def test_dtmax_and_initial_dt_are_respected():
    sol = dss.solve(detest.A1.problem(), dss.Tsit5(), dtmax=0.5)
    assert np.diff(sol.t.numpy()).max() <= 0.5 + 1e-12
    sol = dss.solve(detest.A1.problem(), dss.Tsit5(), dt=1e-3, rtol=1e-3)
    assert abs(float(sol.t[1]) - 1e-3) < 1e-15
