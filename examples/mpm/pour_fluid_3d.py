"""Water poured from a tilted cup (a mesh collider) onto the floor, in 3D.

The cup (assets/meshes/cup.obj) is a static collider tipped over by 110 degrees;
the water starts inside it and flows out under gravity. Saves snapshots
(``pour.png``) and the particle trajectory (``pour.npz``) to ``--out``.

    python examples/mpm/pour_fluid_3d.py --steps 80 --out diffsim-out/pour
"""

import argparse
from pathlib import Path

import numpy as np
import torch

import diffsim as ds


def build(grid_res: int) -> ds.MPM:
    scene = ds.Scene(dim=3, walls="slip")
    cup = ds.Mesh.from_file("assets/meshes/cup.obj", scale=0.3, rotate_deg=(0, 0, -110),
                            translate=(0.55, 0.55, 0.5))
    scene.add_collider(cup, friction=0.2, name="cup")
    # water fills the cup's cavity: the inside of the cup's outer volume, minus the wall
    lo, hi = cup.bounds()
    c = 0.5 * (lo + hi)
    scene.add_particles(ds.Sphere(center=tuple(c + np.array([-0.02, -0.02, 0.0])), radius=0.075),
                        ds.Fluid(bulk_modulus=2e4, viscosity=1e-3, density=1e3), name="water")
    return ds.MPM(scene, grid_res=grid_res, dt=4e-4, substeps=10)


def snapshot(states, path, mesh=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3.2 * len(states), 3.2))
    for i, st in enumerate(states):
        ax = fig.add_subplot(1, len(states), i + 1, projection="3d")
        x = st.x.numpy()
        if mesh is not None:  # the collider, drawn faintly (y is up: plot (x, z, y))
            v = mesh.vertices
            ax.plot_trisurf(v[:, 0], v[:, 2], v[:, 1], triangles=mesh.faces, color="0.6",
                            alpha=0.25, linewidth=0)
        ax.scatter(x[:, 0], x[:, 2], x[:, 1], s=1, c=x[:, 1], cmap="Blues_r")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.set_zlim(0, 1)
        ax.set_title(f"t = {st.time:.2f} s", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--grid-res", type=int, default=48)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/pour")
    args = ap.parse_args(argv)
    ds.init(arch=args.arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with build(args.grid_res) as sim:
        every = max(args.steps // 4, 1)
        with torch.no_grad():
            states = sim.rollout(sim.reset(), torch.zeros(args.steps, 0),
                                 saveat=range(0, args.steps + 1, every))
        spilled = float((states[-1].x[:, 1] < states[0].x[:, 1].min()).float().mean())
        snapshot(states, out / "pour.png", mesh=sim.scene.colliders[0].shape.mesh)
        np.savez(out / "pour.npz", x=np.stack([s.x.numpy() for s in states]),
                 t=np.array([s.time for s in states]))
        print(f"{sim.n_particles} particles; {100 * spilled:.0f}% of the water left the cup "
              f"after {states[-1].time:.2f} s; wrote {out / 'pour.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
