"""A cylinder presses into a plasticine block and lifts off: the dent stays.

3D, no gravity, a sticky floor; the same press on an elastic block springs
back. Prints the dent depth of both (the surface under the stamp relative to
the surface around it) and saves cross sections (``press.png``) to ``--out``.

    python examples/mpm/plasticine_press.py --steps 60 --out diffsim-out/press
"""

import argparse
from pathlib import Path

import numpy as np
import torch

import diffsim as ds


def press(material, steps: int, grid_res: int):
    scene = ds.Scene(dim=3, walls="sticky", gravity=(0.0, 0.0, 0.0))
    floor = 3 / grid_res
    scene.add_particles(ds.Box(lo=(0.3, floor, 0.3), hi=(0.7, floor + 0.2, 0.7)), material,
                        name="block")
    scene.add_tool(ds.Cylinder(center=(0.5, floor + 0.25, 0.5), radius=0.06, height=0.1),
                   name="stamp", contact_width=0.0)
    sim = ds.MPM(scene, grid_res=grid_res, dt=5e-4, substeps=10)
    U = torch.zeros(3 * steps, sim.action_dim)
    U[:steps, 1] = -0.035 / (steps * sim.control_dt)   # 3.5 cm down, then up, then rest
    U[steps:2 * steps, 1] = -U[0, 1]
    with torch.no_grad():
        states = sim.rollout(sim.reset(), U, saveat=[0, *range(2 * steps, 3 * steps + 1)])
    # the dent is the depth of the surface under the stamp below the surface around it
    # (a ring 12-16 cm from the axis), averaged over the rest phase while the block rings
    r = np.linalg.norm(states[0].x.numpy()[:, [0, 2]] - 0.5, axis=1)
    under, ring = r < 0.03, (r > 0.12) & (r < 0.16)
    dent = np.mean([st.x.numpy()[ring, 1].max() - st.x.numpy()[under, 1].max()
                    for st in states[1:]])
    sim.close()
    return dent, states


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="steps down (then as many up, rest)")
    ap.add_argument("--grid-res", type=int, default=40)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/press")
    args = ap.parse_args(argv)
    ds.init(arch=args.arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for ax, (name, mat) in zip(axes, [
            ("plasticine", ds.Plasticine(E=5e4, nu=0.4, yield_stress=300.0)),
            ("elastic", ds.Elastic(E=5e4, nu=0.4))]):
        dent, states = press(mat, args.steps, args.grid_res)
        x = states[-1].x.numpy()
        sl = np.abs(x[:, 2] - 0.5) < 0.02
        ax.scatter(x[sl, 0], x[sl, 1], s=3)
        ax.set_aspect("equal"), ax.set_xlim(0.25, 0.75), ax.set_ylim(0, 0.35)
        ax.set_title(f"{name}: dent {1000 * dent:.1f} mm", fontsize=10)
        print(f"{name}: permanent dent {1000 * dent:.1f} mm")
    fig.tight_layout()
    fig.savefig(out / "press.png", dpi=110)
    print(f"wrote {out / 'press.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
