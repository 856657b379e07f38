"""Trajectory optimizers at equal simulation cost, against scipy's L-BFGS-B in the same run.

Three synthetic, differentiable control problems in torch (float64), each a loss of a
control tensor U of shape (T, act_dim) in [-1, 1] through a T-step rollout:

(a) track: a 2-D point mass (double integrator, accelerations U, T = 40, dt = 0.1 s)
    follows a figure-eight; the loss is convex (quadratic in U, linear dynamics): the case
    where gradients should win.
(b) reach: a 2-D point mass (double integrator, accelerations U, T = 40, dt = 0.1 s)
    must stop at (2, 0) while a Gaussian obstacle sits at (1, 0) on the straight line.
    Smooth but non-convex; from U = 0 the gradient is symmetric in y, so gradient
    methods alone drive straight into the obstacle (a saddle/local minimum).
(c) push: a 1-D pusher must push a box from 0.5 m to 1.5 m through a penalty contact
    (force k * relu(r - gap)). From U = 0 the pusher never touches the box, so the
    gradient is exactly zero: the flat landscape of contact that ThinShellLab met.

Every method gets the same number of loss evaluations (rollouts, ``--evals``): Adam one
per iteration (plus one backward pass each), CEM and MPPI their populations (vectorised
through ``batch_loss_fn``), Hybrid half sampler and half Adam, L-BFGS-B ``maxfun``
(each function call is one rollout plus one backward pass), ``dss.LBFGS`` (torch's
L-BFGS) the same. A second Adam row gets a third of the rollouts, i.e. equal work if a
backward pass costs two forward passes. The "8 hat" rows optimise 8 weights per action of
a piecewise-linear ``dss.ActionBasis`` instead of the 40 per-step actions; the restarts
row runs 4 CEM restarts (each a quarter of the sampler budget) before Adam.
Samplers are random: median (min-max) over ``--seeds`` seeds; Adam and L-BFGS-B are
deterministic. Times are wall seconds of one run (median over seeds).

Usage: python benchmarks/control.py [--evals 2000] [--seeds 5] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import scipy
import torch
from scipy.optimize import minimize

from diffsim import solvers as dss

DT = 0.1


# ----------------------------------------------------------------------------- problems


def track_loss(U: torch.Tensor) -> torch.Tensor:
    """U: (..., 40, 2) accelerations (m/s^2) -> (...) mean squared tracking error (x10)."""
    T = U.shape[-2]
    s = torch.arange(1, T + 1, dtype=U.dtype) * (2 * torch.pi / T)
    ref = torch.stack([0.5 * torch.sin(s), 0.25 * torch.sin(2 * s)], -1)  # (T, 2)
    p = U.new_zeros(U.shape[:-2] + (2,))
    v = torch.zeros_like(p)
    err = U.new_zeros(U.shape[:-2])
    for t in range(T):
        v = v + DT * U[..., t, :]
        p = p + DT * v
        err = err + ((p - ref[t]) ** 2).sum(-1)
    return 10 * err / T + 1e-3 * (U**2).sum((-2, -1))


def reach_loss(U: torch.Tensor) -> torch.Tensor:
    """U: (..., 40, 2) accelerations (m/s^2) -> (...) loss."""
    p = U.new_zeros(U.shape[:-2] + (2,))
    v = torch.zeros_like(p)
    goal = U.new_tensor([2.0, 0.0])
    centre = U.new_tensor([1.0, 0.0])
    obstacle = U.new_zeros(U.shape[:-2])
    for t in range(U.shape[-2]):
        v = v + DT * U[..., t, :]
        p = p + DT * v
        obstacle = obstacle + torch.exp(-((p - centre) ** 2).sum(-1) / (2 * 0.2**2))
    return ((p - goal) ** 2).sum(-1) + 0.1 * (v**2).sum(-1) + 0.5 * obstacle + 1e-3 * (U**2).sum((-2, -1))


def push_loss(U: torch.Tensor) -> torch.Tensor:
    """U: (..., 40, 1) pusher accelerations (m/s^2) -> (...) loss."""
    k, r, damping = 50.0, 0.1, 1.0
    p = U.new_zeros(U.shape[:-2])
    v = torch.zeros_like(p)
    b = torch.full_like(p, 0.5)
    w = torch.zeros_like(p)
    for t in range(U.shape[-2]):
        f = k * torch.relu(r - (b - p))  # contact force on the box; zero (and flat) apart
        v = v + DT * (U[..., t, 0] - f)
        w = (w + DT * f) * (1 - damping * DT)
        p = p + DT * v
        b = b + DT * w
    return (b - 1.5) ** 2 + 0.1 * w**2


PROBLEMS = {
    "track": (track_loss, (40, 2)),
    "reach": (reach_loss, (40, 2)),
    "push": (push_loss, (40, 1)),
}


# ----------------------------------------------------------------------------- runs


def lbfgsb(prob: dss.ControlProblem, maxfun: int):
    """scipy's L-BFGS-B with torch gradients; each call is one rollout + one backward."""
    shape, calls = prob.u0.shape, [0]

    def fun(x):
        calls[0] += 1
        U = torch.tensor(x, dtype=torch.float64).reshape(shape).requires_grad_(True)
        loss = prob.loss_fn(U)
        (g,) = torch.autograd.grad(loss, U)
        return float(loss.detach()), g.reshape(-1).numpy()

    bounds = list(zip(prob.lo.reshape(-1).tolist(), prob.hi.reshape(-1).tolist()))
    t0 = time.perf_counter()
    r = minimize(fun, prob.u0.reshape(-1).numpy(), jac=True, method="L-BFGS-B", bounds=bounds,
                 options={"maxfun": maxfun, "maxiter": maxfun})
    return float(r.fun), calls[0], calls[0], time.perf_counter() - t0, r.message


def methods(evals: int):
    """(label, algorithm, rollouts, random, knots of a hat basis or None)."""
    cem = dss.CEM(population=64, elites=8, min_std=0.02)
    return [
        ("Adam lr=0.05", dss.Adam(lr=0.05), evals, False, None),
        ("Adam lr=0.05, 1/3 rollouts", dss.Adam(lr=0.05), evals // 3, False, None),
        ("dss.LBFGS (torch)", dss.LBFGS(), evals, False, None),
        ("CEM 64/8", cem, evals, True, None),
        ("MPPI 64, T=0.05", dss.MPPI(samples=64, temperature=0.05, noise_std=0.3), evals, True, None),
        ("Hybrid(CEM, Adam) 50/50", dss.Hybrid(cem, dss.Adam(lr=0.05)), evals, True, None),
        ("Hybrid, 4 CEM restarts", dss.Hybrid(cem, dss.Adam(lr=0.05), restarts=4), evals, True, None),
        ("CEM 64/8, 8 hat", cem, evals, True, 8),
        ("Hybrid(CEM, Adam), 8 hat", dss.Hybrid(cem, dss.Adam(lr=0.05)), evals, True, 8),
    ]


def fmt(values):
    med = statistics.median(values)
    if len(values) == 1 or max(values) == min(values):
        return f"{med:.4g}"
    return f"{med:.4g} ({min(values):.3g}-{max(values):.3g})"


def run_problem(name: str, evals: int, seeds: int):
    loss_fn, shape = PROBLEMS[name]
    prob = dss.ControlProblem(loss_fn, torch.zeros(shape, dtype=torch.float64), bounds=(-1.0, 1.0),
                              batch_loss_fn=loss_fn)
    start = float(loss_fn(prob.u0))
    rows = []
    for label, alg, budget, random, knots in methods(evals):
        losses, times = [], []
        p = prob
        if knots is not None:
            p = dss.ControlProblem(loss_fn, torch.zeros((knots, *shape[1:]), dtype=torch.float64),
                                   bounds=(-1.0, 1.0), batch_loss_fn=loss_fn,
                                   basis=dss.ActionBasis(shape[0], knots))
        for seed in range(seeds if random else 1):
            res = dss.solve(p, alg, maxevals=budget, seed=seed)
            losses.append(res.loss)
            times.append(res.time)
        rows.append((label, fmt(losses), res.nevals, res.nbackward, f"{statistics.median(times):.2f}",
                     res.retcode.name))
    loss, nfev, nback, secs, msg = lbfgsb(prob, evals)
    rows.append(("scipy L-BFGS-B", f"{loss:.4g}", nfev, nback, f"{secs:.2f}", str(msg)[:34]))
    print(f"\n({name}) loss of U = 0: {start:.4g}; budget {evals} rollouts")
    print(table(rows, ("method", "final loss", "rollouts", "backward", "s", "retcode / scipy message")))


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evals", type=int, default=2000, help="rollouts per method")
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the random methods")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 gives stable timings)")
    ap.add_argument("--quick", action="store_true", help="small budget, for a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.evals, args.seeds = 200, 1
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
          f"thread(s), torch {torch.__version__}, scipy {scipy.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}")
    warm = dss.ControlProblem(lambda U: (U**2).sum(), torch.ones(2, dtype=torch.float64))
    dss.solve(warm, dss.Adam(), maxiters=2)  # torch.optim's one-time import cost stays out of the timings
    for name in PROBLEMS:
        run_problem(name, args.evals, args.seeds)


if __name__ == "__main__":
    main()
