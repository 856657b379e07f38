"""Float32 shell gradients against float64 (the float32 tier; see ``precision.py``).

The cases are those of ``test_shell_gradients.py`` (exact there by finite differences in
float64), with the same solver settings (the tolerances below float32's resolution are
floored by the solver): the tiny plastic flap and the three-sheet scene with
self-contact (implicit and explicit), slow (a minute or more of compilation each).
"""

import pytest
import test_shell_gradients as base
import torch
from precision import assert_grads_close, compare_in_precisions

import diffsim as ds

F64 = torch.float64


def flap_grads():
    """``test_tiny_plastic_flap_gradients``: a pinned plastic flap pressed and dragged by a
    finger; gradients w.r.t. the controls, bending stiffness, friction and rest angles."""
    scene = ds.Scene(dim=3)
    plastic = ds.ShellMaterial(E=2e4, nu=0.3, thickness=1e-3, density=500.0,
                               bending_stiffness=2e-4, bending_plasticity=1.0)
    scene.add_shell(ds.Rectangle(center=(0.2, 0.2, 0.5), size=(0.1, 0.06)), plastic,
                    resolution=0.035, fixed=lambda x: x[:, 0] < 0.15 + 1e-9,
                    damping=(0.0, 0.005), velocity=(0.0, -1.0, 0.0), name="flap")
    scene.add_tool(ds.Sphere(center=(0.23, 0.17, 0.5), radius=0.02), friction=0.4,
                   name="finger")
    sim = ds.Shell(scene, dt=1.5e-2, substeps=1, contact_stiffness=2e3, newton_tol=1e-13,
                   cg_tol=1e-11, adjoint_tol=1e-13, max_cg=10000)
    try:
        s0 = sim.reset()
        g = torch.Generator().manual_seed(0)
        wx = torch.randn(sim.n_nodes, 3, generator=g, dtype=F64)
        wr = torch.randn(sim.n_hinges, generator=g, dtype=F64)
        U = torch.zeros(2, sim.action_dim, dtype=F64)
        U[:, 0], U[:, 1] = 0.2, 0.5
        U.requires_grad_()
        P = {"flap.bending_stiffness": torch.tensor(2e-4, dtype=F64, requires_grad=True),
             "finger.friction": torch.tensor(0.4, dtype=F64, requires_grad=True)}
        r0 = s0.rest_angle.double().requires_grad_()
        prob = ds.SimulationProblem(sim, controls=U, params=P, state0=s0.replace(rest_angle=r0))
        end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2)).u[-1]
        ((end.x * wx).sum() + (end.rest_angle * wr).sum()).backward()
        return {"U": U.grad, **{k: v.grad for k, v in P.items()}, "rest_angle0": r0.grad}
    finally:
        sim.close()


def sheets_grads(integrator):
    """``test_shell_gradients``'s three-sheet scene: a plastic flap, two stacked sheets in
    self-contact pressed and dragged by a spinning finger; every parameter and state."""
    opts = (dict(dt=1.5e-2, substeps=1, newton_tol=1e-13, cg_tol=1e-11, adjoint_tol=1e-13,
                 max_cg=10000) if integrator == "implicit" else
            dict(dt=2.5e-4, substeps=20, integrator="explicit"))
    sim = ds.Shell(base._scene(), contact_stiffness=2e3, self_contact=0.012, **opts)
    try:
        s0 = sim.reset()
        s0 = s0.replace(tool_pos=s0.tool_pos - torch.tensor([[0.0, 0.0145, 0.0]],
                                                            dtype=s0.tool_pos.dtype))
        g = torch.Generator().manual_seed(0)
        n = sim.n_nodes
        wx = torch.randn(n, 3, generator=g, dtype=F64)
        wv = torch.randn(n, 3, generator=g, dtype=F64) * 0.1
        wr = torch.randn(sim.n_hinges, generator=g, dtype=F64)
        U = base._controls(sim).requires_grad_()
        # the explicit steps do not bring the lower sheet onto the ground (its friction's
        # gradient is exactly zero in float64 too)
        names = [k for k in base.PARAMS if integrator == "implicit" or k != "ground.friction"]
        P = {k: torch.tensor(base.PARAMS[k], dtype=F64, requires_grad=True) for k in names}
        x0, v0, r0 = (s0.x.double().requires_grad_(), s0.v.double().requires_grad_(),
                      s0.rest_angle.double().requires_grad_())
        prob = ds.SimulationProblem(sim, controls=U, params=P,
                                    state0=s0.replace(x=x0, v=v0, rest_angle=r0))
        end = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=2)).u[-1]
        ((end.x * wx).sum() + (end.v * wv).sum() + (end.rest_angle * wr).sum()).backward()
        return {"U": U.grad, **{k: v.grad for k, v in P.items()}, "x0": x0.grad,
                "v0": v0.grad, "rest_angle0": r0.grad}
    finally:
        sim.close()


CASES = {"tiny-plastic-flap": (flap_grads, ()),
         "sheets-implicit": (sheets_grads, ("implicit",)),
         "sheets-explicit": (sheets_grads, ("explicit",))}


#: looser bound, measured (2-core x86 CPU, 2026-12-06): the explicit sheets' gradient
#: w.r.t. the upper sheet's Poisson ratio (a scalar) is 3.2% off in float32, likely
#: because 20 explicit substeps per step each add a small nu-sensitivity of membrane
#: forces that are nearly balanced at rest, and their float32 rounding accumulates.
REL_MAX = {"sheets-explicit": 5e-2}


@pytest.mark.slow
def test_float32_gradients_match_float64():
    for case, (got, want) in compare_in_precisions(CASES).items():
        assert_grads_close(got, want, rel_max=REL_MAX.get(case, 1e-2), what=case)
