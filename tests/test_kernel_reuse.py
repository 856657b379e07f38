"""Compiled kernels are reused across simulators of one configuration, and memory stays
flat over build/close cycles (the runtime's kernel pool); forward-only rollouts keep no
per-substep slots beyond one control step."""

import os

import pytest
import torch

import diffsim as ds


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _sim(grid_res=32, **kw):
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.3), hi=(0.5, 0.4)), ds.Elastic(E=2e3, nu=0.3),
                        velocity=(0.5, 0.0))
    scene.add_tool(ds.Sphere(center=(0.6, 0.35), radius=0.05), friction=0.3, name="pusher")
    return ds.MPM(scene, grid_res=grid_res, dt=1e-3, substeps=5, **kw)


def _grad(sim):
    U = torch.zeros(4, sim.action_dim, dtype=torch.float64)
    U[:, 0] = -1.0
    U.requires_grad_()
    sim.rollout(sim.reset(), U)[-1].x.sum().backward()
    return U.grad


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_build_close_cycles_reuse_kernels_and_keep_memory_flat():
    first = _sim()
    g0 = _grad(first)
    kernels = first._engine.k
    first.close()
    rss = []
    for i in range(30):
        sim = _sim()
        g = _grad(sim)
        if i == 0:
            assert sim._engine.k is kernels, "the pooled kernels were not reused"
        sim.close()
        torch.testing.assert_close(g, g0, rtol=0, atol=0)  # bitwise: same kernels, same inputs
        rss.append(_rss_mib())
    assert rss[-1] - rss[4] < 4.0, f"resident memory grew by {rss[-1] - rss[4]:.1f} MiB"


def test_pool_keys_on_the_configuration(close_after):
    a = _sim()
    _grad(a)
    ka = a._engine.k
    a.close()
    b = _sim(grid_res=24)  # another grid: other kernels
    close_after(b)
    _grad(b)
    assert b._engine.k is not ka


def test_pool_budget_frees_the_oldest():
    pool = ds.runtime.KernelPool(budget_mb=1.0)
    freed = []
    pool.give("a", object(), 600 * 1024, lambda: freed.append("a"))
    pool.give("b", object(), 600 * 1024, lambda: freed.append("b"))
    assert freed == ["a"] and len(pool) == 1
    assert pool.take("a") is None and pool.take("b") is not None and len(pool) == 0


def test_forward_only_rollout_keeps_one_control_step(close_after):
    """Without gradients and without room in memory_budget_mb for a gradient segment,
    the engine holds the substeps of one control step, not of the whole rollout."""
    sim = _sim(memory_budget_mb=1e-3)
    close_after(sim)
    with torch.no_grad():
        out = sim.rollout(sim.reset(), torch.zeros(20, sim.action_dim))
    assert sim._engine.k.capacity == sim.substeps + 1
    ref = _sim()
    close_after(ref)
    with torch.no_grad():
        want = ref.rollout(ref.reset(), torch.zeros(20, sim.action_dim), segment=20)
    torch.testing.assert_close(out[-1].x, want[-1].x, rtol=0, atol=0)
