"""Bad input gets a clear error naming the argument; blow-ups raise SimulationError."""

import pytest
import torch

import diffsim as ds


@pytest.mark.parametrize("make, match", [
    (lambda: ds.Elastic(E=0.0), "E=0.0"),
    (lambda: ds.Elastic(E=-5.0), "E=-5.0"),
    (lambda: ds.NeoHookean(nu=0.5), r"nu=0.5 .*\(-1, 0.5\)"),
    (lambda: ds.NeoHookean(nu=-1.2), "nu=-1.2"),
    (lambda: ds.Plasticine(yield_stress=0.0), "yield_stress"),
    (lambda: ds.Fluid(viscosity=-1.0), "viscosity=-1.0"),
    (lambda: ds.Fluid(bulk_modulus=float("nan")), "bulk_modulus"),
    (lambda: ds.Sand(friction_angle=95.0), r"friction_angle=95.0 .*\(0, 90\)"),
    (lambda: ds.Snow(critical_compression=1.5), "critical_compression"),
    (lambda: ds.Elastic(density=0.0), "density"),
])
def test_invalid_material_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_invalid_shapes_and_scene_arguments():
    with pytest.raises(ValueError, match="hi=.*must exceed lo"):
        ds.Box(lo=(0.5, 0.5), hi=(0.4, 0.6))
    with pytest.raises(ValueError, match="radius=-1"):
        ds.Sphere(center=(0.5, 0.5), radius=-1)
    with pytest.raises(ValueError, match="dim=4"):
        ds.Scene(dim=4)
    with pytest.raises(ValueError, match="walls='glue'"):
        ds.Scene(dim=2, walls="glue")
    scene = ds.Scene(dim=2)
    with pytest.raises(ValueError, match="3D but the scene is 2D"):
        scene.add_particles(ds.Box(lo=(0, 0, 0), hi=(1, 1, 1)), ds.Elastic())
    with pytest.raises(TypeError, match="material must be a ds.Material"):
        scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), "rubber")
    scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.Elastic(), name="a")
    with pytest.raises(ValueError, match="name='a' is already used"):
        scene.add_tool(ds.Sphere(center=(0.2, 0.2), radius=0.05), name="a")
    with pytest.raises(ValueError, match="friction=-0.1"):
        scene.add_tool(ds.Sphere(center=(0.2, 0.2), radius=0.05), friction=-0.1)


def test_simulator_rejects_bad_construction():
    scene = ds.Scene(dim=2)
    with pytest.raises(ValueError, match="no particles"):
        ds.MPM(scene)
    scene.add_particles(ds.Box(lo=(0.0, 0.0), hi=(0.2, 0.2)), ds.Elastic(), name="edge")
    with pytest.raises(ValueError, match="body 'edge' reaches outside the simulation domain"):
        ds.MPM(scene, grid_res=32)
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.Elastic(E=1e6, density=1.0))
    with pytest.raises(ValueError, match=r"dt=0.001 s is above the stability bound .* dt <= dx / c"):
        ds.MPM(scene, grid_res=32, dt=1e-3)
    with pytest.raises(ValueError, match="grid_res=4"):
        ds.MPM(scene, grid_res=4)
    with pytest.raises(ValueError, match="substeps=0"):
        ds.MPM(scene, substeps=0)


@pytest.fixture(scope="module")
def sim():
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.3), hi=(0.5, 0.4)), ds.Elastic(E=1e3), name="jelly")
    scene.add_tool(ds.Sphere(center=(0.6, 0.35), radius=0.05), name="pusher")
    s = ds.MPM(scene, grid_res=32, dt=1e-3, substeps=4)
    yield s
    s.close()


def test_wrong_action_shape_and_non_finite_actions(sim):
    state = sim.reset()
    with pytest.raises(ValueError, match=r"action has shape \(2,\); expected \(action_dim,\) = \(3,\)"):
        sim.step(state, torch.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        sim.step(state, torch.tensor([float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"controls has shape \(5, 2\)"):
        ds.SimulationProblem(sim, controls=torch.zeros(5, 2))
    with pytest.raises(ValueError, match="inf"):
        ds.SimulationProblem(sim, controls=torch.full((5, 3), float("inf")))


def test_bad_parameters_and_saveat(sim):
    U = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="params has unknown name 'stiffness'"):
        ds.SimulationProblem(sim, controls=U, params={"stiffness": 1.0})
    with pytest.raises(ValueError, match="body 'jelly'.*E=-3.0"):
        ds.SimulationProblem(sim, controls=U, params={"jelly.E": torch.tensor(-3.0)})
    prob = ds.SimulationProblem(sim, controls=U)
    with pytest.raises(ValueError, match=r"saveat=\[7\] is not allowed: steps must lie in \[0, 3\]"):
        ds.solve(prob, saveat=[7])
    with pytest.raises(ValueError, match="segment=0"):
        ds.CheckpointAdjoint(segment=0)
    with pytest.raises(TypeError, match="takes no algorithm"):
        ds.solve(prob, "RK4")


def test_bad_state(sim):
    state = sim.reset()
    with pytest.raises(ValueError, match=r"State.x must keep shape"):
        state.x = torch.zeros(3, 2)
    bad = state.replace(v=torch.full_like(state.v, float("nan")))
    with pytest.raises(ValueError, match="state.v holds non-finite values"):
        sim.step(bad, torch.zeros(3))


def test_blow_up_raises_simulation_error_with_step_and_hint(sim):
    state = sim.reset()
    state = sim.step(state, torch.zeros(3))
    # a kick far above the CFL speed dx/dt = 31 m/s
    kicked = state.replace(v=state.v + torch.tensor([200.0, 0.0], dtype=state.v.dtype))
    with pytest.raises(ds.SimulationError) as err:
        sim.rollout(kicked, torch.zeros(5, 3))
    e = err.value
    assert e.step == kicked.step + 1
    assert "CFL" in str(e) and "reduce dt" in e.hint


def test_closed_simulator_refuses_work():
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.Elastic())
    sim = ds.MPM(scene, grid_res=32, dt=1e-4)
    sim.close()
    with pytest.raises(RuntimeError, match="closed"):
        sim.reset()
    sim.close()  # idempotent


def test_rollout_sensealg_is_the_segment_shorthand_and_refuses_others(sim, monkeypatch):
    """``sim.rollout(..., sensealg=ds.CheckpointAdjoint(segment=K))`` is ``segment=K``:
    the same states and gradients, bit for bit; giving both, or another family's
    sensealg, is an error naming them."""
    from diffsim import solvers as dss

    U = torch.zeros(5, 3, dtype=torch.float64)
    U[:, 0] = -0.2

    def run(**how):
        u = U.clone().requires_grad_(True)
        E = torch.tensor(1e3, dtype=torch.float64, requires_grad=True)
        end = sim.rollout(sim.reset(), u, params={"E": E}, saveat=[3, 5], **how)
        loss = sum((s.x[:, 0] ** 2).sum() for s in end)
        loss.backward()
        return [s.x.detach() for s in end], u.grad, E.grad

    asked = []   # the segment each rollout sizes its engine for: the sensealg's
    engine_for = sim._engine_for
    monkeypatch.setattr(sim, "_engine_for", lambda k, grad: asked.append(k) or engine_for(k, grad))
    short = run(segment=2)
    full = run(sensealg=ds.CheckpointAdjoint(segment=2))
    assert asked == [2, 2, 2, 2]   # forward and backward of each
    for a, b in zip(short[0] + list(short[1:]), full[0] + list(full[1:])):
        assert torch.equal(a, b)
    other = run(sensealg=ds.CheckpointAdjoint(segment=5))   # no recomputation: same numbers
    assert asked[-2:] == [5, 5]
    run()                                                     # neither: the simulator's default
    assert asked[-2:] == [sim.default_segment(5)] * 2
    run(segment=None, sensealg=None)
    assert asked[-2:] == [sim.default_segment(5)] * 2
    assert torch.allclose(other[1], full[1], rtol=1e-12, atol=0) and torch.allclose(other[2], full[2], rtol=1e-12)
    assert full[2] != 0 and full[1].abs().sum() > 0

    with pytest.raises(ValueError, match=r"segment=2 and sensealg=CheckpointAdjoint\(segment=3\): pass one"):
        sim.rollout(sim.reset(), U, segment=2, sensealg=ds.CheckpointAdjoint(segment=3))
    with pytest.raises(TypeError, match=r"BacksolveAdjoint\(.*\) differentiates ODE and SDE solves, not "
                                        r"simulator rollouts; use ds.CheckpointAdjoint\(segment=K\)"):
        sim.rollout(sim.reset(), U, sensealg=dss.BacksolveAdjoint())
    with pytest.raises(TypeError, match="differentiates ODE and SDE solves, not SimulationProblem"):
        ds.solve(ds.SimulationProblem(sim, controls=U), sensealg=dss.DirectAdjoint())
    with pytest.raises(TypeError, match="sensealg must be ds.CheckpointAdjoint"):
        ds.solve(ds.SimulationProblem(sim, controls=U), sensealg=4)


def test_a_nan_in_the_simulation_raises_simulation_error(sim):
    """The blow-up check sees NaN, not only overflow: the former ``v != v`` test was folded
    to False by Taichi's fast math, so a NaN position went on unnoticed into the loss."""
    sim.rollout(sim.reset(), torch.zeros(1, 3))
    engine = sim._engine_for(1, False)
    parts = engine.store_state(0)
    parts[0][0, 0] = float("nan")            # one particle's x (a NaN, not an overflow)
    engine.load_state(0, parts)               # the engine's loader does not validate
    with pytest.raises(ds.SimulationError, match="1 particle.* non-finite"):
        engine.check_step(0, 1)
