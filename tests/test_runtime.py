"""Runtime: lazy/explicit init, arch selection, silence, determinism, coexisting simulators."""

import os
import subprocess
import sys

import pytest
import torch

import diffsim as ds
from diffsim import runtime

PY = sys.executable


def _run_py(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_import_and_init_print_nothing_and_do_not_init_taichi():
    code = ("import diffsim as ds, diffsim.runtime as rt\n"
            "assert rt.config() is None, 'import must not initialise Taichi'\n"
            "cfg = ds.init(arch='cpu')\n"
            "import sys; sys.stderr.write(repr(cfg))\n")
    out = _run_py(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", f"library printed: {out.stdout!r}"
    assert "deterministic=True" in out.stderr  # CPU default: bitwise reproducible


def test_environment_variable_selects_the_arch_lazily():
    code = ("import diffsim as ds, diffsim.runtime as rt, torch\n"
            "scene = ds.Scene(dim=2)\n"
            "scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.Elastic())\n"
            "sim = ds.MPM(scene, grid_res=16, dt=1e-4)\n"
            "print(rt.config().arch, rt.config().precision)\n")
    out = _run_py(code, DIFFSIM_ARCH="cpu")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["x64", "f32"]
    out = _run_py("import diffsim as ds; ds.init()", DIFFSIM_ARCH="tpu")
    assert out.returncode != 0 and "arch='tpu' is not supported" in out.stderr


def test_init_validates_and_refuses_to_reset_under_live_simulators(close_after):
    with pytest.raises(ValueError, match="precision='f16'"):
        ds.init(precision="f16")
    cfg = runtime.config()
    assert ds.init(arch="cpu", precision="f64", deterministic=True) is cfg  # same: no-op
    with pytest.raises(ValueError, match="optimize='fast'"):
        ds.init(optimize="fast")
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.Elastic())
    sim = ds.MPM(scene, grid_res=16, dt=1e-4)
    close_after(sim)
    with pytest.raises(RuntimeError, match="live simulator"):
        ds.init(arch="cpu", precision="f32")


def _pushed(seed_shift=0.0):
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.3), hi=(0.5, 0.4)), ds.Plasticine(E=2e3, nu=0.3),
                        jitter=0.5)
    scene.add_tool(ds.Box(lo=(0.55, 0.3), hi=(0.6, 0.4)), friction=0.5, name="pusher")
    return ds.MPM(scene, grid_res=32, dt=1e-3, substeps=5, seed=1)


def test_same_inputs_give_bitwise_identical_outputs_and_gradients(close_after):
    sim_a, sim_b = _pushed(), _pushed()
    close_after(sim_a)
    close_after(sim_b)
    results = []
    for sim in (sim_a, sim_a, sim_b):
        U = torch.zeros(15, sim.action_dim, dtype=torch.float64)
        U[:, 0] = -1.0
        U.requires_grad_()
        sol = ds.solve(ds.SimulationProblem(sim, controls=U),
                       sensealg=ds.CheckpointAdjoint(segment=4))
        loss = (sol.u[-1].x ** 2).sum() + sol.u[-1].F.sum()
        loss.backward()
        results.append((sol.u[-1].x.detach(), U.grad))
    for x, g in results[1:]:
        assert torch.equal(x, results[0][0])
        assert torch.equal(g, results[0][1])


def test_several_simulators_coexist_and_close_independently():
    sims = [_pushed() for _ in range(3)]
    live = runtime.live_count()
    states = [s.step(s.reset(), torch.zeros(s.action_dim)) for s in sims]
    sims[1].close()
    assert runtime.live_count() == live - 1
    # the others still run, and give the same result as before
    again = sims[0].step(sims[0].reset(), torch.zeros(sims[0].action_dim))
    assert torch.equal(again.x, states[0].x)
    assert torch.equal(sims[2].step(sims[2].reset(), torch.zeros(3)).x, states[2].x)
    for s in (sims[0], sims[2]):
        s.close()


def test_state_is_a_value():
    s = ds.State(1.0, 3, x=torch.zeros(2, 2))
    t = s.replace(x=torch.ones(2, 2), step=4)
    assert s.x.sum() == 0 and t.x.sum() == 4 and t.step == 4 and t.time == 1.0
    assert "x=(2, 2)" in repr(t)
    with pytest.raises(AttributeError, match="no field 'y'"):
        _ = s.y
