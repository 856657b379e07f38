"""Neural PDE surrogates against their reference solvers, and the reference solvers against
peers, each pair timed in the same run on the same machine.

(a) MP-PDE families E1/E2/E3 at nx = 100/50/40: the WENO5 finite-volume reference
    (``dss.solve``, Tsit5, batched over all trajectories; at the data's tolerances and at
    rtol 1e-3 in float64 and float32) against a rollout of MPPDE (hidden 128, 6 layers)
    and FNO (width 64, 16 modes) over the same 250 recorded states (the first 50 given),
    batch ``--batch``. Speed does not depend on training, so the models are untrained.
(b) Pressure projection of the Taichi smoke solver (multigrid-preconditioned CG) against
    its own unpreconditioned / Jacobi CG and against scipy's sparse Cholesky-free CG and
    direct solve (``scipy.sparse.linalg``) on the same Poisson system.
(c) Smoke 64x64 (PDEArena settings, 56 steps): the Taichi solver against FNO-2D / U-Net
    rollouts of the same steps (untrained, speed only).
(d) A ``GNS`` (hidden 64, 5 message steps) against ``ds.MPM`` for the same particle scene.

Usage: python benchmarks/pde.py [--repeats 3] [--threads 1] [--batch 128] [--quick] [--sections abcd]
                                [--device cpu|cuda]

``--device cuda`` puts the torch models, the WENO5 reference (torch) and the Taichi
solvers (``ds.init(arch="cuda")``) on the GPU, so each pair is still timed on the same
hardware; timings synchronize the device. ``benchmarks/pde_gpu.sh`` runs it.
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import time

import numpy as np
import torch

from diffsim import solvers as dss
from diffsim.solvers import nn as dnn

DEVICE = torch.device("cpu")


def sync():
    """Waits for queued GPU work (torch and Taichi) so that wall times are complete."""
    if DEVICE.type == "cuda":
        import taichi as ti

        torch.cuda.synchronize()
        ti.sync()


def best_of(fn, repeats):
    best, out = math.inf, None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line, sep] + ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
                                    for r in rows])


# --------------------------------------------------------------------------------- (a)
def section_a(args):
    rows = []
    fams = ["E1"] if args.quick else ["E1", "E2", "E3"]
    for name in fams:
        fam = dss.pde.family(name)
        params = fam.sample(np.random.default_rng(0), args.batch)
        for nx in ((100,) if args.quick else (100, 50, 40)):
            ref = {}
            for label, rtol, atol, dt in (("1e-6/f64", 1e-6, 1e-8, torch.float64), ("1e-3/f64", 1e-3, 1e-5, torch.float64),
                                          ("1e-3/f32", 1e-3, 1e-5, torch.float32)):
                sec, (u, sol) = best_of(functools.partial(_solve, fam, params, nx, rtol, atol, dt), args.repeats)
                ref[label] = (sec, sol.stats.nfe)
            u = _solve(fam, params, nx, 1e-6, 1e-8, torch.float32)[0][:, :, None].float()
            cond = torch.rand(args.batch, len(fam.varying), device=DEVICE)
            t = fam.times(torch.float32).to(DEVICE)
            fastest = min(v[0] for v in ref.values())
            for mname, model in (("MPPDE", dnn.MPPDE(time_window=25, n_cond=cond.shape[1], dt=fam.dt, t_scale=fam.tmax,
                                                     length=fam.L)),
                                 ("FNO", dnn.FNO(dim=1, time_window=25, n_cond=cond.shape[1], dt=fam.dt,
                                                 t_scale=fam.tmax, modes=min(16, nx // 2)))):
                model.to(DEVICE).eval()
                sec, _ = best_of(functools.partial(dss.pde.rollout, model, u, t, cond, 25, warmup=2), args.repeats)
                rows.append([name, nx, args.batch, f"{ref['1e-6/f64'][0]:.3f} ({ref['1e-6/f64'][1]})",
                             f"{ref['1e-3/f64'][0]:.3f}", f"{ref['1e-3/f32'][0]:.3f}", mname, f"{sec:.3f}",
                             f"{fastest / sec:.1f}x"])
    print(f"(a) WENO5 reference vs surrogate rollouts of 200 states (batch of trajectories, {_where(args)})")
    print(table(rows, ["family", "nx", "batch", "ref s rtol1e-6/f64 (NFE)", "ref s 1e-3/f64", "ref s 1e-3/f32",
                       "model", "model s", "speed-up vs fastest ref"]))


def _solve(fam, params, nx, rtol, atol, dtype):
    with torch.no_grad():
        return fam.solve(params, nx, rtol=rtol, atol=atol, dtype=dtype, device=DEVICE)


def _where(args):
    return "CUDA" if DEVICE.type == "cuda" else f"CPU, {args.threads} thread(s)"


# --------------------------------------------------------------------------------- (b)
def poisson_matrix(n):
    import scipy.sparse as sp

    d = np.ones(n)
    T = sp.diags([-d[:-1], d * 0, -d[:-1]], [-1, 0, 1])
    I = sp.identity(n)
    A = sp.kron(T, I) + sp.kron(I, T)
    deg = -np.asarray(A.sum(1)).ravel()  # neighbour counts (Neumann walls)
    return (A + sp.diags(deg)).tocsr()


def section_b(args):
    import scipy.sparse.linalg as spla

    from diffsim.eulerian import Smoke, noise_field

    rows = []
    for res in ((64,) if args.quick else (64, 128)):
        rng = np.random.default_rng(0)
        vx = rng.standard_normal((res + 1, res))
        vy = rng.standard_normal((res, res + 1))
        for pc in ("mg", "jacobi", "none"):
            sim = Smoke(res=(res, res), size=32.0, preconditioner=pc, cg_max_iters=5000)
            st = sim.reset(np.abs(noise_field((res, res), 32.0, rng)), vx, vy)
            sim.project(st)  # compile
            sec, _ = best_of(lambda s=sim, x=st: s.project(x), args.repeats)
            rows.append([res, f"diffsim MGPCG ({pc})" if pc == "mg" else f"diffsim CG ({pc})", sim.stats["cg_iters"],
                         f"{sim.stats['cg_residual']:.1e}", f"{1e3 * sec:.1f}"])
            b = sim.k.b.to_numpy().ravel().astype(np.float64)
            sim.close()
        A = poisson_matrix(res)
        b = b - b.mean()
        tol = 1e-4
        count = [0]

        def tick(_x, count=count):
            count[0] += 1

        sec, _ = best_of(functools.partial(spla.cg, A, b, rtol=tol, maxiter=5000, callback=tick), args.repeats)
        rows.append([res, "scipy CG (no preconditioner)", count[0] // args.repeats, f"{tol:.0e}", f"{1e3 * sec:.1f}"])
        A2 = A.tolil()
        A2[0, :] = 0
        A2[0, 0] = 1  # pin the constant null space for the direct solver
        b2 = b.copy()
        b2[0] = 0
        A2 = A2.tocsc()
        sec, _ = best_of(functools.partial(spla.spsolve, A2, b2), args.repeats)
        rows.append([res, "scipy spsolve (SuperLU)", "-", "direct", f"{1e3 * sec:.1f}"])
    print("(b) Pressure projection (Poisson, Neumann walls), float32 Taichi vs float64 scipy, same right-hand side")
    print(table(rows, ["grid", "solver", "iterations", "rel. residual", "ms"]))


# --------------------------------------------------------------------------------- (c)
def section_c(args):
    from diffsim.eulerian import Smoke, noise_field

    res, steps, tw, batch = 64, 56, 4, 8
    sim = Smoke(res=(res, res), size=32.0, dt=1.5, nu=0.01, buoyancy=(0.0, 0.5))
    rng = np.random.default_rng(0)
    s0 = [np.abs(noise_field((res, res), 32.0, rng)) for _ in range(batch)]
    sim.rollout(sim.reset(s0[0]), 2)
    sec_sim, _ = best_of(lambda: [sim.rollout(sim.reset(s), steps) for s in s0], args.repeats)
    sim.close()
    u = torch.randn(batch, steps, 3, res, res, device=DEVICE)
    t = torch.arange(steps, dtype=torch.float32, device=DEVICE) * 1.5
    cond = torch.zeros(batch, 0, device=DEVICE)
    rows = [["Taichi smoke (MGPCG)", f"{sec_sim:.2f}", "1.0x"]]
    for name, model in (("FNO-2D (modes 12, width 32)", dnn.FNO(dim=2, time_window=tw, channels=3, modes=12, width=32,
                                                                 padding=8, dt=1.5, t_scale=84.0)),
                        ("U-Net (hidden 16, 3 levels)", dnn.UNet(dim=2, time_window=tw, channels=3, hidden=16,
                                                                 periodic=False, dt=1.5, t_scale=84.0))):
        model.to(DEVICE).eval()
        sec, _ = best_of(lambda m=model: dss.pde.rollout(m, u, t, cond, tw, warmup=1), args.repeats)
        rows.append([name, f"{sec:.2f}", f"{sec_sim / sec:.1f}x"])
    print(f"(c) Smoke {res}x{res}: {batch} trajectories of {steps} steps (models: batched, untrained)")
    print(table(rows, ["method", "s", "speed-up"]))


# --------------------------------------------------------------------------------- (d)
def section_d(args):
    from diffsim.solvers.pde.particles import ParticleData

    spec = ParticleData(material="mixed", block=0.15, nt=21)
    sim = spec.simulator()
    spec.rollouts(sim, [0], 0)
    sec_mpm, data = best_of(lambda: spec.rollouts(sim, [1], 0), args.repeats)
    sim.close()
    pos = torch.as_tensor(data["positions"][0]).to(DEVICE)
    _, types = spec.counts()
    types = torch.as_tensor(types).to(DEVICE)
    model = dnn.GNS(dim=2, history=5, n_types=3, radius=spec.radius, hidden=64, message_steps=5).to(DEVICE)
    model.set_statistics(pos[None])
    sec_gns, _ = best_of(lambda: model.rollout(pos[:6].permute(1, 0, 2), types, 15), args.repeats)
    per_mpm = sec_mpm / 20
    per_gns = sec_gns / 15
    print(f"(d) {pos.shape[1]} particles, frame = {spec.substeps} MPM substeps of {spec.dt:g} s")
    print(table([["ds.MPM", f"{1e3 * per_mpm:.1f}", "1.0x"], ["GNS (hidden 64, 5 steps)", f"{1e3 * per_gns:.1f}",
                                                                 f"{per_mpm / per_gns:.2f}x"]],
                ["method", "ms per frame", "speed-up"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="abcd")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where torch and Taichi run (both sides of every comparison)")
    args = ap.parse_args(argv)
    global DEVICE
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (install a CUDA build of torch)")
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    import diffsim as ds

    ds.init(arch=args.device, precision="f32")
    gpu = f", {torch.cuda.get_device_name()}" if DEVICE.type == "cuda" else ""
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}{gpu}, torch {torch.__version__}, "
          f"device {args.device}, {args.threads} CPU thread(s)\n")
    for s in args.sections:
        {"a": section_a, "b": section_b, "c": section_c, "d": section_d}[s](args)
        print()


if __name__ == "__main__":
    main()
