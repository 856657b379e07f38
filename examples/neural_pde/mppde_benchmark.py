"""MP-PDE benchmark (Brandstetter et al., ICLR 2022, Table 2) with diffsim's solvers and models.

For each family E1/E2/E3 and resolution nx in {100, 50, 40}: generate the data with the
WENO5 finite-volume reference (nx = 200 ground truth, direct WENO5 solves at nx as the
numerical baseline), train ``MPPDE`` and ``FNO`` (temporal bundling, pushforward) for a
fixed budget of CPU seconds per seed, and report the accumulated rollout error (mean and
spread over the seeds) beside the paper's numbers and our WENO5 baseline, and the speed of
each surrogate against the WENO5 reference at the tolerance that gives the same accuracy,
timed in this run on this machine.

    # the table of solvers/pde/README.md (3 seeds; about 30 CPU min per model and seed)
    python examples/neural_pde/mppde_benchmark.py --out out/neural_pde --seeds 0 1 2
    python examples/neural_pde/mppde_benchmark.py --tiny --out /tmp/np          # smoke run (~1 min)

Everything resumes: data files, and checkpoints of unfinished trainings (a finished one is
only evaluated), so the table can be built in pieces (``--families E1 --nx 100``, ...) and
then printed whole by the full command. Writes ``results.json`` and ``results.md`` to
``--out``. The recipe (defaults) and what each ingredient buys: solvers/pde/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
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
# WENO5 reference settings tried for the speed comparison: (label, rtol, atol, dtype)
REFERENCE = (("rtol 1e-6 f64 (data)", 1e-6, 1e-8, torch.float64), ("rtol 1e-3 f64", 1e-3, 1e-5, torch.float64),
             ("rtol 1e-3 f32", 1e-3, 1e-5, torch.float32), ("rtol 3e-3 f32", 3e-3, 3e-5, torch.float32),
             ("rtol 1e-2 f32", 1e-2, 1e-4, torch.float32))


def data_file(d: Path, fam: str, split: str, n: int, seed: int, res: tuple, args) -> tuple[Path, slice | None]:
    """The file of ``split`` with at least ``n`` trajectories (generated if missing) and the
    selection of its first ``n`` (instance i depends only on (seed, i), so a larger file's
    first n trajectories are the n-trajectory data set)."""
    tag = "_tiny" if args.tiny else ""
    for p in sorted(d.glob(f"{fam}_{split}_*{tag}.h5")):
        stem = p.stem[len(f"{fam}_{split}_"):len(p.stem) - len(tag)]
        if stem.isdigit() and int(stem) > n and _complete(p):
            return p, slice(0, n)
    path = d / f"{fam}_{split}_{n}{tag}.h5"
    pde.generate(fam, path, n, seed=seed, resolutions=res, workers=args.workers, progress=not args.quiet)
    return path, None


def _complete(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False))
    except OSError:
        return False


def build(model: str, data: pde.FieldData, args) -> torch.nn.Module:
    common = dict(time_window=TW, n_cond=data.n_cond, dt=data.dt, t_scale=float(data.t[-1]))
    if model == "MPPDE":
        return dnn.MPPDE(hidden=args.hidden, layers=args.layers, neighbors=3, length=data.lengths[0], **common)
    nx = data.spatial[0]
    return dnn.FNO(dim=1, modes=min(args.modes, nx // 2), width=args.width, layers=4, **common)


def seconds_per_step(model, task, args) -> float:
    """CPU seconds of one training step (median of a few, after a warm-up), with pushforward."""
    gen = torch.Generator().manual_seed(123)
    task.loss(model, task.sample(gen, args.batch_size, 0)).backward()  # warm-up
    times = []
    for _ in range(20):
        t0 = time.process_time()
        task.loss(model, task.sample(gen, args.batch_size, 10**6)).backward()
        times.append(time.process_time() - t0)
    model.zero_grad(set_to_none=True)
    return statistics.median(times)


def plan(ck: Path, model, task, budget: float, args) -> dict:
    """Epochs that fit the CPU budget and the epoch at which pushforward starts, from the time
    of a few training steps; kept next to the checkpoint so that a resumed run keeps its
    learning-rate and pushforward schedules."""
    path = ck.with_suffix(".plan.json")
    if path.exists():
        return json.loads(path.read_text())
    per_step = seconds_per_step(model, task, args)
    # validation rollouts, checkpoints and the optimizer step take ~10-15 % beyond the timed steps; a
    # schedule planned too long is cut by the budget before its learning rate has decayed
    epochs = max(1, int(0.85 * budget / per_step) // args.steps_per_epoch)
    p = {"epochs": epochs, "pushforward_start": int(round(args.pushforward_start * epochs)),
         "seconds_per_step": per_step, "budget": budget}
    ck.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(p))
    return p


def train_one(name: str, fam: str, nx: int, seed: int, train, valid, budget: float, args):
    """Train (or resume, or just load) one model; returns (model, trainer)."""
    torch.manual_seed(seed)
    model = build(name, train, args)
    ck = Path(args.out) / "runs" / f"{name}_{fam}_{nx}_s{seed}{'_tiny' if args.tiny else ''}.pt"
    probe = dnn.FieldTask(train, TW, unrolling=args.unrolling, loss=args.loss, noise_std=args.noise)
    p = plan(ck, model, probe, budget, args)
    task = dnn.FieldTask(train, TW, unrolling=args.unrolling, valid=valid, valid_samples=None, loss=args.loss,
                         noise_std=args.noise, pushforward_start=p["pushforward_start"], valid_batch=valid.n)
    cfg = dnn.TrainConfig(epochs=p["epochs"], batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                          steps_per_epoch=args.steps_per_epoch, checkpoint=str(ck), progress=not args.quiet,
                          seed=seed, clock="process")
    trainer = dnn.Trainer(model, task, cfg)
    remaining = budget - trainer.cpu_time
    if remaining > 0 and trainer.epoch < cfg.epochs:
        trainer.config.time_limit = remaining
        trainer.fit()
    if args.select == "best" and trainer.best is not None:
        model.load_state_dict(trainer.best)
    model.eval()
    return model, trainer


def reference(fam_name: str, path: Path, sel, nx: int, target: torch.Tensor, repeats: int) -> dict:
    """The WENO5 reference at ``nx`` on the test trajectories, batched, at each setting of
    ``REFERENCE``: accumulated error against ``target`` and the best wall time of ``repeats``."""
    import h5py

    fam = pde.family(fam_name)
    with h5py.File(path, "r") as f:
        params = {k: f[k][sel or slice(None)] for k in ("A", "omega", "phi", "l", "alpha", "beta", "gamma")}
    out = {}
    for label, rtol, atol, dtype in REFERENCE:
        best, u, sol = math.inf, None, None
        try:
            for _ in range(repeats):
                u, sol, sec = fam.solve_timed(params, nx, rtol=rtol, atol=atol, dtype=dtype, max_steps=20_000)
                best = min(best, sec)
        except Exception as exc:  # a loose tolerance can fail (step-size collapse): say so in the table
            out[label] = {"failed": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        err = pde.step_error(u[:, :, None].to(target), target)[:, 2 * TW:].sum(1).mean()
        out[label] = {"seconds": best, "nfe": sol.stats.nfe, "accumulated": float(err)}
    return out


def matched_reference(ref: dict, error: float) -> tuple[str, dict]:
    """The cheapest WENO5 setting at least as accurate as ``error`` - or, when the surrogate is
    more accurate than every setting, the cheapest within 5 % of WENO5's best error."""
    ok = {k: v for k, v in ref.items() if "seconds" in v}
    floor = min(v["accumulated"] for v in ok.values())
    bar = max(error, 1.05 * floor)
    label = min((k for k, v in ok.items() if v["accumulated"] <= bar), key=lambda k: ok[k]["seconds"])
    return label, ok[label]


def rollout_speed(model, test, ref: dict, repeats: int, compile_model: bool) -> dict:
    """Each inference variant of the batched rollout of the whole test set (inference_mode):
    float32, bfloat16 autocast (matrix products in bf16, the state in f32) and optionally
    ``torch.compile``d float32. Per variant: best wall time of ``repeats``, its own accumulated
    error, the WENO5 setting of equal accuracy (:func:`matched_reference`) and the speed-up."""
    variants = {"f32": (model, None), "bf16": (model, torch.bfloat16)}
    if compile_model:
        try:
            compiled = torch.compile(model, dynamic=False)
            pde.evaluate(compiled, test, TW, batch_size=test.n, one_step=False)  # compiles
            variants["f32 compiled"] = (compiled, None)
        except Exception as exc:  # no compiler toolchain on this machine: say so, time the others
            print(f"torch.compile failed ({type(exc).__name__}: {exc}); timing eager rollouts only")
    out = {}
    for name, (m, ac) in variants.items():
        runs = [pde.evaluate(m, test, TW, batch_size=test.n, one_step=False, autocast=ac) for _ in range(repeats)]
        sec = min(r.seconds for r in runs)
        label, match = matched_reference(ref, runs[0].accumulated)
        out[name] = {"seconds": sec, "accumulated": runs[0].accumulated, "matched_reference": label,
                     "speedup": match["seconds"] / sec}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/neural_pde")
    ap.add_argument("--families", nargs="+", default=["E1", "E2", "E3"])
    ap.add_argument("--nx", nargs="+", type=int, default=[100, 50])
    ap.add_argument("--models", nargs="+", default=["FNO", "MPPDE"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (the table uses 0 1 2)")
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--n-valid", type=int, default=128)
    ap.add_argument("--n-test", type=int, default=128)
    ap.add_argument("--seconds", type=float, nargs=2, default=[1800.0, 600.0], metavar=("MPPDE", "FNO"),
                    help="training budget per model and seed in CPU seconds of this process (1 thread)")
    ap.add_argument("--steps-per-epoch", type=int, default=1000, help="steps between validation rollouts")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--schedule", default="cosine", choices=("cosine", "constant"))
    ap.add_argument("--loss", default="l2", choices=dnn.FieldTask.LOSSES)
    ap.add_argument("--unrolling", type=int, default=1)
    ap.add_argument("--pushforward-start", type=float, default=0.5,
                    help="fraction of the planned epochs trained one-step only before pushforward")
    ap.add_argument("--noise", type=float, default=0.0, help="std of Gaussian input noise")
    ap.add_argument("--select", default="best", choices=("best", "last"),
                    help="evaluate the best validation checkpoint or the last weights")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd rollouts")
    ap.add_argument("--tiny", action="store_true", help="a smoke run: tiny data and a few steps")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.tiny:
        args.n_train, args.n_valid, args.n_test = 4, 2, 2
        args.seconds, args.steps_per_epoch, args.repeats = [2.0, 2.0], 2, 1
        args.hidden, args.layers, args.width = 32, 2, 16
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = out / "data"
    rows = []
    for fam in args.families:
        paths = {"train": data_file(d, fam, "train", args.n_train, 0, (200,), args),
                 "valid": data_file(d, fam, "valid", args.n_valid, 1, (200,), args),
                 "test": data_file(d, fam, "test", args.n_test, 2, (200, 100, 50, 40), args)}
        for nx in args.nx:
            train, valid, test = (pde.load_ce(p, nx, samples=s) for p, s in (paths["train"], paths["valid"],
                                                                              paths["test"]))
            row = {"family": fam, "nx": nx, "n_train": train.n, "n_valid": valid.n, "n_test": test.n}
            fv = pde.load_ce(paths["test"][0], nx, downsample_method="average", samples=paths["test"][1])
            row["baseline_accumulated_fv"] = float(pde.step_error(fv.baseline, fv.u)[:, 2 * TW:].sum(1).mean())
            row["baseline_accumulated"] = float(pde.step_error(test.baseline, test.u)[:, 2 * TW:].sum(1).mean())
            row["reference"] = reference(fam, paths["test"][0], paths["test"][1], nx, test.u, args.repeats)
            for name in args.models:
                budget = args.seconds[0] if name == "MPPDE" else args.seconds[1]
                runs = []
                for seed in args.seeds:
                    model, trainer = train_one(name, fam, nx, seed, train, valid, budget, args)
                    res = pde.evaluate(model, test, TW, batch_size=test.n)
                    speed = rollout_speed(model, test, row["reference"], args.repeats, args.compile)
                    best = max(speed, key=lambda k: speed[k]["speedup"])
                    runs.append({"seed": seed, "accumulated": res.accumulated, "one_step": res.one_step,
                                 "finite": res.finite, "max_abs_ratio": res.max_abs_ratio, "rollout": speed,
                                 "fastest": best, "speedup": speed[best]["speedup"],
                                 "train_seconds": trainer.cpu_time,
                                 "train_wall_seconds": trainer.wall_time, "train_steps": trainer.global_step,
                                 "epochs": trainer.epoch, "best_valid": trainer.best_metric,
                                 "params": sum(p.numel() for p in model.parameters())})
                acc = [r["accumulated"] for r in runs]
                row[name] = {"runs": runs, "mean": statistics.mean(acc),
                             "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                             "min": min(acc), "max": max(acc)}
                if not args.quiet:
                    s = row[name]
                    spread = f" +- {s['std']:.3g} over seeds {','.join(map(str, args.seeds))}" if len(acc) > 1 else ""
                    r0 = runs[0]["rollout"][runs[0]["fastest"]]
                    print(f"{fam} nx={nx} {name}: accumulated {s['mean']:.3g}{spread} (WENO5 baseline "
                          f"{row['baseline_accumulated']:.3g}), speed-up "
                          f"{statistics.median(r['speedup'] for r in runs):.2g}x at equal accuracy (seed "
                          f"{runs[0]['seed']}: {runs[0]['fastest']} rollout {r0['seconds']:.3f} s vs WENO5 "
                          f"{r0['matched_reference']}), {runs[0]['train_steps']} steps in "
                          f"{runs[0]['train_seconds']:.0f} CPU s", flush=True)
            rows.append(row)
            (out / "results.json").write_text(json.dumps({"rows": rows, "args": vars(args), "machine": machine()},
                                                         indent=1))
    table = markdown(rows, args)
    (out / "results.md").write_text(table)
    print(table)
    return rows


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "numpy": np.__version__}


def markdown(rows, args) -> str:
    """Accuracy table (mean +- std over seeds beside the paper) and speed table."""
    def acc(row, m):
        if m not in row:
            return "-"
        s = row[m]
        return f"{s['mean']:.2f} +- {s['std']:.2f}" if len(s["runs"]) > 1 else f"{s['mean']:.2f}"

    lines = ["| family | nx | WENO5 ours | WENO5 ours vs exact averages | WENO5 paper | FNO-PF ours | FNO-PF paper "
             "| MP-PDE ours | MP-PDE paper | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = PAPER.get((r["family"], r["nx"]), ("-",) * 6)
        lines.append(f"| {r['family']} | {r['nx']} | {r['baseline_accumulated']:.2f} | "
                     f"{r['baseline_accumulated_fv']:.2f} | {p[0]} | {acc(r, 'FNO')} | {p[2]} | {acc(r, 'MPPDE')} | "
                     f"{p[3]} | {','.join(map(str, args.seeds))} |")
    lines += ["", "| family | nx | model | rollout | its error | rollout s | WENO5 of equal accuracy | its error "
              "| its s | speed-up | steps / train CPU s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for m in ("FNO", "MPPDE"):
            if m not in r:
                continue
            for run in r[m]["runs"]:
                for var, sp in run["rollout"].items():
                    ref = r["reference"][sp["matched_reference"]]
                    lines.append(f"| {r['family']} | {r['nx']} | {m} s{run['seed']} | {var} | {sp['accumulated']:.2f} | "
                                 f"{sp['seconds']:.3f} | {sp['matched_reference']} | {ref['accumulated']:.2f} | "
                                 f"{ref['seconds']:.3f} | {sp['speedup']:.2f}x | {run['train_steps']} / "
                                 f"{run['train_seconds']:.0f} |")
    lines += ["", "| family | nx | WENO5 setting | accumulated error | wall s (test set, batched) | RHS evaluations |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        for label, v in r["reference"].items():
            lines.append(f"| {r['family']} | {r['nx']} | {label} | " + (
                f"{v['accumulated']:.2f} | {v['seconds']:.3f} | {v['nfe']} |" if "seconds" in v else
                f"failed: {v['failed']} | - | - |"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
