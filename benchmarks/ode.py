"""ODE solver benchmarks, each against a peer in the same run.

(a) Neural ODE, MLP 2 -> 64 -> 2 (tanh), batch 512, float32: forward + backward of
    diffsim.solvers' DP5 against torchdiffeq's dopri5 at the same tolerances, with direct
    backpropagation and with the adjoint. Median wall time over interleaved repeats,
    NFE of both passes, and the ratio of time per function evaluation ("at equal NFE").
(b) Non-stiff DETEST problems (Hull et al. 1972): NFE and error of DP5/Tsit5/DP8
    against scipy's solve_ivp RK45/DOP853 at several tolerances.
(c) Stiff problems (Robertson, Van der Pol mu = 1000): Rodas5P and Rosenbrock23 against
    scipy's Radau and BDF; Tsit5 shown hitting max_steps.

Usage: python benchmarks/ode.py [--repeats 9] [--threads 1] [--quick] [--sections abc]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from scipy.integrate import solve_ivp

from diffsim import solvers as dss
from diffsim.solvers import detest

try:
    import torchdiffeq
except ImportError:  # pragma: no cover - torchdiffeq is in the dev extra
    torchdiffeq = None


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


# ----------------------------------------------------------------------------- (a)


class _Counted(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.n = net, 0

    def forward(self, *args):  # torchdiffeq calls (t, y); diffsim calls (u, p, t)
        self.n += 1
        y = args[1] if len(args) == 2 else args[0]
        return self.net(y)


def neural_ode(repeats: int, quick: bool):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))
    x = torch.randn(512, 2)
    T = 2.0 if quick else 10.0
    rtol, atol = 1e-5, 1e-7
    ts = torch.tensor([0.0, T])
    ctrl = dss.PIController(beta2=0.0)  # an I controller, like torchdiffeq's

    def ours(sens, grad=True, alg=None):
        f = _Counted(net)
        t0 = time.perf_counter()
        prob = dss.ODEProblem(f, x, (0.0, T))
        if not grad:
            with torch.no_grad():
                dss.solve(prob, alg or dss.DP5(), rtol=rtol, atol=atol, saveat=[T], controller=ctrl)
            return time.perf_counter() - t0, f.n, 0
        sol = dss.solve(prob, alg or dss.DP5(), rtol=rtol, atol=atol, saveat=[T], sensealg=sens, controller=ctrl)
        nf = f.n
        sol.u[-1].pow(2).mean().backward()
        return time.perf_counter() - t0, nf, f.n - nf

    def theirs(mode):
        f = _Counted(net)
        t0 = time.perf_counter()
        if mode == "nograd":
            with torch.no_grad():
                torchdiffeq.odeint(f, x, ts, rtol=rtol, atol=atol, method="dopri5")
            return time.perf_counter() - t0, f.n, 0
        if mode == "direct":
            y = torchdiffeq.odeint(f, x, ts, rtol=rtol, atol=atol, method="dopri5")
        else:
            opts = {"adjoint_options": {"norm": "seminorm"}} if mode == "seminorm" else {}
            y = torchdiffeq.odeint_adjoint(f, x, ts, rtol=rtol, atol=atol, method="dopri5",
                                           adjoint_params=tuple(net.parameters()), **opts)
        nf = f.n
        y[-1].pow(2).mean().backward()
        return time.perf_counter() - t0, nf, f.n - nf

    cases = [
        ("forward only (no grad)", lambda: ours(None, grad=False), lambda: theirs("nograd")),
        ("direct backprop", lambda: ours(dss.DirectAdjoint()), lambda: theirs("direct")),
        ("adjoint: Backsolve vs odeint_adjoint(seminorm)", lambda: ours(dss.BacksolveAdjoint()),
         lambda: theirs("seminorm")),
        ("adjoint: Interpolating vs odeint_adjoint(seminorm)", lambda: ours(dss.InterpolatingAdjoint()),
         lambda: theirs("seminorm")),
        ("adjoint: Backsolve vs odeint_adjoint(default norm)", lambda: ours(dss.BacksolveAdjoint()),
         lambda: theirs("adjoint")),
    ]
    rows = []
    for name, a, b in cases:
        a(), b()  # warm-up
        ra, rb = [], []
        for _ in range(repeats):  # interleaved, so load changes hit both alike
            ra.append(a())
            rb.append(b())
        ta, tb = statistics.median(r[0] for r in ra), statistics.median(r[0] for r in rb)
        na, nb = ra[0][1] + ra[0][2], rb[0][1] + rb[0][2]
        rows.append([name, f"{ta * 1e3:.1f}", f"{ra[0][1]}/{ra[0][2]}", f"{tb * 1e3:.1f}", f"{rb[0][1]}/{rb[0][2]}",
                     f"{ta / tb:.2f}", f"{(ta / na) / (tb / nb):.2f}"])
    print(f"\n(a) Neural ODE MLP 2-64-2, batch 512, float32, t in [0, {T}], rtol={rtol}, atol={atol}; "
          f"ours: DP5 + I controller; median of {repeats}")
    print(table(rows, ["case", "ours ms", "ours NFE f/b", "torchdiffeq ms", "tde NFE f/b", "time ratio",
                       "time/NFE ratio"]))


# ----------------------------------------------------------------------------- (b)


def reference(P):
    if P.exact is not None:
        return np.array(P.exact(P.tspan[1]))
    return solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]


def detest_section(quick: bool):
    tols = [1e-4, 1e-7] if quick else [1e-4, 1e-7, 1e-10]
    probs = detest.NONSTIFF
    refs = {P.name: reference(P) for P in probs}
    rows = []
    for tol in tols:
        for name, run in [
            ("diffsim DP5", lambda P, tol=tol: _ours(P, dss.DP5(), tol)),
            ("diffsim Tsit5", lambda P, tol=tol: _ours(P, dss.Tsit5(), tol)),
            ("scipy RK45", lambda P, tol=tol: _scipy(P, "RK45", tol)),
            ("diffsim DP8", lambda P, tol=tol: _ours(P, dss.DP8(), tol)),
            ("scipy DOP853", lambda P, tol=tol: _scipy(P, "DOP853", tol)),
        ]:
            nfe, errs = 0, []
            for P in probs:
                n, y = run(P)
                ref = refs[P.name]
                nfe += n
                errs.append(float(np.abs(y - ref).max() / max(1.0, np.abs(ref).max())))
            rows.append([f"{tol:g}", name, nfe, f"{statistics.median(errs):.1e}", f"{max(errs):.1e}"])
    print(f"\n(b) DETEST {', '.join(P.name for P in probs)}, rtol = atol = tol; NFE summed over the set, "
          "error = max-norm relative error at t1")
    print(table(rows, ["tol", "method", "total NFE", "median err", "max err"]))


def _ours(P, alg, tol):
    with torch.no_grad():
        sol = dss.solve(P.problem(), alg, rtol=tol, atol=tol, saveat=[P.tspan[1]])
    return sol.stats.nfe, sol.u[-1].numpy()


def _scipy(P, method, tol):
    r = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method=method, rtol=tol, atol=tol)
    return r.nfev, r.y[:, -1]


# ----------------------------------------------------------------------------- (c)


def stiff_section(quick: bool):
    rows = []
    for P, t_eval in [(detest.ROBERTSON, [1.0, 1e2, 1e5]), (detest.VAN_DER_POL_1000, [1000.0, 2000.0, 3000.0])]:
        ref = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method="Radau", rtol=1e-11, atol=1e-13, t_eval=t_eval).y.T
        for name, rtol, atol, fn in [
            ("diffsim Rodas5P", 1e-6, 1e-10, lambda r, a, P=P, te=t_eval: _ours_stiff(P, dss.Rodas5P(), r, a, te)),
            ("diffsim Rosenbrock23", 1e-4, 1e-8,
             lambda r, a, P=P, te=t_eval: _ours_stiff(P, dss.Rosenbrock23(), r, a, te)),
            ("scipy Radau", 1e-6, 1e-10, lambda r, a, P=P, te=t_eval: _scipy_stiff(P, "Radau", r, a, te)),
            ("scipy BDF", 1e-6, 1e-10, lambda r, a, P=P, te=t_eval: _scipy_stiff(P, "BDF", r, a, te)),
            ("diffsim Tsit5 (max_steps=5000)", 1e-6, 1e-10,
             lambda r, a, P=P, te=t_eval: _ours_stiff(P, dss.Tsit5(), r, a, te, max_steps=5000)),
        ]:
            t0 = time.perf_counter()
            status, nfe, njac, nsteps, y = fn(rtol, atol)
            wall = time.perf_counter() - t0
            err = "-" if y is None else f"{float(np.max(np.abs(y - ref) / (np.abs(ref) + atol * 1e2))):.1e}"
            rows.append([P.name, name, f"{rtol:g}", status, nfe, njac, nsteps, f"{wall * 1e3:.0f}", err])
    print("\n(c) Stiff problems; error = max relative error at 3 times against Radau(rtol=1e-11)")
    print(table(rows, ["problem", "method", "rtol", "retcode", "NFE", "Jacobians", "steps", "ms", "rel err"]))


def _ours_stiff(P, alg, rtol, atol, t_eval, max_steps=100_000):
    with torch.no_grad():
        sol = dss.solve(P.problem(), alg, rtol=rtol, atol=atol, saveat=t_eval, max_steps=max_steps)
    y = sol.u.numpy() if sol.successful else None
    return sol.retcode.name, sol.stats.nfe, sol.stats.njac, sol.stats.naccept, y


def _scipy_stiff(P, method, rtol, atol, t_eval):
    r = solve_ivp(P.numpy_rhs(), P.tspan, P.u0, method=method, rtol=rtol, atol=atol, t_eval=t_eval)
    return ("SUCCESS" if r.success else "FAILED"), r.nfev, r.njev, "-", r.y.T


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 gives stable timings)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    ap.add_argument("--sections", default="abc")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}, python {platform.python_version()}")
    if "a" in args.sections:
        if torchdiffeq is None:
            print("(a) skipped: torchdiffeq is not installed (pip install torchdiffeq)")
        else:
            neural_ode(args.repeats, args.quick)
    if "b" in args.sections:
        detest_section(args.quick)
    if "c" in args.sections:
        stiff_section(args.quick)


if __name__ == "__main__":
    main()
