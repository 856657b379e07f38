"""Pal et al.'s regularizers: values, gradients against finite differences, and their
interaction with every sensitivity algorithm."""

import pytest
import torch

from diffsim import solvers as dss


def f(u, p, t):
    w, b = p
    return torch.tanh(w @ u + b) - 0.3 * u


def params():
    torch.manual_seed(3)
    return (torch.randn(3, 3, requires_grad=True), torch.randn(3, requires_grad=True))


U0 = [0.5, -0.4, 0.9]


def reg_value(p, reg, sensealg=None, seed=7, **kw):
    sensealg = sensealg if sensealg is not None else dss.DirectAdjoint()
    g = torch.Generator().manual_seed(seed)
    prob = dss.ODEProblem(f, torch.tensor(U0), (0.0, 2.0), p=p)
    return dss.solve(prob, dss.Tsit5(), saveat=[2.0], regularization=reg, sensealg=sensealg, generator=g, **kw)


def fd_check(reg, **kw):
    # rtol = 0 makes the error scale constant: the regularizer detaches the scale
    # (atol + rtol |u|), which finite differences would otherwise differentiate.
    kw.update(rtol=0.0, atol=1e-4)
    p = params()
    sol = reg_value(p, reg, **kw)
    grad = torch.autograd.grad(sol.reg, p)
    # The stiffness estimate divides by a difference of stage states, which amplifies
    # round-off: a larger step keeps the central difference clean (its error is O(eps^2)).
    eps = 1e-4
    for x, gx in zip(p, grad):
        for k in range(x.numel()):
            xs = [y.detach().clone() for y in p]
            i = 0 if x is p[0] else 1
            xs[i].view(-1)[k] += eps
            up = float(reg_value(tuple(xs), reg, **kw).reg)
            xs[i].view(-1)[k] -= 2 * eps
            dn = float(reg_value(tuple(xs), reg, **kw).reg)
            fd = (up - dn) / (2 * eps)
            assert abs(fd - float(gx.view(-1)[k])) < 1e-6 * max(1.0, abs(fd)), (k, fd, float(gx.view(-1)[k]))
    return sol


@pytest.mark.parametrize("kind", ["error", "stiffness"])
def test_global_regularization_gradient_matches_finite_differences(kind):
    # Fixed steps keep the step sequence independent of p, so R is smooth in p.
    sol = fd_check(dss.GlobalRegularization(kind=kind, coeff=0.7), dt=0.1, adaptive=False)
    assert sol.reg.item() > 0


@pytest.mark.parametrize("sampling", ["unbiased", "biased"])
def test_local_regularization_gradient_matches_finite_differences(sampling):
    sol = fd_check(dss.LocalRegularization(sampling=sampling, coeff=2.0, step="solver"), dt=0.1, adaptive=False)
    assert sol.reg.item() > 0 and sol.stats.nfe_reg > 0


def test_global_error_regularization_value_is_sum_of_error_estimates():
    """R_E rebuilt by hand from one-step solves over the same steps."""
    p = tuple(x.detach() for x in params())
    sol = reg_value(p, dss.GlobalRegularization(), rtol=1e-4, atol=1e-6, dense=True)
    prob = dss.ODEProblem(f, torch.tensor(U0), (0.0, 2.0), p=p)
    steps = dss.solve(prob, dss.Tsit5(), rtol=1e-4, atol=1e-6)
    total = 0.0
    for t0, t1, u in zip(steps.t[:-1], steps.t[1:], steps.u[:-1]):
        h = float(t1 - t0)
        step_prob = dss.ODEProblem(f, u, (float(t0), float(t1)), p=p)
        s = dss.solve(step_prob, dss.Tsit5(), dt=h, adaptive=False, rtol=1e-4, atol=1e-6,
                      regularization=dss.GlobalRegularization())
        total += float(s.reg)
    assert abs(total - sol.reg.item()) < 1e-10 * max(1.0, total)


def test_stiffness_estimate_recovers_the_eigenvalue():
    """For u' = -lam u the Shampine/Hairer estimate is |lam|, so R_S = lam * T (coeff 1)."""
    lam = 50.0
    prob = dss.ODEProblem(lambda u, p, t: -lam * u, torch.tensor([1.0, 2.0]), (0.0, 1.0))
    sol = dss.solve(prob, dss.Tsit5(), dt=0.01, adaptive=False,
                    regularization=dss.GlobalRegularization("stiffness", coeff=1.0))
    assert abs(sol.reg.item() - lam) < 1e-6 * lam


@pytest.mark.parametrize("sampling,step", [("unbiased", "solver"), ("biased", "solver"), ("unbiased", "initial")])
def test_local_regularization_works_with_every_sensealg(sampling, step):
    reg = dss.LocalRegularization(sampling=sampling, coeff=1.0, step=step)
    out = []
    for sens in [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(),
                 dss.InterpolatingAdjoint(checkpoints=2), dss.QuadratureAdjoint()]:
        p = params()
        sol = reg_value(p, reg, sensealg=sens, rtol=1e-7, atol=1e-7)
        loss = sol.u[-1].pow(2).sum() + 1e3 * sol.reg
        out.append((float(sol.reg.detach()), torch.autograd.grad(loss, p)))
    for r, g in out[1:]:
        # Same t_r and the same forward steps; the states differ by round-off only, but
        # an error estimate is a difference of stages, so that round-off is amplified.
        assert abs(r - out[0][0]) < 1e-4 * abs(r)
        for x, y in zip(g, out[0][1]):
            assert torch.allclose(x, y, atol=1e-4, rtol=1e-4)


def test_no_regularization_gives_zero_term():
    sol = reg_value(tuple(x.detach() for x in params()), None)
    assert sol.reg.item() == 0.0 and sol.reg.dim() == 0


def test_regularization_reduces_solver_work_on_a_toy_fit():
    """The papers' effect in miniature: fitting the same target with the error
    regularizer leaves dynamics that need fewer steps than without, at about the same
    loss (the full-size experiment is examples/neural_ode)."""
    target = torch.tensor([0.3, -0.2, 0.1])

    def train(reg):
        torch.manual_seed(0)
        w = (3.0 * torch.randn(3, 3)).requires_grad_()
        b = torch.zeros(3, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=0.05)
        for _ in range(60):
            sol = dss.solve(dss.ODEProblem(f, torch.tensor(U0), (0.0, 2.0), p=(w, b)), dss.Tsit5(), rtol=1e-5,
                            atol=1e-7, saveat=[2.0], regularization=reg)
            loss = (sol.u[-1] - target).pow(2).sum() + sol.reg
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            sol = dss.solve(dss.ODEProblem(f, torch.tensor(U0), (0.0, 2.0), p=(w, b)), dss.Tsit5(), rtol=1e-5,
                            atol=1e-7, saveat=[2.0])
        return sol.stats.nfe, float((sol.u[-1] - target).pow(2).sum())

    nfe_plain, loss_plain = train(None)
    nfe_reg, loss_reg = train(dss.GlobalRegularization(coeff=0.05))
    assert nfe_reg < nfe_plain
    assert loss_reg < 1.1 * loss_plain + 1e-3  # at about the same fit
