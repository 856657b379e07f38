"""Neural surrogates (FNO-2D, U-Net) of 2D Navier-Stokes smoke buoyancy (PDEArena-like),
with data from diffsim's Taichi MAC-grid solver; rollout error over time and speed-up
over the solver, timed in the same run.

    python examples/neural_pde/smoke_surrogate.py --out out/smoke          # ~25 min on 2 cores
    python examples/neural_pde/smoke_surrogate.py --tiny --out /tmp/smoke  # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffsim.solvers import nn as dnn
from diffsim.solvers import pde
from diffsim.solvers.pde.smoke import SmokeData, load_smoke


def solver_seconds(spec: SmokeData, n: int, seed: int) -> tuple[float, float]:
    """Wall time of the reference solver for ``n`` trajectories (compile excluded), and its
    mean CG iterations per step."""
    import diffsim as ds
    from diffsim import runtime
    from diffsim.eulerian import Smoke, noise_field

    if runtime.config() is None:
        ds.init(precision=spec.precision)
    sim = Smoke(res=(spec.res, spec.res), size=spec.size, dt=spec.dt, nu=spec.nu, buoyancy=(0.0, spec.buoyancy),
                cg_tol=spec.cg_tol)
    try:
        warm = np.abs(noise_field((spec.res, spec.res), spec.size, np.random.default_rng(12345)))
        sim.rollout(sim.reset(warm), 2)  # compiles every kernel (the CG ones need a non-zero flow)
        sim.stats["cg_iters_total"] = 0
        t0 = time.perf_counter()
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            s0 = np.abs(noise_field((spec.res, spec.res), spec.size, rng, spec.noise_scale, spec.noise_smoothness))
            sim.rollout(sim.reset(s0), spec.skip + spec.nt)
        sec = time.perf_counter() - t0
        iters = sim.stats["cg_iters_total"] / (n * (spec.skip + spec.nt))
    finally:
        sim.close()
    return sec, iters


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/smoke")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--nt", type=int, default=56)
    ap.add_argument("--n-train", type=int, default=48)
    ap.add_argument("--n-test", type=int, default=8)
    ap.add_argument("--time-window", type=int, default=4)
    ap.add_argument("--models", nargs="+", default=["FNO", "UNet"])
    ap.add_argument("--seconds", type=float, default=300.0, help="training budget per model (CPU seconds of this process)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.tiny:
        args.res, args.nt, args.n_train, args.n_test, args.seconds = 16, 12, 2, 1, 2.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = SmokeData(res=args.res, nt=args.nt)
    tr_path = pde.generate(spec, out / f"smoke{args.res}_train.h5", args.n_train, seed=0, workers=args.workers)
    te_path = pde.generate(spec, out / f"smoke{args.res}_test.h5", args.n_test, seed=1, workers=args.workers)
    va_path = pde.generate(spec, out / f"smoke{args.res}_valid.h5", max(1, args.n_test // 2), seed=2,
                           workers=args.workers)
    train, test, valid = load_smoke(tr_path), load_smoke(te_path), load_smoke(va_path)
    tw = args.time_window
    ref_s, cg_iters = solver_seconds(spec, test.n, 1)
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        common = dict(dim=2, time_window=tw, channels=3, dt=train.dt, t_scale=float(train.t[-1]))
        if name == "FNO":
            model = dnn.FNO(modes=min(12, args.res // 4), width=32, padding=args.res // 8, **common)
        else:
            model = dnn.UNet(hidden=16, levels=3 if args.res >= 32 else 2, periodic=False, **common)
        task = dnn.FieldTask(train, tw, unrolling=1, valid=valid, warmup=1, loss="mse")  # as the README figures
        steps_pe = 50 if not args.tiny else 2
        cfg = dnn.TrainConfig(epochs=10_000, steps_per_epoch=steps_pe, batch_size=args.batch_size, lr=args.lr,
                              schedule="constant", time_limit=args.seconds, progress=False,
                              checkpoint=str(out / f"{name}_{args.res}.pt"), clock="process")
        trainer = dnn.Trainer(model, task, cfg)
        if trainer.cpu_time < args.seconds:
            trainer.config.time_limit = args.seconds - trainer.cpu_time
            trainer.fit()
        if trainer.best is not None:
            model.load_state_dict(trainer.best)
        res = pde.evaluate(model, test, tw, warmup=1, batch_size=test.n, one_step=False)
        sec = min(pde.evaluate(model, test, tw, warmup=1, batch_size=test.n, one_step=False).seconds
                  for _ in range(3))
        # relative error per frame: ||pred - true|| / ||true|| over all channels and cells
        pred, true = res.predictions, test.u[:, :res.predictions.shape[1]]
        rel = ((pred - true).flatten(2).norm(dim=-1) / true.flatten(2).norm(dim=-1)).mean(0)
        frames = int(res.predictions.shape[1] - tw)
        row = {"model": name, "params": sum(p.numel() for p in model.parameters()), "steps": trainer.global_step,
               "train_seconds": trainer.cpu_time, "accumulated": res.accumulated, "finite": res.finite,
               "rel_error_by_frame": [float(x) for x in rel], "rollout_seconds": sec, "solver_seconds": ref_s,
               "speedup": ref_s / sec, "predicted_frames": frames}
        rows.append(row)
        print(f"{name}: rel. error at frame {tw + 1}/{tw + frames // 2}/{tw + frames}: {rel[tw]:.3f}/"
              f"{rel[tw + frames // 2 - 1]:.3f}/{rel[-1]:.3f}; speed-up {ref_s / sec:.1f}x "
              f"({trainer.global_step} steps, {trainer.cpu_time:.0f} CPU s)", flush=True)
    lines = [f"Smoke buoyancy {args.res}x{args.res}, {args.n_train} training / {test.n} test trajectories of "
             f"{args.nt} states (dt = {spec.dt} s); solver {ref_s:.2f} s for the test set "
             f"({cg_iters:.1f} MGPCG iterations per step).", "",
             "| model | params | train steps / s | rel. error frame +1 | +half | last | solver s | model s | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["rel_error_by_frame"]
        lines.append(f"| {r['model']} | {r['params']} | {r['steps']} / {r['train_seconds']:.0f} | {e[tw]:.3f} | "
                     f"{e[tw + r['predicted_frames'] // 2 - 1]:.3f} | {e[-1]:.3f} | {r['solver_seconds']:.2f} | "
                     f"{r['rollout_seconds']:.3f} | {r['speedup']:.1f}x |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"rows": rows, "args": vars(args), "cg_iters": cg_iters}, indent=1))
    print(table)
    return rows


if __name__ == "__main__":
    main()
