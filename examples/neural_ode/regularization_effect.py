"""Reproduce the effect of Pal et al.'s solver-heuristic regularizers on neural ODEs.

Two tasks, each trained four times -- without regularization, with the global error
regularizer (Pal et al., ICML 2021) and with the local regularizer, unbiased and biased
sampling (Pal et al., ICML 2023) -- and a table of what the papers report: prediction
NFE, prediction time, training time, final loss / accuracy.

* spiral: fit the cubic spiral of Chen et al.'s demo, du/dt = (u^3) A, from windows of
  its trajectory on t in [0, 20] (L1 loss); prediction integrates the whole span.
* digits: classify scikit-learn's 8x8 digits (offline MNIST-like data) with
  encoder -> neural ODE on [0, 1] -> linear head (cross-entropy).

Run ``python examples/neural_ode/regularization_effect.py`` (a few minutes on a laptop
CPU); ``--iters 2 --tasks spiral`` gives a smoke run. ``--out DIR`` writes results.json and
results.md there.

``--sweep 0.01,0.1,1 --seeds 0,1,2`` instead trains the local regularizer (both samplings)
at each coefficient and seed next to the unregularized model of the same seed, and prints
the NFE and final-loss ratios (regularized / none): how to pick ``coeff`` for a task.
``--sweep-reg global-error,global-stiffness`` sweeps the global regularizers instead;
``--relative`` trains on ``loss + loss.detach() * sol.reg`` (the penalty weighed relative
to the current loss) instead of ``loss + sol.reg``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from torch import nn

from diffsim import solvers as dss


@dataclasses.dataclass
class Result:
    task: str
    variant: str
    predict_nfe: int
    predict_ms: float
    train_s: float
    final_loss: float
    accuracy: float | None
    failed_solves: int = 0


def variants(global_coeff: float, local_coeff: float):
    return {
        "none": None,
        "global error (2021)": dss.GlobalRegularization(kind="error", coeff=global_coeff),
        "local unbiased (2023)": dss.LocalRegularization(sampling="unbiased", coeff=local_coeff),
        "local biased (2023)": dss.LocalRegularization(sampling="biased", coeff=local_coeff),
    }


REPEATS = 21  # prediction timings: best of this many runs (--repeats)


def timed_best(fn, repeats: int | None = None) -> tuple[float, object]:
    """Best-of-N wall time: on a shared machine interference only adds time, so the
    minimum is the most repeatable estimate of the cost itself."""
    repeats = repeats if repeats is not None else REPEATS
    out, ts = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


class SpiralTask:
    """The spiral of Chen et al.'s demo: 400 states on t in [0, 20]; training fits
    random windows of 10 consecutive states (a batch of 16 windows), prediction
    integrates the whole trajectory from u(0)."""

    name = "spiral"
    tol = dict(rtol=1e-5, atol=1e-6)
    # (global, local): both regularizers' defaults (global "error" 0.05, local 0.1)
    coeffs = (dss.GlobalRegularization().coeff, dss.LocalRegularization().coeff)

    def __init__(self, n_points: int = 400, T: float = 20.0, window: int = 10, batch: int = 16):
        A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
        self.u0 = torch.tensor([[2.0, 0.0]], dtype=torch.float32)
        self.ts = torch.linspace(0.0, T, n_points, dtype=torch.float32)
        self.T, self.window, self.batch = T, window, batch
        with torch.no_grad():  # the data: a float64 solve, stored in float32 like the model
            truth = dss.solve(dss.ODEProblem(lambda u, p, t: (u**3) @ A, self.u0.double(), (0.0, T)), dss.DP8(),
                              rtol=1e-10, atol=1e-10, saveat=self.ts.double())
        assert truth.successful, truth.retcode
        self.target = truth.u[:, 0].float()  # (n_points, 2)
        self.t_window = self.ts[:window] - self.ts[0]

    def model(self) -> nn.Module:
        return _Cubic(nn.Sequential(nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 2)))

    def layer(self, field, reg, sensealg):
        return dss.NeuralODE(field, (0.0, float(self.t_window[-1])), dss.Tsit5(), sensealg, reg,
                             saveat=self.t_window, **self.tol)

    def batches(self, gen):
        n = len(self.ts) - self.window
        while True:
            start = torch.randint(0, n, (self.batch,), generator=gen)
            idx = start[None, :] + torch.arange(self.window)[:, None]  # (window, batch)
            yield self.target[start], self.target[idx]

    def loss(self, layer, heads, batch):
        u0, target = batch
        sol = layer(u0)
        return (sol.u - target).abs().mean(), sol

    def evaluate(self, layer, heads):
        with torch.no_grad():
            # Prediction integrates the trained field over the whole span from u(0).
            prob = dss.ODEProblem(layer.f, self.u0, (0.0, self.T))
            sec, sol = timed_best(lambda: dss.solve(prob, layer.solver, saveat=self.ts, **self.tol))
            # Final loss: the training objective over every window of the data.
            n = len(self.ts) - self.window
            idx = torch.arange(n)[None, :] + torch.arange(self.window)[:, None]
            windows = layer(self.target[:n], regularization=None)
            loss = float((windows.u - self.target[idx]).abs().mean()) if windows.successful else float("inf")
        return sol.stats.nfe, sec, loss, None


class _Cubic(nn.Module):
    """The demo's inductive bias: the network sees u^3."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, u):
        return self.net(u**3)


class DigitsTask:
    """8x8 digits: linear encoder -> neural ODE -> linear classifier."""

    name = "digits"
    tol = dict(rtol=1e-6, atol=1e-6)
    coeffs = (1.0, 3.0)  # cross-entropy tolerates a larger weight (tuned: 3 reaches 0.71x NFE)

    def __init__(self, batch_size: int = 128, seed: int = 0):
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data, dtype=torch.float32) / 16.0
        y = torch.tensor(d.target)
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(y), generator=g)
        n_test = 360
        self.x_test, self.y_test = x[perm[:n_test]], y[perm[:n_test]]
        self.x_train, self.y_train = x[perm[n_test:]], y[perm[n_test:]]
        self.batch_size = batch_size

    def model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 32))

    def heads(self) -> nn.ModuleDict:
        return nn.ModuleDict({"enc": nn.Linear(64, 32), "out": nn.Linear(32, 10)})

    def layer(self, field, reg, sensealg):
        return dss.NeuralODE(field, (0.0, 1.0), dss.Tsit5(), sensealg, reg, saveat=[1.0], **self.tol)

    def batches(self, gen):
        n = len(self.y_train)
        while True:
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n - self.batch_size + 1, self.batch_size):
                idx = perm[i : i + self.batch_size]
                yield self.x_train[idx], self.y_train[idx]

    def loss(self, layer, heads, batch):
        x, y = batch
        sol = layer(heads["enc"](x))
        return nn.functional.cross_entropy(heads["out"](sol.u[-1]), y), sol

    def evaluate(self, layer, heads):
        with torch.no_grad():
            def predict():
                sol = layer(heads["enc"](self.x_test), regularization=None)
                return sol, heads["out"](sol.u[-1])

            sec, (sol, logits) = timed_best(predict)
            loss = float(nn.functional.cross_entropy(logits, self.y_test))
            acc = float((logits.argmax(1) == self.y_test).float().mean())
        return sol.stats.nfe, sec, loss, acc


def train(task, variant: str, reg, iters: int, lr: float, seed: int, sensealg, relative: bool = False) -> Result:
    """Adam on ``loss + sol.reg``; ``relative``: on ``loss + loss.detach() * sol.reg`` (the
    penalty weighed against the current loss, so ``coeff`` trades R against relative fit)."""
    torch.manual_seed(seed)  # same initialization and batches for every variant
    field = task.model().float()  # the example runs in float32 whatever the default dtype
    heads = (task.heads() if hasattr(task, "heads") else nn.ModuleDict()).float()
    layer = task.layer(field, reg, sensealg)
    opt = torch.optim.Adam(list(field.parameters()) + list(heads.parameters()), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    batches = task.batches(gen)
    t0 = time.perf_counter()
    failed = 0
    for _ in range(iters):
        loss, sol = task.loss(layer, heads, next(batches))
        if not sol.successful:  # a blown-up proposal: skip the update, count it
            failed += 1
            continue
        total = loss + (loss.detach() * sol.reg if relative else sol.reg)
        opt.zero_grad()
        total.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    nfe, sec, final_loss, acc = task.evaluate(layer, heads)
    return Result(task.name, variant, nfe, sec * 1e3, train_s, final_loss, acc, failed)


def table(results: list[Result]) -> str:
    lines = ["| task | regularization | predict NFE | NFE ratio | predict ms | speed-up | train s | final loss | "
             "test acc |", "|---|---|---|---|---|---|---|---|---|"]
    base = {r.task: r for r in results if r.variant == "none"}
    for r in results:
        b = base.get(r.task)
        ratio = f"{r.predict_nfe / b.predict_nfe:.3f}" if b else "-"
        speed = f"{b.predict_ms / r.predict_ms:.2f}x" if b else "-"
        acc = f"{100 * r.accuracy:.1f}%" if r.accuracy is not None else "-"
        lines.append(f"| {r.task} | {r.variant} | {r.predict_nfe} | {ratio} | {r.predict_ms:.1f} | {speed} | "
                     f"{r.train_s:.1f} | {r.final_loss:.4f} | {acc} |")
    return "\n".join(lines)


SWEEP_REGULARIZERS = {
    "local": lambda c: {"local unbiased": dss.LocalRegularization(sampling="unbiased", coeff=c),
                        "local biased": dss.LocalRegularization(sampling="biased", coeff=c)},
    "global-error": lambda c: {"global error": dss.GlobalRegularization(kind="error", coeff=c)},
    "global-stiffness": lambda c: {"global stiffness": dss.GlobalRegularization(kind="stiffness", coeff=c)},
}


def sweep(task, coeffs: list[float], seeds: list[int], iters: int, lr: float,
          regularizers: tuple[str, ...] = ("local",), relative: bool = False) -> list[dict]:
    """Each regularizer at each coefficient vs none, per seed: NFE and loss ratios.

    ``regularizers`` are keys of ``SWEEP_REGULARIZERS``; "local" trains both samplings;
    ``relative``: see :func:`train`.
    """
    rows = []
    for seed in seeds:
        base = train(task, "none", None, iters, lr, seed, dss.DirectAdjoint())
        for c in coeffs:
            for key in regularizers:
                for name, reg in SWEEP_REGULARIZERS[key](c).items():
                    r = train(task, name, reg, iters, lr, seed, dss.DirectAdjoint(), relative)
                    name = name + (" (relative)" if relative else "")
                    rows.append(dict(task=task.name, seed=seed, regularizer=name, coeff=c,
                                     nfe_ratio=r.predict_nfe / base.predict_nfe,
                                     loss_ratio=r.final_loss / base.final_loss,
                                     accuracy_change=None if r.accuracy is None else r.accuracy - base.accuracy,
                                     failed_solves=r.failed_solves))
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def sweep_table(rows: list[dict]) -> str:
    lines = ["| task | regularizer | coeff | NFE ratio (per seed) | loss ratio (per seed) | accuracy change |",
             "|---|---|---|---|---|---|"]
    keys = sorted({(r["task"], r["regularizer"], r["coeff"]) for r in rows})
    for task, name, c in keys:
        sel = [r for r in rows if (r["task"], r["regularizer"], r["coeff"]) == (task, name, c)]
        nfe = ", ".join(f"{r['nfe_ratio']:.2f}" for r in sel)
        loss = ", ".join(f"{r['loss_ratio']:.2f}" for r in sel)
        acc = ("-" if sel[0]["accuracy_change"] is None
               else ", ".join(f"{100 * r['accuracy_change']:+.1f}" for r in sel))
        lines.append(f"| {task} | {name} | {c:g} | {nfe} | {loss} | {acc} |")
    return "\n".join(lines)


def main(argv=None) -> list[Result]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="spiral,digits", help="comma-separated: spiral, digits")
    ap.add_argument("--iters", type=int, default=None, help="training iterations (default: 1000 spiral, 400 digits)")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--sensealg", choices=["direct", "interpolating"], default="direct",
                    help="interpolating: InterpolatingAdjoint for the unregularized and local runs")
    ap.add_argument("--global-coeff", type=float, default=None)
    ap.add_argument("--local-coeff", type=float, default=None)
    ap.add_argument("--repeats", type=int, default=21, help="prediction timing: best of this many runs")
    ap.add_argument("--sweep", default=None, help="comma-separated coefficients: print the sweep table instead")
    ap.add_argument("--sweep-reg", default="local",
                    help="comma-separated regularizers of --sweep: local (both samplings), global-error, "
                         "global-stiffness")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of --sweep")
    ap.add_argument("--relative", action="store_true",
                    help="train on loss + loss.detach() * sol.reg (the penalty relative to the loss)")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json and results.md")
    args = ap.parse_args(argv)
    global REPEATS
    REPEATS = args.repeats
    torch.set_num_threads(args.threads)
    if args.sweep is not None:
        REPEATS = 1
        coeffs = [float(c) for c in args.sweep.split(",")]
        seeds = [int(x) for x in args.seeds.split(",")]
        regs = tuple(x.strip() for x in args.sweep_reg.split(","))
        for x in regs:
            if x not in SWEEP_REGULARIZERS:
                ap.error(f"--sweep-reg: {x!r} is not one of {', '.join(SWEEP_REGULARIZERS)}")
        rows = []
        for name in args.tasks.split(","):
            task = {"spiral": SpiralTask, "digits": DigitsTask}[name.strip()]()
            iters = args.iters if args.iters is not None else {"spiral": 1000, "digits": 400}[task.name]
            lr = args.lr if args.lr is not None else 3e-3
            rows += sweep(task, coeffs, seeds, iters, lr, regs, args.relative)
        md = sweep_table(rows)
        print("\n" + md)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "sweep.json").write_text(json.dumps(rows, indent=2))
            (args.out / "sweep.md").write_text(md + "\n")
        return rows
    results = []
    for name in args.tasks.split(","):
        task = {"spiral": SpiralTask, "digits": DigitsTask}[name.strip()]()
        iters = args.iters if args.iters is not None else {"spiral": 1000, "digits": 400}[task.name]
        lr = args.lr if args.lr is not None else {"spiral": 3e-3, "digits": 3e-3}[task.name]
        gc = args.global_coeff if args.global_coeff is not None else task.coeffs[0]
        lc = args.local_coeff if args.local_coeff is not None else task.coeffs[1]
        for variant, reg in variants(gc, lc).items():
            sens = dss.DirectAdjoint()
            if args.sensealg == "interpolating" and not isinstance(reg, dss.GlobalRegularization):
                sens = dss.InterpolatingAdjoint()
            r = train(task, variant, reg, iters, lr, args.seed, sens, args.relative)
            results.append(r)
            print(f"{r.task:7s} {r.variant:22s} NFE {r.predict_nfe:5d}  predict {r.predict_ms:7.1f} ms  "
                  f"train {r.train_s:6.1f} s  loss {r.final_loss:.4f}"
                  + (f"  acc {100 * r.accuracy:.1f}%" if r.accuracy is not None else ""), flush=True)
    md = table(results)
    print("\n" + md)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
        (args.out / "results.md").write_text(md + "\n")
    return results


if __name__ == "__main__":
    main()
