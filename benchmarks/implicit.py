"""Implicit-layer benchmarks, each against a peer in the same run (float64, CPU).

(a) Root finding: the Broyden tridiagonal function (Moré, Garbow & Hillstrom 1981, problem
    30), ``F_i = (3 - 2 u_i) u_i - u_{i-1} - 2 u_{i+1} + 1``, ``u0 = -1``: our
    ``NewtonRaphson`` (dense LU for n = 100, matrix-free GMRES for n = 2000) against
    ``scipy.optimize.root`` (``hybr``, MINPACK's Powell hybrid, and ``krylov``, Newton-
    Krylov with LGMRES) to the same residual.
(b) Fixed point: ``u = tanh(W u + x)`` with ``W`` of spectral radius 0.95 (a slow
    contraction, n = 500): our ``Anderson(m=5)`` and ``FixedPointIteration`` against
    ``scipy.optimize.anderson`` (M = 5) on ``g(u) - u``.
(c) Gradient of a scalar of the fixed point of (b) with respect to ``x`` (n = 500):
    ``ImplicitAdjoint`` (one GMRES solve) against backpropagation through the Anderson
    iterations (``DirectAdjoint``) and against what scipy alone offers, one central
    finite difference per input entry (timed for 10 entries, extrapolated to n).

Usage: python benchmarks/implicit.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import scipy
import scipy.optimize as so
import torch

from diffsim import solvers as dss


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def timed(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts), out


def broyden_torch(u, p):
    left = torch.nn.functional.pad(u[:-1], (1, 0))
    right = torch.nn.functional.pad(u[1:], (0, 1))
    return (3 - 2 * u) * u - left - 2 * right + 1


def broyden_np(u):
    left = np.concatenate([[0.0], u[:-1]])
    right = np.concatenate([u[1:], [0.0]])
    return (3 - 2 * u) * u - left - 2 * right + 1


def section_a(repeats, tol=1e-10):
    rows = []
    for n, ours, peers in ((100, dss.NewtonRaphson(linsolve="direct"), ("hybr", "krylov")),
                           (2000, dss.NewtonRaphson(linsolve="gmres"), ("krylov",))):
        u0 = -torch.ones(n, dtype=torch.float64)
        prob = dss.NonlinearProblem(broyden_torch, u0)
        ms, sol = timed(lambda prob=prob, ours=ours: dss.solve(prob, ours, abstol=tol), repeats)
        res = float(broyden_torch(sol.u, None).abs().max())
        rows.append([n, f"diffsim NewtonRaphson({ours.linsolve})", sol.retcode.name, sol.stats.iterations,
                     sol.stats.nfev + sol.stats.nmatvec + sol.stats.njev * n, f"{res:.1e}", f"{ms:.1f}", "1.00"])
        for method in peers:
            opts = {"xtol": 1e-14} if method == "hybr" else {"fatol": tol}
            pms, out = timed(lambda method=method, opts=opts, n=n: so.root(broyden_np, -np.ones(n), method=method,
                                                                   options=opts), repeats)
            pres = float(np.abs(broyden_np(out.x)).max())
            nfev = getattr(out, "nfev", None)
            nit = getattr(out, "nit", "-")
            rows.append([n, f"scipy root({method})", "ok" if out.success else "fail", nit, nfev if nfev else "-",
                         f"{pres:.1e}", f"{pms:.1f}", f"{ms / pms:.2f}"])
    return table(rows, ["n", "method", "retcode", "iterations", "F evals (+ J products)", "max|F|", "ms",
                        "ours / this"])


def contraction(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    W = Q @ torch.diag(torch.linspace(0.1, 0.95, n, dtype=torch.float64)) @ Q.T
    x = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return W, x


def section_b(repeats, n=500, tol=1e-10):
    W, x = contraction(n)
    prob = dss.FixedPointProblem(lambda z, p: torch.tanh(W @ z + x), torch.zeros(n, dtype=torch.float64))
    rows = []
    ms_a, sol_a = timed(lambda: dss.solve(prob, dss.Anderson(m=5), abstol=tol), repeats)
    ms_p, sol_p = timed(lambda: dss.solve(prob, dss.FixedPointIteration(), abstol=tol, maxiters=5000), repeats)
    Wn, xn = W.numpy(), x.numpy()
    count = [0]

    def F(u):
        count[0] += 1
        return np.tanh(Wn @ u + xn) - u

    def run_scipy():
        count[0] = 0
        return so.anderson(F, np.zeros(n), M=5, f_tol=tol, maxiter=5000)

    ms_s, us = timed(run_scipy, repeats)
    for name, ms, its, nfev, res in (
            ("diffsim Anderson(m=5)", ms_a, sol_a.stats.iterations, sol_a.stats.nfev, sol_a.stats.residual),
            ("diffsim FixedPointIteration", ms_p, sol_p.stats.iterations, sol_p.stats.nfev, sol_p.stats.residual),
            ("scipy anderson(M=5)", ms_s, "-", count[0], float(np.abs(F(us)).max()))):
        rows.append([name, its, nfev, f"{res:.1e}", f"{ms:.1f}", f"{ms_a / ms:.2f}"])
    return table(rows, ["method", "iterations", "g evals", "max|g(u)-u|", "ms", "Anderson / this"])


def section_c(repeats, n=500, tol=1e-10):
    W, x0 = contraction(n)
    w = torch.linspace(-1, 1, n, dtype=torch.float64)

    def loss(x, sensealg):
        prob = dss.FixedPointProblem(lambda z, p: torch.tanh(W @ z + p), torch.zeros(n, dtype=torch.float64), x)
        return (dss.solve(prob, dss.Anderson(m=5), abstol=tol, sensealg=sensealg).u * w).sum()

    def grad(sensealg):
        x = x0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(x, sensealg), x)
        return g

    ms_i, g_i = timed(lambda: grad(dss.ImplicitAdjoint()), repeats)
    ms_u, g_u = timed(lambda: grad(dss.DirectAdjoint()), repeats)
    with torch.no_grad():
        f0 = float(loss(x0, None))   # the forward alone, for reference
    ms_f, _ = timed(lambda: loss(x0, None), repeats)
    h = 1e-6

    def fd(k):
        e = torch.zeros(n, dtype=torch.float64)
        e[k] = h
        with torch.no_grad():
            return (float(loss(x0 + e, None)) - float(loss(x0 - e, None))) / (2 * h)

    t0 = time.perf_counter()
    g_fd = [fd(k) for k in range(10)]
    ms_fd = 1e3 * (time.perf_counter() - t0) / 10 * n
    err_u = float((g_u - g_i).abs().max() / g_i.abs().max())
    err_fd = max(abs(g_fd[k] - float(g_i[k])) for k in range(10)) / float(g_i.abs().max())
    rows = [["forward only (no grad)", f"{ms_f:.1f}", "-", "-"],
            ["ImplicitAdjoint (GMRES)", f"{ms_i:.1f}", "reference", "1.00"],
            ["DirectAdjoint (unrolled Anderson)", f"{ms_u:.1f}", f"{err_u:.1e}", f"{ms_i / ms_u:.2f}"],
            ["central differences (n x 2 solves)", f"{ms_fd:.0f} (extrapolated)", f"{err_fd:.1e} (10 entries)",
             f"{ms_i / ms_fd:.4f}"]]
    assert np.isfinite(f0)
    return table(rows, ["gradient of sum(w * u*) w.r.t. x (n = 500)", "ms", "max rel. diff. to implicit",
                        "implicit / this"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, scipy "
          f"{scipy.__version__}, {args.threads} thread(s), float64, median of {args.repeats}\n")
    print("## (a) Broyden tridiagonal root\n\n" + section_a(args.repeats) + "\n")
    print("## (b) fixed point of a slow contraction\n\n" + section_b(args.repeats) + "\n")
    print("## (c) gradient through the fixed point\n\n" + section_c(args.repeats) + "\n")


if __name__ == "__main__":
    main()
