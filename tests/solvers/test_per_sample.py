"""Per-sample stepping: each sample advances as if it were solved alone."""

import pytest
import torch

from diffsim import solvers as dss

W = torch.tensor([0.5, 2.0, 9.0, 30.0])


def osc(u, p, t):
    assert t.shape == (u.shape[0],)  # per-sample time
    return torch.stack([u[:, 1], -(p[:, None] ** 2 * u[:, :1]).squeeze(1) + 0.1 * torch.cos(t)], 1)


def single(u, p, t):
    return torch.stack([u[1], -p**2 * u[0] + 0.1 * torch.cos(t)])


@pytest.mark.parametrize("alg", [dss.Tsit5(), dss.BS3(), dss.Rodas5P()], ids=lambda a: type(a).__name__)
def test_each_sample_takes_its_own_steps(alg):
    u0 = torch.stack([torch.ones(4), torch.zeros(4)], 1)
    ts = [0.0, 0.5, 1.0]
    sol = dss.solve(dss.ODEProblem(osc, u0, (0.0, 1.0), p=W), alg, rtol=1e-6, atol=1e-8, saveat=ts, per_sample=True)
    assert sol.successful and sol.u.shape == (3, 4, 2)
    total = 0
    for b in range(4):
        alone = dss.solve(dss.ODEProblem(single, u0[b], (0.0, 1.0), p=W[b]), alg, rtol=1e-6, atol=1e-8, saveat=ts)
        assert torch.allclose(sol.u[:, b], alone.u, rtol=1e-10, atol=1e-12)
        total += alone.stats.naccept
    assert sol.stats.naccept == total
    assert sol.stats.niters >= max(1, total // 4)


def test_per_sample_saves_work_over_shared_steps():
    """A shared step must satisfy the stiffest sample; per-sample steps do not."""
    u0 = torch.stack([torch.ones(4), torch.zeros(4)], 1)
    prob = dss.ODEProblem(osc, u0, (0.0, 1.0), p=W)
    shared = dss.solve(dss.ODEProblem(lambda u, p, t: osc(u, p, t.expand(4)), u0, (0.0, 1.0), p=W), dss.Tsit5(),
                       rtol=1e-6, atol=1e-8, saveat=[1.0])
    per = dss.solve(prob, dss.Tsit5(), rtol=1e-6, atol=1e-8, saveat=[1.0], per_sample=True)
    # sample-steps actually taken: shared pays for every sample on every step
    assert per.stats.naccept < 4 * shared.stats.naccept * 0.6
    assert torch.allclose(per.u, shared.u, atol=1e-5)


def test_a_failing_sample_truncates_and_sets_retcode():
    # sample 1 blows up at t = 0.5 (u' = u^2, u0 = 2)
    u0 = torch.tensor([[0.1], [2.0], [0.3]])
    prob = dss.ODEProblem(lambda u, p, t: u * u, u0, (0.0, 1.0))
    sol = dss.solve(prob, dss.Tsit5(), saveat=[0.0, 0.25, 0.75, 1.0], per_sample=True)
    assert not sol.successful and sol.t.tolist() == [0.0, 0.25]
    assert torch.isfinite(sol.u).all()


def test_per_sample_fixed_step_and_backwards():
    u0 = torch.stack([torch.ones(4), torch.zeros(4)], 1)
    sol = dss.solve(dss.ODEProblem(osc, u0, (1.0, 0.0), p=W), dss.RK4(), dt=0.01, per_sample=True)
    ref = dss.solve(dss.ODEProblem(single, u0[0], (1.0, 0.0), p=W[0]), dss.RK4(), dt=0.01, saveat=[1.0, 0.0])
    assert sol.t.tolist() == [1.0, 0.0]
    assert torch.allclose(sol.u[:, 0], ref.u, atol=1e-12)
