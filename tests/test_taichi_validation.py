"""Taichi's own check of the reverse-mode kernels (debug mode + Tape(validation=True)).

Taichi's autodiff is only correct when kernels obey its global data access rules
(no value overwritten that the backward pass needs). The kernels whose reverse
we take from Taichi - the per-particle stress stage, the grid update and the
trial deformation - run under ``ti.ad.Tape(..., validation=True)`` in debug mode,
in a fresh process (debug mode needs its own ``ti.init``).
"""

import subprocess
import sys
import textwrap

import pytest

CODE = textwrap.dedent('''
    import taichi as ti
    import torch
    import diffsim as ds
    ds.init(arch="cpu", precision="f64", debug=True)
    import sys
    cases = {"plasticine": (2, ds.Plasticine(E=2e3, nu=0.3, yield_stress=20.0)),
             "fluid": (2, ds.Fluid(bulk_modulus=2e3, viscosity=1.0)),
             "snow3d": (3, ds.Snow(E=2e3, nu=0.3))}
    for dim, material in (cases[name] for name in sys.argv[1:]):
        scene = ds.Scene(dim=dim)
        lo, hi = (0.4, 0.3, 0.4)[:dim], (0.5, 0.4, 0.5)[:dim]
        scene.add_particles(ds.Box(lo=lo, hi=hi), material, velocity=(0.5,) + (0.0,) * (dim - 1))
        scene.add_tool(ds.Sphere(center=(0.6, 0.35, 0.45)[:dim], radius=0.05), friction=0.3)
        sim = ds.MPM(scene, grid_res=16, dt=1e-3, substeps=2)
        eng = sim._engine_for(1, True)
        k = eng.k
        s0 = sim.reset()
        U = torch.zeros(1, sim.action_dim, dtype=torch.float64)
        U[:, 0] = -1.0
        from diffsim.tools import tool_trajectory
        drive, _ = tool_trajectory(sim.model, U, s0.tool_pos, s0.tool_rot)
        eng.set_params(sim.internal_params())
        eng.load_state(0, [s0[n] for n in ("x", "v", "C", "F", "Jp")])
        eng.load_drive(drive)
        loss = ti.field(ti.f64, shape=(), needs_grad=True)

        @ti.kernel
        def objective():
            for p in range(k.n_particles):
                loss[None] += k.affine[p].sum() + k.F[1, p].sum()
            for I in ti.grouped(k.grid_v_out):
                loss[None] += k.grid_v_out[I].sum()

        k.recompute_grid(0)          # builds the grid and the SVD scratch
        with ti.ad.Tape(loss=loss, validation=True):
            if k.needs_svd:
                k.trial_F(0)
            k.stress(0)
            k.grid(0)
            objective()
        sim.close()
    print("validated")
''')


# 2D cases only by default: debug-mode compilation of the 3D reverse kernels takes
# tens of minutes on 2 cores (run the script with "snow3d" to check 3D).
@pytest.mark.slow
@pytest.mark.parametrize("case", ["plasticine", "fluid"])
def test_reverse_kernels_pass_taichi_validation(tmp_path, case):
    script = tmp_path / "validate.py"  # Taichi reads kernel source from files
    script.write_text(CODE)
    out = subprocess.run([sys.executable, str(script), case], capture_output=True, text=True,
                         timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "validated" in out.stdout
