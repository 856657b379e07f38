"""Gradients with respect to t0, t1 and the save times, for every sensealg: central
finite differences in float64 (issue 14, reproducer 4; torchdiffeq
tests/gradient_tests.py::TestGradient::test_adjoint_against_odeint with t_grad=True
compares odeint and odeint_adjoint time gradients, which the port module repeats)."""

import pytest
import torch

from diffsim import solvers as dss

SENSEALGS = [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(),
             dss.InterpolatingAdjoint(checkpoints=2), dss.QuadratureAdjoint()]


def f(u, p, t):
    return torch.stack([u[1], -p * u[0] + 0.3 * torch.sin(2 * t)])


def loss(u):
    return (u**2).sum() + u[-1, 0] + (u[1] * u[2]).sum()


def odeint(t, sensealg, alg=None, **kw):
    """torchdiffeq's convention: t[0] is t0 and the first save time, t[-1] is t1."""
    prob = dss.ODEProblem(f, torch.tensor([1.0, 0.2]), (t[0], t[-1]), p=torch.tensor(1.3))
    return dss.solve(prob, alg or dss.Tsit5(), saveat=t, sensealg=sensealg, rtol=1e-11, atol=1e-11, **kw)


def fd_grad(fun, x, eps=1e-6):
    g = torch.zeros_like(x)
    for i in range(x.numel()):
        a, b = x.clone(), x.clone()
        a.view(-1)[i] += eps
        b.view(-1)[i] -= eps
        with torch.no_grad():
            g.view(-1)[i] = (fun(a) - fun(b)) / (2 * eps)
    return g


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
@pytest.mark.parametrize("times", [[0.1, 0.7, 1.5, 2.0], [2.0, 1.2, 0.4, -0.3]], ids=["forward", "backward"])
def test_time_gradients_match_finite_differences(sensealg, times):
    T = torch.tensor(times)
    fd = fd_grad(lambda t: loss(odeint(t, dss.DirectAdjoint()).u), T)
    t = T.clone().requires_grad_(True)
    sol = odeint(t, sensealg)
    (g,) = torch.autograd.grad(loss(sol.u), t)
    assert torch.allclose(g, fd, rtol=1e-6, atol=1e-7), (g, fd)
    assert sol.t.requires_grad  # sol.t is the differentiable save times


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_t0_and_t1_of_tspan_alone(sensealg):
    """tspan tensors with fixed float save times: dL/dt0 through the start, no dL/dt1
    (the saved values do not depend on where the span ends); with saveat=None the last
    point is at t1 and gets dL/dt1 = <dL/du(t1), f(u(t1), t1)>."""
    def run(t0, t1, saveat):
        prob = dss.ODEProblem(f, torch.tensor([1.0, 0.2]), (t0, t1), p=torch.tensor(1.3))
        return dss.solve(prob, dss.Tsit5(), saveat=saveat, sensealg=sensealg, rtol=1e-11, atol=1e-11)

    t0 = torch.tensor(0.1, requires_grad=True)
    t1 = torch.tensor(2.0, requires_grad=True)
    sol = run(t0, t1, [0.5, 1.5])
    g0, g1 = torch.autograd.grad(sol.u.pow(3).sum(), (t0, t1), allow_unused=True)
    fd0 = fd_grad(lambda x: run(x, 2.0, [0.5, 1.5]).u.pow(3).sum(), torch.tensor(0.1))
    assert abs(float(g0) - float(fd0)) < 1e-7 and (g1 is None or float(g1) == 0.0)

    sol = run(t0.detach(), t1, None)  # every step saved: the last point is u(t1)
    (g1,) = torch.autograd.grad(sol.u[-1].pow(2).sum(), t1)
    fd1 = fd_grad(lambda x: run(0.1, x, None).u[-1].pow(2).sum(), torch.tensor(2.0))
    assert abs(float(g1) - float(fd1)) < 1e-7


@pytest.mark.parametrize("sensealg", SENSEALGS[:3], ids=repr)
def test_time_gradients_per_sample_and_stiff(sensealg):
    """Per-sample stepping and the Rosenbrock solver give the same time gradients."""
    def run(t, alg, per_sample):
        u0 = torch.tensor([[1.0, 0.2], [0.5, -0.3]])
        prob = dss.ODEProblem(lambda u, p, t: torch.stack([u[:, 1], -1.3 * u[:, 0]], -1), u0, (t[0], t[-1]))
        return dss.solve(prob, alg, saveat=t, sensealg=sensealg, rtol=1e-10, atol=1e-10, per_sample=per_sample).u

    T = torch.tensor([0.0, 0.6, 1.4])
    fd = fd_grad(lambda t: run(t, dss.Tsit5(), False).pow(2).sum(), T)
    for alg, per_sample in ((dss.Tsit5(), True), (dss.Rodas5P(), False)):
        t = T.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(run(t, alg, per_sample).pow(2).sum(), t)
        assert torch.allclose(g, fd, rtol=1e-6, atol=1e-7), (alg, per_sample, g, fd)


def test_time_gradients_float32_close_to_float64():
    T = torch.tensor([0.0, 0.5, 1.0])
    t64 = T.clone().requires_grad_(True)
    (g64,) = torch.autograd.grad(loss(odeint(t64, dss.InterpolatingAdjoint()).u), t64)
    t32 = T.float().requires_grad_(True)
    prob = dss.ODEProblem(f, torch.tensor([1.0, 0.2], dtype=torch.float32), (t32[0], t32[-1]),
                          p=torch.tensor(1.3, dtype=torch.float32))
    sol = dss.solve(prob, dss.Tsit5(), saveat=t32, sensealg=dss.InterpolatingAdjoint(), rtol=1e-6, atol=1e-6)
    (g32,) = torch.autograd.grad(loss(sol.u), t32)
    assert g32.dtype == torch.float32
    assert torch.allclose(g32.double(), g64, rtol=1e-3, atol=1e-4)


def test_no_time_graph_without_time_gradients():
    """Float times, or tensors that do not require grad: nothing extra is recorded."""
    sol = odeint(torch.tensor([0.0, 0.5, 1.0]), dss.InterpolatingAdjoint())
    assert not sol.t.requires_grad and not sol.u.requires_grad
