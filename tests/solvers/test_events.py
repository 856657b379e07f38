"""Events (``dss.Event``): zero crossings located on the dense output, terminal or
recording, with event times differentiable by the implicit function theorem.

Analytic references (a falling ball, u' = cos t) and ports of diffrax test/test_event.py
(cited per test); torchdiffeq's tests/event_tests.py is ported in test_peer_suite_port.py.
"""

import math

import pytest
import torch

from diffsim import solvers as dss

SENSEALGS = [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(), dss.QuadratureAdjoint()]
G = 9.81


def ball(u, p, t):
    """Height and velocity of a ball under gravity p."""
    return torch.stack([u[1], -p * torch.ones_like(u[0])])


GROUND = dss.Event(lambda u, p, t: u[0], terminal=True, direction=-1)


def hit(h0, v0, g=G):
    """Time, and velocity at impact, of a ball thrown up at v0 from height h0."""
    s = math.sqrt(v0**2 + 2 * g * h0)
    return (v0 + s) / g, -s


@pytest.mark.parametrize("alg", [dss.Tsit5(), dss.DP8(), dss.Rodas5P()], ids=repr)
@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_falling_ball_hit_time_and_gradients(sensealg, alg):
    """t* = (v0 + s)/g, s = sqrt(v0^2 + 2 g h): dt*/dh = 1/s, dt*/dv0 = (1 + v0/s)/g,
    dt*/dg = -t*/g + h/(g s); the impact velocity -s has d/dh = -g/s, d/dv0 = -v0/s."""
    h = torch.tensor(2.0, requires_grad=True)
    v0 = torch.tensor(1.5, requires_grad=True)
    g = torch.tensor(G, requires_grad=True)
    sol = dss.solve(dss.ODEProblem(ball, torch.stack([h, v0]), (0.0, math.inf), p=g), alg, event=GROUND,
                    sensealg=sensealg, rtol=1e-9, atol=1e-9, saveat=[0.1, 0.5])
    t_star, v_star = hit(2.0, 1.5)
    s = -v_star
    assert sol.retcode is dss.ReturnCode.TERMINATED and sol.successful
    assert sol.t.tolist()[:2] == [0.1, 0.5] and len(sol.t) == 3  # the saves, then the event
    assert abs(float(sol.t[-1]) - t_star) < 1e-12 and float(sol.event_t[0]) == float(sol.t[-1])
    assert abs(float(sol.u[-1, 0])) < 1e-12 and abs(float(sol.u[-1, 1]) - v_star) < 1e-10
    assert sol.event_index == [0]
    gt = torch.autograd.grad(sol.t[-1], (h, v0, g), retain_graph=True)
    want = (1 / s, (1 + 1.5 / s) / G, -t_star / G + 2.0 / (G * s))
    for a, b in zip(gt, want):
        assert abs(float(a) - b) < 1e-8 * max(1.0, abs(b)), (gt, want)
    gv = torch.autograd.grad(sol.u[-1, 1], (h, v0))
    for a, b in zip(gv, (-G / s, -1.5 / s)):
        assert abs(float(a) - b) < 1e-8, (gv, b)


def test_event_gradient_float32_close_to_float64():
    """What users run: float32 hit time and gradient within float32 accuracy of the
    analytic ones."""
    h = torch.tensor(2.0, dtype=torch.float32, requires_grad=True)
    sol = dss.solve(dss.ODEProblem(ball, torch.stack([h, torch.tensor(0.0, dtype=torch.float32)]), (0.0, math.inf),
                                   p=torch.tensor(G, dtype=torch.float32)),
                    dss.Tsit5(), event=GROUND, rtol=1e-6, atol=1e-6, sensealg=dss.InterpolatingAdjoint())
    t_star, v_star = hit(2.0, 0.0)
    assert sol.event_t.dtype == torch.float32
    assert abs(float(sol.event_t[0]) - t_star) < 1e-5
    (gh,) = torch.autograd.grad(sol.event_t[0], h)
    assert abs(float(gh) - 1 / -v_star) < 1e-4


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_event_time_gradient_matches_finite_differences(sensealg):
    """A threshold k that only the condition uses and a damping c that only f uses, on a
    nonlinear oscillator (no closed form): central differences of the event time."""
    def f(u, p, t):
        c, _ = p
        return torch.stack([u[1], -torch.sin(u[0]) - c * u[1]])

    ev = dss.Event(lambda u, p, t: u[0] - p[1], terminal=True, direction=-1)

    def t_event(u0, c, k):
        prob = dss.ODEProblem(f, u0, (0.0, 20.0), p=(c, k))
        return dss.solve(prob, dss.Tsit5(), event=ev, sensealg=sensealg, rtol=1e-11, atol=1e-11).event_t[0]

    u0 = torch.tensor([1.0, 0.3], requires_grad=True)
    c = torch.tensor(0.2, requires_grad=True)
    k = torch.tensor(-0.4, requires_grad=True)
    g = torch.autograd.grad(t_event(u0, c, k), (u0, c, k))
    base = [u0.detach(), c.detach(), k.detach()]
    eps = 1e-6
    for i, x in enumerate(base):
        for j in range(x.numel()):
            vals = []
            for sgn in (1, -1):
                xs = [y.clone() for y in base]
                xs[i].view(-1)[j] += sgn * eps
                with torch.no_grad():
                    vals.append(float(t_event(*xs)))
            fd = (vals[0] - vals[1]) / (2 * eps)
            assert abs(float(g[i].view(-1)[j]) - fd) < 1e-6 * max(1.0, abs(fd)), (i, j, g, fd)


def test_bouncing_ball_by_restarts():
    """Two bounces with restitution e, each a terminal event and a restart from the
    reflected state: n-th bounce at t_n = t_1 + 2 s e (1 + e + ... + e^(n-2)) / g and its
    gradient w.r.t. the drop height, through the chain of solves."""
    e = 0.8
    h = torch.tensor(1.0, requires_grad=True)
    g = torch.tensor(G)
    u, t0, times = torch.stack([h, torch.zeros(())]), 0.0, []
    for _ in range(3):
        sol = dss.solve(dss.ODEProblem(ball, u, (t0, math.inf), p=g), dss.Tsit5(), event=GROUND,
                        rtol=1e-10, atol=1e-10, sensealg=dss.InterpolatingAdjoint())
        t_hit = sol.event_t[0]
        times.append(t_hit)
        u = torch.stack([torch.zeros_like(sol.u[-1, 0]) + sol.u[-1, 0] * 0, -e * sol.u[-1, 1]])
        t0 = t_hit
    s = math.sqrt(2 * G * 1.0)
    t1 = s / G
    want = [t1, t1 + 2 * e * s / G, t1 + 2 * e * s / G * (1 + e)]
    for a, b in zip(times, want):
        assert abs(float(a) - b) < 1e-9
    (gh,) = torch.autograd.grad(times[-1], h)
    ds_dh = G / s  # d s / d h
    assert abs(float(gh) - ds_dh / G * (1 + 2 * e * (1 + e))) < 1e-7


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_recording_event_with_direction(sensealg):
    """u' = cos t, u = sin t: rising crossings at 2k pi, falling at (2k+1) pi; a recording
    event keeps them all and the solve goes on to t1 (retcode SUCCESS)."""
    u0 = torch.tensor(0.0, requires_grad=True)
    prob = dss.ODEProblem(lambda u, p, t: torch.cos(t), u0, (0.5, 10.0))
    events = [dss.Event(lambda u, p, t: u, terminal=False, direction=+1),
              dss.Event(lambda u, p, t: u, terminal=False, direction=-1)]
    sol = dss.solve(prob, dss.Tsit5(), event=events, saveat=[10.0], rtol=1e-10, atol=1e-10, sensealg=sensealg)
    assert sol.retcode is dss.ReturnCode.SUCCESS and sol.t.tolist() == [10.0]
    # u0 = 0 at t = 0.5 shifts the curve: u = sin t - sin 0.5, zero at t = pi - 0.5 (falling),
    # 2 pi + 0.5 (rising), 3 pi - 0.5 (falling).
    want = [(math.pi - 0.5, 1), (2 * math.pi + 0.5, 0), (3 * math.pi - 0.5, 1)]
    assert sol.event_index == [w[1] for w in want]
    for a, (b, _) in zip(sol.event_t.tolist(), want):
        assert abs(a - b) < 1e-9
    # dt*/du0 = -1/u'(t*) = -1/cos t*
    (g,) = torch.autograd.grad(sol.event_t[1], u0)
    assert abs(float(g) + 1 / math.cos(2 * math.pi + 0.5)) < 1e-7


def test_pytree_state_event_and_time_span_backwards():
    """Events see the state's structure, and work integrating backwards in time."""
    prob = dss.ODEProblem(lambda u, p, t: {"x": -torch.ones_like(u["x"]), "y": u["y"]},
                          {"x": torch.tensor([3.0]), "y": torch.tensor([1.0, 2.0])}, (0.0, -10.0))
    ev = dss.Event(lambda u, p, t: u["x"][0] - 5.0)  # x = 3 - t grows as t decreases
    sol = dss.solve(prob, dss.Tsit5(), event=ev, rtol=1e-10, atol=1e-10)
    assert abs(float(sol.t[-1]) + 2.0) < 1e-10
    assert abs(float(sol.event_u["x"][0, 0]) - 5.0) < 1e-10
    assert torch.allclose(sol.u["y"][-1], torch.tensor([1.0, 2.0]) * math.exp(-2.0), atol=1e-9)


# ---- ports of diffrax test/test_event.py


def test_diffrax_continuous_terminate2():
    """diffrax test_continuous_terminate2: cond t - 10 on y' = y, t1 = inf: ts >= 10."""
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: u, torch.tensor(1.0), (0.0, math.inf)), dss.Tsit5(),
                    event=dss.Event(lambda u, p, t: t - 10.0), dt=1.0)
    assert float(sol.t[-1]) >= 10.0 - 1e-12 and abs(float(sol.t[-1]) - 10.0) < 1e-9


def test_diffrax_continuous_event_time():
    """diffrax test_continuous_event_time: y' = y, y0 = 1, cond y - e: t = 1 (rtol 1e-4)."""
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: u, torch.tensor(1.0), (0.0, math.inf)), dss.Tsit5(),
                    event=dss.Event(lambda u, p, t: u - math.e), dt=1.0)
    assert abs(float(sol.t[-1]) - 1.0) < 1e-4


def test_diffrax_continuous_event_value():
    """diffrax test_continuous_event_value: y' = 1 from -10, cond y: y = 0 at the end."""
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: torch.ones_like(u), torch.tensor(-10.0), (0.0, math.inf)),
                    dss.Tsit5(), event=dss.Event(lambda u, p, t: u), dt=1.0)
    assert abs(float(sol.u[-1])) < 1e-5


def test_diffrax_continuous_no_event():
    """diffrax test_continuous_no_event: the event is not reached before t1 = 5: no event,
    the solve ends at t1."""
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: torch.ones_like(u), torch.tensor(-10.0), (0.0, 5.0)),
                    dss.Tsit5(), event=dss.Event(lambda u, p, t: u), dt=1.0)
    assert sol.retcode is dss.ReturnCode.SUCCESS and sol.event_t.numel() == 0 and sol.event_index == []
    assert abs(float(sol.t[-1]) - 5.0) < 1e-12


def test_diffrax_continuous_two_events():
    """diffrax test_continuous_two_events: conds t - 10 and y + 5 on y' = 1 from -10: the
    second fires first, at t = 5."""
    events = [dss.Event(lambda u, p, t: t - 10.0), dss.Event(lambda u, p, t: u + 5.0)]
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: torch.ones_like(u), torch.tensor(-10.0), (0.0, math.inf)),
                    dss.Tsit5(), event=events, dt=1.0)
    assert sol.event_index == [1] and abs(float(sol.t[-1]) - 5.0) < 1e-5


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_diffrax_continuous_event_time_grad(sensealg):
    """diffrax test_continuous_event_time_grad: x'' = -8 from rest at x0: the first bounce
    at sqrt(x0/4) and its gradient 1/(8 sqrt(x0/4)) (their reference: the same IFT
    formula by vjp/jvp; here the closed form)."""
    for x0 in (1.0, 3.0, 10.0):
        x = torch.tensor(x0, requires_grad=True)
        sol = dss.solve(dss.ODEProblem(lambda u, p, t: torch.stack([u[1], torch.full_like(u[1], -8.0)]),
                                       torch.stack([x, torch.zeros(())]), (0.0, math.inf)),
                        dss.Tsit5(), event=dss.Event(lambda u, p, t: u[0]), dt=0.01, sensealg=sensealg)
        (g,) = torch.autograd.grad(sol.t[-1], x)
        assert abs(float(sol.t[-1]) - math.sqrt(x0 / 4)) < 1e-5
        assert abs(float(g) - 1 / (8 * math.sqrt(x0 / 4))) < 1e-5 * max(1.0, float(g))


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_diffrax_adaptive_stepping_event(sensealg):
    """diffrax test_adaptive_stepping_event: y' = -y from y0 in (10, 100, 1000), cond y - 1
    with a PID controller (rtol 1e-3, atol 1e-6): y = 1 at the end and a finite
    gradient (here also its value, dy(t*)/dy0 = 0: the end state is pinned at 1)."""
    for y0 in (10.0, 100.0, 1000.0):
        y = torch.tensor(y0, requires_grad=True)
        sol = dss.solve(dss.ODEProblem(lambda u, p, t: -u, y, (0.0, math.inf)), dss.Tsit5(),
                        event=dss.Event(lambda u, p, t: u - 1.0), rtol=1e-3, atol=1e-6, sensealg=sensealg)
        (g,) = torch.autograd.grad(sol.u[-1], y)
        assert abs(float(sol.u[-1]) - 1.0) < 1e-5 and math.isfinite(float(g)) and abs(float(g)) < 1e-3


def test_diffrax_event_scalar_and_dtype_errors():
    """diffrax test_event_scalar_error / test_event_dtype_error: a condition must return
    one real value."""
    prob = dss.ODEProblem(lambda u, p, t: u, torch.tensor(1.0), (0.0, math.inf))
    with pytest.raises(ValueError, match="one value"):
        dss.solve(prob, dss.Tsit5(), event=dss.Event(lambda u, p, t: torch.stack([u, u])))
    with pytest.raises(TypeError, match="0-d real tensor"):
        dss.solve(prob, dss.Tsit5(), event=dss.Event(lambda u, p, t: (u,)))
    with pytest.raises(ValueError, match="real valued"):
        dss.solve(prob, dss.Tsit5(), event=dss.Event(lambda u, p, t: u > 2))
    with pytest.raises(ValueError, match="real valued"):
        dss.solve(prob, dss.Tsit5(), event=dss.Event(lambda u, p, t: torch.tensor(1)))


def test_event_bad_input():
    with pytest.raises(ValueError, match="direction must be -1, 0 or 1"):
        dss.Event(lambda u, p, t: u, direction=2)
    with pytest.raises(TypeError, match="dss.Event"):
        dss.solve(dss.ODEProblem(lambda u, p, t: u, torch.ones(1), (0.0, 1.0)), dss.Tsit5(), event=lambda u, p, t: u)
    with pytest.raises(ValueError, match="per_sample"):
        dss.solve(dss.ODEProblem(lambda u, p, t: -u, torch.ones(2, 1), (0.0, 1.0)), dss.Tsit5(), per_sample=True,
                  event=dss.Event(lambda u, p, t: u.sum() - 0.5))
    with pytest.raises(ValueError, match="infinite span needs a terminal event"):
        dss.solve(dss.ODEProblem(lambda u, p, t: -u, torch.ones(1), (0.0, math.inf)), dss.Tsit5(),
                  event=dss.Event(lambda u, p, t: u[0] - 0.5, terminal=False))


def test_event_without_time_derivative_raises():
    """A condition that jumps through 0 (no derivative along the trajectory at the
    crossing: dg/dt + dg/du . f = 0) has no implicit-function gradient: an error naming
    the event, not an infinity handed to the optimiser. Without grad it is just located."""
    u0 = torch.tensor([1.0], requires_grad=True)
    prob = dss.ODEProblem(lambda u, p, t: -u, u0, (0.0, 3.0))
    ev = dss.Event(lambda u, p, t: torch.where(t < 1.0, -1.0, 1.0) + 0.0 * u[0])
    with pytest.raises(ValueError, match="event 0 at t=1: .* no derivative"):
        dss.solve(prob, dss.Tsit5(), event=ev)
    with torch.no_grad():
        sol = dss.solve(prob, dss.Tsit5(), event=ev)
    assert abs(float(sol.t[-1]) - 1.0) < 1e-12


def test_dense_output_ends_at_terminal_event():
    sol = dss.solve(dss.ODEProblem(ball, torch.tensor([1.0, 0.0]), (0.0, 5.0), p=torch.tensor(G)), dss.Tsit5(),
                    event=GROUND)
    t_star, _ = hit(1.0, 0.0)
    assert abs(float(sol(t_star)[0])) < 1e-6
    with pytest.raises(ValueError, match="outside the solved interval"):
        sol(t_star + 0.05)
