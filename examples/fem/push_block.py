"""Push a soft block to a target with a tool: trajectory optimization through ds.FEM.

A 2D stable neo-Hookean block rests on the ground (Coulomb friction); a round tool pushes
it. The tool's velocities over T control steps are optimized with Adam on the gradient
of ``|block centre - target|^2`` (implicit steps, adjoint of each Newton solve).

    python examples/fem/push_block.py --steps 40 --iters 20 --out diffsim-out/push_block
"""

import argparse
import json
from pathlib import Path

import torch

import diffsim as ds


def build(arch=None):
    ds.init(arch=arch, precision="f64")
    scene = ds.Scene(dim=2)
    scene.add_soft_body(ds.Box(lo=(0.3, 0.0), hi=(0.4, 0.06)),
                        ds.StableNeoHookean(E=5e4, nu=0.3, density=500.0), resolution=0.02,
                        damping=(1.0, 0.0), name="block")
    scene.add_ground(height=0.0, friction=0.4)
    scene.add_tool(ds.Sphere(center=(0.25, 0.03), radius=0.025), friction=0.2, name="pusher")
    return ds.FEM(scene, dt=1e-2, substeps=2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="control steps (0.02 s each)")
    ap.add_argument("--iters", type=int, default=20, help="Adam iterations")
    ap.add_argument("--target", type=float, default=0.45, help="target x of the block centre")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/push_block")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = build(args.arch)
    s0 = sim.reset()
    U = torch.zeros(args.steps, sim.action_dim, dtype=torch.float64)
    U[:, 0] = 0.3
    U.requires_grad_()
    opt = torch.optim.Adam([U], lr=0.05)
    losses = []
    for it in range(args.iters):
        opt.zero_grad()
        sol = ds.solve(ds.SimulationProblem(sim, controls=U), sensealg=ds.CheckpointAdjoint(16))
        centre = sol.u[-1].x.mean(0)
        loss = (centre[0] - args.target) ** 2 + 0.1 * (U ** 2).mean() * 1e-2
        loss.backward()
        opt.step()
        losses.append(loss.item())
        print(f"iter {it:3d} loss {loss.item():.3e} centre x {centre[0].item():.4f}")
    with torch.no_grad():
        states = sim.rollout(s0, U, saveat=range(0, args.steps + 1, max(1, args.steps // 4)))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
    a1.semilogy(losses), a1.set_xlabel("Adam iteration"), a1.set_ylabel("loss")
    for st in states:
        x = st.x.numpy()
        a2.triplot(x[:, 0], x[:, 1], sim.elements, lw=0.4)
        a2.add_patch(plt.Circle(tuple(st.tool_pos[0].numpy()), 0.025, fill=False))
    a2.axvline(args.target, ls="--", c="k"), a2.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "push_block.png", dpi=110)
    summary = {"steps": args.steps, "iterations": args.iters, "loss_first": losses[0],
               "loss_final": losses[-1], "solver": sim.solver_stats()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"final loss {losses[-1]:.3e} (first {losses[0]:.3e}); wrote {out / 'push_block.png'}")
    sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
