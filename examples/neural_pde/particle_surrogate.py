"""A learned particle simulator (GNS) of ``ds.MPM`` scenes: fluid, sand and elastic blocks
dropped into a box. Rollout error over time against MPM and speed-up, timed in one run.

    python examples/neural_pde/particle_surrogate.py --out out/particles          # ~20 min on 2 cores
    python examples/neural_pde/particle_surrogate.py --tiny --out /tmp/particles  # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffsim.solvers import nn as dnn
from diffsim.solvers import pde
from diffsim.solvers.pde.particles import ParticleData, load_particles


def mpm_seconds(spec: ParticleData, n: int, seed: int) -> float:
    """Wall time of ``n`` MPM trajectories on one simulator (built and compiled first, untimed)."""
    sim = spec.simulator()
    try:
        spec.rollouts(sim, [10_000], seed)  # compiles the kernels of this instance
        t0 = time.perf_counter()
        spec.rollouts(sim, list(range(n)), seed)
        return time.perf_counter() - t0
    finally:
        sim.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/particles")
    ap.add_argument("--material", default="mixed", choices=["fluid", "sand", "elastic", "mixed"])
    ap.add_argument("--nt", type=int, default=60)
    ap.add_argument("--n-train", type=int, default=24)
    ap.add_argument("--n-test", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--message-steps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--noise-std", type=float, default=3e-4)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.tiny:
        args.nt, args.n_train, args.n_test, args.seconds, args.hidden, args.message_steps = 10, 2, 1, 2.0, 16, 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = ParticleData(material=args.material, block=0.15 if not args.tiny else 0.1, nt=args.nt,
                        grid_res=64 if not args.tiny else 32)
    tr = load_particles(pde.generate(spec, out / f"{args.material}_train.h5", args.n_train, seed=0))
    te = load_particles(pde.generate(spec, out / f"{args.material}_test.h5", args.n_test, seed=1))
    torch.manual_seed(0)
    model = dnn.GNS(dim=2, history=5, n_types=tr.n_types, radius=spec.radius, bounds=tr.bounds, hidden=args.hidden,
                    message_steps=args.message_steps)
    model.set_statistics(tr.positions, args.noise_std)
    task = dnn.ParticleTask(tr.positions, tr.types, noise_std=args.noise_std)
    cfg = dnn.TrainConfig(epochs=100_000, steps_per_epoch=50 if not args.tiny else 2, batch_size=args.batch_size,
                          lr=args.lr, schedule="constant", time_limit=args.seconds, progress=False,
                          checkpoint=str(out / "gns.pt"), clock="process")
    trainer = dnn.Trainer(model, task, cfg)
    if trainer.cpu_time < args.seconds:
        trainer.config.time_limit = args.seconds - trainer.cpu_time
        trainer.fit()
    model.eval()
    H = model.history
    steps = te.positions.shape[1] - H - 1
    errs, t_model = [], 0.0
    for i in range(te.positions.shape[0]):
        x = te.positions[i]
        t0 = time.perf_counter()
        pred = model.rollout(x[:H + 1].permute(1, 0, 2), te.types, steps)
        t_model += time.perf_counter() - t0
        errs.append(((pred - x[H + 1:]) ** 2).sum(-1).mean(-1))  # (steps,) mean squared distance
    err = torch.stack(errs).mean(0)
    t_mpm = mpm_seconds(spec, te.positions.shape[0], 1)
    frame = [1, steps // 2, steps]
    row = {"particles": int(tr.positions.shape[2]), "train_trajectories": args.n_train, "frames": args.nt,
           "steps": trainer.global_step, "train_seconds": trainer.cpu_time,
           "mse_by_step": [float(e) for e in err], "rollout_mse": float(err.mean()),
           "model_seconds": t_model, "mpm_seconds": t_mpm, "speedup": t_mpm / t_model,
           "params": sum(p.numel() for p in model.parameters())}
    table = (f"GNS on {args.material} MPM scenes ({row['particles']} particles, {args.n_train} training trajectories "
             f"of {args.nt} frames, frame dt {spec.dt * spec.substeps:g} s); {trainer.global_step} steps in "
             f"{trainer.cpu_time:.0f} CPU s.\n\n| metric | value |\n|---|---|\n"
             + "".join(f"| position RMSE after {k} frames (m) | {err[k - 1] ** 0.5:.4f} |\n" for k in frame)
             + f"| MPM s (test set) | {t_mpm:.2f} |\n| GNS s (test set) | {t_model:.2f} |\n"
             f"| speed-up | {t_mpm / t_model:.2f}x |\n")
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"row": row, "args": vars(args)}, indent=1))
    print(table)
    return row


if __name__ == "__main__":
    main()
