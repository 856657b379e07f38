"""MPM throughput: the general simulator against the minimal reference, same run.

Prints, for 2D (about 8k particles, 128^2 grid) and 3D (about 100k particles,
64^3 grid) fluid blocks:

* forward particle-substeps/s of ``ds.MPM`` and of the 88-line reference
  (``reference_mpm.py``) on identical particles, grid, dt and float type, timed
  in interleaved pairs; the ratio is the median of the per-pair ratios, which
  is robust to other load on the machine;
* forward+backward particle-substeps/s of a gradient (``ds.solve`` +
  ``loss.backward()``) with ``CheckpointAdjoint(segment=T)`` (no recomputation)
  and ``segment=T/4`` (three of four segments recomputed), as ratios to the
  forward time measured in the same pairs;
* peak memory of a gradient through 100 and 2000 steps (``--memory``; each in
  a fresh subprocess, max resident set size);
* per task (``--tasks``, every MPM task at its default size, float32, the package
  defaults a user gets from ``gym.make``): the time of ``rollout_loss`` forward and of
  its backward for seeded random actions, their ratio, the first gradient of the
  process (compilation or the offline cache included) and, in the same run, the
  reference MLS-MPM forward on the task's particles and grid (fluid model, no tools:
  a yardstick for the particle and grid work alone).

Usage: ``python benchmarks/mpm.py [--dims 2 3] [--arch cpu] [--reps 7] [--memory]
[--tasks [ID ...]]`` (``./dev bench mpm`` runs it in the project environment).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diffsim as ds  # noqa: E402
from diffsim.envs.registry import env_id as task_env_id  # noqa: E402

CASES = {
    2: dict(res=128, lo=(0.2, 0.2), hi=(0.55, 0.55), dt=2e-4),
    3: dict(res=64, lo=(0.3,) * 3, hi=(0.663,) * 3, dt=4e-4),
    "3-1M": dict(res=128, lo=(0.2,) * 3, hi=(0.6,) * 3, dt=2e-4),
}


def _sync():
    import taichi as ti

    ti.sync()


def make_sim(case, substeps):
    c = CASES[case]
    dim = len(c["lo"])
    scene = ds.Scene(dim=dim)
    scene.add_particles(ds.Box(lo=c["lo"], hi=c["hi"]),
                        ds.Fluid(bulk_modulus=400.0, density=1.0), name="fluid")
    return ds.MPM(scene, grid_res=c["res"], dt=c["dt"], substeps=substeps), c


def bench_case(case, T=20, substeps=10, reps=7, grad=True):
    from reference_mpm import ReferenceMPM

    sim, c = make_sim(case, substeps)
    ref = ReferenceMPM(sim.dim, sim.reset().x.cpu().numpy(), c["res"], c["dt"], E=400.0)
    s0 = sim.reset()
    U = torch.zeros(T, 0)
    v0 = s0.v.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            sim.rollout(s0, U)

    def reference():
        for _ in range(T * substeps):
            ref.substep()

    def fwd_bwd(segment):
        sol = ds.solve(ds.SimulationProblem(sim, controls=U, state0=s0.replace(v=v0)),
                       sensealg=ds.CheckpointAdjoint(segment=segment))
        sol.u[-1].x.mean(0).sum().backward()

    def timed(fn):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        return time.perf_counter() - t

    fwd(), reference()  # compile
    if grad:
        fwd_bwd(T), fwd_bwd(max(T // 4, 1))
    rows = {"fwd": [], "ref": [], "fb_full": [], "fb_seg": []}
    for _ in range(reps):
        rows["fwd"].append(timed(fwd))
        rows["ref"].append(timed(reference))
        if grad:
            rows["fb_full"].append(timed(lambda: fwd_bwd(T)))
            rows["fb_seg"].append(timed(lambda: fwd_bwd(max(T // 4, 1))))
    work = sim.n_particles * T * substeps
    fwd_t, ref_t = np.array(rows["fwd"]), np.array(rows["ref"])
    out = {
        "case": f"{sim.dim}D", "particles": sim.n_particles, "grid": "x".join(
            map(str, sim.model.grid_shape)),
        "fwd_psteps_per_s": work / np.median(fwd_t),
        "ref_psteps_per_s": work / np.median(ref_t),
        "fwd_over_ref_time": float(np.median(fwd_t / ref_t)),
    }
    if grad:
        for key in ("fb_full", "fb_seg"):
            t = np.array(rows[key])
            out[f"{key}_psteps_per_s"] = work / np.median(t)
            out[f"{key}_bwd_over_fwd"] = float(np.median((t - fwd_t) / fwd_t))
    ref.destroy()
    sim.close()
    return out


MPM_TASKS = ["Pour", "LatteArt", "Scoop", "Gather", "Stir", "Pinch", "RollingPin", "Carve"]


def bench_task(env_id: str, reps: int = 3) -> dict:
    """Forward and backward time of ``rollout_loss`` on one task (median of ``reps``)."""
    import gymnasium as gym
    from reference_mpm import ReferenceMPM

    import diffsim.envs  # noqa: F401  (registers the tasks)

    env = gym.make(env_id)
    env.reset(seed=0)
    u = env.unwrapped
    sim = u.sim
    g = torch.Generator().manual_seed(0)
    A = (torch.rand(u.horizon, u.act_dim, generator=g) * 2 - 1) * 0.5

    def fwd():
        with torch.no_grad():
            u.rollout_loss(A)

    def fwd_bwd():
        a = A.clone().requires_grad_()
        u.rollout_loss(a).backward()

    t = time.perf_counter()
    fwd_bwd()
    first = time.perf_counter() - t
    x = sim.reset().x.detach().cpu().numpy()
    res = sim.model.grid_shape[0]
    # a bulk modulus the reference fluid (density 1) is stable with at the task's dt
    ref = ReferenceMPM(sim.dim, x, res, sim.dt, E=(0.2 * sim.model.dx / sim.dt) ** 2)
    n_sub = u.horizon * sim.substeps

    def reference():
        for _ in range(n_sub):
            ref.substep()

    reference()
    rows = {"fwd": [], "fb": [], "ref": []}
    for _ in range(reps):
        for key, fn in (("fwd", fwd), ("fb", fwd_bwd), ("ref", reference)):
            _sync()
            t = time.perf_counter()
            fn()
            _sync()
            rows[key].append(time.perf_counter() - t)
    f, fb, r = (np.array(rows[k]) for k in ("fwd", "fb", "ref"))
    out = {"task": env_id, "particles": sim.n_particles, "grid": res, "steps": u.horizon,
           "first_grad_s": first, "fwd_s": float(np.median(f)),
           "bwd_s": float(np.median(fb - f)), "bwd_over_fwd": float(np.median((fb - f) / f)),
           "fwd_over_ref": float(np.median(f / r))}
    ref.destroy()
    env.close()
    return out


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def memory_probe(steps: int, segment: int) -> dict:
    """Peak extra resident memory (MiB) of one gradient through ``steps`` steps.

    An elastic block drifting without gravity (8k particles, 2D, 2 substeps per
    step) keeps the gradient bounded over thousands of steps. Kernels are
    compiled and the engine allocated by a warm-up gradient first, so the figure
    is what the rollout itself adds: checkpoints and the per-segment state. A
    thread samples the resident set every 5 ms.
    """
    import threading

    scene = ds.Scene(dim=2, gravity=(0.0, 0.0))
    scene.add_particles(ds.Box(lo=(0.3, 0.3), hi=(0.65, 0.65)), ds.Elastic(E=400.0, density=1.0),
                        velocity=(0.02, 0.01))
    sim = ds.MPM(scene, grid_res=128, dt=2e-4, substeps=2)
    s0 = sim.reset()

    def grad(T):
        v0 = s0.v.clone().requires_grad_()
        sol = ds.solve(ds.SimulationProblem(sim, controls=torch.zeros(T, 0),
                                            state0=s0.replace(v=v0)),
                       sensealg=ds.CheckpointAdjoint(segment=segment))
        sol.u[-1].x.mean(0).sum().backward()
        assert torch.isfinite(v0.grad).all()

    grad(segment)
    base = _rss_mib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.005)

    th = threading.Thread(target=sample)
    th.start()
    grad(steps)
    done.set()
    th.join()
    return {"steps": steps, "segment": segment, "particles": sim.n_particles,
            "peak_extra_mib": peak[0] - base,
            "checkpoint_mib": -(-steps // segment) * sim.n_particles * 13 * 4 / 2 ** 20}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", nargs="+", default=["2", "3"], help="cases: 2, 3, 3-1M")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--deterministic", choices=["auto", "on", "off"], default="auto",
                    help="serial scatter kernels (bitwise reproducible); auto = on for the CPU")
    ap.add_argument("--optimize", choices=["compile", "runtime"], default=None,
                    help="Taichi optimisation (ds.init); default: 'runtime' for the fluid "
                         "blocks (long runs amortise compilation), the package default "
                         "'compile' for --tasks")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--memory", action="store_true", help="also measure 100- vs 2000-step RSS")
    ap.add_argument("--memory-probe", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tasks", nargs="*", default=None,
                    help="per-task forward/backward (default: every MPM task)")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args(argv)
    det = {"auto": None, "on": True, "off": False}[args.deterministic]
    if args.optimize is None:
        args.optimize = "compile" if args.tasks is not None else "runtime"
    cfg = ds.init(arch=args.arch, precision=args.precision, deterministic=det,
                  optimize=args.optimize)
    if args.memory_probe:
        print(json.dumps(memory_probe(*args.memory_probe)))
        return
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"taichi arch={cfg.arch}, {cfg.precision}, deterministic={cfg.deterministic}, "
          f"optimize={args.optimize}")
    results = []
    if args.tasks is not None:
        if args.optimize != "compile" or args.precision != "f32":
            print("# note: users get precision f32 and optimize='compile' by default")
        print("| task | particles | grid | steps | forward (s) | backward (s) | backward/forward "
              "| forward/reference | first gradient (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for env_id in args.tasks or MPM_TASKS:
            # a bare name means the task's current version
            env_id = env_id if "/" in env_id else (
                f"diffsim/{env_id}" if "-v" in env_id else task_env_id(env_id))
            r = bench_task(env_id, reps=min(args.reps, 3))
            results.append(r)
            print(f"| {r['task']} | {r['particles']} | {r['grid']}^3 | {r['steps']} | "
                  f"{r['fwd_s']:.2f} | {r['bwd_s']:.2f} | {r['bwd_over_fwd']:.2f} | "
                  f"{r['fwd_over_ref']:.2f} | {r['first_grad_s']:.1f} |", flush=True)
        args.dims = []
    for dim in args.dims:
        case = dim if dim == "3-1M" else int(dim)
        r = bench_case(case, T=args.steps, reps=args.reps)
        results.append(r)
        print(f"{r['case']} {r['particles']} particles, grid {r['grid']}:")
        print(f"  forward        ds.MPM {r['fwd_psteps_per_s']:.3g} particle-substeps/s | "
              f"reference {r['ref_psteps_per_s']:.3g} | time ratio ds/ref "
              f"{r['fwd_over_ref_time']:.2f} (target <= 1.25)")
        print(f"  fwd+bwd segment=T   {r['fb_full_psteps_per_s']:.3g} particle-substeps/s | "
              f"backward/forward {r['fb_full_bwd_over_fwd']:.2f} (target <= 2.5)")
        print(f"  fwd+bwd segment=T/4 {r['fb_seg_psteps_per_s']:.3g} particle-substeps/s | "
              f"backward/forward {r['fb_seg_bwd_over_fwd']:.2f}")
    if args.memory:
        for steps in (100, 2000):
            cmd = [sys.executable, __file__, "--memory-probe", str(steps), "50",
                   "--precision", args.precision, "--optimize", args.optimize]
            if args.arch:
                cmd += ["--arch", args.arch]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                            text=True).stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"  memory: gradient through {steps} steps (segment 50, "
                  f"{res['particles']} particles): peak {res['peak_extra_mib']:.0f} MiB above "
                  f"the compiled simulator (checkpoints {res['checkpoint_mib']:.1f} MiB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
