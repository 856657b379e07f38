"""Bad input to ds.FEM and ds.Shell gets a clear error naming the element or argument."""

import numpy as np
import pytest
import torch

import diffsim as ds


@pytest.mark.parametrize("make, match", [
    (lambda: ds.LinearElastic(E=-1.0), "E=-1.0"),
    (lambda: ds.StableNeoHookean(nu=0.5), r"nu=0.5 .*\(-1, 0.5\)"),
    (lambda: ds.ShellMaterial(thickness=0.0), "thickness=0.0"),
    (lambda: ds.ShellMaterial(membrane="linear"), "membrane='linear'"),
    (lambda: ds.ShellMaterial(bending_stiffness=-1.0), "bending_stiffness=-1.0"),
    (lambda: ds.ShellMaterial(bending_plasticity=0.0), "bending_plasticity=0.0"),
])
def test_material_parameters_out_of_range(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _tri(points, cells):
    return ds.VolumeMesh(np.asarray(points, float), np.asarray(cells))


def test_degenerate_inverted_and_bad_volume_meshes():
    scene = ds.Scene(dim=2)
    ok = [[0, 0], [1, 0], [0, 1], [1, 1]]
    with pytest.raises(ValueError, match=r"element 1 \(vertices \[1, 2, 3\]\) is inverted"):
        scene.add_soft_body(_tri(ok, [[0, 1, 2], [1, 2, 3]]), ds.LinearElastic())
    with pytest.raises(ValueError, match=r"element 1 .* is degenerate"):
        scene.add_soft_body(_tri([[0, 0], [1, 0], [0, 1], [2, 0]], [[0, 1, 2], [0, 1, 3]]),
                            ds.LinearElastic())
    with pytest.raises(ValueError, match="element 0 repeats a vertex"):
        scene.add_soft_body(_tri(ok, [[0, 0, 1]]), ds.LinearElastic())
    with pytest.raises(ValueError, match="element 0 refers to vertex 7"):
        scene.add_soft_body(_tri(ok, [[0, 1, 7]]), ds.LinearElastic())
    with pytest.raises(ValueError, match="vertex 3 belongs to no element"):
        scene.add_soft_body(_tri(ok, [[0, 1, 2]]), ds.LinearElastic())
    with pytest.raises(ValueError, match=r"cells has shape \(1, 4\)"):
        _tri(ok, [[0, 1, 2, 3]])
    tet = ds.VolumeMesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]]),
                        np.array([[0, 2, 1, 3]]))
    with pytest.raises(ValueError, match=r"element 0 .* is inverted"):
        ds.Scene(dim=3).add_soft_body(tet, ds.LinearElastic())


def test_non_manifold_and_bad_shell_meshes():
    scene = ds.Scene(dim=3)
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1], [0.5, 1, 0.5], [0.5, -1, 0.5]],
                 float)
    mat = ds.ShellMaterial()
    # three faces share edge (0, 3)
    with pytest.raises(ValueError, match=r"edge \(.*\) is used in the same direction by faces"):
        scene.add_shell(ds.TriMesh(v, np.array([[0, 1, 3], [0, 3, 2], [0, 3, 4], [3, 0, 5]])),
                        mat)
    # inconsistent orientation of two neighbours
    with pytest.raises(ValueError, match="inconsistently oriented"):
        scene.add_shell(ds.TriMesh(v, np.array([[0, 1, 3], [0, 2, 3]])), mat)
    # two sheets touching at one vertex (bow-tie)
    bow = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [-1, 0, 0], [0, 0, -1]], float)
    with pytest.raises(ValueError, match="vertex 0 is non-manifold"):
        scene.add_shell(ds.TriMesh(bow, np.array([[0, 1, 2], [0, 3, 4]])), mat)
    with pytest.raises(ValueError, match=r"face 0 .* is degenerate"):
        scene.add_shell(ds.TriMesh(v, np.array([[0, 1, 1]])), mat)
    with pytest.raises(ValueError, match="shells need a 3D scene"):
        ds.Scene(dim=2).add_shell(ds.Rectangle(center=(0, 0, 0), size=(1, 1)), mat,
                                  resolution=0.5)
    with pytest.raises(TypeError, match="ds.ShellMaterial"):
        scene.add_shell(ds.Rectangle(center=(0, 0, 0), size=(1, 1)), ds.LinearElastic(),
                        resolution=0.5)


def test_fixed_masks_that_pin_nothing_or_everything():
    scene = ds.Scene(dim=2)
    box = ds.Box(lo=(0.0, 0.0), hi=(0.2, 0.1))
    with pytest.raises(ValueError, match=r"fixed pins no node of soft body 'soft0' \(its nodes "
                                         r"span \[0.0, 0.0\]..\[0.2, 0.1\]\)"):
        scene.add_soft_body(box, ds.LinearElastic(), resolution=0.05, fixed=lambda x: x[:, 0] < -1)
    with pytest.raises(ValueError, match="fixed pins every node"):
        scene.add_soft_body(box, ds.LinearElastic(), resolution=0.05, fixed=lambda x: x[:, 0] > -1)
    with pytest.raises(ValueError, match=r"boolean array of shape \(15,\)"):
        scene.add_soft_body(box, ds.LinearElastic(), resolution=0.05, fixed=np.zeros(3, bool))
    with pytest.raises(ValueError, match="resolution=None"):
        scene.add_soft_body(box, ds.LinearElastic())
    with pytest.raises(ValueError, match="damping="):
        scene.add_soft_body(box, ds.LinearElastic(), resolution=0.05, damping=0.1)
    with pytest.raises(ValueError, match="damping beta=-1"):
        scene.add_soft_body(box, ds.LinearElastic(), resolution=0.05, damping=(0.0, -1))


def test_simulator_arguments_and_parameters(close_after):
    scene = ds.Scene(dim=2)
    with pytest.raises(ValueError, match="no soft body"):
        ds.FEM(scene)
    scene.add_soft_body(ds.Box(lo=(0.0, 0.0), hi=(0.2, 0.1)), ds.StableNeoHookean(E=1e6),
                        resolution=0.05, name="block")
    with pytest.raises(ValueError, match="integrator='rk4'"):
        ds.FEM(scene, integrator="rk4")
    with pytest.raises(ValueError, match=r"dt=0.01 s is above the stability bound .* h / c"):
        ds.FEM(scene, integrator="explicit", dt=1e-2)
    with pytest.raises(ValueError, match="newton_tol=0"):
        ds.FEM(scene, newton_tol=0)
    sim = ds.FEM(scene)
    close_after(sim)
    with pytest.raises(ValueError, match="params has unknown name 'block.yield_stress'"):
        sim.rollout(sim.reset(), torch.zeros(1, 0), params={"block.yield_stress": 1.0})
    with pytest.raises(ValueError, match=r"params for body 'block': nu=0.7"):
        sim.rollout(sim.reset(), torch.zeros(1, 0), params={"nu": 0.7})
    with pytest.raises(ValueError, match="damping_alpha=-1.0"):
        sim.rollout(sim.reset(), torch.zeros(1, 0), params={"damping_alpha": -1.0})
    bad = ds.State(x=torch.zeros(3, 2), v=torch.zeros(3, 2), tool_pos=torch.zeros(0, 2),
                   tool_rot=torch.zeros(0, 1))
    with pytest.raises(ValueError, match=r"state.x has shape \(3, 2\); this simulator needs"):
        sim.step(bad, torch.zeros(0))


def test_unsupported_obstacles_and_floating_equilibrium(close_after):
    scene = ds.Scene(dim=3)
    scene.add_soft_body(ds.Box(lo=(0.4, 0.4, 0.4), hi=(0.5, 0.5, 0.5)), ds.LinearElastic(),
                        resolution=0.05)
    scene.add_collider(ds.Mesh.from_file("assets/meshes/cup.obj", scale=0.1))
    with pytest.raises(TypeError, match="mesh colliders are not supported"):
        ds.FEM(scene)
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.LinearElastic(),
                        resolution=0.05)
    sim = ds.FEM(scene, max_newton=3)
    close_after(sim)
    with pytest.raises(ds.SimulationError, match="something holds the body"):
        sim.equilibrium()


def test_tetgen_mesher_gives_valid_tets():
    """mesher="tetgen" (optional package) meshes analytic shapes and ds.Mesh surfaces."""
    pytest.importorskip("tetgen")
    scene = ds.Scene(dim=3)
    scene.add_soft_body(ds.Sphere(center=(0.5, 0.5, 0.5), radius=0.1), ds.LinearElastic(),
                        resolution=0.04, mesher="tetgen", name="ball")
    scene.add_soft_body(ds.Mesh.from_file("assets/meshes/cup.obj", scale=0.1), ds.LinearElastic(),
                        resolution=0.03, mesher="tetgen", name="cup")
    for body in scene.soft_bodies:
        from diffsim.mesh import signed_volumes

        assert len(body.cells) > 50 and (signed_volumes(body.points, body.cells) > 0).all()
    vol = signed_volumes(scene.soft_bodies[0].points, scene.soft_bodies[0].cells).sum()
    assert abs(vol / (4 / 3 * np.pi * 0.1 ** 3) - 1) < 0.05
    with pytest.raises(ValueError, match="mesher='delaunay'"):
        scene.add_soft_body(ds.Sphere(center=(0.5, 0.5, 0.5), radius=0.1), ds.LinearElastic(),
                            resolution=0.04, mesher="delaunay")


def test_shell_simulator_arguments():
    scene = ds.Scene(dim=3)
    with pytest.raises(ValueError, match="no shell"):
        ds.Shell(scene)
    scene.add_shell(ds.Rectangle(center=(0.5, 0.5, 0.5), size=(0.1, 0.1)),
                    ds.ShellMaterial(E=1e6), resolution=0.05, damping=(0.0, 0.1), name="sheet")
    with pytest.raises(ValueError, match="self_contact=-0.01"):
        ds.Shell(scene, self_contact=-0.01)
    with pytest.raises(ValueError, match=r"above the stability bound of the explicit integrator"):
        ds.Shell(scene, integrator="explicit", dt=1e-2)
    with pytest.raises(ValueError, match=r"body 'sheet''s stiffness damping"):
        ds.Shell(scene, integrator="explicit", dt=2e-5)
    with pytest.raises(ValueError, match="resolution is required"):
        scene.add_shell(ds.Rectangle(center=(0.5, 0.5, 0.5), size=(0.1, 0.1)),
                        ds.ShellMaterial())
    with pytest.raises(ValueError, match=r"size=\(0.1, -1\)"):
        ds.Rectangle(center=(0, 0, 0), size=(0.1, -1))
    scene.add_tool(ds.Compound([ds.Sphere(center=(0.5, 0.6, 0.5), radius=0.01)]))
    with pytest.raises(TypeError, match="Compound"):
        ds.Shell(scene)


@pytest.mark.parametrize("integrator, stage", [
    ("implicit", "element_vjp (reverse)"),
    pytest.param("explicit", "element_forces (reverse)", marks=pytest.mark.slow)])
def test_nonfinite_gradient_names_the_stage_and_substep(close_after, monkeypatch, integrator,
                                                        stage):
    """A NaN injected into the reverse of one stage of one substep (the elastic adjoint
    of substep 3, in the first of two checkpoint segments) raises ``ds.GradientError``
    naming that stage, the substep, its control step and the poisoned field."""
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.3, 0.0), hi=(0.4, 0.05)), ds.StableNeoHookean(E=5e3),
                        resolution=0.025, velocity=(0.1, 0.0), name="block")
    scene.add_ground(height=0.0, friction=0.4)
    sim = ds.FEM(scene, dt=1e-2 if integrator == "implicit" else 1e-3, substeps=2,
                 integrator=integrator)
    close_after(sim)
    E = torch.tensor(5e3, dtype=sim.dtype, requires_grad=True)

    def loss():
        prob = ds.SimulationProblem(sim, controls=torch.zeros(3, 0), params={"E": E})
        return ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2)).u[-1].x.sum()

    loss().backward()                 # finite without the injection
    assert torch.isfinite(E.grad) and E.grad != 0
    k = sim._engine.k
    name = "element_vjp" if integrator == "implicit" else "element_forces_adjoint"
    adjoint = getattr(k, name)

    def poisoned(s):
        adjoint(s)
        if s == 3:                    # local substep 3 exists only in the first segment
            k.material.grad.fill(float("nan"))

    monkeypatch.setattr(k, name, poisoned)
    with pytest.raises(ds.GradientError, match="substep 3") as err:
        loss().backward()
    e = err.value
    assert (e.stage, e.substep, e.step) == (stage, 3, 1)
    assert set(e.fields) == {"material.grad"}
    assert stage in str(e) and "control step 1" in str(e)


def test_a_nan_in_the_simulation_raises_simulation_error(close_after):
    """As ``test_mpm_errors``: a NaN node position is a blow-up (``SimulationError``), not
    a value that reaches the loss (Taichi's fast math folded the former ``v != v`` test)."""
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.4, 0.4), hi=(0.5, 0.5)), ds.LinearElastic(),
                        resolution=0.05)
    sim = ds.FEM(scene)
    close_after(sim)
    sim.rollout(sim.reset(), torch.zeros(1, 0))
    engine = sim._engine_for(1, False)
    parts = engine.store_state(0)
    parts[0][0, 0] = float("nan")
    engine.load_state(0, parts)
    with pytest.raises(ds.SimulationError, match="1 node.* non-finite"):
        engine.check_step(0, 1)


def test_cg_reports_an_overflowed_iteration_as_a_breakdown():
    """A CG iteration whose residual overflowed (inf/NaN: float32, an exact Hessian near
    singular along the search direction) ends the solve as negative curvature does, so the
    Newton step and the adjoint solve fall back to the projected Hessian and start again
    from zero instead of carrying inf/NaN into the step."""
    from types import SimpleNamespace

    from diffsim.fem.engine import DeformableEngine, SolverOptions

    def engine(residuals):
        seq = iter(residuals)
        eng = DeformableEngine.__new__(DeformableEngine)
        eng.k = SimpleNamespace(cg=SimpleNamespace(start=lambda use_gradient: 1.0,
                                                   iterate=lambda parity: next(seq)))
        eng.opts, eng.eps = SolverOptions(max_cg=10), 1e-7
        return eng

    for bad in (float("nan"), float("inf")):
        assert engine([0.5, 0.25, bad, 1e-30]).cg(True, 1e-12) == (3, True), bad
    assert engine([0.5, 1e-20]).cg(True, 1e-6) == (2, False)     # converged: unchanged
