"""Stability of trained E1 surrogates over rollouts 4x longer than their training horizon.

Generates E1 trajectories on [0, 16] s (997 recorded states at the benchmark's spacing;
the models were trained on [0, 4] s), rolls the checkpoints of ``mppde_benchmark.py``
out from the first 50 states, and reports the error per second of simulated time, the
largest |u| relative to the data and whether anything became non-finite.

    python examples/neural_pde/long_rollout.py --runs out/neural_pde/runs --out out/neural_pde/long
    python examples/neural_pde/long_rollout.py --tiny --out /tmp/long      # untrained models, smoke run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffsim.solvers import nn as dnn
from diffsim.solvers import pde


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="out/neural_pde/runs")
    ap.add_argument("--out", default="out/neural_pde/long")
    ap.add_argument("--nx", type=int, nargs="+", default=[100, 50, 40])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--factor", type=int, default=4, help="horizon multiple of the training trajectories")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        args.n, args.factor, args.nx = 2, 1, [40]
    nt = (pde.E1.nt - 1) * args.factor + 1
    fam = pde.CEFamily("E1-long", alpha=0.5, tmax=pde.E1.tmax * args.factor, nt=nt)
    path = pde.generate(fam, out / f"E1_long_x{args.factor}.h5", args.n, seed=7,
                        resolutions=(200, 100, 50, 40))
    rows = []
    for nx in args.nx:
        data = pde.load_ce(path, nx)
        for name in ("MPPDE", "FNO"):
            ck = Path(args.runs) / f"{name}_E1_{nx}.pt"
            if ck.exists():
                model = dnn.load_model(ck)
            elif args.tiny:
                model = (dnn.MPPDE(hidden=32, layers=1, dt=data.dt, t_scale=4.0, length=16.0) if name == "MPPDE"
                         else dnn.FNO(dim=1, width=8, modes=8, dt=data.dt, t_scale=4.0))
            else:
                continue
            res = pde.evaluate(model.eval(), data, 25, batch_size=args.n, one_step=False)
            per_t = res.mse_per_time
            base = res.baseline_per_time
            secs = int(round(float(data.t[-1])))
            seg = [(s, s + 1) for s in range(secs)]
            err_by_second = [float(per_t[(data.t >= a) & (data.t < b)].sum()) for a, b in seg]
            base_by_second = [float(base[(data.t >= a) & (data.t < b)].sum()) for a, b in seg]
            rows.append({"nx": nx, "model": name, "finite": res.finite, "max_abs_ratio": res.max_abs_ratio,
                         "error_by_second": err_by_second, "weno_by_second": base_by_second,
                         "accumulated_first_4s": sum(err_by_second[:4]), "accumulated_all": res.accumulated})
            print(json.dumps(rows[-1]), flush=True)
    lines = [f"E1 on [0, {fam.tmax:g}] s ({args.n} trajectories; models trained on [0, 4] s): accumulated error per "
             "4 s of simulated time (model / WENO5 at the same nx), max |u| ratio, finiteness.", "",
             "| nx | model | " + " | ".join(f"{4 * k}-{4 * k + 4} s" for k in range(args.factor))
             + " | max abs ratio | finite |", "|---|---|" + "---|" * args.factor + "---|---|"]
    for r in rows:
        e, b = r["error_by_second"], r["weno_by_second"]
        cells = [f"{sum(e[4 * k:4 * k + 4]):.2f} / {sum(b[4 * k:4 * k + 4]):.2f}" for k in range(args.factor)]
        lines.append(f"| {r['nx']} | {r['model']} | " + " | ".join(cells) + f" | {r['max_abs_ratio']:.2f} | "
                     f"{r['finite']} |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table)
    return rows


if __name__ == "__main__":
    main()
