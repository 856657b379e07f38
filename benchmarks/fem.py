"""FEM and shell throughput: ds.FEM / ds.Shell against a direct sparse solver, same run.

Cases: a cantilever of about 10k tets (and about 100k with ``--large``) and a 64x64 cloth
pinned at two corners, implicit steps under gravity (stable neo-Hookean; StVK membrane
plus hinge bending). For each case:

* forward: implicit steps/s, Newton iterations per step, CG iterations per Newton step
  (matrix-free, block-Jacobi preconditioned, in Taichi);
* forward + backward: a gradient of the final positions with
  ``CheckpointAdjoint(segment=T)`` (one adjoint linear solve per step, implicit function
  theorem), its time as a ratio of the forward time, adjoint CG iterations;
* the peer, on the same implicit step from the same state: the identical Newton
  iteration (same gradient, Hessian and line search kernels) with each linear system
  solved by ``scipy.sparse.linalg.spsolve`` (SuperLU, a direct solver) on the assembled
  Hessian instead of PCG. The Hessian is assembled exactly from the matrix-free operator
  by graph-colouring probes (a distance-2 colouring of the mesh); that assembly is
  reported but not charged to the peer. Printed: time per linear solve (PCG vs
  spsolve), time per step (ours vs ours-with-spsolve) and their ratios.

Task-sized meshes (``--tasks``, default Lift-v2 Fold-v3 Separate-v1 Squeeze-v1; each task's
own mesh, float precision and options, one rollout of seeded random actions): forward and
forward + backward seconds with CG in one single-threaded launch (``kernels.cg_serial``,
chosen on the CPU up to ``engine.SERIAL_CG_NODES`` nodes) against the parallel CG kernels
(4 launches per iteration) in the same run, and their ratio (``--tasks`` with no names
skips them).

Usage: ``python benchmarks/fem.py [--cases tets10k cloth64] [--large] [--steps 10]
[--tasks ...] [--arch cpu] [--json out.json]`` (``./dev bench fem``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import diffsim as ds


def _sync():
    import taichi as ti

    ti.sync()


def make_case(name: str):
    """``(simulator, description)`` of a benchmark case."""
    if name.startswith("tets"):
        h = {"tets10k": 0.02, "tets100k": 0.01}[name]
        scene = ds.Scene(dim=3)
        scene.add_soft_body(ds.Box(lo=(0.0, 0.5, 0.0), hi=(0.6, 0.66, 0.16)),
                            ds.StableNeoHookean(E=1e6, nu=0.4, density=1000.0), resolution=h,
                            fixed=lambda x: x[:, 0] < 1e-9, damping=(0.0, 0.005))
        sim = ds.FEM(scene, dt=1e-2, substeps=1)
        return sim, f"{sim.n_elements} tets, {sim.n_nodes} nodes"
    if name == "cloth64":
        scene = ds.Scene(dim=3)
        mat = ds.ShellMaterial(E=5e5, nu=0.3, thickness=5e-4, density=400.0,
                               bending_stiffness=1e-5)

        def corners(x):  # two corners of one edge
            return (np.abs(x[:, 2]) < 1e-9) & ((np.abs(x[:, 0]) < 1e-9)
                                              | (np.abs(x[:, 0] - 1.0) < 1e-9))

        scene.add_shell(ds.Rectangle(center=(0.5, 1.0, 0.5), size=(1.0, 1.0), normal_axis=1),
                        mat, resolution=1.0 / 63, fixed=corners, damping=(0.1, 0.0))
        sim = ds.Shell(scene, dt=1e-2, substeps=1)
        return sim, f"{sim.n_faces} triangles, {sim.n_nodes} vertices, {sim.n_hinges} hinges"
    raise ValueError(f"unknown case {name!r}")


# ------------------------------------------------------------------ assembled Hessian
def _adjacency(sim) -> sp.csr_matrix:
    m = sim.model
    n = m.n_nodes
    groups = [m.elem] + ([m.hinges] if m.hinges is not None and len(m.hinges) else [])
    rows, cols = [], []
    for el in groups:
        k = el.shape[1]
        for a in range(k):
            for b in range(k):
                rows.append(el[:, a])
                cols.append(el[:, b])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))


def _distance2_colouring(A: sp.csr_matrix) -> np.ndarray:
    A2 = (A @ A).tocsr()
    colour = -np.ones(A.shape[0], dtype=np.int64)
    for i in range(A.shape[0]):
        used = colour[A2.indices[A2.indptr[i]:A2.indptr[i + 1]]]
        used = np.unique(used[used >= 0])
        c = 0
        for u in used:
            if u != c:
                break
            c += 1
        colour[i] = c
    return colour


class Assembler:
    """Exact assembly of the (projected) Newton Hessian from the matrix-free operator."""

    def __init__(self, sim):
        self.A = _adjacency(sim).tocsr()
        self.colour = _distance2_colouring(self.A)
        self.n_colours = int(self.colour.max()) + 1
        self.n, self.d = sim.n_nodes, sim.dim
        self.free = ~sim.model.fixed

    def assemble(self, k) -> sp.csr_matrix:
        n, d = self.n, self.d
        rows, cols, vals = [], [], []
        A = self.A.tocoo()
        for c in range(self.n_colours):
            in_c = self.colour == c
            mask = in_c[A.col]
            j_of, i_of = A.row[mask], A.col[mask]   # each row j meets one column i of colour c
            for a in range(d):
                p = np.zeros((n, d))
                p[in_c, a] = 1.0
                k.cp.from_numpy(p)
                k.matvec_full()
                y = k.cAp.to_numpy()
                for b in range(d):
                    rows.append(j_of * d + b)
                    cols.append(i_of * d + a)
                    vals.append(y[j_of, b])
        H = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n * d, n * d))
        free = np.repeat(self.free, d)
        return H[free][:, free]


def peer_step(sim, state, assembler):
    """One implicit step with Newton's linear systems solved by spsolve; returns timings."""
    eng = sim._engine_for(1, False)
    k = eng.k
    free = np.repeat(assembler.free, sim.dim)
    timing = {"assembly": 0.0, "solve": 0.0, "solves": 0}

    def direct_cg(use_gradient, tol):
        t = time.perf_counter()
        H = assembler.assemble(k)
        t1 = time.perf_counter()
        b = -k.gvec.to_numpy().reshape(-1)[free]
        x = spla.spsolve(H.tocsc(), b)
        t2 = time.perf_counter()
        dx = np.zeros(sim.n_nodes * sim.dim)
        dx[free] = x
        k.dx.from_numpy(dx.reshape(sim.n_nodes, sim.dim))
        timing["assembly"] += t1 - t
        timing["solve"] += t2 - t1
        timing["solves"] += 1
        return 0, False

    eng.set_params([t.detach() for t in sim.internal_params()])
    eng.load_state(0, [state[n].detach() for n in sim.STATE_NAMES])
    eng.load_drive([d for d in _static_drive(sim, state)])
    saved, eng.cg = eng.cg, direct_cg
    saved_mode = eng.opts.hessian
    eng.opts.hessian = "projected"   # the assembled operator must be the one Newton uses
    try:
        t = time.perf_counter()
        eng.newton(0)
        total = time.perf_counter() - t
    finally:
        eng.cg = saved
        eng.opts.hessian = saved_mode
    timing["step"] = total - timing["assembly"]
    return timing


def _static_drive(sim, state):
    from diffsim.tools import tool_trajectory

    U = torch.zeros(1, sim.action_dim, dtype=sim.dtype)
    drive, _ = tool_trajectory(sim.model, U, state.tool_pos, state.tool_rot)
    return drive


def ours_step(sim, state, reps=1):
    eng = sim._engine_for(1, False)
    eng.set_params([t.detach() for t in sim.internal_params()])
    out = []
    for _ in range(reps):
        eng.load_state(0, [state[n].detach() for n in sim.STATE_NAMES])
        eng.load_drive(_static_drive(sim, state))
        sim.solver_stats(reset=True)
        saved = eng.opts.hessian
        eng.opts.hessian = "projected"
        _sync()
        t = time.perf_counter()
        eng.newton(0)
        _sync()
        out.append(time.perf_counter() - t)
        eng.opts.hessian = saved
    return min(out), sim.solver_stats()


# ------------------------------------------------------------------ the benchmark
def bench_case(name: str, steps: int, peer: bool = True) -> dict:
    t_build = time.perf_counter()
    sim, desc = make_case(name)
    U = torch.zeros(steps, sim.action_dim, dtype=sim.dtype)
    s0 = sim.reset()
    with torch.no_grad():  # compile, and move to a deformed state
        s1 = sim.rollout(s0, U[:2], segment=steps)[-1]
    compile_s = time.perf_counter() - t_build
    sim.solver_stats(reset=True)
    _sync()
    t = time.perf_counter()
    with torch.no_grad():
        sim.rollout(s1, U, segment=steps)
    _sync()
    fwd = time.perf_counter() - t
    st_f = sim.solver_stats(reset=True)

    x0 = s1.x.clone().requires_grad_()

    def fwd_bwd():
        end = sim.rollout(s1.replace(x=x0), U, segment=steps)[-1]
        end.x.mean(0).sum().backward()

    fwd_bwd()  # compile the reverse kernels
    sim.solver_stats(reset=True)
    _sync()
    t = time.perf_counter()
    fwd_bwd()
    _sync()
    fb = time.perf_counter() - t
    st_b = sim.solver_stats(reset=True)
    out = {"case": name, "mesh": desc, "steps": steps, "compile_s": compile_s,
           "fwd_steps_per_s": steps / fwd, "newton_per_step": st_f["newton_per_step"],
           "cg_per_newton": st_f["cg_per_newton"], "fwd_bwd_s": fb, "bwd_over_fwd": (fb - fwd) / fwd,
           "adjoint_cg_per_step": st_b["cg_per_adjoint"]}
    if peer:
        t_ours, st = ours_step(sim, s1, reps=2)
        assembler = Assembler(sim)
        timing = peer_step(sim, s1, assembler)
        pcg_per_solve = t_ours / max(st["newton_iters"], 1)
        out.update({
            "peer_colours": assembler.n_colours,
            "ours_step_s": t_ours, "ours_newton": st["newton_iters"],
            "ours_cg": st["cg_iters"],
            "peer_step_s": timing["step"], "peer_newton": timing["solves"],
            "peer_solve_s": timing["solve"] / max(timing["solves"], 1),
            "peer_assembly_s": timing["assembly"] / max(timing["solves"], 1),
            "ours_time_per_newton_s": pcg_per_solve,
            "step_ratio_peer_over_ours": timing["step"] / t_ours,
        })
    sim.close()
    return out


def bench_task(task: str, reps: int = 2) -> dict:
    """Rollout and gradient times of a task's sheet or block: one-launch CG vs the parallel
    kernels (medians of ``reps`` after a compiling run), same actions, same process."""
    import gymnasium as gym

    import diffsim.envs  # noqa: F401  (registers the tasks)

    env = gym.make(task)
    env.reset(seed=0)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    A = torch.tensor(rng.uniform(-0.5, 0.5, (u.horizon, u.act_dim)), dtype=u.sim.dtype)
    row = {"task": task, "nodes": u.sim.n_nodes}
    for serial in (False, True):
        fwd, fb = [], []
        for rep in range(reps + 1):
            eng = u.sim._engine_for(u.sim.default_segment(u.horizon), True)
            eng.serial_cg = serial
            Ag = A.clone().requires_grad_(True)
            with torch.no_grad():
                u.sim._engine_for(u.sim.default_segment(u.horizon), False).serial_cg = serial
                t0 = time.perf_counter()
                u.rollout_loss(A)
                t1 = time.perf_counter()
            u.rollout_loss(Ag).backward()
            t2 = time.perf_counter()
            if rep:
                fwd.append(t1 - t0)
                fb.append(t2 - t1)
        key = "serial" if serial else "parallel"
        row[f"{key}_fwd_s"], row[f"{key}_fwd_bwd_s"] = float(np.median(fwd)), float(np.median(fb))
        stats = u.sim.solver_stats(reset=True)
        row["cg_per_newton"] = stats["cg_per_newton"]
    env.close()
    row["fwd_speedup"] = row["parallel_fwd_s"] / row["serial_fwd_s"]
    row["fwd_bwd_speedup"] = row["parallel_fwd_bwd_s"] / row["serial_fwd_bwd_s"]
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=["tets10k", "cloth64"])
    ap.add_argument("--large", action="store_true", help="add the ~100k-tet case")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--tasks", nargs="*", default=["diffsim/Lift-v2", "diffsim/Fold-v3", "diffsim/Separate-v1",
                                                   "diffsim/Squeeze-v1"])
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args(argv)
    cfg = ds.init(arch=args.arch, precision="f64", optimize="runtime")
    cases = list(args.cases) + (["tets100k"] if args.large else [])
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"taichi arch={cfg.arch}, {cfg.precision}, deterministic={cfg.deterministic}")
    results = []
    for name in cases:
        steps = args.steps if name != "tets100k" else max(2, args.steps // 4)
        r = bench_case(name, steps, peer=not args.no_peer)
        results.append(r)
        print(f"{name}: {r['mesh']} (kernels compiled in {r['compile_s']:.0f} s)")
        print(f"  forward  {r['fwd_steps_per_s']:.3g} implicit steps/s | Newton/step "
              f"{r['newton_per_step']:.2f} | CG/Newton {r['cg_per_newton']:.0f}")
        print(f"  fwd+bwd  {r['fwd_bwd_s']:.3g} s for {steps} steps | backward/forward "
              f"{r['bwd_over_fwd']:.2f} | adjoint CG/step {r['adjoint_cg_per_step']:.0f}")
        if "peer_step_s" in r:
            print(f"  one step, projected Newton: ours (PCG) {r['ours_step_s']:.3g} s "
                  f"({r['ours_newton']} Newton, {r['ours_cg']} CG) | scipy spsolve "
                  f"{r['peer_step_s']:.3g} s ({r['peer_newton']} Newton) | time ratio "
                  f"spsolve/ours {r['step_ratio_peer_over_ours']:.2f}")
            print(f"  per linear system: ours {r['ours_time_per_newton_s'] * 1e3:.1f} ms "
                  f"(Newton iteration incl. CG) | spsolve {r['peer_solve_s'] * 1e3:.1f} ms "
                  f"(factor + solve; assembly by {r['peer_colours']}-colour probing "
                  f"{r['peer_assembly_s'] * 1e3:.0f} ms, not counted)")
    for task in args.tasks:
        r = bench_task(task)
        results.append(r)
        print(f"{task} ({r['nodes']} nodes, CG/Newton {r['cg_per_newton']:.0f}): rollout "
              f"{r['serial_fwd_s']:.2f} s one-launch CG vs {r['parallel_fwd_s']:.2f} s parallel kernels "
              f"({r['fwd_speedup']:.1f}x); gradient {r['serial_fwd_bwd_s']:.2f} s vs "
              f"{r['parallel_fwd_bwd_s']:.2f} s ({r['fwd_bwd_speedup']:.1f}x)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
