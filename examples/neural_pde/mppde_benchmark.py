"""MP-PDE benchmark (Brandstetter et al., ICLR 2022, Table 2) with diffsim's solvers and models.

For each family E1/E2/E3 and resolution nx in {100, 50, 40}: generate the data with the
WENO5 finite-volume reference (nx = 200 ground truth, direct WENO5 solves at nx as the
numerical baseline), train ``MPPDE`` and ``FNO`` (temporal bundling, pushforward) for a
fixed budget of CPU seconds (cosine learning-rate schedule sized to the budget), and report the accumulated rollout error of both and of the WENO5
baseline beside the paper's numbers, and the speed-up of each surrogate over the
reference solver, timed in this run on this machine.

    python examples/neural_pde/mppde_benchmark.py --out out/neural_pde          # about 2 h on 2 cores
    python examples/neural_pde/mppde_benchmark.py --tiny --out /tmp/np          # smoke run (~1 min)

Everything resumes: data files, and checkpoints of unfinished trainings.
Writes ``results.json`` and ``results.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffsim.solvers import nn as dnn
from diffsim.solvers import pde

# Table 2 of the paper: accumulated error (WENO5, FNO-RNN, FNO-PF, MP-PDE), runtime [s] (WENO5, MP-PDE)
PAPER = {
    ("E1", 100): (2.02, 11.93, 0.54, 1.55, 1.9, 0.09), ("E1", 50): (6.23, 29.98, 0.51, 1.67, 1.8, 0.08),
    ("E1", 40): (9.63, 10.44, 0.57, 1.47, 1.7, 0.08), ("E2", 100): (1.19, 17.09, 2.53, 1.58, 1.9, 0.09),
    ("E2", 50): (5.35, 3.57, 2.27, 1.63, 1.8, 0.09), ("E2", 40): (8.05, 3.26, 2.38, 1.45, 1.7, 0.08),
    ("E3", 100): (4.71, 10.16, 5.69, 4.26, 4.8, 0.09), ("E3", 50): (11.71, 14.49, 5.39, 3.74, 4.5, 0.09),
    ("E3", 40): (15.97, 20.90, 5.98, 3.70, 4.4, 0.09),
}
TW = 25


def data_files(args, fam: str) -> dict[str, Path]:
    d = Path(args.out) / "data"
    n_train = args.n_train_e3 if fam == "E3" else args.n_train
    specs = {"train": (n_train, 0, (200,)), "valid": (args.n_valid, 1, (200,)),
             "test": (args.n_test, 2, (200, 100, 50, 40))}
    paths = {}
    for split, (n, seed, res) in specs.items():
        paths[split] = d / f"{fam}_{split}.h5" if not args.tiny else d / f"{fam}_{split}_tiny.h5"
        pde.generate(fam, paths[split], n, seed=seed, resolutions=res, workers=args.workers,
                     progress=not args.quiet)
    return paths


def build(model: str, data: pde.FieldData, args) -> torch.nn.Module:
    common = dict(time_window=TW, n_cond=data.n_cond, dt=data.dt, t_scale=float(data.t[-1]))
    if model == "MPPDE":
        return dnn.MPPDE(hidden=args.hidden, layers=args.layers, neighbors=3, length=data.lengths[0], **common)
    nx = data.spatial[0]
    return dnn.FNO(dim=1, modes=min(args.modes, nx // 2), width=args.width, layers=4, **common)


def planned_epochs(ck: Path, model, task, budget: float, args) -> int:
    """Epochs that fit the time budget, from the time of a few training steps (kept next to
    the checkpoint so that a resumed run keeps its learning-rate schedule)."""
    plan = ck.with_suffix(".plan.json")
    if plan.exists():
        return json.loads(plan.read_text())["epochs"]
    gen = torch.Generator().manual_seed(123)
    task.loss(model, task.sample(gen, args.batch_size, 0)).backward()  # warm-up
    t0 = time.process_time()
    for _ in range(5):
        task.loss(model, task.sample(gen, args.batch_size, 1)).backward()
    model.zero_grad(set_to_none=True)
    per_step = (time.process_time() - t0) / 5
    # ~15 % of the budget goes to validation and checkpoints
    epochs = max(1, int(0.85 * budget / per_step) // args.steps_per_epoch)
    ck.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(json.dumps({"epochs": epochs, "seconds_per_step": per_step, "budget": budget}))
    return epochs


def reference_speed(fam_name: str, test_path: Path, nx: int, n: int, repeats: int) -> dict:
    """The WENO5 reference at resolution ``nx`` for ``n`` test trajectories, batched, timed at the
    data's tolerances and at loose ones (the fastest setting that keeps the baseline's accuracy)."""
    import h5py

    fam = pde.family(fam_name)
    with h5py.File(test_path, "r") as f:
        params = {k: f[k][:n] for k in ("A", "omega", "phi", "l", "alpha", "beta", "gamma")}
        st = json.loads(f.attrs["settings"])
    out = {}
    for label, rtol, atol, dtype in (("data tolerances (rtol 1e-6, f64)", st["rtol"], st["atol"], torch.float64),
                                     ("rtol 1e-3, f64", 1e-3, 1e-5, torch.float64),
                                     ("rtol 1e-3, f32", 1e-3, 1e-5, torch.float32)):
        best, u = math.inf, None
        for _ in range(repeats):
            u, sol, sec = fam.solve_timed(params, nx, rtol=rtol, atol=atol, dtype=dtype)
            best = min(best, sec)
        out[label] = {"seconds": best, "nfe": sol.stats.nfe, "u": u}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/neural_pde")
    ap.add_argument("--families", nargs="+", default=["E1", "E2", "E3"])
    ap.add_argument("--nx", nargs="+", type=int, default=[100, 50, 40])
    ap.add_argument("--models", nargs="+", default=["MPPDE", "FNO"])
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-train-e3", type=int, default=256)
    ap.add_argument("--n-valid", type=int, default=32)
    ap.add_argument("--n-test", type=int, default=128)
    ap.add_argument("--seconds", type=float, nargs=2, default=[420.0, 180.0], metavar=("MPPDE", "FNO"),
                    help="training budget per run in CPU seconds of this process (1 thread) for MPPDE and FNO")
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--unrolling", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="a smoke run: tiny data and a few steps")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.tiny:
        args.n_train, args.n_train_e3, args.n_valid, args.n_test = 4, 4, 2, 2
        args.seconds, args.steps_per_epoch, args.repeats = [2.0, 2.0], 2, 1
        args.hidden, args.layers, args.width = 32, 2, 16
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for fam in args.families:
        paths = data_files(args, fam)
        for nx in args.nx:
            train = pde.load_ce(paths["train"], nx)
            valid = pde.load_ce(paths["valid"], nx)
            test = pde.load_ce(paths["test"], nx)
            row = {"family": fam, "nx": nx, "n_train": train.n, "n_test": test.n}
            fv = pde.load_ce(paths["test"], nx, downsample_method="average")
            row["baseline_accumulated_fv"] = float(pde.step_error(fv.baseline, fv.u)[:, 2 * TW:].sum(1).mean())
            ref = reference_speed(fam, paths["test"], nx, test.n, args.repeats)
            target = test.u
            for r in ref.values():
                u = r.pop("u")[:, :, None].to(target)
                err = pde.step_error(u, target)[:, 2 * TW:].sum(1).mean()
                r["accumulated"] = float(err)
            row["reference"] = ref
            base_acc = ref["data tolerances (rtol 1e-6, f64)"]["accumulated"]
            # the fastest reference setting whose error is within 5 % of the tight solve's
            ok = [r["seconds"] for r in ref.values() if r["accumulated"] <= 1.05 * base_acc]
            row["reference_seconds"] = min(ok)
            for name, budget in zip(args.models, [args.seconds[0] if m == "MPPDE" else args.seconds[1]
                                                  for m in args.models]):
                torch.manual_seed(0)
                model = build(name, train, args)
                task = dnn.FieldTask(train, TW, unrolling=args.unrolling, valid=valid, valid_samples=None)
                ck = out / "runs" / f"{name}_{fam}_{nx}{'_tiny' if args.tiny else ''}.pt"
                epochs = planned_epochs(ck, model, task, budget, args)
                cfg = dnn.TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                                      steps_per_epoch=args.steps_per_epoch, checkpoint=str(ck),
                                      progress=not args.quiet, seed=0, clock="process")
                trainer = dnn.Trainer(model, task, cfg)
                remaining = budget - trainer.cpu_time
                if remaining > 0 and trainer.epoch < cfg.epochs:
                    trainer.config.time_limit = remaining
                    trainer.fit()
                if trainer.best is not None:
                    model.load_state_dict(trainer.best)
                model.eval()
                res = pde.evaluate(model, test, TW, batch_size=test.n)
                best_t = min(pde.evaluate(model, test, TW, batch_size=test.n, one_step=False).seconds
                             for _ in range(args.repeats))
                row[name] = {"accumulated": res.accumulated, "one_step": res.one_step, "finite": res.finite,
                             "max_abs_ratio": res.max_abs_ratio, "rollout_seconds": best_t,
                             "speedup": row["reference_seconds"] / best_t, "train_seconds": trainer.cpu_time,
                             "train_wall_seconds": trainer.wall_time,
                             "train_steps": trainer.global_step, "epochs": trainer.epoch,
                             "params": sum(p.numel() for p in model.parameters())}
                row["baseline_accumulated"] = res.baseline_accumulated
                if not args.quiet:
                    print(f"{fam} nx={nx} {name}: accumulated {res.accumulated:.3g} (WENO5 baseline "
                          f"{res.baseline_accumulated:.3g}), speed-up {row[name]['speedup']:.1f}x, "
                          f"{trainer.global_step} steps in {trainer.cpu_time:.0f} CPU s", flush=True)
            rows.append(row)
            (out / "results.json").write_text(json.dumps({"rows": rows, "args": vars(args),
                                                           "machine": machine()}, indent=1))
    table = markdown(rows, args)
    (out / "results.md").write_text(table)
    print(table)
    return rows


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "numpy": np.__version__}


def markdown(rows, args) -> str:
    lines = ["| family | nx | WENO5 ours (FV avg) | WENO5 ours | WENO5 paper | MP-PDE ours | MP-PDE paper | FNO-PF ours | FNO-PF paper "
             "| reference s | MP-PDE s (speed-up) | FNO s (speed-up) | MP-PDE steps / train CPU s | FNO steps / train CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(row, m, key, fmt="{:.2f}"):
        return fmt.format(row[m][key]) if m in row else "-"

    for r in rows:
        p = PAPER.get((r["family"], r["nx"]), ("-",) * 6)
        mp = r.get("MPPDE")
        fn = r.get("FNO")
        lines.append(
            f"| {r['family']} | {r['nx']} | {r['baseline_accumulated_fv']:.2f} | {r['baseline_accumulated']:.2f} | {p[0]} | "
            f"{cell(r, 'MPPDE', 'accumulated')} | {p[3]} | {cell(r, 'FNO', 'accumulated')} | {p[2]} | "
            f"{r['reference_seconds']:.2f} | "
            + (f"{mp['rollout_seconds']:.3f} ({mp['speedup']:.2g}x)" if mp else "-") + " | "
            + (f"{fn['rollout_seconds']:.3f} ({fn['speedup']:.2g}x)" if fn else "-") + " | "
            + (f"{mp['train_steps']} / {mp['train_seconds']:.0f}" if mp else "-") + " | "
            + (f"{fn['train_steps']} / {fn['train_seconds']:.0f}" if fn else "-") + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
