"""Touching a mesh object: a torus (a ``ds.Mesh``) pressed into a tactile pad.

No analytic shape makes a ring: the torus's signed distance is baked once on a grid
(``diffsim/tactile/gridsdf.py``) and sampled in the contact kernels like the analytic
ones, so the readings and their gradients work as for a ball. The script presses the
torus into the pad, prints the normal force and the pressure map (a ring), and the
gradient of the final normal force with respect to the pressing speed (``ds.solve`` with
``ds.CheckpointAdjoint``), checked against a finite difference.

    python examples/tactile/mesh_object.py --steps 4 --resolution 0.001 --out diffsim-out/torus
"""

import argparse
import json
from pathlib import Path

import torch
import trimesh

import diffsim as ds

THICK = 0.003          # pad thickness (m)


def build(resolution, arch=None):
    ds.init(arch=arch, precision="f64")
    torus = trimesh.creation.torus(major_radius=0.004, minor_radius=0.0015,
                                   major_sections=48, minor_sections=24)
    torus.apply_translation((0.0, 0.0, THICK + 0.0015))      # resting on the pad (z up)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, 0.0))
    scene.add_tool(ds.Mesh.from_trimesh(torus, name="torus"), friction=0.5, name="torus")
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.014, 0.014, THICK), resolution),
                              material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(5, 5), camera=ds.TactileCamera(resolution=(32, 24)),
                              pressure_res=(14, 14))
    return ds.Tactile(scene, sensors=[sensor], dt=1e-2, newton_tol=1e-9, cg_tol=1e-9)


def final_force(sim, speed, steps):
    """Normal force (N) after pressing the torus down at ``speed`` (m/s) for ``steps``."""
    U = torch.zeros(steps, sim.action_dim, dtype=torch.float64)
    U[:, 8] = -speed
    sol = ds.solve(ds.SimulationProblem(sim, controls=U),
                   sensealg=ds.CheckpointAdjoint(segment=steps))
    return -sim.read(sol.u[-1], image=False).force[2], sol.u[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--resolution", type=float, default=0.001, help="pad cell size (m)")
    ap.add_argument("--speed", type=float, default=0.01, help="pressing speed (m/s)")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default=None, help="folder for the reading (JSON) and image")
    args = ap.parse_args(argv)
    sim = build(args.resolution, args.arch)
    grid = sim.objects[0].geom
    print(f"{sim}\ntorus grid SDF: {grid.shape} nodes at {grid.spacing * 1e3:.3g} mm")
    speed = torch.tensor(args.speed, dtype=torch.float64, requires_grad=True)
    force, end = final_force(sim, speed, args.steps)
    force.backward()
    with torch.no_grad():
        eps = 1e-4 * args.speed
        fd = (final_force(sim, args.speed + eps, args.steps)[0]
              - final_force(sim, args.speed - eps, args.steps)[0]) / (2 * eps)
    depth = args.speed * args.steps * sim.control_dt
    print(f"pressed {depth * 1e3:.2f} mm: normal force {float(force.detach()):.4f} N")
    print(f"d force / d speed: {float(speed.grad):.5g} N s/m (finite difference "
          f"{float(fd):.5g})")
    r = sim.read(end)
    p = r.pressure.detach()
    print("pressure map (kPa):")
    for row in p.flip(0):
        print(" ".join(f"{float(v) / 1e3:5.1f}".replace("-0.0", " 0.0") for v in row))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "reading.json").write_text(json.dumps({
            "force": r.force.tolist(), "pressure_pa": p.tolist(),
            "dforce_dspeed": float(speed.grad), "finite_difference": float(fd)}, indent=1))
        try:
            import matplotlib.pyplot as plt

            plt.imsave(out / "image.png", r.image.detach().clamp(0, 1).numpy())
        except ImportError:
            pass
    sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
