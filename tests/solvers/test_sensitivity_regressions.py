"""Regression tests for the reproducers of issue 14 (the solver layer under torchdiffeq's
test suite). Each test says which peer assertion it follows; peers' tests are
rtqichen/torchdiffeq ``tests/`` and patrick-kidger/diffrax ``test/``.
"""

import math

import pytest
import torch

from diffsim import solvers as dss

P = dss.ODEProblem
CONTINUOUS = [dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(), dss.InterpolatingAdjoint(checkpoints=2),
              dss.QuadratureAdjoint()]
EVERY = [dss.DirectAdjoint(), *CONTINUOUS]
EXPLICIT_RK = [dss.Euler(), dss.Midpoint(), dss.Heun(), dss.RK4(), dss.BS3(), dss.DP5(), dss.Tsit5(), dss.DP8()]


@pytest.mark.parametrize("sensealg", EVERY, ids=repr)
def test_f_independent_of_u(sensealg):
    """Reproducer 1: u' = cos t. u(1) = u0 + sin 1, so du(1)/du0 = 1 (what torchdiffeq's
    odeint_adjoint returns; the vjp of an f without graph is zero, not an error)."""
    y0 = torch.tensor(0.0, requires_grad=True)
    sol = dss.solve(P(lambda u, p, t: torch.cos(t), y0, (0.0, 1.0)), dss.Tsit5(), saveat=[1.0], sensealg=sensealg,
                    rtol=1e-10, atol=1e-10)
    assert abs(float(sol.u[0]) - math.sin(1.0)) < 1e-9
    sol.u.sum().backward()
    assert float(y0.grad) == 1.0


@pytest.mark.parametrize("sensealg", EVERY, ids=repr)
def test_f_independent_of_u_through_stiff_solver(sensealg):
    """Reproducer 1 through Rodas5P: the adjoint's Jacobian of an f without graph is zero."""
    y0 = torch.tensor([0.0, 1.0], requires_grad=True)
    sol = dss.solve(P(lambda u, p, t: torch.cos(t).expand(2), y0, (0.0, 1.0)), dss.Rodas5P(), saveat=[1.0],
                    sensealg=sensealg)
    sol.u.sum().backward()
    assert torch.equal(y0.grad, torch.ones(2))


@pytest.mark.parametrize("alg", EXPLICIT_RK, ids=repr)
def test_parameter_used_only_after_t0_direct_adjoint(alg):
    """Reproducer 2, a parameter that f uses only for t >= 0.5 (torchdiffeq
    tests/odeint_tests.py::TestDiscontinuities uses the same switching f, ``_JumpF``).
    The unrecorded start must switch to a recorded solve, and the gradient is then that
    of the discrete solution: it matches central differences of the same fixed-step solve
    to round-off."""
    def f(u, p, t):
        return -u if t < 0.5 else -p * u

    def run(k):
        return dss.solve(P(f, torch.ones(2), (0.0, 1.0), p=k), alg, dt=0.1, adaptive=False, saveat=[1.0]).u.sum()

    k = torch.tensor(1.0, requires_grad=True)
    run(k).backward()
    with torch.no_grad():
        fd = (run(torch.tensor(1.0 + 1e-6)) - run(torch.tensor(1.0 - 1e-6))) / 2e-6
    assert k.grad is not None and abs(float(k.grad) - float(fd)) < 1e-7


def test_closure_tensor_used_only_after_t0_direct_adjoint():
    """As reproducer 2, with the tensor captured by f instead of passed in p (only
    DirectAdjoint can see it)."""
    k = torch.tensor(2.0, requires_grad=True)

    def f(u, p, t):
        return -u if t < 0.3 else -k * u

    sol = dss.solve(P(f, torch.ones(3), (0.0, 1.0)), dss.Tsit5(), saveat=[1.0])
    sol.u.sum().backward()
    assert k.grad is not None and float(k.grad) < 0


@pytest.mark.parametrize("sensealg", CONTINUOUS, ids=repr)
def test_gradcheck_through_continuous_adjoints(sensealg):
    """Reproducer 3: torchdiffeq tests/gradient_tests.py::TestGradient::test_adjoint runs
    torch.autograd.gradcheck through odeint_adjoint; that needs backward to run more than
    once on one graph."""
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], requires_grad=True)

    def func(y0, A):
        prob = P(lambda u, p, t: p @ u + 0.1 * torch.sin(t), y0, (0.0, 1.0), p=A)
        return dss.solve(prob, dss.Tsit5(), saveat=[0.5, 1.0], rtol=1e-11, atol=1e-11, sensealg=sensealg).u

    y0 = torch.tensor([1.0, 0.5], requires_grad=True)
    assert torch.autograd.gradcheck(func, (y0, A), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("sensealg", CONTINUOUS, ids=repr)
def test_retain_graph_and_functional_jacobian(sensealg):
    """Reproducer 3: retain_graph=True gives the same gradient twice, and
    torch.autograd.functional.jacobian (one backward per output entry) matches
    DirectAdjoint's Jacobian."""
    def func(y0):
        return dss.solve(P(lambda u, p, t: -u**3 + torch.sin(t), y0, (0.0, 1.0)), dss.DP5(), saveat=[1.0],
                         rtol=1e-10, atol=1e-10, sensealg=sensealg).u[0]

    y0 = torch.tensor([1.0, 0.5, -0.2], requires_grad=True)
    out = func(y0)
    g1 = torch.autograd.grad(out.sum(), y0, retain_graph=True)[0]
    g2 = torch.autograd.grad(out.sum(), y0)[0]
    assert torch.equal(g1, g2)
    J = torch.autograd.functional.jacobian(func, y0)
    J_ref = torch.autograd.functional.jacobian(
        lambda y: dss.solve(P(lambda u, p, t: -u**3 + torch.sin(t), y, (0.0, 1.0)), dss.DP5(), saveat=[1.0],
                            rtol=1e-10, atol=1e-10).u[0], y0)
    assert torch.allclose(J, J_ref, atol=1e-7)


A_STIFF = torch.tensor([[-1000.0, 0.0], [999.0, -1.0]], dtype=torch.float64)
TS_STIFF = [0.01, 0.1, 1.0]


def stiff_exact():
    """d/dk of sum_i sum(expm(k A t_i) u0) at k = 1, and d/du0: by the matrix exponential."""
    A = A_STIFF.double()
    u0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    gk = sum(float((t * A @ torch.linalg.matrix_exp(A * t) @ u0).sum()) for t in TS_STIFF)
    gu = sum(torch.linalg.matrix_exp(A * t).sum(0) for t in TS_STIFF)
    return gu, gk


@pytest.mark.parametrize("sensealg", [dss.InterpolatingAdjoint(), dss.QuadratureAdjoint(), dss.BacksolveAdjoint()],
                         ids=repr)
def test_stiff_parameter_gradient_converges_with_tolerance(sensealg):
    """Reproducer 5: u' = k A u with eigenvalues -1000 and -1 (u's transient lasts ~1e-3 s).
    The parameter gradient must converge with the tolerance like the u0 gradient does
    (the parameter quadrature has to follow the forward transient); reference: the
    matrix exponential."""
    gu_ex, gk_ex = stiff_exact()
    errs = []
    for tol in (1e-5, 1e-8):
        k = torch.tensor(1.0, requires_grad=True)
        u0 = torch.tensor([1.0, 0.0], requires_grad=True)
        sol = dss.solve(P(lambda u, p, t: p * (A_STIFF @ u), u0, (0.0, 1.0), p=k), dss.Rodas5P(), rtol=tol, atol=tol,
                        saveat=TS_STIFF, sensealg=sensealg)
        gu, gk = torch.autograd.grad(sol.u.sum(), (u0, k))
        errs.append(abs(float(gk) - gk_ex) / abs(gk_ex))
        assert float((gu - gu_ex).abs().max()) < 100 * tol
    assert errs[1] < 1e-6, errs
    assert errs[1] < errs[0] / 30, errs


def test_dtmin_bounds_every_step():
    """Reproducer 6: dtmin is a bound on the step (torchdiffeq
    tests/odeint_tests.py::TestMinMaxStep: min_step cuts the evaluations). Without
    force_dtmin a step that must shrink below dtmin ends the solve (Julia's DtLessThanMin);
    with it the step is taken (torchdiffeq's min_step)."""
    prob = P(lambda u, p, t: -u, torch.ones(1), (0.0, 1.0))
    sol = dss.solve(prob, dss.Tsit5(), dtmin=0.5)
    assert sol.successful and float(sol.t.diff().min()) >= 0.5 - 1e-12
    prob = P(lambda u, p, t: -u, torch.ones(1), (0.0, 10.0))
    bad = dss.solve(prob, dss.Tsit5(), dtmin=2.0, rtol=1e-9, atol=1e-9)
    assert bad.retcode is dss.ReturnCode.DT_LESS_THAN_MIN
    forced = dss.solve(prob, dss.Tsit5(), dtmin=2.0, rtol=1e-9, atol=1e-9, force_dtmin=True)
    assert forced.successful and torch.allclose(forced.t, torch.arange(0.0, 11.0, 2.0))
    per = dss.solve(prob.remake(u0=torch.ones(3, 1)), dss.Tsit5(), dtmin=2.0, rtol=1e-9, atol=1e-9,
                    force_dtmin=True, per_sample=True)
    assert per.successful and per.stats.naccept == 3 * 5
    with pytest.raises(ValueError, match="force_dtmin=True needs dtmin > 0"):
        dss.solve(prob, dss.Tsit5(), force_dtmin=True)


@pytest.mark.parametrize("shape", [(1, 3), (3, 1)])
def test_f_changing_shape_after_first_call_raises(shape):
    """Reproducer 7: a result of the wrong shape after the checked first call raises
    (it used to be reshaped into the stage buffer)."""
    calls = [0]

    def f(u, p, t):
        calls[0] += 1
        return -u if calls[0] < 3 else (-u).reshape(shape)

    msg = rf"f\(u, p, t=.*\) returned shape \({shape[0]}, {shape[1]}\) but u0 has shape \(3,\)"
    with pytest.raises(ValueError, match=msg):
        dss.solve(P(f, torch.ones(3), (0.0, 1.0)), dss.Tsit5())


def test_zero_tensor_tolerances_raise():
    """Reproducer 7: tensor tolerances of zeros raise as float zeros do."""
    prob = P(lambda u, p, t: -u, torch.ones(3), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"rtol and atol are both 0 at entry \(1,\)"):
        dss.solve(prob, dss.Tsit5(), rtol=torch.tensor([1e-3, 0.0, 1e-3]), atol=torch.zeros(3))
    assert dss.solve(prob, dss.Tsit5(), rtol=torch.zeros(3), atol=torch.full((3,), 1e-6)).successful


@pytest.mark.parametrize("per_sample, sensealg", [(False, s) for s in EVERY] + [(True, s) for s in EVERY[:-2]]
                         + [(True, dss.QuadratureAdjoint())], ids=repr)
def test_zero_length_span_returns_u0(sensealg, per_sample):
    """Reproducer 7: torchdiffeq tests/odeint_tests.py::TestNoIntegration: a single time
    point returns y0 (here: tspan = (t0, t0))."""
    y0 = torch.tensor([[1.0, -2.0]], requires_grad=True)
    sol = dss.solve(P(lambda u, p, t: -u, y0, (0.3, 0.3)), dss.Tsit5(), saveat=[0.3], sensealg=sensealg,
                    per_sample=per_sample)
    assert sol.successful and torch.equal(sol.u[0], y0.detach()) and sol.stats.naccept == 0
    sol.u.sum().backward()
    assert torch.equal(y0.grad, torch.ones_like(y0))
    dense = dss.solve(P(lambda u, p, t: -u, y0.detach(), (0.3, 0.3)), dss.Tsit5())
    assert torch.equal(dense(0.3), y0.detach())


@pytest.mark.parametrize("sensealg", CONTINUOUS, ids=repr)
def test_lambda_calling_module_raises_under_continuous_adjoints(sensealg):
    """Reproducer 7: diffrax test/test_adjoint.py::test_closure_errors (BacksolveAdjoint
    through a closure over a model raises) and torchdiffeq's odeint_adjoint (a func that
    is not an nn.Module without adjoint_params raises): the module's gradients would
    otherwise be lost without a word."""
    net = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="neither in p nor parameters of f"):
        dss.solve(P(lambda u, p, t: net(u), torch.ones(2), (0.0, 1.0)), dss.Tsit5(), sensealg=sensealg)
    # diffrax test_closure_fixed: the module itself as f, or its tensors in p, works.
    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, u, p, t):
            return self.net(u)

    sol = dss.solve(P(Field(), torch.ones(2), (0.0, 1.0)), dss.Tsit5(), saveat=[1.0], sensealg=sensealg)
    sol.u.sum().backward()
    assert net.weight.grad is not None and float(net.weight.grad.abs().sum()) > 0
    W = net.weight.detach().clone().requires_grad_(True)
    sol = dss.solve(P(lambda u, p, t: p @ u, torch.ones(2), (0.0, 1.0), p=W), dss.Tsit5(), saveat=[1.0],
                    sensealg=sensealg)
    sol.u.sum().backward()
    assert W.grad is not None
    with torch.no_grad():  # inference needs no gradients, so nothing to check
        dss.solve(P(lambda u, p, t: net(u), torch.ones(2), (0.0, 1.0)), dss.Tsit5(), sensealg=sensealg)


@pytest.mark.parametrize("alg", [dss.Tsit5(), dss.Rodas5P()], ids=repr)
@pytest.mark.parametrize("sensealg", [*CONTINUOUS, dss.BacksolveAdjoint(norm="full")], ids=repr)
def test_tensor_tolerances_under_continuous_adjoints(sensealg, alg):
    """Found while porting: per-entry rtol broke BacksolveAdjoint's backward solve (the
    tolerances did not match the augmented state [u, lam, dL/dp]). u' = -k u:
    du(1)/du0 = e^-k, d sum u(1)/dk = -3 e^-k."""
    y0 = torch.ones(3, requires_grad=True)
    k = torch.tensor(1.0, requires_grad=True)
    sol = dss.solve(P(lambda u, p, t: -p * u, y0, (0.0, 1.0), p=k), alg, rtol=torch.tensor([1e-6, 1e-7, 1e-8]),
                    atol=1e-9, saveat=[1.0], sensealg=sensealg)
    sol.u.sum().backward()
    assert torch.allclose(y0.grad, torch.full((3,), math.exp(-1.0)), atol=1e-6)
    assert abs(float(k.grad) + 3 * math.exp(-1.0)) < 1e-5
