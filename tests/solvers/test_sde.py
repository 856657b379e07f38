"""SDE methods: strong and weak order with a seeded Brownian path, adaptivity,
reproducibility, gradients and regularization."""

import math

import numpy as np
import pytest
import torch

from diffsim import solvers as dss

MU, SIG, T = 0.5, 0.8, 1.0


def gbm(n_paths, x0=1.0):
    """Geometric Brownian motion, whose exact solution is known in terms of W(T)."""
    return dss.SDEProblem(lambda u, p, t: MU * u, lambda u, p, t: SIG * u, torch.full((n_paths,), x0), (0.0, T))


def slope(dts, errs):
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]


@pytest.mark.parametrize("alg", [dss.EulerMaruyama(), dss.Milstein(), dss.Milstein(derivative_free=True)],
                         ids=repr)
def test_strong_order(alg):
    W = dss.BrownianPath(0.0, (2000,), seed=1)
    exact = torch.exp((MU - SIG**2 / 2) * T + SIG * W(T))
    dts = [2.0**-k for k in range(4, 9)]
    errs = [float((dss.solve(gbm(2000), alg, dt=dt, noise=W, saveat=[T]).u[-1] - exact).abs().mean()) for dt in dts]
    assert abs(slope(dts, errs) - alg.strong_order()) < 0.25, (errs, slope(dts, errs))


def test_weak_order_of_euler_maruyama():
    """E[X_T] = exp(mu T); Euler–Maruyama's mean is (1 + mu dt)^N, a first-order bias.
    Common random numbers across dt keep the Monte-Carlo noise well below the bias."""
    dts = [2.0**-k for k in range(2, 6)]
    W = dss.BrownianPath(0.0, (200_000,), seed=2)
    errs = []
    for dt in dts:
        sol = dss.solve(gbm(200_000), dss.EulerMaruyama(), dt=dt, noise=W, saveat=[T])
        errs.append(abs(float(sol.u[-1].mean()) - math.exp(MU * T)))
    assert abs(slope(dts, errs) - 1.0) < 0.25, errs


def test_adaptive_milstein_error_decreases_with_tolerance_and_rejections_are_unbiased():
    W = dss.BrownianPath(0.0, (500,), seed=3)
    exact = torch.exp((MU - SIG**2 / 2) * T + SIG * W(T))
    errs, steps = [], []
    for tol in (1e-1, 1e-2, 1e-3):
        sol = dss.solve(gbm(500), dss.AdaptiveMilstein(), rtol=tol, atol=tol, noise=W, saveat=[T])
        assert sol.successful
        errs.append(float((sol.u[-1] - exact).abs().mean()))
        steps.append(sol.stats.naccept)
    assert errs[2] < errs[1] < errs[0] and steps[2] > steps[1] > steps[0]
    assert errs[2] < 0.05 * errs[0] ** 0.5


def test_brownian_path_bridge_statistics():
    """Points drawn in any order form a Brownian motion: Var[W(t)] = t and independent
    increments, checked over many components."""
    W = dss.BrownianPath(0.0, (100_000,), seed=4)
    w1 = W(1.0)
    w_half = W(0.5)  # bridged between 0 and 1
    w_quarter = W(0.25)
    assert abs(float(w1.var()) - 1.0) < 0.02 and abs(float(w_half.var()) - 0.5) < 0.02
    inc = w_half - w_quarter
    assert abs(float(inc.var()) - 0.25) < 0.01
    assert abs(float(torch.corrcoef(torch.stack([inc, w1 - w_half]))[0, 1])) < 0.02
    assert torch.equal(W(0.5), w_half)  # kept


def test_seed_reproducibility_and_shapes():
    prob = dss.SDEProblem(lambda u, p, t: -u, lambda u, p, t: 0.3 * torch.ones_like(u), torch.ones(2, 3), (0.0, 1.0))
    a = dss.solve(prob, seed=11, saveat=[0.5, 1.0])
    b = dss.solve(prob, seed=11, saveat=[0.5, 1.0])
    c = dss.solve(prob, seed=12, saveat=[0.5, 1.0])
    assert torch.equal(a.u, b.u) and not torch.equal(a.u, c.u)
    assert a.u.shape == (2, 2, 3) and a.t.tolist() == [0.5, 1.0]
    torch.manual_seed(5)
    d = dss.solve(prob, saveat=[1.0])
    torch.manual_seed(5)
    e = dss.solve(prob, saveat=[1.0])
    assert torch.equal(d.u, e.u)
    full = dss.solve(prob, seed=1)
    assert full(0.37).shape == (2, 3)


def test_pathwise_gradient_matches_finite_differences():
    """With the path fixed the solution is a smooth function of the parameters."""
    theta = torch.tensor([0.7, 0.3], requires_grad=True)

    def f(u, p, t):
        return -p[0] * u + torch.sin(u)

    def g(u, p, t):
        return p[1] * torch.cos(u)

    def run(th):
        prob = dss.SDEProblem(f, g, torch.tensor([0.5, -0.2]), (0.0, 1.0), p=th)
        return dss.solve(prob, dss.Milstein(), dt=0.05, seed=9, saveat=[1.0]).u[-1].pow(2).sum()

    grad, = torch.autograd.grad(run(theta), theta)
    eps = 1e-6
    for k in range(2):
        e = torch.zeros(2)
        e[k] = eps
        fd = (float(run(theta.detach() + e)) - float(run(theta.detach() - e))) / (2 * eps)
        assert abs(fd - float(grad[k])) < 1e-7 * max(1.0, abs(fd))


def test_sde_regularization():
    net = torch.nn.Linear(2, 2)
    prob = dss.SDEProblem(lambda u, p, t: net(u), lambda u, p, t: 0.2 * torch.sigmoid(u), torch.ones(4, 2), (0.0, 1.0))
    for reg in (dss.GlobalRegularization(), dss.LocalRegularization(), dss.LocalRegularization(sampling="biased")):
        sol = dss.solve(prob, dss.AdaptiveMilstein(), seed=0, saveat=[1.0], regularization=reg)
        assert sol.reg.item() > 0
        grads = torch.autograd.grad(sol.reg, list(net.parameters()))
        assert all(torch.isfinite(gr).all() for gr in grads)
    with pytest.raises(ValueError, match="adaptive SDE method"):
        dss.solve(prob, dss.EulerMaruyama(), dt=0.1, regularization=dss.GlobalRegularization())
    with pytest.raises(ValueError, match="DirectAdjoint"):
        dss.solve(prob, seed=0, sensealg=dss.BacksolveAdjoint())


def test_sde_non_finite_ends_with_retcode():
    prob = dss.SDEProblem(lambda u, p, t: u**3, lambda u, p, t: torch.ones_like(u), torch.tensor([3.0]), (0.0, 5.0))
    sol = dss.solve(prob, dss.EulerMaruyama(), dt=0.1, seed=0)
    assert sol.retcode is dss.ReturnCode.NON_FINITE and torch.isfinite(sol.u).all()
