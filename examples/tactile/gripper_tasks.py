"""Grasp and Repose, the tactile gripper tasks: a scripted start refined by gradients, vs CEM.

Both tasks start with the fingers 1 mm away from a free object, so with zero actions
nothing touches it and the gradient of the goal loss is zero (the penalty contact has no
force, hence no sensitivity, before the pads touch); since v1 the objective adds a
contact-seeking term (each pad's distance to the object, 1 mm scale) that pulls the pads
in. A scripted start closes the fingers for 6 steps (0.2 mm squeeze) and then lifts
(Grasp) or shears (Repose) slowly; Adam on ``env.unwrapped.rollout_loss`` (exact gradients
through the pads, the contact and the free body) refines it. CEM, from zero actions, gets the same number of rollouts.

    python examples/tactile/gripper_tasks.py --iters 10 --out diffsim-out/tactile_tasks
"""

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import diffsim as ds
import diffsim.envs  # noqa: F401  (registers the tasks)
from diffsim import solvers as dss
from diffsim.envs.registry import env_id

#: the second action after the squeeze: lift (Grasp) or shear (Repose) speed, normalised
SCRIPTED = {"Grasp": 0.3, "Repose": 0.2}


def scripted(name: str, T: int) -> torch.Tensor:
    """Close at full speed for 6 steps, then the task's slow second action."""
    U = torch.zeros(T, 2, dtype=torch.float64)
    U[:6, 0] = 1.0
    U[6:, 1] = SCRIPTED[name]
    return U


def episode_loss(env, actions) -> tuple[float, dict]:
    """Goal loss (without the contact-seeking term) and its parts after stepping ``actions``
    from a seeded reset (the env's path)."""
    env.reset(seed=0)
    for a in np.asarray(actions):
        *_, info = env.step(a.astype(np.float32))
    u = env.unwrapped
    terms = u.task.terms(u.sim, u.get_state())
    parts = {k: v.detach().numpy().round(6).tolist() for k, v in terms.items()}
    return float(info["goal_loss"]), parts


def adam(env, U, iters, lr):
    U = U.clone().requires_grad_()
    opt = torch.optim.Adam([U], lr=lr)
    history = []
    for _ in range(iters):
        opt.zero_grad()
        loss = env.unwrapped.rollout_loss(U)
        loss.backward()
        history.append(float(loss.detach()))
        opt.step()
        with torch.no_grad():
            U.clamp_(-1.0, 1.0)
    return U.detach(), history


def run_task(name, iters, lr, horizon):
    env = gym.make(env_id(name), horizon=horizon)
    u = env.unwrapped
    T = u.horizon
    row = {"task": name, "horizon": T, "nodes": u.sim.n_nodes}
    row["zero"], _ = episode_loss(env, np.zeros((T, 2)))
    U0 = scripted(name, T)
    row["scripted"], row["scripted_terms"] = episode_loss(env, U0.numpy())
    env.reset(seed=0)
    t = time.perf_counter()
    U, row["adam_history"] = adam(env, U0, iters, lr)
    row["adam_time"] = time.perf_counter() - t
    row["adam"], row["adam_terms"] = episode_loss(env, U.numpy())
    env.reset(seed=0)
    prob = dss.ControlProblem(lambda V: u.rollout_loss(V),
                              u0=torch.zeros(T, 2, dtype=torch.float64), bounds=(-1.0, 1.0))
    t = time.perf_counter()
    with torch.no_grad():
        cem = dss.solve(prob, dss.CEM(population=max(iters // 3, 4), elites=2),
                        maxevals=iters, seed=0, catch=(ds.SimulationError,))
    row["cem_time"] = time.perf_counter() - t
    row["cem"], row["cem_terms"] = episode_loss(env, cem.u.numpy())
    env.close()
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=list(SCRIPTED))
    ap.add_argument("--iters", type=int, default=10, help="Adam iterations = CEM rollouts")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/tactile_tasks")
    args = ap.parse_args(argv)
    ds.init(arch=args.arch, precision="f64")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"| task | pad nodes | horizon | zero actions | scripted start | scripted + Adam, "
          f"{args.iters} iters | CEM, {args.iters} rollouts |\n|---|---|---|---|---|---|---|")
    for name in args.tasks:
        r = run_task(name, args.iters, args.lr, args.horizon)
        rows.append(r)
        print(f"| {name} | {r['nodes']} | {r['horizon']} | {r['zero']:.4g} | "
              f"{r['scripted']:.4g} | {r['adam']:.4g} ({r['adam_time']:.0f} s) | "
              f"{r['cem']:.4g} ({r['cem_time']:.0f} s) |", flush=True)
        (out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
