"""Gradients vs sampling vs RL on every diffsim task: the README's results table.

For each task (default: all registered ones) this prints the task loss after an
episode of

* zero actions,
* Adam on ``env.unwrapped.rollout_loss`` (exact gradients) for ``--iters``
  iterations: ``--iters`` rollouts and as many backward passes,
* CEM with the same number of rollouts (simulated episodes),
* ``dss.Hybrid``: CEM for half of the rollouts, then Adam from its best point
  (``--hybrid``),
* PPO (stable-baselines3) after ``--ppo-steps`` environment steps, then one
  deterministic episode,

with the wall time of each, as a Markdown table (also written to
``--out/results.md`` and ``results.json``).

    python examples/envs/results_table.py --iters 10 --ppo-steps 2000 --out diffsim-out/results
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import diffsim as ds
import diffsim.envs as de
from diffsim import solvers as dss


def episode_loss(env, actions) -> float:
    """Task loss without shaping (the success metric) after stepping ``actions`` from a
    seeded reset (the env's own step path)."""
    env.reset(seed=0)
    for a in actions:
        *_, info = env.step(np.asarray(a, dtype=np.float32))
    return float(info["goal_loss"])


def run_task(name: str, iters: int, ppo_steps: int, lr: float, options: dict,
             hybrid: bool = False) -> dict:
    env = gym.make(f"diffsim/{name}-v{de.registry.task_class(name).version}", **options)
    u = env.unwrapped
    T, A = u.horizon, u.act_dim
    n = getattr(u.sim, "n_particles", None) or u.sim.n_nodes  # mesh nodes for FEM/Shell
    row = {"task": name, "horizon": T, "act_dim": A, "particles": n}

    env.reset(seed=0)
    row["zero"] = episode_loss(env, np.zeros((T, A)))

    env.reset(seed=0)
    prob = dss.ControlProblem(lambda U: u.rollout_loss(U), u0=torch.zeros(T, A, dtype=u.sim.dtype),
                              bounds=(-1.0, 1.0))
    t = time.perf_counter()
    res = dss.solve(prob, dss.Adam(lr=lr), maxiters=iters, catch=(ds.SimulationError,))
    row["grad_time"] = time.perf_counter() - t
    row["grad"] = episode_loss(env, res.u.detach().cpu().numpy())
    # a caught ds.SimulationError ends a gradient run early (NON_FINITE): keep the reason
    row["grad_retcode"], row["grad_message"] = res.retcode.name, res.message

    env.reset(seed=0)
    t = time.perf_counter()
    with torch.no_grad():
        cem = dss.solve(prob, dss.CEM(population=max(iters // 3, 4), elites=2),
                        maxevals=iters, seed=0, catch=(ds.SimulationError,))
    row["cem_time"] = time.perf_counter() - t
    row["cem"] = episode_loss(env, cem.u.cpu().numpy())

    if hybrid:
        env.reset(seed=0)
        t = time.perf_counter()
        alg = dss.Hybrid(dss.CEM(population=max(iters // 6, 4), elites=2), dss.Adam(lr=lr))
        hyb = dss.solve(prob, alg, maxevals=iters, seed=0, catch=(ds.SimulationError,))
        row["hybrid_time"] = time.perf_counter() - t
        row["hybrid"] = episode_loss(env, hyb.u.detach().cpu().numpy())
        row["hybrid_retcode"], row["hybrid_message"] = hyb.retcode.name, hyb.message

    if ppo_steps > 0:
        from stable_baselines3 import PPO

        t = time.perf_counter()
        model = PPO("MlpPolicy", env, n_steps=min(256, ppo_steps), batch_size=64, seed=0,
                    verbose=0, device="cpu")
        model.learn(total_timesteps=ppo_steps)
        obs, _ = env.reset(seed=0)
        done, info = False, {}
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, _, term, trunc, info = env.step(a)
            done = term or trunc
        row["ppo"] = float(info["goal_loss"])
        row["ppo_time"] = time.perf_counter() - t
    env.close()
    return row


def markdown(rows, iters, ppo_steps) -> str:
    head = (f"| task | particles | horizon | zero actions | Adam, {iters} iters | "
            f"CEM, {iters} rollouts | CEM then Adam, {iters} rollouts | PPO, {ppo_steps} steps "
            "| best |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        cand = {k: r[k] for k in ("zero", "grad", "cem", "hybrid", "ppo") if k in r}
        best = min(cand, key=cand.get)
        names = {"zero": "zero", "grad": "gradient", "cem": "CEM", "hybrid": "hybrid",
                 "ppo": "PPO"}
        ppo = f"{r['ppo']:.4g} ({r['ppo_time']:.0f} s)" if "ppo" in r else "-"
        hyb = f"{r['hybrid']:.4g} ({r['hybrid_time']:.0f} s)" if "hybrid" in r else "-"
        lines.append(f"| {r['task']} | {r['particles']} | {r['horizon']} | {r['zero']:.4g} | "
                     f"{r['grad']:.4g} ({r['grad_time']:.0f} s) | "
                     f"{r['cem']:.4g} ({r['cem_time']:.0f} s) | {hyb} | {ppo} | {names[best]} |")
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=list(de.TASKS))
    ap.add_argument("--iters", type=int, default=10, help="Adam iterations = CEM rollouts")
    ap.add_argument("--ppo-steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--hybrid", action="store_true", help="add the CEM-then-Adam column")
    ap.add_argument("--grid-res", type=int, default=None, help="override every task's grid")
    ap.add_argument("--horizon", type=int, default=None, help="override every task's horizon")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--precision", default="f32", help="f32 or f64 (the FEM/Shell tasks' "
                    "gradients need f64 or the runtime optimisation in f32)")
    ap.add_argument("--out", default="diffsim-out/results")
    args = ap.parse_args(argv)
    ds.init(arch=args.arch, precision=args.precision)
    options = {k: v for k, v in (("grid_res", args.grid_res), ("horizon", args.horizon)) if v}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.tasks:
        t = time.perf_counter()
        rows.append(run_task(name, args.iters, args.ppo_steps, args.lr, options, args.hybrid))
        print(f"{name}: {json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in rows[-1].items()})} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        (out / "results.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows, args.iters, args.ppo_steps)
    (out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
