"""``tstops``: steps land on discontinuities of f in time, which is then evaluated by its
one-sided limits there (torchdiffeq's ``jump_t``, Julia's ``tstops``; the peer's NFE
assertion is ported in test_peer_suite_port.py::test_odeint_jump_t)."""

import math

import pytest
import torch

from diffsim import solvers as dss

SENSEALGS = [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(),
             dss.InterpolatingAdjoint(checkpoints=3), dss.QuadratureAdjoint()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("closed_left", [False, True])
def test_step_function_integrated_exactly(closed_left, dtype):
    """u' = 1 before 0.5 and 0 after (either convention at the jump itself): u(1) = 0.5 to
    round-off with the stop, as each side is a polynomial; without it the step across
    the jump carries an O(step) error."""
    def f(u, p, t):
        before = t <= 0.5 if closed_left else t < 0.5
        return torch.ones_like(u) if before else torch.zeros_like(u)

    prob = dss.ODEProblem(f, torch.zeros(1, dtype=dtype), (0.0, 1.0))
    sol = dss.solve(prob, dss.DP5(), tstops=[0.5], saveat=[1.0])
    eps = float(torch.finfo(dtype).eps)
    assert abs(float(sol.u[-1, 0]) - 0.5) < 8 * eps
    assert sol.stats.nreject == 0
    rough = dss.solve(prob, dss.DP5(), saveat=[1.0])
    assert rough.stats.naccept + rough.stats.nreject > sol.stats.naccept


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_parameter_gradient_across_a_jump(sensealg):
    """u' = -p u before 0.5, -2 p u after: u(1) = exp(-1.5 p), du(1)/dp = -1.5 exp(-1.5 p);
    the backward solves stop at the jump as well."""
    p = torch.tensor(0.8, requires_grad=True)
    prob = dss.ODEProblem(lambda u, p, t: -p * u if t < 0.5 else -2 * p * u, torch.ones(1), (0.0, 1.0), p=p)
    sol = dss.solve(prob, dss.Tsit5(), tstops=[0.5], saveat=[1.0], rtol=1e-10, atol=1e-10, sensealg=sensealg)
    (g,) = torch.autograd.grad(sol.u.sum(), p)
    assert abs(float(sol.u[-1, 0]) - math.exp(-1.2)) < 1e-9
    assert abs(float(g) + 1.5 * math.exp(-1.2)) < 1e-8


@pytest.mark.parametrize("sensealg", SENSEALGS[:3], ids=repr)
def test_stops_with_fixed_steps_and_backwards_in_time(sensealg):
    """A stop between fixed grid points is landed on and the grid resumes; backwards in
    time the other side of the jump is the one-sided limit."""
    def f(u, p, t):
        return torch.ones_like(u) if t > 0.35 else -torch.ones_like(u)

    sol = dss.solve(dss.ODEProblem(f, torch.zeros(1), (0.0, 1.0)), dss.RK4(), dt=0.1, adaptive=False,
                    tstops=[0.35], saveat=[1.0], sensealg=sensealg)
    assert abs(float(sol.u[-1, 0]) - (-0.35 + 0.65)) < 1e-12
    assert sol.stats.naccept == 11  # ten grid steps, one of them split at the stop
    back = dss.solve(dss.ODEProblem(f, torch.zeros(1), (1.0, 0.0)), dss.Tsit5(), tstops=[0.35], saveat=[0.0])
    assert abs(float(back.u[-1, 0]) - (-0.65 + 0.35)) < 1e-12


def test_tstops_bad_input():
    prob = dss.ODEProblem(lambda u, p, t: -u, torch.ones(2, 1), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"tstops contains 2.0, outside tspan \[0.0, 1.0\]"):
        dss.solve(prob, dss.Tsit5(), tstops=[0.5, 2.0])
    with pytest.raises(ValueError, match="not supported with per_sample"):
        dss.solve(prob, dss.Tsit5(), tstops=[0.5], per_sample=True)
    with pytest.raises(TypeError, match="tstops must be"):
        dss.solve(prob, dss.Tsit5(), tstops="0.5")
    # the ends and duplicates are harmless
    assert dss.solve(prob, dss.Tsit5(), tstops=torch.tensor([0.0, 0.5, 0.5, 1.0])).successful
