"""``sim.step`` repeated T times gives bitwise the states of one ``sim.rollout`` of T steps.

``diffsim solve`` optimises with rollouts and replays the result through ``env.step``; a
plan on the edge of a slip (Flip-v1: a pinched page) turned 1e-8 m of different rounding
of the tool poses into another outcome (objective 3.3 optimised, 496 replayed). Checked
in float32 (what users run, in a child process) and float64 (this process; slow), for MPM in 2D
(tool angles) and 3D (quaternions) and for the shell simulator, with tools that move and
turn.
"""

import pytest
import torch
from precision import in_precision

import diffsim as ds

T = 5


def _scene(kind: str):
    if kind == "mpm2":
        scene = ds.Scene(dim=2)
        scene.add_particles(ds.Box(lo=(0.4, 0.3), hi=(0.5, 0.4)), ds.Plasticine(E=2e3, nu=0.3,
                            yield_stress=20.0), name="block")
        scene.add_tool(ds.Box(lo=(0.52, 0.3), hi=(0.56, 0.4)), friction=0.3, name="pusher")
        return ds.MPM(scene, grid_res=24, dt=1e-3, substeps=4)
    if kind == "mpm3":
        scene = ds.Scene(dim=3)
        scene.add_particles(ds.Box(lo=(0.4, 0.3, 0.4), hi=(0.5, 0.4, 0.5)), ds.Elastic(E=2e3, nu=0.3),
                            name="block")
        scene.add_tool(ds.Box(lo=(0.52, 0.3, 0.4), hi=(0.56, 0.4, 0.5)), friction=0.3,
                       name="pusher")
        return ds.MPM(scene, grid_res=12, dt=1e-3, substeps=4)
    scene = ds.Scene(dim=3)
    mat = ds.ShellMaterial(E=1e6, nu=0.3, thickness=5e-4, density=500.0, bending_stiffness=1e-3)
    scene.add_shell(ds.Rectangle(center=(0.1, 0.2, 0.0), size=(0.2, 0.04)), mat, resolution=0.02,
                    fixed=lambda x: x[:, 0] < 0.02 + 1e-9)
    scene.add_tool(ds.Sphere(center=(0.17, 0.221, 0.0), radius=0.02), friction=0.5, name="finger")
    return ds.Shell(scene, dt=1e-2, substeps=2)


def _step_vs_rollout(kind: str) -> dict:
    """``name -> max |difference|`` between the state after T ``step`` calls and after one
    rollout of the same T controls (random, turning the tools too)."""
    sim = _scene(kind)
    try:
        g = torch.Generator().manual_seed(0)
        U = (torch.rand(T, sim.action_dim, generator=g, dtype=torch.float64) - 0.5).to(sim.dtype)
        start = sim.reset()
        with torch.no_grad():
            rolled = sim.rollout(start, U)[-1]
            stepped = start
            for u in U:
                stepped = sim.step(stepped, u)
        assert stepped.step == rolled.step == T
        return {n: float((stepped[n].double() - rolled[n].double()).abs().max())
                for n in rolled.keys() if rolled[n].is_floating_point() and rolled[n].numel()}
    finally:
        sim.close()


KINDS = ("mpm2", "mpm3", "shell")


@pytest.fixture(scope="module")
def float32_results():
    return dict(zip(KINDS, in_precision("f32", [(_step_vs_rollout, (k,)) for k in KINDS])))


@pytest.mark.parametrize("kind", KINDS)
def test_steps_give_bitwise_the_rollout_in_float32(kind, float32_results):
    diff = float32_results[kind]
    assert {"x", "v", "tool_pos", "tool_rot"} <= set(diff)
    assert all(d == 0.0 for d in diff.values()), diff


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_steps_give_bitwise_the_rollout_in_float64(kind):
    diff = _step_vs_rollout(kind)
    assert all(d == 0.0 for d in diff.values()), diff
