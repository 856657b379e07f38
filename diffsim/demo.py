"""The main demo: push a jelly blob to a target by gradient descent through the simulator.

A 2D scene: a neo-Hookean jelly block rests on a frictional floor; a kinematic
paddle behind it is driven by per-step velocities (vx, vy, angular). The loss
is the squared distance of the jelly's centre of mass to a target at the final
step, plus a small penalty on the final speed (so it arrives, not passes).
The controls of every step (``steps x 3`` numbers) are optimised with Adam on
exact gradients from ``ds.solve`` + ``CheckpointAdjoint``.

Writes to ``--out`` (default ``diffsim-out/demo``): ``before_after.gif`` (the
initial and the optimised rollouts side by side), ``loss.png``,
``controls.npz`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import runtime
from .adjoint import CheckpointAdjoint
from .dispatch import solve
from .materials import NeoHookean
from .mpm import MPM
from .problem import SimulationProblem
from .scene import Scene
from .shapes import Box

TARGET = (0.72, 0.1)


def build_sim(grid_res: int = 64) -> MPM:
    """The default scene: jelly block, paddle, frictional floor (unit square, y up)."""
    scene = Scene(dim=2, walls="friction", wall_friction=0.4)
    scene.add_particles(Box(lo=(0.16, 0.05), hi=(0.28, 0.17)),
                        NeoHookean(E=5e3, nu=0.3, density=1e3), name="jelly")
    scene.add_tool(Box(lo=(0.10, 0.05), hi=(0.14, 0.22)), friction=0.5, name="paddle")
    return MPM(scene, grid_res=grid_res, dt=1e-3, substeps=4)


def initial_controls(steps: int) -> torch.Tensor:
    """A timid first guess: a short, slow push."""
    U = torch.zeros(steps, 3)
    U[: max(steps // 10, 1), 0] = 0.25
    return U


def optimize(sim: MPM, steps: int, iters: int, lr: float, segment: int = 50,
             progress: bool = True):
    """Run the gradient descent; returns (initial U, optimised U, loss history)."""
    from tqdm import tqdm

    target = torch.tensor(TARGET, dtype=sim.dtype)
    U0 = initial_controls(steps).to(sim.dtype)
    U = U0.clone().requires_grad_()
    opt = torch.optim.Adam([U], lr=lr)
    history = []
    bar = tqdm(range(iters), desc="optimising", disable=not progress)
    for _ in bar:
        sol = solve(SimulationProblem(sim, controls=U),
                    sensealg=CheckpointAdjoint(segment=min(segment, steps)))
        end = sol.u[-1]
        com, vel = end.x.mean(0), end.v.mean(0)
        loss = ((com - target) ** 2).sum() + 0.01 * (vel ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            U.clamp_(-3.0, 3.0)  # paddle speed limit (m/s, rad/s)
        history.append(loss.item())
        bar.set_postfix(loss=f"{history[-1]:.5f}", x=f"{float(com[0]):.3f}")
    return U0, U.detach(), history


def rollout_frames(sim: MPM, U: torch.Tensor, every: int):
    with torch.no_grad():
        return sim.rollout(sim.reset(), U, saveat=range(0, len(U) + 1, every))


def run(steps: int = 300, iters: int = 40, lr: float = 0.05, out: str = "diffsim-out/demo",
        arch: str | None = None, precision: str = "f32", grid_res: int = 64,
        frames: int = 50, progress: bool = True) -> dict:
    """Run the demo end to end and write its outputs; returns the summary dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import animate_rollouts

    if runtime.config() is None:
        runtime.init(arch=arch, precision=precision)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sim = build_sim(grid_res)
    try:
        U0, U, history = optimize(sim, steps, iters, lr, progress=progress)
        every = max(steps // frames, 1)
        before, after = rollout_frames(sim, U0, every), rollout_frames(sim, U, every)
        animate_rollouts(sim, {"before": before, "after": after}, out_dir / "before_after.gif",
                         target=TARGET, fps=15)
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.semilogy(np.arange(1, len(history) + 1), history)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_title("jelly to target: loss")
        fig.tight_layout()
        fig.savefig(out_dir / "loss.png", dpi=120)
        plt.close(fig)
        np.savez(out_dir / "controls.npz", initial=U0.numpy(), optimized=U.numpy())
        summary = {
            "steps": steps, "substeps_per_step": sim.substeps, "iterations": iters,
            "particles": sim.n_particles, "loss_initial": history[0], "loss_final": history[-1],
            "final_com": after[-1].x.mean(0).tolist(), "target": list(TARGET),
            "seconds": time.perf_counter() - t0, "arch": runtime.config().arch,
            "outputs": [str(out_dir / n) for n in ("before_after.gif", "loss.png",
                                                   "controls.npz", "summary.json")],
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        sim.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="diffsim demo", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="control steps per rollout")
    ap.add_argument("--iters", type=int, default=40, help="gradient-descent iterations")
    ap.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    ap.add_argument("--out", default="diffsim-out/demo", help="output folder")
    ap.add_argument("--arch", default=None, help="cpu, cuda, ... (default: DIFFSIM_ARCH/auto)")
    ap.add_argument("--precision", default="f32", choices=["f32", "f64"])
    ap.add_argument("--grid-res", type=int, default=64)
    ap.add_argument("--frames", type=int, default=50, help="frames per animation panel")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.iters < 1:
        ap.error("--steps and --iters must be >= 1")
    s = run(steps=args.steps, iters=args.iters, lr=args.lr, out=args.out, arch=args.arch,
            precision=args.precision, grid_res=args.grid_res, frames=args.frames)
    print(f"loss {s['loss_initial']:.5f} -> {s['loss_final']:.5f}; jelly centre "
          f"{np.round(s['final_com'], 3).tolist()} vs target {list(TARGET)}; "
          f"{s['seconds']:.0f} s on {s['arch']}")
    print("wrote " + ", ".join(s["outputs"]))
    return 0
