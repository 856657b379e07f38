"""Every sensitivity algorithm against central finite differences and against the others."""

import pytest
import torch

from diffsim import solvers as dss

TS = [0.0, 0.7, 1.5, 2.0]
CONTINUOUS = [
    dss.BacksolveAdjoint(),
    dss.InterpolatingAdjoint(),
    dss.InterpolatingAdjoint(checkpoints=3),
    dss.QuadratureAdjoint(),
]


def f(u, p, t):
    a, b = p
    return torch.stack([a * u[0] - b * u[0] * u[1] + 0.1 * torch.sin(t), -u[1] + b * u[0] * u[1]])


def inputs():
    u0 = torch.tensor([1.0, 0.5], requires_grad=True)
    a = torch.tensor(1.1, requires_grad=True)
    b = torch.tensor(0.4, requires_grad=True)
    return u0, a, b


def loss(sol):
    return (sol.u**2).sum() + sol.u[-1, 0] * sol.u[1, 1]


def grads(sensealg, alg=None, **kw):
    alg = alg if alg is not None else dss.Tsit5()
    u0, a, b = inputs()
    sol = dss.solve(dss.ODEProblem(f, u0, (0.0, 2.0), p=(a, b)), alg, saveat=TS, sensealg=sensealg, **kw)
    L = loss(sol)
    return L.detach(), torch.autograd.grad(L, (u0, a, b)), sol


def finite_differences(alg=None, eps=1e-6, **kw):
    alg = alg if alg is not None else dss.Tsit5()
    u0, a, b = (x.detach() for x in inputs())
    base = [u0, a, b]
    out = []
    for i, x in enumerate(base):
        g = torch.zeros_like(x)
        for k in range(x.numel()):
            vals = []
            for s in (1, -1):
                xs = [y.clone() for y in base]
                xs[i].view(-1)[k] += s * eps
                with torch.no_grad():
                    sol = dss.solve(dss.ODEProblem(f, xs[0], (0.0, 2.0), p=(xs[1], xs[2])), alg, saveat=TS, **kw)
                vals.append(float(loss(sol)))
            g.view(-1)[k] = (vals[0] - vals[1]) / (2 * eps)
        out.append(g)
    return out


def assert_close(g1, g2, rtol):
    for x, y in zip(g1, g2):
        scale = max(1.0, float(y.abs().max()))
        assert float((x - y).abs().max()) <= rtol * scale, (x, y)


@pytest.mark.parametrize("alg", [dss.RK4(), dss.Tsit5(), dss.Rodas5P()], ids=lambda a: type(a).__name__)
def test_direct_adjoint_is_exact_gradient_of_discrete_solution(alg):
    """With a fixed step sequence the discrete solution is a smooth function of the
    inputs and backpropagation must match finite differences to round-off level."""
    kw = dict(dt=0.05, adaptive=False)
    _, g, sol = grads(dss.DirectAdjoint(), alg, **kw)
    assert_close(g, finite_differences(alg, **kw), 1e-7)
    assert sol.stats.nfe_backward > 0  # filled by the backward hook


@pytest.mark.parametrize("sensealg", CONTINUOUS, ids=repr)
def test_continuous_adjoints_match_finite_differences(sensealg):
    L, g, sol = grads(sensealg, rtol=1e-10, atol=1e-10)
    assert_close(g, finite_differences(rtol=1e-12, atol=1e-12), 2e-6)
    assert sol.stats.nfe_backward > 0 and sol.stats.naccept_backward > 0
    L_direct, g_direct, _ = grads(dss.DirectAdjoint(), rtol=1e-10, atol=1e-10)
    assert torch.allclose(L, L_direct, rtol=1e-12)
    assert_close(g, g_direct, 2e-6)


@pytest.mark.parametrize("sensealg", [dss.DirectAdjoint(), *CONTINUOUS], ids=repr)
def test_adjoints_through_stiff_solver(sensealg):
    """Rosenbrock forward and backward solves (the adjoint's Jacobian by double
    backward); checked against a tight explicit direct-adjoint reference."""
    _, g, _ = grads(sensealg, dss.Rodas5P(), rtol=1e-7, atol=1e-7)
    assert_close(g, stiff_reference(), 2e-5)


_REF = []


def stiff_reference():
    if not _REF:
        _REF.append(grads(dss.DirectAdjoint(), dss.DP8(), rtol=1e-12, atol=1e-12)[1])
    return _REF[0]


def test_backwards_in_time_adjoints():
    u0 = torch.tensor([0.3, -0.2], requires_grad=True)
    w = torch.tensor([[0.5, -1.0], [1.2, -0.3]], requires_grad=True)

    def g(u, p, t):
        return torch.tanh(p @ u) * (1 + 0.2 * t)

    res = []
    for sens in [dss.DirectAdjoint(), *CONTINUOUS]:
        sol = dss.solve(dss.ODEProblem(g, u0, (1.0, -1.0), p=w), dss.Tsit5(), rtol=1e-10, atol=1e-10,
                        saveat=[1.0, 0.0, -1.0], sensealg=sens)
        res.append(torch.autograd.grad(sol.u[1:].pow(3).sum(), (u0, w)))
    for r in res[1:]:
        assert_close(r, res[0], 1e-6)


class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def forward(self, u, p, t):
        return self.net(u)


@pytest.mark.parametrize("per_sample", [False, True])
def test_module_parameters_get_gradients_under_every_sensealg(per_sample):
    field = Field()
    u0 = torch.randn(5, 2)
    res = []
    for sens in [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(), dss.QuadratureAdjoint()]:
        sol = dss.solve(dss.ODEProblem(field, u0, (0.0, 1.0)), dss.Tsit5(), rtol=1e-10, atol=1e-10,
                        saveat=[0.5, 1.0], sensealg=sens, per_sample=per_sample)
        res.append(torch.autograd.grad(sol.u.pow(2).sum(), list(field.parameters())))
    for r in res[1:]:
        assert_close(r, res[0], 1e-6)


def test_sol_call_is_differentiable_only_under_direct_adjoint():
    u0, a, b = inputs()
    prob = dss.ODEProblem(f, u0, (0.0, 2.0), p=(a, b))
    sol = dss.solve(prob, dss.Tsit5())
    assert sol(1.234).requires_grad
    sol = dss.solve(prob, dss.Tsit5(), sensealg=dss.InterpolatingAdjoint())
    assert sol.u.requires_grad and not sol(1.234).requires_grad


def test_no_graph_when_nothing_requires_grad():
    u0, a, b = (x.detach() for x in inputs())
    for sens in [dss.DirectAdjoint(), *CONTINUOUS]:
        sol = dss.solve(dss.ODEProblem(f, u0, (0.0, 2.0), p=(a, b)), dss.Tsit5(), sensealg=sens, saveat=TS)
        assert not sol.u.requires_grad


def test_failed_backward_solve_raises_clear_error():
    """A backward solve that cannot finish raises SolveError instead of returning NaN."""
    u0, a, b = inputs()
    sol = dss.solve(dss.ODEProblem(f, u0, (0.0, 2.0), p=(a, b)), dss.Tsit5(), saveat=TS,
                    sensealg=dss.InterpolatingAdjoint(rtol=1e-13, atol=1e-13), max_steps=15)
    assert sol.successful
    with pytest.raises(dss.SolveError):
        (sol.u**2).sum().backward()
