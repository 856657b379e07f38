"""Tactile sensor throughput: ds.Tactile against the same pad in plain ds.FEM, same run.

Cases (implicit steps of 10 ms, float64, a 20 x 20 x 4 mm neo-Hookean pad meshed at
``--resolution``):

* ``one``: one sensor; a ball pressed into the pad and slid across it (friction 0.5);
* ``two``: a parallel gripper, two sensors squeezing a box (friction 0.5);
* ``mesh``: ``one`` with the ball a ``ds.Mesh`` icosphere (5120 faces, the same radius)
  through its baked grid SDF (``diffsim/tactile/gridsdf.py``): the cost of mesh objects.

For each case: forward control steps/s (steps with contact), forward + backward steps/s
(``CheckpointAdjoint(segment=T)`` on a loss of the readings), and the cost of one
reading (markers, pressure maps, force/torque; with and without the tactile image).

Peer: the same pad mesh as a ``ds.FEM`` soft body with its back face pinned, pressed by
the same ball as an FEM tool (``ds.FEM``'s own mass-scaled penalty contact), stepped
with the same Newton/PCG solver: the ratio ``Tactile / FEM`` per step is the cost of what
``ds.Tactile`` adds (fingers, area-weighted contact with damping, the contact-force state).

MPM objects (``--mpm``; steps of 0.3 ms, 4 MPM substeps each, a 20^3-cell MPM grid, a
12 x 12 x 3 mm pad at ``--mpm-resolution``, the torch side on one thread):

* ``mpm one``: one upward-facing sensor pressing into a 6 mm elastic MPM block resting on
  it (neo-Hookean, E = 100 kPa, 1728 particles);
* ``mpm two``: two sensors squeezing the same block (gravity off);

each against its **peer in the same run**: the same pad(s), controls and contact
parameters against a rigid (kinematic) box of the block's size, so the ratio is the cost
of the coupling. Per case: forward and forward + backward steps/s (medians of
``--reps`` runs), the forward time split: pad solve, MPM step, coupling (level set,
object velocity, reaction impulse, in torch), and the memory autograd keeps through the
rollout (its saved tensors) for the whole rollout and with segments of T/4 steps
checkpointed (``adjoint.stepwise_rollout``), with that gradient's steps/s.

Usage: ``python benchmarks/tactile.py [--steps 10] [--resolution 0.002] [--arch cpu]
[--optimize runtime|compile] [--cases one,two,mesh,peer] [--json out.json]
[--mpm [--mpm-only] [--reps 3]]`` (``./dev bench tactile``); ``--arch cuda`` runs the same
kernels on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

import diffsim as ds

PAD = (0.02, 0.02, 0.004)
GEL = dict(E=3e5, nu=0.45, density=1000.0)


def one_sensor(res):
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_tool(ds.Sphere(center=(0.0, 0.0, PAD[2] + 0.006), radius=0.006), friction=0.5,
                   name="ball")
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat(PAD, res), material=ds.NeoHookean(**GEL),
                              markers=(7, 7))
    sim = ds.Tactile(scene, sensors=[sensor], dt=1e-2)

    def controls(T):
        U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
        U[: T // 2, 8] = -0.03        # press 0.3 mm per step
        U[T // 2:, 6] = 0.05          # then slide
        return U
    return sim, controls


def one_sensor_mesh(res):
    import trimesh

    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    ico = trimesh.creation.icosphere(subdivisions=4, radius=0.006)
    ico.apply_translation((0.0, 0.0, PAD[2] + 0.006))
    scene.add_tool(ds.Mesh.from_trimesh(ico), friction=0.5, name="ball")
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat(PAD, res), material=ds.NeoHookean(**GEL),
                              markers=(7, 7))
    t0 = time.perf_counter()
    sim = ds.Tactile(scene, sensors=[sensor], dt=1e-2)
    bake = time.perf_counter() - t0
    print(f"mesh ball: building the simulator (baking the grid SDF, "
          f"{sim.objects[0].geom.shape} nodes) took {bake:.1f} s", flush=True)

    def controls(T):
        U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
        U[: T // 2, 8] = -0.03
        U[T // 2:, 6] = 0.05
        return U
    return sim, controls


def two_sensors(res):
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_tool(ds.Box(lo=(-0.01, -0.008, -0.008), hi=(0.01, 0.008, 0.008)), friction=0.5,
                   name="box")
    pad = ds.TactilePad.flat(PAD, res)
    gap = 0.01 + PAD[2]
    sensors = [ds.TactileSensor(pad=pad, material=ds.NeoHookean(**GEL), markers=(7, 7),
                                position=(-gap, 0.0, 0.0), normal=(1.0, 0.0, 0.0), name="left"),
               ds.TactileSensor(pad=pad, material=ds.NeoHookean(**GEL), markers=(7, 7),
                                position=(gap, 0.0, 0.0), normal=(-1.0, 0.0, 0.0), name="right")]
    sim = ds.Tactile(scene, sensors=sensors, dt=1e-2)

    def controls(T):
        U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
        U[:, 0] = 0.01               # left finger closes along +x (0.1 mm per step)
        U[:, 6] = -0.01              # right finger along -x
        U[T // 2:, 2] = 0.02         # then both lift (z): the box stays (kinematic)
        U[T // 2:, 8] = 0.02
        return U
    return sim, controls


def fem_peer(res):
    pad = ds.TactilePad.flat(PAD, res)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_soft_body(ds.VolumeMesh(pad.points, pad.cells), ds.NeoHookean(**GEL),
                        fixed=pad.back, name="pad")
    scene.add_tool(ds.Sphere(center=(0.0, 0.0, PAD[2] + 0.006), radius=0.006), friction=0.5,
                   name="ball")
    sim = ds.FEM(scene, dt=1e-2, contact_stiffness=1e6)

    def controls(T):
        U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
        U[: T // 2, 2] = -0.03
        U[T // 2:, 0] = 0.05
        return U
    return sim, controls


def timed(fn, reps=1):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_case(name, sim, controls, T, readings=True):
    U = controls(T)
    s0 = sim.reset()
    sim._engine_for(T, True)             # one engine (segment T, with gradients) for all runs
    with torch.no_grad():
        sim.rollout(s0, U, segment=T)                             # compile forward
        t_fwd, states = timed(lambda: sim.rollout(s0, U, segment=T))
    row = {"case": name, "nodes": sim.n_nodes, "tets": sim.n_elements,
           "forward_steps_per_s": T / t_fwd}
    if readings:
        loss_fn = lambda sol: sum(r.force.sum() + r.marker_displacement.sum()  # noqa: E731
                                  for r in (sim.read(sol.u[-1], image=False)
                                            if len(sim.sensors) > 1
                                            else [sim.read(sol.u[-1], image=False)]))
    else:
        loss_fn = lambda sol: sol.u[-1].x.sum()  # noqa: E731
    Ug = U.clone().requires_grad_()
    warm = ds.solve(ds.SimulationProblem(sim, controls=Ug), sensealg=ds.CheckpointAdjoint(T))
    loss_fn(warm).backward()                                      # compile backward

    def fwd_bwd():
        sol = ds.solve(ds.SimulationProblem(sim, controls=Ug), sensealg=ds.CheckpointAdjoint(T))
        loss_fn(sol).backward()
    t_fb, _ = timed(fwd_bwd)
    row["forward_backward_steps_per_s"] = T / t_fb
    row["backward_over_forward"] = (t_fb - t_fwd) / t_fwd
    st = sim.solver_stats()
    row["newton_per_step"] = st["newton_per_step"]
    if readings:
        end = states[-1]
        sim.read(end, image=True)
        t_r, _ = timed(lambda: sim.read(end, image=False), reps=5)
        t_ri, _ = timed(lambda: sim.read(end, image=True), reps=5)
        row["reading_ms"] = 1e3 * t_r
        row["reading_with_image_ms"] = 1e3 * t_ri
    return row


# ---------------------------------------------------------------------- MPM objects
MPM_BOUNDS = [(-0.01, 0.01), (-0.01, 0.01), (-0.006, 0.014)]
MPM_OPTS = dict(dt=3e-4, contact_stiffness=1e7, contact_damping=2.5e4)
BLOCK = ((-0.003, -0.003, 0.003), (0.003, 0.003, 0.009))
BLOCK_2 = ((-0.003, -0.003, -0.003), (0.003, 0.003, 0.003))


def _mpm_pad(res):
    return ds.TactilePad.flat((0.012, 0.012, 0.003), res)


def mpm_one(res, rigid=False):
    scene = ds.Scene(dim=3, bounds=MPM_BOUNDS, gravity=(0.0, 0.0, -9.8))
    if rigid:
        scene.add_tool(ds.Box(lo=BLOCK[0], hi=BLOCK[1]), name="block")
    else:
        scene.add_particles(ds.Box(lo=BLOCK[0], hi=BLOCK[1]),
                            ds.NeoHookean(E=1e5, nu=0.3, density=1000.0), name="block")
    sensor = ds.TactileSensor(pad=_mpm_pad(res), material=ds.NeoHookean(**GEL), markers=(5, 5))
    sim = ds.Tactile(scene, sensors=[sensor], mpm_grid_res=20, mpm_substeps=4, **MPM_OPTS)

    def controls(T):
        U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
        U[:, 2] = 0.05               # the finger pushes up into the block (15 um per step)
        return U
    return sim, controls


def mpm_two(res, rigid=False):
    bounds = [(-0.012, 0.012), (-0.01, 0.01), (-0.01, 0.01)]
    scene = ds.Scene(dim=3, bounds=bounds, gravity=(0.0, 0.0, 0.0))
    if rigid:
        scene.add_tool(ds.Box(lo=BLOCK_2[0], hi=BLOCK_2[1]), name="block")
    else:
        scene.add_particles(ds.Box(lo=BLOCK_2[0], hi=BLOCK_2[1]),
                            ds.NeoHookean(E=1e5, nu=0.3, density=1000.0), name="block")
    gap = 0.003 + 0.003
    pad = _mpm_pad(res)
    sensors = [ds.TactileSensor(pad=pad, material=ds.NeoHookean(**GEL), markers=(5, 5),
                                position=(-gap, 0.0, 0.0), normal=(1.0, 0.0, 0.0), name="left"),
               ds.TactileSensor(pad=pad, material=ds.NeoHookean(**GEL), markers=(5, 5),
                                position=(gap, 0.0, 0.0), normal=(-1.0, 0.0, 0.0), name="right")]
    sim = ds.Tactile(scene, sensors=sensors, mpm_grid_res=24, mpm_substeps=4, **MPM_OPTS)

    def controls(T):
        U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
        U[:, 0] = 0.05               # the fingers close, 15 um per step each
        U[:, 6] = -0.05
        return U
    return sim, controls


def _split_timers(sim):
    """Wrap the coupled step's stages (forward): pad solve, MPM step, coupling (torch)."""
    acc = {"pad": 0.0, "mpm": 0.0, "coupling": 0.0}
    c = sim.mpm_coupling
    if c is None:
        return acc

    def wrap(obj, name, key):
        fn = getattr(obj, name)

        def inner(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            acc[key] += time.perf_counter() - t0
            return out
        setattr(obj, name, inner)
    wrap(c, "_pad_step", "pad")
    wrap(c.mpm, "rollout", "mpm")
    for name in ("fields", "object_velocity", "impulse"):
        wrap(c, name, "coupling")
    return acc


def run_mpm_case(name, sim, controls, T, reps):
    U = controls(T)
    s0 = sim.reset()
    acc = _split_timers(sim)

    def loss_of(end):
        rs = sim.read(end, image=False)
        rs = rs if isinstance(rs, list) else [rs]
        out = sum(r.force.sum() + r.marker_displacement.sum() for r in rs)
        if sim.mpm_coupling is not None:
            out = out + end.particle_x.sum()
        return out
    Ug = U.clone().requires_grad_()
    loss_of(sim.rollout(s0, Ug, segment=T)[-1]).backward()          # compile both passes
    fwd, fb, split = [], [], []
    for _ in range(reps):
        for k in acc:
            acc[k] = 0.0
        with torch.no_grad():
            t0 = time.perf_counter()
            sim.rollout(s0, U, segment=T)
            fwd.append(time.perf_counter() - t0)
        split.append(dict(acc))
        t0 = time.perf_counter()
        loss_of(sim.rollout(s0, Ug, segment=T)[-1]).backward()
        fb.append(time.perf_counter() - t0)
    t_f, t_fb = statistics.median(fwd), statistics.median(fb)
    # memory autograd keeps through the rollout (saved tensors), whole vs checkpointed in
    # segments of T/4 steps (adjoint.stepwise_rollout), and the segmented gradient's time
    mem, t_seg = {}, None
    for seg in (T, max(1, T // 4)):
        sizes = []

        def pack(t, sizes=sizes):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            t0 = time.perf_counter()
            end = sim.rollout(s0, Ug, segment=seg)[-1]
        loss_of(end).backward()
        t_seg = time.perf_counter() - t0
        mem[seg] = sum(sizes) / 2 ** 20
    row = {"case": name, "nodes": sim.n_nodes,
           "saved_mb_whole": mem[T], "saved_mb_segmented": mem[max(1, T // 4)],
           "forward_backward_segmented_steps_per_s": T / t_seg,
           "particles": sim.mpm_coupling.mpm.n_particles if sim.mpm_coupling else 0,
           "forward_steps_per_s": T / t_f, "forward_backward_steps_per_s": T / t_fb,
           "newton_per_step": sim.solver_stats()["newton_per_step"]}
    if sim.mpm_coupling is not None:
        for k in acc:
            row[f"{k}_ms_per_step"] = 1e3 * statistics.median(s[k] for s in split) / T
    return row


def mpm_main(args) -> list:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # torch's threads spin against Taichi's on small CPUs
    rows = []
    for label, make in (("one sensor", mpm_one), ("two sensors", mpm_two)):
        pair = []
        for rigid in (False, True):
            sim, controls = make(args.mpm_resolution, rigid=rigid)
            name = f"mpm {label}: " + ("peer, rigid box" if rigid else "MPM block")
            pair.append(run_mpm_case(name, sim, controls, args.steps, args.reps))
            print(f"{name}: {pair[-1]}", flush=True)
            sim.close()
        rows += pair
    torch.set_num_threads(threads)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, arch={args.arch}"
    print(f"# ds.Tactile with MPM objects ({machine}); {args.steps} steps of 0.3 ms, float64, "
          f"medians of {args.reps}")
    for r in rows:
        split = (f"; forward split per step: pad {r['pad_ms_per_step']:.1f} ms, MPM "
                 f"{r['mpm_ms_per_step']:.1f} ms, coupling {r['coupling_ms_per_step']:.1f} ms"
                 if "pad_ms_per_step" in r else "")
        print(f"{r['case']:34s} {r['nodes']:4d} nodes {r['particles']:5d} particles: forward "
              f"{r['forward_steps_per_s']:6.2f} steps/s, forward+backward "
              f"{r['forward_backward_steps_per_s']:6.2f} steps/s, Newton/step "
              f"{r['newton_per_step']:.1f}{split}; autograd keeps {r['saved_mb_whole']:.1f} MB "
              f"(segments of T/4: {r['saved_mb_segmented']:.2f} MB, forward+backward "
              f"{r['forward_backward_segmented_steps_per_s']:.2f} steps/s)")
    for i in (0, 2):
        a, b = rows[i], rows[i + 1]
        print(f"{a['case']} vs its rigid peer: forward {a['forward_steps_per_s'] / b['forward_steps_per_s']:.2f}x, "
              f"forward+backward {a['forward_backward_steps_per_s'] / b['forward_backward_steps_per_s']:.2f}x "
              "the peer's speed")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--resolution", type=float, default=0.002, help="pad cell size (m)")
    ap.add_argument("--arch", default="cpu")
    ap.add_argument("--json", default=None)
    ap.add_argument("--optimize", default="runtime", choices=("runtime", "compile"),
                    help="Taichi optimisation: 'compile' compiles faster, runs slower")
    ap.add_argument("--cases", default="one,two,peer",
                    help="comma-separated subset of one, two, mesh, peer")
    ap.add_argument("--mpm", action="store_true", help="also run the MPM-object cases")
    ap.add_argument("--mpm-only", action="store_true", help="run only the MPM-object cases")
    ap.add_argument("--mpm-resolution", type=float, default=0.003, help="pad cell size (m)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (MPM cases)")
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    if not cases or not set(cases) <= {"one", "two", "mesh", "peer"}:
        ap.error(f"--cases={args.cases!r}: expected a comma-separated subset of one, two, "
                 "mesh, peer")
    ds.init(arch=args.arch, precision="f64", optimize=args.optimize)
    if args.mpm_only:
        rows = mpm_main(args)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"rows": rows}, fh, indent=2)
        return 0
    rows = []
    by_case = {}
    for key, name, make in (("one", "one sensor", one_sensor),
                            ("mesh", "one sensor, mesh ball", one_sensor_mesh),
                            ("two", "two sensors", two_sensors)):
        if key not in cases:
            continue
        sim, controls = make(args.resolution)
        rows.append(run_case(name, sim, controls, args.steps))
        by_case[key] = rows[-1]
        print(f"{name}: {rows[-1]}", flush=True)
        sim.close()
    peer = None
    if "peer" in cases:
        sim, controls = fem_peer(args.resolution)
        peer = run_case("peer: same pad in ds.FEM", sim, controls, args.steps, readings=False)
        sim.close()
        rows.append(peer)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, arch={args.arch}"
    print(f"# ds.Tactile benchmark ({machine}); {args.steps} steps of 10 ms, float64")
    for r in rows:
        extra = (f", reading {r['reading_ms']:.2f} ms ({r['reading_with_image_ms']:.2f} ms with "
                 f"image)" if "reading_ms" in r else "")
        print(f"{r['case']:28s} {r['tets']:6d} tets: forward {r['forward_steps_per_s']:6.2f} "
              f"steps/s, forward+backward {r['forward_backward_steps_per_s']:6.2f} steps/s "
              f"(backward/forward {r['backward_over_forward']:.2f}), Newton/step "
              f"{r['newton_per_step']:.1f}{extra}")
    for key, ref, what in (("one", peer, "one sensor vs the same pad in ds.FEM"),
                           ("mesh", by_case.get("one"), "mesh ball vs analytic ball")):
        if key in by_case and ref is not None:
            ratio = by_case[key]["forward_steps_per_s"] / ref["forward_steps_per_s"]
            ratio_b = (by_case[key]["forward_backward_steps_per_s"]
                       / ref["forward_backward_steps_per_s"])
            print(f"{what}: forward speed ratio {ratio:.2f}, forward+backward {ratio_b:.2f} "
                  "(1 = no overhead)")
    if args.mpm:
        rows += mpm_main(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
