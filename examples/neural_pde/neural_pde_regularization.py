"""A neural PDE layer - a finite-volume method of lines whose numerical flux is a network of
the neighbouring cells (``--model learned``; or WENO5 plus a learned correction,
``--model correction``) - trained through ``dss.solve`` on coarse-grid Burgers (MP-PDE E1),
with and without the local solver-heuristic regularizer (Pal et al., ICML 2023): the
regularized model needs fewer function evaluations (NFE) to integrate.

    du_i/dt = -(F^net_{i+1/2} - F^net_{i-1/2}) / dx + forcing_i(t)

Training fits segments of ``--horizon`` recorded steps from random starts (one adaptive
Tsit5 solve per batch, gradients by ``--sensealg``); evaluation integrates the whole
trajectories of the test set (t in [0, 4], all 250 recorded times) and reports the
accumulated error (MP-PDE metric), forward NFE, accepted steps and wall time.

    python examples/neural_pde/neural_pde_regularization.py --out out/neural_pde_reg    # ~10 min
    python examples/neural_pde/neural_pde_regularization.py --tiny --out /tmp/npr       # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffsim import solvers as dss
from diffsim.solvers import nn as dnn
from diffsim.solvers import pde


def build(nx: int, L: float, args, regularization, sensealg, learned: bool = True) -> dnn.NeuralPDE:
    torch.manual_seed(args.seed)
    flux = dnn.StencilFlux(stencil=args.stencil, hidden=args.hidden, layers=2) if learned else None
    physics = pde.CombinedEquation(nx, L, alpha=0.5) if (args.model == "correction" or not learned) else None
    rhs = dnn.FiniteVolume1D(nx, L, flux=flux, physics=physics)
    return dnn.NeuralPDE(rhs, solver=dss.Tsit5(), sensealg=sensealg, regularization=regularization,
                         rtol=args.rtol, atol=args.atol)


@torch.no_grad()
def evaluate(layer: dnn.NeuralPDE, test: pde.FieldData, repeats: int) -> dict:
    idx = torch.arange(test.n)
    u0 = test.u[:, 0, 0].double()
    forcing = dnn.NeuralPDETask(test).forcing(idx)
    best, sol = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        sol = layer(u0, saveat=test.t.double(), tspan=(0.0, float(test.t[-1])), forcing=forcing,
                    regularization=None)
        best = min(best, time.perf_counter() - t0)
    pred = sol.u.transpose(0, 1)[:, :, None]
    start = 50 if test.nt > 100 else 1  # the MP-PDE metric skips the first 50 of 250 states
    err = pde.step_error(pred, test.u.double())[:, start:].sum(1)
    return {"accumulated": float(err.mean()), "nfe": sol.stats.nfe, "steps": sol.stats.naccept,
            "rejected": sol.stats.nreject, "seconds": best, "retcode": sol.retcode.name}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/neural_pde_reg")
    ap.add_argument("--data", default="out/neural_pde/data", help="directory with E1_{train,test}.h5 "
                    "(written by mppde_benchmark.py; generated here if missing)")
    ap.add_argument("--nx", type=int, default=50)
    ap.add_argument("--n-train", type=int, default=128)
    ap.add_argument("--n-test", type=int, default=32)
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps per variant")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--horizon", type=int, default=10, help="recorded steps per training segment")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--stencil", type=int, default=4)
    ap.add_argument("--model", default="learned", choices=["learned", "correction"],
                    help="learned: the whole flux is a network; correction: WENO5 flux + a learned correction")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--coeffs", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--sensealg", default="direct", choices=["direct", "interpolating", "backsolve", "quadrature"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        fam = pde.CEFamily("E1-short", alpha=0.5, tmax=0.5, nt=32)
        args.n_train, args.n_test, args.steps, args.repeats, args.coeffs = 4, 2, 2, 1, [0.1]
        paths = {s: out / f"tiny_{s}.h5" for s in ("train", "test")}
        res = (args.nx * 2, args.nx)
    else:
        fam = pde.E1
        paths = {"train": Path(args.data) / "E1_train.h5", "test": Path(args.data) / "E1_test.h5"}
        res = (200,)
    if not paths["train"].exists():
        pde.generate(fam, paths["train"], args.n_train, seed=0, resolutions=res)
    if not paths["test"].exists():
        pde.generate(fam, paths["test"], args.n_test, seed=2, resolutions=(200, 100, 50, 40) if not args.tiny
                     else res)
    train = pde.load_ce(paths["train"], args.nx, samples=slice(0, args.n_train), dtype=torch.float64)
    test = pde.load_ce(paths["test"], args.nx, samples=slice(0, args.n_test), dtype=torch.float64)
    sens = {"direct": dss.DirectAdjoint(), "interpolating": dss.InterpolatingAdjoint(),
            "backsolve": dss.BacksolveAdjoint(), "quadrature": dss.QuadratureAdjoint()}[args.sensealg]
    variants = [("WENO5 reference (no network)", None, False), ("none", None, True)]
    variants += [(f"local unbiased c={c:g}", dss.LocalRegularization(sampling="unbiased", coeff=c), True)
                 for c in args.coeffs]
    variants += [(f"local biased c={c:g}", dss.LocalRegularization(sampling="biased", coeff=c), True)
                 for c in args.coeffs[-1:]]
    rows = []
    for label, reg, trained in variants:
        layer = build(args.nx, train.lengths[0], args, reg, sens, learned=trained).double()
        task = dnn.NeuralPDETask(train, horizon=args.horizon)
        t0 = time.perf_counter()
        nfe_train = 0
        if trained:
            cfg = dnn.TrainConfig(epochs=1, steps_per_epoch=args.steps, batch_size=args.batch_size, lr=args.lr,
                                  seed=args.seed, progress=False)
            trainer = dnn.Trainer(layer, _Counting(task), cfg)
            trainer.fit()
            nfe_train = trainer.task.nfe
        train_s = time.perf_counter() - t0
        row = {"variant": label, "train_seconds": train_s, "train_nfe": nfe_train,
               **evaluate(layer, test, args.repeats)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[1]["nfe"]
    lines = ["| variant | accumulated error | NFE | NFE ratio | accepted steps | predict s | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['accumulated']:.3f} | {r['nfe']} | {r['nfe'] / base:.2f} | {r['steps']} "
                     f"| {r['seconds']:.3f} | {r['train_seconds']:.0f} |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=1))
    print(table)
    return rows


class _Counting(dnn.Task):
    """Wraps a task and counts the forward NFE of the training solves."""

    def __init__(self, task):
        self.task, self.nfe = task, 0

    def steps_per_epoch(self, batch_size):
        return self.task.steps_per_epoch(batch_size)

    def sample(self, gen, batch_size, epoch):
        return self.task.sample(gen, batch_size, epoch)

    def loss(self, model, batch):
        loss = self.task.loss(model, batch)
        self.nfe += self.task.last_stats.nfe
        return loss


if __name__ == "__main__":
    main()
