"""Heavier checks, run with ``pytest -m slow``."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from diffsim import solvers as dss


@pytest.mark.slow
@pytest.mark.parametrize("alg,rtol,bound", [(dss.Rodas5P(), 1e-6, 1e-4), (dss.Rosenbrock23(), 1e-4, 2e-2)],
                         ids=["Rodas5P", "Rosenbrock23"])
def test_van_der_pol_mu_1000(alg, rtol, bound):
    P = dss.detest.VAN_DER_POL_1000
    ts = [1000.0, 2000.0, 3000.0]
    sol = dss.solve(P.problem(), alg, rtol=rtol, atol=rtol * 1e-4, saveat=ts)
    assert sol.successful
    ref = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method="Radau", rtol=1e-11, atol=1e-13, t_eval=ts).y.T
    rel = np.abs(sol.u.numpy() - ref) / (np.abs(ref) + 1e-6)
    assert rel.max() < bound


@pytest.mark.slow
def test_strong_order_many_paths_and_adaptive_vs_fixed_work():
    """With 20000 paths the strong-order slopes settle to within 0.1."""
    mu, sig = 0.5, 0.8
    prob = dss.SDEProblem(lambda u, p, t: mu * u, lambda u, p, t: sig * u, torch.ones(20000), (0.0, 1.0))
    W = dss.BrownianPath(0.0, (20000,), seed=7)
    exact = torch.exp((mu - sig**2 / 2) + sig * W(1.0))
    dts = [2.0**-k for k in range(5, 11)]
    for alg in (dss.EulerMaruyama(), dss.Milstein()):
        errs = [float((dss.solve(prob, alg, dt=dt, noise=W, saveat=[1.0]).u[-1] - exact).abs().mean()) for dt in dts]
        slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
        assert abs(slope - alg.strong_order()) < 0.1, (type(alg).__name__, slope)


@pytest.mark.slow
def test_checkpointed_interpolating_adjoint_on_long_neural_ode():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    field = dss.ModuleField(net)
    u0 = torch.randn(16, 4)
    grads = []
    for sens in (dss.DirectAdjoint(), dss.InterpolatingAdjoint(checkpoints=8), dss.QuadratureAdjoint(nodes=4)):
        sol = dss.solve(dss.ODEProblem(field, u0, (0.0, 20.0)), dss.Tsit5(), rtol=1e-9, atol=1e-9,
                        saveat=torch.linspace(0, 20, 21), sensealg=sens)
        grads.append(torch.autograd.grad(sol.u.pow(2).mean(), list(net.parameters())))
    for g in grads[1:]:
        for a, b in zip(g, grads[0]):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
