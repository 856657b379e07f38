"""Implicit layers: roots, steady states, fixed points and their implicit-function-theorem
gradients, checked against analytic answers, central finite differences (gradcheck) and
unrolled differentiation; convergence rates measured by iteration counts; bad input.

Peers: SciMLSensitivity's ``SteadyStateAdjoint`` tests (linear steady state ``A u + b`` with
the gradient ``-A^-T``), jaxopt's ``custom_root`` tests (implicit gradient == unrolled
gradient on a small root problem), torchdeq's DEQ layer (``z = tanh(W z + U x + b)``).
"""

import math

import pytest
import torch

from diffsim import solvers as dss
from diffsim.implicit import ImplicitGradientError


def cubic(u, p):
    return u**3 + p * u - 1.0


def cubic_root_grad(u, p):
    return -u / (3 * u**2 + p)          # d/dp of the root of u^3 + p u - 1


@pytest.mark.parametrize("linsolve", ["gmres", "cg", "direct"])
@pytest.mark.parametrize("newton", ["direct", "gmres"])
def test_cubic_root_value_and_analytic_gradient(linsolve, newton):
    p = torch.tensor([0.5, 1.0, 2.0, 4.0], requires_grad=True)
    sol = dss.solve(dss.NonlinearProblem(cubic, torch.full((4,), 0.5), p), dss.NewtonRaphson(linsolve=newton),
                    sensealg=dss.ImplicitAdjoint(linsolve=linsolve))
    assert sol.successful and sol.stats.residual < 1e-12
    u = sol.u.detach()
    assert torch.allclose(cubic(u, p.detach()), torch.zeros(4), atol=1e-12)
    (g,) = torch.autograd.grad(sol.u.sum(), p)
    assert torch.allclose(g, cubic_root_grad(u, p.detach()), rtol=1e-9, atol=0)
    assert sol.stats.nvjp_backward > 0


def test_gradcheck_fixed_point_layer_all_linsolves():
    """torch.autograd.gradcheck (central differences, float64, run twice) on a DEQ cell."""
    torch.manual_seed(1)
    n = 6
    W0 = 0.4 * torch.randn(n, n) / math.sqrt(n)
    x = torch.randn(n)

    for linsolve in ("gmres", "direct"):
        def layer(W, b, linsolve=linsolve):
            prob = dss.FixedPointProblem(lambda z, p: torch.tanh(p[0] @ z + x + p[1]), torch.zeros(n), (W, b))
            sol = dss.solve(prob, dss.Anderson(m=4), abstol=1e-14, sensealg=dss.ImplicitAdjoint(linsolve=linsolve))
            assert sol.successful
            return sol.u

        W = W0.clone().requires_grad_(True)
        b = (0.1 * torch.randn(n)).requires_grad_(True)
        assert torch.autograd.gradcheck(layer, (W, b), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_steady_state_of_linear_ode_matches_analytic_answer_and_gradients():
    """SciMLSensitivity's steady-state test: du/dt = A u + b -> u* = -A^-1 b, with
    b_bar = -A^-T u_bar and A_bar = -(A^-T u_bar) u*^T."""
    torch.manual_seed(2)
    n = 5
    A = (-2.0 * torch.eye(n) + 0.3 * torch.randn(n, n)).requires_grad_(True)
    b = torch.randn(n, requires_grad=True)
    seen_t = []

    def f(u, p, t):
        seen_t.append(float(t))
        return p[0] @ u + p[1]

    sol = dss.solve(dss.SteadyStateProblem(f, torch.zeros(n), (A, b)), dss.NewtonRaphson())
    assert sol.successful and all(math.isinf(t) for t in seen_t)
    u_star = -torch.linalg.solve(A.detach(), b.detach())
    assert torch.allclose(sol.u, u_star, atol=1e-12)
    u_bar = torch.arange(1.0, n + 1)
    gA, gb = torch.autograd.grad(sol.u @ u_bar, (A, b))
    lam = torch.linalg.solve(A.detach().T, u_bar)
    assert torch.allclose(gb, -lam, rtol=1e-9, atol=1e-12)
    assert torch.allclose(gA, -torch.outer(lam, u_star), rtol=1e-9, atol=1e-12)
    # Newton on a linear residual: one step lands on the root (to round-off)
    assert sol.stats.iterations == 1


@pytest.mark.parametrize("alg", [dss.Anderson(m=5), dss.FixedPointIteration()])
def test_implicit_gradient_agrees_with_unrolled_on_a_contraction(alg):
    """jaxopt's custom_fixed_point check: implicit == unrolled on a converged contraction;
    closed-over module parameters and an input that requires grad get gradients too."""
    torch.manual_seed(3)
    n = 8
    cell = torch.nn.Linear(n, n)
    with torch.no_grad():
        cell.weight.mul_(0.5)
    x = torch.randn(n, requires_grad=True)

    def grads(sensealg):
        prob = dss.FixedPointProblem(lambda z, p: torch.tanh(cell(z) + x), torch.zeros(n))
        sol = dss.solve(prob, alg, abstol=1e-13, sensealg=sensealg)
        assert sol.successful
        return torch.autograd.grad((sol.u**2).sum(), (cell.weight, cell.bias, x)), sol

    g_imp, s_imp = grads(dss.ImplicitAdjoint())
    g_unr, s_unr = grads(dss.DirectAdjoint())
    for a, b in zip(g_imp, g_unr):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-11)
    assert s_imp.stats.nlinear_backward > 0


def test_unrolled_newton_matches_implicit_and_u0_gets_zero():
    p = torch.tensor(1.5, requires_grad=True)
    u0 = torch.tensor([0.7], requires_grad=True)
    prob = dss.NonlinearProblem(cubic, u0, p)
    sol = dss.solve(prob, dss.NewtonRaphson(), sensealg=dss.ImplicitAdjoint())
    gp, gu0 = torch.autograd.grad(sol.u.sum(), (p, u0))
    assert torch.equal(gu0, torch.zeros(1))   # documented: the root does not depend on u0
    sol_u = dss.solve(prob, dss.NewtonRaphson(linsolve="direct"), sensealg=dss.DirectAdjoint())
    gp_u, gu0_u = torch.autograd.grad(sol_u.u.sum(), (p, u0))
    assert torch.allclose(gp, gp_u, rtol=1e-10)
    assert abs(float(gu0_u)) < 1e-8           # unrolled: what is left of u0 after convergence


def test_newton_converges_quadratically():
    """Residuals of the last Newton steps: log r_{k+1} / log r_k -> 2."""
    sol = dss.solve(dss.NonlinearProblem(lambda u, p: torch.exp(u) - 2.0 - u, torch.tensor([2.0])),
                    dss.NewtonRaphson(linesearch="none"))
    r = [h for h in sol.history if h > 1e-15]
    assert sol.successful and len(r) >= 4
    orders = [math.log(r[k + 1]) / math.log(r[k]) for k in range(len(r) - 2, len(r) - 1)]
    assert all(1.8 < q < 2.6 for q in orders), (r, orders)
    # matrix-free Newton with the adaptive forcing term keeps the same iteration count
    mf = dss.solve(dss.NonlinearProblem(lambda u, p: torch.exp(u) - 2.0 - u, torch.tensor([2.0])),
                   dss.NewtonRaphson(linesearch="none", linsolve="gmres"))
    assert mf.successful and mf.stats.iterations <= sol.stats.iterations + 1


def test_anderson_needs_far_fewer_iterations_than_picard():
    """A slow contraction (rate ~0.97 near the small-input fixed point, where tanh' ~ 1):
    Picard needs hundreds of iterations, Anderson tens."""
    torch.manual_seed(4)
    n = 40
    Q, _ = torch.linalg.qr(torch.randn(n, n))
    W = Q @ torch.diag(torch.linspace(0.2, 0.97, n)) @ Q.T
    x = 0.02 * torch.randn(n)
    prob = dss.FixedPointProblem(lambda z, p: torch.tanh(W @ z + x), torch.zeros(n))
    picard = dss.solve(prob, dss.FixedPointIteration(), abstol=1e-10, maxiters=5000)
    anderson = dss.solve(prob, dss.Anderson(m=6), abstol=1e-10)
    newton = dss.solve(prob, dss.NewtonRaphson(), abstol=1e-10)
    assert picard.successful and anderson.successful and newton.successful
    assert torch.allclose(picard.u, anderson.u, atol=1e-9) and torch.allclose(newton.u, anderson.u, atol=1e-9)
    assert anderson.stats.iterations * 5 < picard.stats.iterations, (anderson.stats, picard.stats)
    assert anderson.stats.nfev * 5 < picard.stats.nfev
    print(f"iterations to 1e-10: Picard {picard.stats.iterations}, Anderson(6) {anderson.stats.iterations}, "
          f"Newton {newton.stats.iterations}")


def test_per_sample_anderson_matches_one_by_one():
    torch.manual_seed(5)
    B, n = 4, 6
    W = 0.6 * torch.randn(n, n) / math.sqrt(n)
    X = torch.randn(B, n)
    g = lambda z, p: torch.tanh(z @ W.T + X)  # noqa: E731
    batch = dss.solve(dss.FixedPointProblem(g, torch.zeros(B, n)), dss.Anderson(), per_sample=True, abstol=1e-12)
    assert batch.successful
    for i in range(B):
        one = dss.solve(dss.FixedPointProblem(lambda z, p: torch.tanh(W @ z + p), torch.zeros(n), X[i]),
                        dss.Anderson(), abstol=1e-12)
        assert torch.allclose(batch.u[i], one.u, atol=1e-11)


def test_float32_converges_and_gradient_agrees_with_float64():
    grads = {}
    for dtype in (torch.float32, torch.float64):
        p = torch.tensor([0.5, 2.0], dtype=dtype, requires_grad=True)
        sol = dss.solve(dss.NonlinearProblem(cubic, torch.full((2,), 0.5, dtype=dtype), p))
        assert sol.successful and sol.u.dtype == dtype
        assert sol.stats.residual <= torch.finfo(dtype).eps ** 0.8
        (grads[dtype],) = torch.autograd.grad(sol.u.sum(), p)
    assert torch.allclose(grads[torch.float32].double(), grads[torch.float64], rtol=1e-5)
    # a float32 fixed point with Anderson meets its default tolerance too
    W = 0.5 * torch.eye(3, dtype=torch.float32)
    sol = dss.solve(dss.FixedPointProblem(lambda z, p: torch.tanh(W @ z + 1.0), torch.zeros(3, dtype=torch.float32)),
                    dss.Anderson())
    assert sol.successful and sol.u.dtype == torch.float32


def test_line_search_rescues_newton_from_nan_territory():
    """log(u) = 0 from u0 = 3: a full Newton step lands at u < 0 (NaN); backtracking does not."""
    prob = dss.NonlinearProblem(lambda u, p: torch.log(u), torch.tensor([3.0]))
    full = dss.solve(prob, dss.NewtonRaphson(linesearch="none"))
    assert full.retcode is dss.NonlinearReturnCode.NON_FINITE
    assert torch.isfinite(full.u).all()       # the best finite iterate, never NaN
    ls = dss.solve(prob, dss.NewtonRaphson())
    assert ls.successful and abs(float(ls.u) - 1.0) < 1e-12 and ls.stats.nbacktrack > 0


def test_failures_are_return_codes_and_block_the_implicit_gradient():
    # divergence: u = 2 u + 1 iterated from 0
    div = dss.solve(dss.FixedPointProblem(lambda u, p: 2 * u + 1, torch.zeros(2)), dss.FixedPointIteration())
    assert div.retcode is dss.NonlinearReturnCode.DIVERGED and "damp" in str(div.retcode)
    # no root: u^2 + 1 = 0 -> the line search stalls at the minimum of |F|
    p = torch.tensor(1.0, requires_grad=True)
    stall = dss.solve(dss.NonlinearProblem(lambda u, p: u**2 + p, torch.tensor([0.3]), p))
    assert stall.retcode in (dss.NonlinearReturnCode.STALLED, dss.NonlinearReturnCode.SINGULAR)
    with pytest.raises(ImplicitGradientError, match="needs F"):
        stall.u.sum().backward()
    # too few iterations
    short = dss.solve(dss.FixedPointProblem(lambda u, p: 0.9 * u + 1, torch.zeros(1)), dss.FixedPointIteration(),
                      maxiters=5)
    assert short.retcode is dss.NonlinearReturnCode.MAX_ITERS and short.stats.iterations == 5
    with pytest.raises(dss.NonlinearSolveError, match="MAX_ITERS"):
        dss.solve(short.prob, dss.FixedPointIteration(), maxiters=5, throw=True)
    # a singular Jacobian everywhere
    sing = dss.solve(dss.NonlinearProblem(lambda u, p: torch.stack([u[0] + u[1] - 1, 2 * u[0] + 2 * u[1] - 3]),
                                          torch.zeros(2)), dss.NewtonRaphson(linsolve="direct"))
    assert sing.retcode is dss.NonlinearReturnCode.SINGULAR


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="u0 has non-finite"):
        dss.NonlinearProblem(cubic, torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="f must be callable"):
        dss.NonlinearProblem(3.0, torch.zeros(1))
    with pytest.raises(ValueError, match=r"f\(u, p\) returned shape \(3,\) for u of shape \(2,\).*non-square"):
        dss.solve(dss.NonlinearProblem(lambda u, p: torch.cat([u, u[:1]]), torch.zeros(2)))
    # a scalar g would broadcast against u silently: it is caught before the subtraction
    with pytest.raises(ValueError, match=r"g\(u, p\) returned shape \(\)"):
        dss.solve(dss.FixedPointProblem(lambda u, p: u.sum(), torch.zeros(3)))
    with pytest.raises(TypeError, match="dtype"):
        dss.solve(dss.NonlinearProblem(lambda u, p: u.float(), torch.zeros(2)))
    with pytest.raises(ValueError, match="per_sample=True is not supported by NewtonRaphson"):
        dss.solve(dss.NonlinearProblem(cubic, torch.zeros(2, 2)), dss.NewtonRaphson(), per_sample=True)
    with pytest.raises(TypeError, match="ODE adjoint"):
        dss.solve(dss.NonlinearProblem(cubic, torch.zeros(2)), sensealg=dss.InterpolatingAdjoint())
    with pytest.raises(TypeError, match="unknown keyword argument"):
        dss.solve(dss.NonlinearProblem(cubic, torch.zeros(2)), rtol=1e-3)
    with pytest.raises(TypeError, match="no method for problem=NonlinearProblem and algorithm=Anderson"):
        dss.solve(dss.NonlinearProblem(cubic, torch.zeros(2)), dss.Anderson())
    with pytest.raises(ValueError, match="linsolve"):
        dss.NewtonRaphson(linsolve="lu")
    with pytest.raises(ValueError, match="beta"):
        dss.Anderson(beta=1.5)
    with pytest.raises(ValueError, match="DirectAdjoint.*linsolve='direct'"):
        p = torch.tensor(1.0, requires_grad=True)
        dss.solve(dss.NonlinearProblem(cubic, torch.zeros(2), p), dss.NewtonRaphson(linsolve="gmres"),
                  sensealg=dss.DirectAdjoint())


def test_adjoint_that_cannot_converge_raises_with_a_hint():
    torch.manual_seed(6)
    n = 30
    A = torch.randn(n, n) + 6 * torch.eye(n)
    b = torch.randn(n, requires_grad=True)
    prob = dss.NonlinearProblem(lambda u, p: A @ u - p, torch.zeros(n), b)
    sol = dss.solve(prob, dss.NewtonRaphson(), sensealg=dss.ImplicitAdjoint(linsolve="gmres", maxiter=2, restart=2))
    with pytest.raises(ImplicitGradientError, match="did not converge.*raise ImplicitAdjoint"):
        sol.u.sum().backward()
    # CG on a non-symmetric operator reports it instead of returning garbage
    sol = dss.solve(prob, dss.NewtonRaphson(), sensealg=dss.ImplicitAdjoint(linsolve="cg", maxiter=200))
    try:
        (g,) = torch.autograd.grad(sol.u.sum(), b)
    except ImplicitGradientError as exc:
        assert "gmres" in str(exc)
    else:   # CG may still converge on a mildly non-symmetric matrix; then it must be right
        assert torch.allclose(g, torch.linalg.solve(A.T, torch.ones(n)), rtol=1e-6)


def test_custom_linsolve_callable_and_negative_definite_cg():
    """A gradient flow du/dt = -grad E(u) with E convex: dF/du = -H is negative definite;
    linsolve='cg' negates it; a user callable (scipy-free dense solve) plugs in too."""
    torch.manual_seed(7)
    n = 10
    M = torch.randn(n, n)
    H = M @ M.T + n * torch.eye(n)
    c = torch.randn(n, requires_grad=True)
    prob = dss.SteadyStateProblem(lambda u, p, t: -(H @ u - p), torch.zeros(n), c)
    exact = torch.linalg.solve(H, torch.ones(n))
    for sensealg in (dss.ImplicitAdjoint(linsolve="cg"),
                     dss.ImplicitAdjoint(linsolve=lambda vjp, rhs: -torch.linalg.solve(H, rhs))):
        sol = dss.solve(prob, dss.NewtonRaphson(linsolve="cg"), sensealg=sensealg)
        assert sol.successful
        (g,) = torch.autograd.grad(sol.u.sum(), c)
        assert torch.allclose(g, exact, rtol=1e-8)
        assert sol.stats.residual_backward < 1e-8


def test_no_graph_without_grad_and_stats():
    p = torch.tensor(1.0, requires_grad=True)
    with torch.no_grad():
        sol = dss.solve(dss.NonlinearProblem(cubic, torch.tensor([0.5]), p))
    assert not sol.u.requires_grad
    sol = dss.solve(dss.NonlinearProblem(cubic, torch.tensor([0.5]), 2.0))   # nothing requires grad
    assert not sol.u.requires_grad
    assert sol.stats.nfev >= sol.stats.iterations + 1 and sol.stats.njev == sol.stats.iterations
    assert "SUCCESS" in repr(sol) and sol.resid.shape == (1,)


def test_dynamic_ss_finds_the_stable_state_newton_the_nearest_root():
    """du/dt = p u - u^3 from u0 = 0.1: the origin is an unstable root (Newton goes there),
    the dynamics relaxes to sqrt(p) (DynamicSS goes there); d sqrt(p)/dp = 1 / (2 sqrt(p))
    by the implicit adjoint and through the ODE solves (DirectAdjoint)."""
    p = torch.tensor(2.0, requires_grad=True)
    prob = dss.SteadyStateProblem(lambda u, p, t: p * u - u**3, torch.tensor([0.1]), p)
    newton = dss.solve(prob, dss.NewtonRaphson())
    assert newton.successful and abs(float(newton.u)) < 1e-12
    for sensealg in (dss.ImplicitAdjoint(), dss.DirectAdjoint()):
        sol = dss.solve(prob, dss.DynamicSS(), sensealg=sensealg)
        assert sol.successful and abs(float(sol.u) - 2**0.5) < 1e-8
        (g,) = torch.autograd.grad(sol.u.sum(), p)
        assert abs(float(g) - 0.5 / 2**0.5) < 1e-6
    with pytest.raises(TypeError, match="ODE method"):
        dss.DynamicSS(solver=dss.NewtonRaphson())
    with pytest.raises(TypeError, match="no method for problem=NonlinearProblem and algorithm=DynamicSS"):
        dss.solve(dss.NonlinearProblem(cubic, torch.zeros(1)), dss.DynamicSS())


def test_per_sample_implicit_gradient_matches_unrolled_and_backward_twice():
    torch.manual_seed(8)
    B, n = 5, 7
    W = (0.5 * torch.randn(n, n) / math.sqrt(n)).requires_grad_(True)
    X = torch.randn(B, n, requires_grad=True)

    def solve(sensealg):
        prob = dss.FixedPointProblem(lambda z, p: torch.tanh(z @ W.T + X), torch.zeros(B, n))
        return dss.solve(prob, dss.Anderson(), per_sample=True, abstol=1e-13, sensealg=sensealg)

    sol = solve(dss.ImplicitAdjoint())
    L = (sol.u**3).sum()
    g1 = torch.autograd.grad(L, (W, X), retain_graph=True)
    g2 = torch.autograd.grad(L, (W, X))                 # the backward pass runs again
    g_unrolled = torch.autograd.grad((solve(dss.DirectAdjoint()).u ** 3).sum(), (W, X))
    for a, b, c in zip(g1, g2, g_unrolled):
        assert torch.equal(a, b) and torch.allclose(a, c, rtol=1e-8, atol=1e-9)


def test_gradcheck_steady_state_and_non_finite_adjoint_is_an_error():
    torch.manual_seed(9)
    n = 4
    A0 = -3.0 * torch.eye(n) + 0.5 * torch.randn(n, n)

    def steady(A, b):
        prob = dss.SteadyStateProblem(lambda u, p, t: p[0] @ u + torch.sin(u) + p[1], torch.zeros(n), (A, b))
        sol = dss.solve(prob, dss.NewtonRaphson(), sensealg=dss.ImplicitAdjoint(linsolve="direct"))
        assert sol.successful
        return sol.u

    A = A0.clone().requires_grad_(True)
    b = torch.randn(n, requires_grad=True)
    assert torch.autograd.gradcheck(steady, (A, b), eps=1e-6, atol=1e-8)
    nan_solver = dss.ImplicitAdjoint(linsolve=lambda vjp, rhs: torch.full_like(rhs, float("nan")))
    sol = dss.solve(dss.NonlinearProblem(cubic, torch.tensor([0.5]), b[:1]), sensealg=nan_solver)
    with pytest.raises(ImplicitGradientError, match="NaN/Inf"):
        sol.u.sum().backward()
