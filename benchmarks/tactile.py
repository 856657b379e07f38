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

Usage: ``python benchmarks/tactile.py [--steps 10] [--resolution 0.002] [--arch cpu]
[--optimize runtime|compile] [--cases one,two,mesh,peer] [--json out.json]`` (``./dev bench tactile``); ``--arch cuda`` runs the same kernels on
a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    if not cases or not set(cases) <= {"one", "two", "mesh", "peer"}:
        ap.error(f"--cases={args.cases!r}: expected a comma-separated subset of one, two, "
                 "mesh, peer")
    ds.init(arch=args.arch, precision="f64", optimize=args.optimize)
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
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
