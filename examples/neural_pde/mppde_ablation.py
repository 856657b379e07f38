"""What each ingredient of the MP-PDE training recipe buys: short FNO trainings on E1 that
switch one ingredient at a time, from the old defaults of ``mppde_benchmark.py`` to the
current recipe, scored by the accumulated rollout error on the 128 test trajectories.

    python examples/neural_pde/mppde_ablation.py --out out/neural_pde            # ~1 CPU h
    python examples/neural_pde/mppde_ablation.py --tiny --out /tmp/npa             # smoke run

Every variant trains for the same number of optimizer steps (``--steps``, default 6000: a
fifth of the benchmark's 30-minute budget), so CPU seconds differ only by the cost of a
step; ``--seeds`` repeats each variant. Data are shared with ``mppde_benchmark.py``
(``--out``/data). Writes ``ablation.json`` and ``ablation.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from diffsim.solvers import nn as dnn
from diffsim.solvers import pde

TW = 25
RECIPE = dict(n_train=2048, loss="l2", lr=2e-3, unrolling=1, pushforward_start=0.5, noise=0.0, time=True,
              n_valid=128, width=64)
# (label, changes to the recipe); the first row is the old benchmark's defaults
VARIANTS = (
    ("old defaults: 512 trajectories, MSE, lr 1e-3, pushforward from the start, 32 validation trajectories",
     dict(n_train=512, loss="mse", lr=1e-3, n_valid=32, pushforward_start=0.0)),
    ("+ 2048 trajectories", dict(loss="mse", lr=1e-3, n_valid=32, pushforward_start=0.0)),
    ("+ L2 loss (the MP-PDE code's sqrt of the batch sum of squares)", dict(lr=1e-3, n_valid=32,
                                                                           pushforward_start=0.0)),
    ("+ lr 2e-3", dict(n_valid=32, pushforward_start=0.0)),
    ("+ pushforward from half-way (was: from the start)", dict(n_valid=32)),
    ("+ 128 validation trajectories (the recipe)", {}),
    ("recipe without pushforward", dict(unrolling=0)),
    ("recipe, pushforward from the start", dict(pushforward_start=0.0)),
    ("recipe, pushforward up to 3 unrolls", dict(unrolling=3)),
    ("recipe + input noise 3e-3", dict(noise=3e-3)),
    ("recipe without the time input", dict(time=False)),
    ("recipe with width 32", dict(width=32)),
)


class NoTime(torch.nn.Module):
    """Feeds t = 0 to the wrapped model (the 'no time input' ablation)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u, t=None, cond=None, pos=None):
        return self.model(u, t=None, cond=cond, pos=pos)


def run_variant(v: dict, seed: int, train_all, valid_all, test, args) -> dict:
    train = train_all.subset(slice(0, v["n_train"]))
    valid = valid_all.subset(slice(0, v["n_valid"]))
    torch.manual_seed(seed)
    model = dnn.FNO(dim=1, time_window=TW, modes=16, width=v["width"], n_cond=train.n_cond, dt=train.dt,
                    t_scale=float(train.t[-1]))
    net = model if v["time"] else NoTime(model)
    epochs = args.steps // args.steps_per_epoch
    task = dnn.FieldTask(train, TW, unrolling=v["unrolling"], valid=valid, valid_samples=None, loss=v["loss"],
                         noise_std=v["noise"], pushforward_start=int(round(v["pushforward_start"] * epochs)),
                         valid_batch=valid.n)
    cfg = dnn.TrainConfig(epochs=epochs, steps_per_epoch=args.steps_per_epoch, batch_size=16, lr=v["lr"],
                          seed=seed, progress=False, clock="process")
    trainer = dnn.Trainer(net, task, cfg)
    trainer.fit()
    last = pde.evaluate(net, test, TW, batch_size=test.n, one_step=False).accumulated
    if trainer.best is not None:
        model.load_state_dict({k.removeprefix("model."): w for k, w in trainer.best.items()})
    res = pde.evaluate(net, test, TW, batch_size=test.n)
    return {"seed": seed, "accumulated": res.accumulated, "last": last, "one_step": res.one_step,
            "best_valid": trainer.best_metric, "cpu_seconds": trainer.cpu_time, "steps": trainer.global_step}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/neural_pde")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--steps-per-epoch", type=int, default=500)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--only", nargs="+", type=int, default=None, help="run only these variant rows (0-based)")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    d = out / "data"
    n_train, n_valid, n_test = (2048, 128, 128) if not args.tiny else (8, 4, 2)
    tag = "_tiny" if args.tiny else ""
    files = {}
    for split, n, seed, res in (("train", n_train, 0, (200,)), ("valid", n_valid, 1, (200,)),
                                ("test", n_test, 2, (200, 100, 50, 40))):
        files[split] = pde.generate("E1", d / f"E1_{split}_{n}{tag}.h5", n, seed=seed, resolutions=res,
                                    progress=False)
    if args.tiny:
        args.steps, args.steps_per_epoch = 4, 2
    train, valid, test = (pde.load_ce(files[s], 100) for s in ("train", "valid", "test"))
    path = out / f"ablation{tag}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    for i, (label, change) in enumerate(VARIANTS):
        if args.only is not None and i not in args.only:
            continue
        v = {**RECIPE, **change}
        if args.tiny:
            v.update(n_train=min(v["n_train"], 8), n_valid=min(v["n_valid"], 4))
        runs = []
        for seed in args.seeds:
            key = f"{label} | seed {seed} | steps {args.steps}"
            if key not in done:
                done[key] = run_variant(v, seed, train, valid, test, args)
                path.write_text(json.dumps(done, indent=1))
            runs.append(done[key])
        acc = [r["accumulated"] for r in runs]
        rows.append((label, v, runs))
        spread = f" +- {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
        print(f"{label}: accumulated {statistics.mean(acc):.2f}{spread} ({len(acc)} seeds, "
              f"{statistics.mean(r['cpu_seconds'] for r in runs):.0f} CPU s)", flush=True)
    base = test.baseline
    weno = float(pde.step_error(base, test.u)[:, 2 * TW:].sum(1).mean())
    lines = [f"E1 nx=100, FNO, {args.steps} steps of batch 16, seeds {','.join(map(str, args.seeds))}; "
             f"WENO5 baseline {weno:.2f}", "",
             "| variant | accumulated error (test) | last weights | one-step | CPU s |", "|---|---|---|---|---|"]
    for label, _v, runs in rows:
        acc = [r["accumulated"] for r in runs]
        spread = f" +- {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
        lines.append(f"| {label} | {statistics.mean(acc):.2f}{spread} | "
                     f"{statistics.mean(r['last'] for r in runs):.2f} | "
                     f"{statistics.mean(r['one_step'] for r in runs):.2e} | "
                     f"{statistics.mean(r['cpu_seconds'] for r in runs):.0f} |")
    table = "\n".join(lines) + "\n"
    (out / f"ablation{tag}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
