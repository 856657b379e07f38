"""System identification from touch: recover an object's surface stiffness and friction.

A GelSight-like sensor presses a ball into its pad, then slides it sideways. The simulator
records the readings (3-axis force and marker displacements, every step) with hidden true
values of the ball's surface stiffness ``k_n`` (the normal stiffness of its compliant
surface, Pa/m: a rigid core with a soft skin) and its friction ``mu``. Starting from
wrong guesses, gradient descent (Adam on ``log k_n`` and ``mu``) through ``ds.solve`` with
``ds.CheckpointAdjoint`` recovers both from the recording alone.

    python examples/tactile/system_id.py --iters 40 --out diffsim-out/tactile_system_id
"""

import argparse
import json
import math
from pathlib import Path

import torch

import diffsim as ds

TRUE = {"contact_stiffness": 3e8, "friction": 0.6}
GUESS = {"contact_stiffness": 3e9, "friction": 0.25}


def build(resolution=0.0025, arch=None):
    ds.init(arch=arch, precision="f64")
    pad = ds.TactilePad.flat((0.012, 0.012, 0.003), resolution)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, 0.0))
    scene.add_tool(ds.Sphere(center=(0.0, 0.0, 0.003 + 0.005), radius=0.005), name="ball")
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(4, 4), camera=ds.TactileCamera(resolution=(16, 12)))
    return ds.Tactile(scene, sensors=[sensor], dt=2e-2, newton_tol=1e-9, cg_tol=1e-9)


def press_and_slide(sim, steps):
    """Press 0.1 mm per step for the first half, then slide along x at 1 mm/step."""
    U = torch.zeros(steps, sim.action_dim, dtype=torch.float64)
    half = steps // 2
    U[:half, 8] = -1e-4 / sim.control_dt
    U[half:, 6] = 1e-3 / sim.control_dt
    return U


def readings(sim, U, params):
    prob = ds.SimulationProblem(sim, controls=U, params=params)
    sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=4),
                   saveat=range(1, len(U) + 1))
    out = [sim.read(s, image=False) for s in sol.u]
    return (torch.stack([r.force for r in out]),
            torch.stack([r.marker_displacement for r in out]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="control steps (20 ms each)")
    ap.add_argument("--iters", type=int, default=40, help="Adam iterations")
    ap.add_argument("--resolution", type=float, default=0.0025, help="pad cell size (m)")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/tactile_system_id")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = build(args.resolution, args.arch)
    U = press_and_slide(sim, args.steps)
    with torch.no_grad():
        f_rec, m_rec = readings(sim, U, {f"ball.{k}": v for k, v in TRUE.items()})
    f_scale = f_rec.abs().max()
    m_scale = m_rec.abs().max()
    log_k = torch.tensor(math.log(GUESS["contact_stiffness"]), dtype=torch.float64,
                         requires_grad=True)
    mu = torch.tensor(GUESS["friction"], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_k, mu], lr=0.1)
    history = []
    for it in range(args.iters):
        opt.zero_grad()
        f, m = readings(sim, U, {"ball.contact_stiffness": log_k.exp(), "ball.friction": mu})
        loss = (((f - f_rec) / f_scale) ** 2).mean() + (((m - m_rec) / m_scale) ** 2).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mu.clamp_(min=0.0)
        history.append({"loss": loss.item(), "k_n": log_k.exp().item(), "mu": mu.item()})
        print(f"iter {it:3d} loss {loss.item():.3e} k_n {log_k.exp().item():.4g} Pa/m "
              f"mu {mu.item():.4f}")
    k_rec, mu_rec = log_k.exp().item(), mu.item()
    print(f"surface stiffness k_n: recovered {k_rec:.4g} Pa/m, true {TRUE['contact_stiffness']:.4g}"
          f" (start {GUESS['contact_stiffness']:.4g})")
    print(f"friction mu:           recovered {mu_rec:.4f}, true {TRUE['friction']:.4f} (start "
          f"{GUESS['friction']:.4f})")
    summary = {"true": TRUE, "guess": GUESS, "recovered": {"contact_stiffness": k_rec,
                                                            "friction": mu_rec},
               "history": history, "solver": sim.solver_stats()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
