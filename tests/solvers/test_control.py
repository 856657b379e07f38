"""Trajectory optimization: ControlProblem with Adam, CEM, MPPI, Hybrid, Restarts and MPC.

Pure torch and float64 (tests/solvers/conftest.py), except the last test, which drives a
real diffsim environment through receding-horizon control at a tiny size.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import diffsim
from diffsim import solvers as dss
from diffsim.solvers.control import Context

T, D = 6, 2
TARGET = torch.linspace(-1.4, 1.4, T * D, dtype=torch.float64).reshape(T, D)  # partly outside [-1, 1]


def quad(U):
    return ((U - TARGET) ** 2).sum()


def quad_batch(U):
    return ((U - TARGET) ** 2).sum((1, 2))


def rosen(U):
    x = U.reshape(-1)
    return (10 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def rosen_batch(U):
    x = U.reshape(U.shape[0], -1)
    return (10 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2).sum(1)


def quad_problem(**kw):
    args = dict(loss_fn=quad, u0=torch.zeros(T, D), bounds=(-1.0, 1.0), batch_loss_fn=quad_batch)
    args.update(kw)
    return dss.ControlProblem(**args)


QUAD_OPT = float(quad(TARGET.clamp(-1, 1)))  # the constrained minimum
ALGS = {
    "Adam": (dss.Adam(lr=0.05), dict(maxiters=300)),
    "CEM": (dss.CEM(population=64, elites=8, min_std=0.02), dict(maxiters=20)),
    "MPPI": (dss.MPPI(samples=32, temperature=0.05, noise_std=0.2), dict(maxiters=30)),
    "Hybrid": (dss.Hybrid(dss.CEM(population=32, elites=6), dss.Adam(lr=0.05)), dict(maxevals=800)),
}


# --------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize("name", sorted(ALGS))
def test_reduces_convex_quadratic_under_bounds(name):
    alg, budget = ALGS[name]
    prob = quad_problem()
    res = dss.solve(prob, alg, seed=0, **budget)
    start = float(quad(prob.u0))
    assert res.successful and res.retcode is dss.ControlReturnCode.SUCCESS
    assert res.loss < QUAD_OPT + 0.05 * (start - QUAD_OPT)
    assert res.loss == pytest.approx(float(quad(res.u)))
    assert bool((res.u >= -1).all() and (res.u <= 1).all())
    assert res.history.best == sorted(res.history.best, reverse=True)  # best-so-far never rises
    if name in ("Adam", "Hybrid"):  # gradients find the constrained minimum
        assert res.loss == pytest.approx(QUAD_OPT, abs=1e-4)


@pytest.mark.parametrize("name", sorted(ALGS))
def test_reduces_rosenbrock_under_bounds(name):
    alg, budget = ALGS[name]
    prob = dss.ControlProblem(rosen, torch.zeros(3, 2), bounds=(-0.5, 2.0), batch_loss_fn=rosen_batch)
    res = dss.solve(prob, alg, seed=1, **budget)
    start = float(rosen(prob.u0))  # 5.0; the minimum (all ones) is 0 and inside the box
    # diagonal-Gaussian samplers crawl along the curved valley; gradients follow it
    assert res.loss < (0.6 * start if name in ("CEM", "MPPI") else 1e-3)
    assert bool((res.u >= -0.5).all() and (res.u <= 2.0).all())


@pytest.mark.parametrize("name", sorted(ALGS))
def test_every_evaluated_point_respects_tensor_bounds(name):
    lo = torch.full((T, D), -0.3)
    lo[:, 1] = -1.0
    hi = torch.linspace(0.1, 0.9, T).unsqueeze(1).expand(T, D)
    seen = []

    def loss(U):
        seen.append(U.detach().clone())
        return quad(U)

    alg, budget = ALGS[name]
    prob = dss.ControlProblem(loss, torch.zeros(T, D), bounds=(lo, hi))  # no batch_loss_fn
    res = dss.solve(prob, alg, seed=0, maxevals=200)
    assert len(seen) == res.nevals == 200
    pts = torch.stack(seen)
    assert bool((pts >= lo).all() and (pts <= hi).all())
    assert res.loss < 0.7 * float(quad(prob.u0))


@pytest.mark.parametrize("name", ["CEM", "MPPI", "Hybrid"])
def test_samplers_reproducible_with_seed(name):
    alg, _ = ALGS[name]
    prob = quad_problem()
    a = dss.solve(prob, alg, maxevals=300, seed=7)
    b = dss.solve(prob, alg, maxevals=300, seed=7)
    c = dss.solve(prob, alg, maxevals=300, seed=8)
    assert torch.equal(a.u, b.u) and a.history.best == b.history.best
    assert not torch.equal(a.u, c.u)
    torch.manual_seed(3)
    d = dss.solve(prob, alg, maxevals=300)  # seed=None follows torch's global generator
    torch.manual_seed(3)
    e = dss.solve(prob, alg, maxevals=300)
    assert torch.equal(d.u, e.u)


def test_batched_and_one_by_one_evaluation_agree():
    a = dss.solve(quad_problem(), dss.CEM(population=16, elites=4), maxiters=5, seed=0)
    b = dss.solve(quad_problem(batch_loss_fn=None), dss.CEM(population=16, elites=4), maxiters=5, seed=0)
    assert torch.allclose(a.u, b.u) and a.nevals == b.nevals == 80


def test_hybrid_improves_on_its_sampler():
    prob = dss.ControlProblem(rosen, torch.zeros(3, 2), bounds=(-0.5, 2.0), batch_loss_fn=rosen_batch)
    sampler = dss.CEM(population=32, elites=6)
    res = dss.solve(prob, dss.Hybrid(sampler, dss.Adam(lr=0.02)), maxevals=1200, seed=0)
    first, second = res.stages
    assert first.alg is sampler and isinstance(second.alg, dss.Adam)
    assert res.loss <= first.loss and res.loss < 0.1 * first.loss
    alone = dss.solve(prob, sampler, maxevals=1200, seed=0)  # the sampler with the whole budget
    assert res.loss < alone.loss
    assert res.history.stage[0] == "CEM" and res.history.stage[-1] == "Adam"
    assert second.u.shape == prob.u0.shape and len(res.history) == first.niters + second.niters


def test_hybrid_budget_split():
    prob = quad_problem()
    h = dss.Hybrid(dss.CEM(population=10, elites=3), dss.Adam(), sampler_fraction=0.25)
    res = dss.solve(prob, h, maxevals=200, seed=0)
    assert res.stages[0].nevals == 50 and res.stages[1].nevals == 150 and res.nevals == 200
    res = dss.solve(prob, dss.Hybrid(dss.MPPI(samples=10), dss.Adam(), sampler_iters=3), maxiters=10)
    assert [s.niters for s in res.stages] == [3, 7] and res.nevals == 30 + 7
    assert res.nbackward == 7


def _tilted_double_well(u):
    """Minima near u = +0.5 (0.124, local) and u = -0.5 (0.074, global), per entry."""
    return ((u ** 2 - 0.25) ** 2 + 0.05 * u).sum() + 0.1


def test_restarts_hop_out_of_a_local_minimum():
    prob = dss.ControlProblem(_tilted_double_well, torch.full((1,), 0.3), bounds=(-1.0, 1.0))
    alone = dss.solve(prob, dss.LBFGS(), maxevals=200, seed=0)   # converges in the near well
    assert float(alone.u) > 0 and alone.loss == pytest.approx(0.1243, abs=1e-4)
    assert alone.nevals < 20                                     # ... with most budget left
    res = dss.solve(prob, dss.Restarts(dss.LBFGS(), scale=0.3), maxevals=200, seed=0)
    assert res.stages[0].loss == alone.loss and torch.equal(res.stages[0].u, alone.u)
    assert float(res.u) < 0 and res.loss == pytest.approx(0.0744, abs=1e-4)
    assert len(res.stages) > 2 and res.nevals <= 200 and res.nevals == sum(s.nevals for s in res.stages)
    assert res.loss == min(s.loss for s in res.stages) and res.history.best[-1] == res.loss
    again = dss.solve(prob, dss.Restarts(dss.LBFGS(), scale=0.3), maxevals=200, seed=0)
    assert torch.equal(again.u, res.u) and again.nevals == res.nevals   # seeded
    once = dss.solve(prob, dss.Restarts(dss.LBFGS(), scale=0.3, max_restarts=1), maxevals=200, seed=0)
    assert len(once.stages) == 2
    # a method that never converges runs once, exactly as without Restarts
    plain = dss.solve(prob, dss.Adam(lr=0.05), maxevals=60, seed=0)
    wrapped = dss.solve(prob, dss.Restarts(dss.Adam(lr=0.05)), maxevals=60, seed=0)
    assert len(wrapped.stages) == 1 and torch.equal(wrapped.u, plain.u) and wrapped.nevals == 60


def test_restarts_validates_its_options():
    with pytest.raises(TypeError, match="Restarts' method must be an iterative method"):
        dss.Restarts("adam")
    with pytest.raises(ValueError, match="scale"):
        dss.Restarts(dss.Adam(), scale=0.0)
    with pytest.raises(ValueError, match="max_restarts"):
        dss.Restarts(dss.Adam(), max_restarts=0)


def test_nevals_counted():
    calls = {"loss": 0, "batch": 0}

    def loss(U):
        calls["loss"] += 1
        return quad(U)

    def batch(U):
        calls["batch"] += U.shape[0]
        return quad_batch(U)

    prob = dss.ControlProblem(loss, torch.zeros(T, D), bounds=(-1, 1))
    res = dss.solve(prob, dss.Adam(), maxiters=7)
    assert (res.nevals, res.nbackward, res.niters, calls["loss"]) == (7, 7, 7, 7)
    calls["loss"] = 0
    res = dss.solve(prob, dss.CEM(population=10, elites=2), maxevals=25, seed=0)
    assert (res.nevals, res.nbackward, res.niters, calls["loss"]) == (25, 0, 3, 25)  # last draws 5
    assert res.history.nevals == [10, 20, 25]
    bprob = prob.remake(batch_loss_fn=batch)
    calls["loss"] = 0
    res = dss.solve(bprob, dss.MPPI(samples=12), maxiters=4, seed=0)
    assert (res.nevals, calls["batch"], calls["loss"]) == (48, 48, 0)
    res = dss.solve(prob, dss.Adam(), maxiters=50, maxevals=20)
    assert res.nevals == res.niters == 20  # the tighter budget wins


def test_include_mean_makes_result_no_worse_than_u0():
    u0 = TARGET.clamp(-1, 1)  # already optimal
    for alg in (dss.CEM(population=8, elites=2), dss.MPPI(samples=8)):
        res = dss.solve(quad_problem(u0=u0), alg, maxiters=3, seed=0)
        assert res.loss == pytest.approx(QUAD_OPT) and torch.equal(res.u, u0)


def test_cem_keep_elites_and_min_std():
    res = dss.solve(quad_problem(), dss.CEM(population=32, elites=6, keep_elites=True, min_std=0.05),
                    maxiters=30, seed=0)
    assert res.loss < 0.2 * float(quad(torch.zeros(T, D)))


def test_adam_schedules():
    prob = quad_problem()
    frozen = dss.solve(prob, dss.Adam(lr=0.1, schedule=lambda k: 0.0), maxiters=5)
    assert torch.equal(frozen.u, prob.u0)  # a zero learning rate never moves
    ctx = Context(torch.Generator(), 11, None)
    f = dss.Adam(lr=0.1, schedule="cosine", lr_min=0.01)._factor(ctx)
    assert f(0) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)
    g = dss.Adam(schedule="exponential", gamma=0.5)._factor(ctx)
    assert g(3) == pytest.approx(0.125)
    for alg in (dss.Adam(lr=0.05, schedule="cosine"), dss.Adam(lr=0.05, grad_clip=0.1)):
        assert dss.solve(prob, alg, maxiters=200).loss < QUAD_OPT + 0.5


def test_default_algorithm_callback_target_and_dispatch():
    prob = quad_problem()
    assert isinstance(dss.solve(prob, maxiters=3).alg, dss.Adam)
    assert ("ControlProblem", "AbstractOptimizer") in diffsim.dispatch.methods()
    assert ("ControlProblem", "Hybrid") in diffsim.dispatch.methods()
    seen = []
    res = dss.solve(prob, dss.CEM(population=8, elites=2), maxiters=10, seed=0,
                    callback=lambda it: seen.append(it) or it.iteration == 4)
    assert res.retcode is dss.ControlReturnCode.TERMINATED and res.successful and res.niters == 4
    assert [it.nevals for it in seen] == [8, 16, 24, 32] and seen[-1].stage == "CEM"
    res = dss.solve(prob, dss.Adam(lr=0.05), maxiters=1000, target=QUAD_OPT + 0.1)
    assert res.retcode is dss.ControlReturnCode.SUCCESS and res.niters < 1000
    assert res.loss <= QUAD_OPT + 0.1
    # a Hybrid callback sees global iteration and evaluation counts across its stages
    its = []
    dss.solve(prob, dss.Hybrid(dss.CEM(population=8, elites=2), dss.Adam(), sampler_iters=2),
              maxiters=4, callback=its.append)
    assert [(i.iteration, i.stage, i.nevals, i.nbackward) for i in its] == [
        (1, "CEM", 8, 0), (2, "CEM", 16, 0), (3, "Adam", 17, 1), (4, "Adam", 18, 2)]


def test_progress_bar_only_when_asked(capsys):
    dss.solve(quad_problem(), dss.CEM(population=8, elites=2), maxiters=3, seed=0)
    assert capsys.readouterr().err == ""
    dss.solve(quad_problem(), dss.CEM(population=8, elites=2), maxiters=3, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "CEM" in err and "best=" in err and "3/3" in err


# --------------------------------------------------------------------------- non-finite values


def test_adam_non_finite_loss_ends_with_retcode():
    def loss(U):  # NaN once any control passes 0.5 (Adam walks there towards TARGET)
        val = quad(U)
        return val + torch.where(U.max() > 0.5, torch.tensor(math.nan), torch.tensor(0.0))

    prob = quad_problem(loss_fn=loss)
    res = dss.solve(prob, dss.Adam(lr=0.1, backtrack=0), maxiters=100)
    assert res.retcode is dss.ControlReturnCode.NON_FINITE and not res.successful
    assert "NaN" in str(res.retcode) or "non-finite" in str(res.retcode)
    assert "loss is nan" in res.message and res.niters < 100
    assert math.isfinite(res.loss) and bool(torch.isfinite(res.u).all()) and float(res.u.max()) <= 0.5
    assert res.history.best[-1] == res.loss
    with pytest.raises(dss.ControlError, match="NON_FINITE") as info:
        dss.solve(prob, dss.Adam(lr=0.1, backtrack=0), maxiters=100, throw=True)
    assert info.value.retcode is dss.ControlReturnCode.NON_FINITE and info.value.result.loss == res.loss
    # at a wall the default steps back (halving towards the last good iterate) 4 times,
    # then ends the same way
    back = dss.solve(prob, dss.Adam(lr=0.1), maxiters=100)
    assert back.retcode is dss.ControlReturnCode.NON_FINITE and back.nnonfinite == 5
    assert float(back.u.max()) <= 0.5


def test_adam_steps_back_over_isolated_failures():
    """Failures at scattered iterates (a contact solve that does not converge at some
    of them, one in five here): the default rejects each failed step, retries a shorter one
    and goes on to the optimum."""
    def loss(U):
        s = float(U.abs().sum())
        return quad(U) + (math.nan if s > 0.1 and round(s * 1e6) % 5 == 0 else 0.0)

    prob = quad_problem(loss_fn=loss)
    dead = dss.solve(prob, dss.Adam(lr=0.1, backtrack=0), maxiters=200)
    res = dss.solve(prob, dss.Adam(lr=0.1), maxiters=200)
    print(dead, res)
    assert dead.retcode is dss.ControlReturnCode.NON_FINITE
    assert res.successful and res.nnonfinite > 0 and res.loss < 1.01 * QUAD_OPT < dead.loss


def test_adam_backtracks_a_bounded_number_of_times():
    calls = []

    def loss(U):  # defined only at the start: every step away from it fails
        calls.append(float(U.abs().max()))
        return quad(U) * (1.0 if calls[-1] == 0.0 else math.nan)

    res = dss.solve(quad_problem(loss_fn=loss), dss.Adam(lr=0.1, backtrack=3), maxiters=50)
    assert res.retcode is dss.ControlReturnCode.NON_FINITE and len(calls) == 1 + 1 + 3
    # each rejected step is half the one before: 0.1, 0.05, 0.025, 0.0125
    assert calls[1:] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert torch.equal(res.u, torch.zeros(T, D))
    with pytest.raises(ValueError, match="backtrack must be an int >= 0, got -1"):
        dss.Adam(backtrack=-1)


def test_adam_reject_returns_from_a_cliff():
    """A loss with a cliff (a grip lost): entry (0, 0) has its optimum at 0.29 beside a
    cliff at 0.3, past which a plateau 4 higher slopes away. Plain Adam's momentum carries
    that entry over the edge and the slope keeps it there, so the other entries stop at
    the best iterate before the fall; with ``reject`` the run goes back to that best point
    with half the rate and converges."""
    def loss(U):
        u = U[0, 0]
        edge = torch.where(u < 0.3, (u - 0.29) ** 2, 4.0 - 0.1 * (u - 0.3))
        return ((U - 0.5) ** 2).sum() - (u - 0.5) ** 2 + edge

    prob = dss.ControlProblem(loss, u0=torch.zeros(T, D), bounds=(-1.0, 1.0))
    plain = dss.solve(prob, dss.Adam(lr=0.05), maxiters=150)
    fell = plain.history.mean[-1]
    safe = dss.solve(prob, dss.Adam(lr=0.05, reject=1.5), maxiters=150)
    assert fell > 3.5 and plain.loss > 0.4          # over the edge for good
    assert safe.loss < 1e-4 and float(safe.u[0, 0]) < 0.3
    assert max(safe.history.best) == safe.history.best[0]
    # every rejection halves the rate for good: the run ends converged, not in a cycle
    assert safe.retcode is dss.ControlReturnCode.SUCCESS and safe.niters < 150
    with pytest.raises(ValueError, match="reject must be"):
        dss.Adam(reject=1.0)


def test_lbfgs_restarts_over_isolated_failures():
    """L-BFGS whose line search meets failures at scattered trial points (one in five
    here): by default it abandons the step, restarts from the best point with half the step
    length and reaches the optimum; with backtrack=0 the first failure ends the run."""
    calls = []

    def loss(U):   # every fifth evaluation fails (a contact solve that does not converge)
        calls.append(1)
        return quad(U) + (math.nan if len(calls) % 5 == 2 else 0.0)

    prob = quad_problem(loss_fn=loss)
    dead = dss.solve(prob, dss.LBFGS(backtrack=0), maxevals=300)
    assert dead.retcode is dss.ControlReturnCode.NON_FINITE and dead.nnonfinite == 1
    calls.clear()
    res = dss.solve(prob, dss.LBFGS(), maxevals=300)
    assert res.successful and res.nnonfinite > 0 and res.loss < 1.0001 * QUAD_OPT < dead.loss
    # a wall (every point past 0.5 fails, the optimum lies beyond): it restarts, closing in
    # on the wall while steps make progress, and ends NON_FINITE after 5 failed steps in a
    # row without progress, with the best finite point, which is on the good side
    wall = quad_problem(loss_fn=lambda U: quad(U) + torch.where(
        U.max() > 0.5, torch.tensor(math.nan), torch.tensor(0.0)))
    res = dss.solve(wall, dss.LBFGS(), maxevals=300)
    assert res.retcode is dss.ControlReturnCode.NON_FINITE and res.nnonfinite > 5
    assert math.isfinite(res.loss) and 0.45 < float(res.u.max()) <= 0.5
    assert res.loss < float(quad(torch.zeros(T, D)))
    with pytest.raises(ValueError, match="backtrack must be an int >= 0, got -1"):
        dss.LBFGS(backtrack=-1)


def test_lbfgs_restarts_when_its_line_search_overflows(monkeypatch):
    """torch's L-BFGS can propose a NaN point itself (its arithmetic overflowed in float32
    on Stir-v0); that point is not evaluated: the step is abandoned and restarted as after a
    failed evaluation (here the third trial point is made NaN)."""
    add_grad = torch.optim.LBFGS._add_grad
    calls = []

    def nan_third(self, step_size, update):
        calls.append(1)
        return add_grad(self, step_size, update * math.nan if len(calls) == 3 else update)

    monkeypatch.setattr(torch.optim.LBFGS, "_add_grad", nan_third)
    seen = []

    def loss(U):
        seen.append(bool(torch.isfinite(U).all()))
        return quad(U)

    dead = dss.solve(quad_problem(loss_fn=loss), dss.LBFGS(backtrack=0), maxevals=100)
    assert dead.retcode is dss.ControlReturnCode.NON_FINITE and "non-finite point" in dead.message
    calls.clear()
    res = dss.solve(quad_problem(loss_fn=loss), dss.LBFGS(), maxevals=100)
    assert all(seen) and res.successful and res.loss < 1.0001 * QUAD_OPT


def test_adam_non_finite_gradient_ends_with_retcode():
    prob = dss.ControlProblem(lambda U: U.abs().sqrt().sum(), torch.zeros(3))  # d/dU sqrt|U| at 0 = inf
    res = dss.solve(prob, dss.Adam(), maxiters=10)
    assert res.retcode is dss.ControlReturnCode.NON_FINITE and "gradient" in res.message
    assert res.niters == 1 and res.loss == 0.0 and torch.equal(res.u, torch.zeros(3))


def test_samplers_skip_non_finite_candidates_and_stop_when_all_are():
    def loss(U):
        return quad(U) if float(U[0, 0]) > -0.2 else torch.tensor(math.inf)

    for alg in (dss.CEM(population=16, elites=4), dss.MPPI(samples=16)):
        res = dss.solve(quad_problem(loss_fn=loss, batch_loss_fn=None), alg, maxiters=10, seed=0)
        assert res.retcode is dss.ControlReturnCode.SUCCESS and res.nnonfinite > 0
        assert math.isfinite(res.loss) and res.loss < float(quad(torch.zeros(T, D)))
        bad = quad_problem(loss_fn=lambda U: torch.tensor(math.nan), batch_loss_fn=None)
        res = dss.solve(bad, alg, maxiters=10, seed=0)
        assert res.retcode is dss.ControlReturnCode.NON_FINITE and res.niters == 1
        assert res.loss == math.inf and torch.equal(res.u, bad.u0)


def test_catch_turns_exceptions_into_non_finite_losses():
    class Blowup(RuntimeError):
        pass

    def loss(U):
        if float(U.max()) > 0.9:
            raise Blowup("simulation blew up")
        return quad(U)

    prob = quad_problem(loss_fn=loss, batch_loss_fn=None)
    res = dss.solve(prob, dss.CEM(population=16, elites=4), maxiters=5, seed=0, catch=Blowup)
    assert res.successful and res.nnonfinite > 0
    with pytest.raises(Blowup):
        dss.solve(prob, dss.CEM(population=16, elites=4), maxiters=5, seed=0)
    res = dss.solve(prob, dss.Adam(lr=0.3, backtrack=0), maxiters=50, catch=(Blowup,))
    assert res.retcode is dss.ControlReturnCode.NON_FINITE and "Blowup" in res.message


# --------------------------------------------------------------------------- bad input


def test_bad_problem_input():
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        dss.ControlProblem(3.0, torch.zeros(2))
    with pytest.raises(TypeError, match="batch_loss_fn must be None or callable"):
        dss.ControlProblem(quad, torch.zeros(2), batch_loss_fn="x")
    with pytest.raises(ValueError, match="u0 has non-finite entries"):
        dss.ControlProblem(quad, torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="u0 is empty"):
        dss.ControlProblem(quad, torch.zeros(0, 2))
    with pytest.raises(ValueError, match=r"lo > hi at 1 entries \(first at index \(1,\)"):
        dss.ControlProblem(quad, torch.zeros(2), bounds=(torch.tensor([-1.0, 1.0]), 0.5))
    with pytest.raises(ValueError, match=r"bounds\[1\] \(hi\) has shape \(3,\), which does not broadcast"):
        dss.ControlProblem(quad, torch.zeros(T, 2), bounds=(-1.0, torch.ones(3)))
    with pytest.raises(ValueError, match="holds NaN"):
        dss.ControlProblem(quad, torch.zeros(2), bounds=(math.nan, 1.0))
    with pytest.raises(TypeError, match="bounds must be a pair"):
        dss.ControlProblem(quad, torch.zeros(2), bounds=(-1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"u0 lies outside the bounds at 1 entries .* u0.clamp"):
        dss.ControlProblem(quad, torch.tensor([0.0, 2.0]), bounds=(-1, 1))
    p = dss.ControlProblem(quad, torch.zeros(T, D), bounds=(-1, (math.inf)))
    assert p.hi.shape == (T, D) and p.hi.dtype == torch.float64 and bool(torch.isinf(p.hi).all())


def test_bad_solve_options():
    prob = quad_problem()
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) max_iters; allowed: .*maxiters"):
        dss.solve(prob, dss.Adam(), max_iters=3)
    with pytest.raises(ValueError, match="needs a budget: give maxiters="):
        dss.solve(prob, dss.Adam())
    with pytest.raises(ValueError, match="maxiters must be an int >= 1"):
        dss.solve(prob, dss.Adam(), maxiters=0)
    with pytest.raises(TypeError, match="maxevals must be an int"):
        dss.solve(prob, dss.CEM(), maxevals=10.5)
    with pytest.raises(TypeError, match="seed must be None or an int"):
        dss.solve(prob, dss.CEM(), maxiters=2, seed="a")
    with pytest.raises(TypeError, match="callback must be None or callable"):
        dss.solve(prob, dss.CEM(), maxiters=2, callback=1)
    with pytest.raises(TypeError, match="catch must be an exception class"):
        dss.solve(prob, dss.CEM(), maxiters=2, catch="ValueError")
    with pytest.raises(TypeError, match="progress must be True or False"):
        dss.solve(prob, dss.CEM(), maxiters=2, progress="yes")
    with pytest.raises(TypeError, match="unknown keyword argument"):
        dss.solve(prob, dss.Hybrid(dss.CEM(), dss.Adam()), maxiters=2, tol=1.0)


def test_bad_algorithm_options():
    with pytest.raises(TypeError, match="unexpected keyword argument 'popsize'"):
        dss.CEM(popsize=10)
    with pytest.raises(ValueError, match="population must be an int >= 2"):
        dss.CEM(population=1, elites=1)
    with pytest.raises(ValueError, match=r"elites \(9\) must be <= population \(8\)"):
        dss.CEM(population=8, elites=9)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.0, 1.0\)"):
        dss.CEM(alpha=1.0)
    with pytest.raises(ValueError, match="init_std must be a finite number"):
        dss.CEM(init_std=-1.0)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        dss.Adam(lr=0.0)
    with pytest.raises(ValueError, match="schedule must be one of 'constant', 'cosine'"):
        dss.Adam(schedule="step")
    with pytest.raises(ValueError, match=r"betas\[1\] must be"):
        dss.Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        dss.MPPI(temperature=0.0)
    with pytest.raises(TypeError, match="Hybrid's sampler must be a sampling method"):
        dss.Hybrid(dss.Adam(), dss.Adam())
    with pytest.raises(TypeError, match="Hybrid's gradient must be a gradient method"):
        dss.Hybrid(dss.CEM(), dss.MPPI())
    with pytest.raises(ValueError, match="sampler_fraction must be"):
        dss.Hybrid(dss.CEM(), dss.Adam(), sampler_fraction=1.0)
    with pytest.raises(ValueError, match="noise_std has shape"):
        dss.solve(quad_problem(), dss.MPPI(noise_std=torch.ones(5)), maxiters=1)


def test_bad_loss_functions():
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar \(one element\), got shape \(6, 2\)"):
        dss.solve(quad_problem(loss_fn=lambda U: U, batch_loss_fn=None), dss.CEM(), maxiters=1)
    with pytest.raises(ValueError, match="has no autograd graph to U"):
        dss.solve(quad_problem(loss_fn=lambda U: quad(U.detach())), dss.Adam(), maxiters=1)
    with pytest.raises(TypeError, match="one-element torch.Tensor with a graph"):
        dss.solve(quad_problem(loss_fn=lambda U: 1.0), dss.Adam(), maxiters=1)
    with pytest.raises(ValueError, match=r"batch_loss_fn must return a tensor of shape \(8,\)"):
        dss.solve(quad_problem(batch_loss_fn=lambda U: U.sum()), dss.CEM(population=8, elites=2),
                  maxiters=1)
    # samplers accept plain numbers (e.g. a loss computed in numpy)
    res = dss.solve(quad_problem(loss_fn=lambda U: float(quad(U)), batch_loss_fn=None),
                    dss.CEM(population=8, elites=2), maxiters=2, seed=0)
    assert res.successful and res.nevals == 16


# --------------------------------------------------------------------------- MPC


class PointMass(gym.Env):
    """1-D double integrator with diffsim's planning interface (no simulator).

    State (x, v); action a in [-1, 1] is an acceleration; loss (x - 1)^2 + 0.1 v^2.
    """

    horizon = 12
    dt = 0.25

    def __init__(self):
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.state = None

    def _loss(self, s):
        return (s[0] - 1.0) ** 2 + 0.1 * s[1] ** 2

    def _step(self, s, a):
        v = s[1] + self.dt * a.reshape(())
        return torch.stack([s[0] + self.dt * v, v])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = torch.zeros(2, dtype=torch.float64)
        return self.state.numpy().astype(np.float32), {"loss": float(self._loss(self.state))}

    def step(self, action):
        prev = self._loss(self.state)
        self.state = self._step(self.state, torch.as_tensor(action, dtype=torch.float64))
        loss = self._loss(self.state)
        info = {"loss": float(loss)}
        return self.state.numpy().astype(np.float32), float(prev - loss), bool(loss < 1e-3), False, info

    def get_state(self):
        return self.state.clone()

    def set_state(self, state):
        self.state = state.clone()

    def rollout_loss(self, actions, state=None):
        s = self.state if state is None else state
        for a in actions:
            s = self._step(s, a)
        return self._loss(s)


@pytest.mark.parametrize("planner", [dss.CEM(population=16, elites=4), dss.Adam(lr=0.2),
                                     dss.Hybrid(dss.MPPI(samples=16), dss.Adam(lr=0.2))])
def test_mpc_drives_point_mass_to_target(planner):
    env = PointMass()
    mpc = dss.MPC(planner, horizon=6, replan_every=2, maxiters=12)
    out = dss.receding_horizon(env, mpc, seed=0)
    n = out.actions.shape[0]
    assert out.initial_loss == 1.0 and out.losses[-1] < 0.1
    assert out.total_reward == pytest.approx(out.initial_loss - out.losses[-1])
    assert len(out.plans) == math.ceil(n / 2) and n <= env.horizon
    assert n == env.horizon or out.terminated
    assert bool((out.actions.abs() <= 1).all())
    assert out.nevals == sum(p.nevals for p in out.plans) > 0
    # the executed actions replayed from the start reproduce the final state (set_state restored it)
    replay = env.rollout_loss(out.actions.float().double(), state=torch.zeros(2, dtype=torch.float64))
    assert float(replay) == pytest.approx(out.losses[-1], abs=1e-6)


def test_mpc_shift_and_options():
    mpc = dss.MPC(dss.CEM(), horizon=4, replan_every=2, maxiters=1, fill="last")
    plan = torch.arange(8.0).reshape(4, 2)
    assert mpc.shift(plan, 2, 4).tolist() == [[4, 5], [6, 7], [6, 7], [6, 7]]
    zero = dss.MPC(dss.CEM(), horizon=4, maxiters=1)
    assert zero.shift(plan, 3, 3).tolist() == [[6, 7], [0, 0], [0, 0]]
    with pytest.raises(ValueError, match=r"replan_every \(5\) must be <= horizon \(4\)"):
        dss.MPC(dss.CEM(), horizon=4, replan_every=5)
    with pytest.raises(ValueError, match="fill must be one of"):
        dss.MPC(dss.CEM(), fill="mean")
    with pytest.raises(TypeError, match="planner must be a trajectory optimizer"):
        dss.MPC(torch.optim.Adam)
    with pytest.raises(ValueError, match="needs a budget per plan"):
        dss.MPC(dss.CEM(), maxiters=None)
    with pytest.raises(TypeError, match="needs env.unwrapped to have get_state, set_state, rollout_loss"):
        dss.receding_horizon(gym.make("CartPole-v1"), zero)
    with pytest.raises(ValueError, match=r"u0 has shape \(2, 1\); expected"):
        dss.receding_horizon(PointMass(), zero, u0=torch.zeros(2, 1))
    out = dss.receding_horizon(PointMass(), dss.MPC(dss.CEM(population=4, elites=2), horizon=3,
                                                   maxiters=1), steps=2, seed=0)
    assert out.actions.shape == (2, 1) and len(out.plans) == 2


def test_mpc_on_a_diffsim_env(close_after):
    """Integration: a real task, two replans (forward rollouts only, so only the forward
    kernels compile; Pour at grid_res 16 has 48 particles)."""
    import diffsim.envs  # noqa: F401  (registers the ids)

    env = gym.make("diffsim/Pour-v1", horizon=3, grid_res=16)
    close_after(env)
    base = env.unwrapped
    mpc = dss.MPC(dss.CEM(population=4, elites=2), horizon=2, replan_every=1, maxiters=1)
    _, info = env.reset(seed=0)
    start = base.get_state()
    out = dss.receding_horizon(env, mpc, steps=2, seed=0, reset=False)
    assert out.actions.shape == (2, base.act_dim) and len(out.plans) == 2
    assert out.nevals == 8 and all(p.successful for p in out.plans)
    assert bool((out.actions.abs() <= 1).all())
    assert out.plans[1].prob.u0.shape == (1, base.act_dim)  # the horizon shrinks at the episode end
    replay = base.rollout_loss(out.actions.float().to(base.sim.dtype), state=start)
    assert float(replay) == pytest.approx(out.losses[-1], rel=1e-6, abs=1e-9)
    assert out.total_reward == pytest.approx(info["loss"] - out.losses[-1], abs=1e-9)


@pytest.mark.slow
def test_hybrid_mpc_on_a_diffsim_env_uses_gradients(close_after):
    """Gradients through a real rollout (compiles the reverse kernels: about a minute on
    2 CPU cores): Hybrid(CEM, Adam) plans on Pour and the Adam stage improves on CEM."""
    import diffsim.envs  # noqa: F401

    env = gym.make("diffsim/Pour-v1", horizon=3, grid_res=16)
    close_after(env)
    mpc = dss.MPC(dss.Hybrid(dss.CEM(population=4, elites=2), dss.Adam(lr=0.3), sampler_iters=1),
                  horizon=3, replan_every=3, maxiters=6)
    out = dss.receding_horizon(env, mpc, steps=3, seed=0)
    plan = out.plans[0]
    assert plan.successful and [s.niters for s in plan.stages] == [1, 5]
    assert plan.nbackward == 5 and plan.nevals == 4 + 5
    assert plan.loss < plan.stages[0].loss  # the gradient stage refined the sample
    assert out.losses[-1] == pytest.approx(plan.loss, rel=1e-5)  # executing the plan gives its loss
