"""BoxOpen: a scripted plan swings a hinged lid open by friction; Adam refines a weaker one.

The finger starts 0.7 mm in front of the closed lid, so zero actions never touch it (goal
loss 2: angle error 1 plus the lost-contact term 1; the objective adds BoxOpen-v2's
contact-seeking term, 0.49 at the 0.7 mm gap, which gives it a gradient, and its lifting
term, 1 while the pads exert no torque on the lid). The scripted plan
presses the pad on the lid's front face for 4 steps and then carries it around the hinge as
if glued to the lid (``BoxOpen.scripted_actions``); a plan that turns too slowly
(``--turn``, 0.3 of the top turn rate by default, vs 0.6 for the scripted plan) stops short
of the target, and Adam on
``env.unwrapped.rollout_loss`` (exact gradients through the pad, friction, the free body and
its hinge) refines it: over the 50 x 3 actions themselves, or (``--basis K``) over K x 3
weights of piecewise-linear hat functions added to the start plan (``dss.ActionBasis(T, K,
offset=U0)``: ``U = clip(U0 + B W, -1, 1)``, smooth changes, fewer unknowns).

    python examples/tactile/box_open.py --basis 10 --lr 0.01 --iters 15 --out diffsim-out/box_open
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


def episode(env, actions) -> dict:
    """Goal loss, hinge angle (rad) and normal force (N) after stepping ``actions`` from a
    seeded reset (the env's own path, not the differentiable rollout)."""
    env.reset(seed=0)
    for a in np.asarray(actions):
        *_, info = env.step(a.astype(np.float32))
    u = env.unwrapped
    t = u.task.terms(u.sim, u.get_state())
    return {"goal_loss": float(info["goal_loss"]), "success": bool(info["success"]),
            "angle": float(t["angle"]), "normal_force": float(t["normal_force"])}


def adam(env, U0, iters, lr, basis=0):
    """``dss.Adam`` on the actions (``basis`` 0) or on hat-function weights added to ``U0``
    (``dss.ActionBasis(offset=U0)``); the actions stay in [-1, 1]. Returns the best actions
    and the result; a rollout that fails (``ds.SimulationError``: the pad's Newton solve)
    ends the run with ``NON_FINITE`` and the best actions so far."""
    T, A = U0.shape
    if basis:
        prob = dss.ControlProblem(env.unwrapped.rollout_loss, u0=torch.zeros(basis, A, dtype=U0.dtype),
                                  bounds=(-1.0, 1.0), basis=dss.ActionBasis(T, basis, offset=U0))
    else:
        prob = dss.ControlProblem(env.unwrapped.rollout_loss, u0=U0, bounds=(-1.0, 1.0))
    res = dss.solve(prob, dss.Adam(lr=lr), maxiters=iters, catch=(ds.SimulationError,))
    return res.controls.detach(), res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=15, help="Adam iterations")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--horizon", type=int, default=50)
    ap.add_argument("--turn", type=float, default=0.3,
                    help="turn rate of Adam's start plan (fraction of the top rate)")
    ap.add_argument("--basis", type=int, default=10,
                    help="optimise K hat-function weights per action instead (0: the actions)")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/box_open")
    args = ap.parse_args(argv)
    ds.init(arch=args.arch, precision="f64")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = gym.make(env_id("BoxOpen"), horizon=args.horizon)
    u = env.unwrapped
    T = u.horizon
    row = {"horizon": T, "pad_nodes": u.sim.n_nodes, "iters": args.iters, "lr": args.lr,
           "basis": args.basis}
    row["zero"] = episode(env, np.zeros((T, 3)))
    row["scripted"] = episode(env, u.task.scripted_actions().numpy())
    U0 = u.task.scripted_actions(turn=args.turn)
    row["start"] = episode(env, U0.numpy())
    env.reset(seed=0)
    t = time.perf_counter()
    # at most one weight per step (a tiny --horizon in the tests)
    best, res = adam(env, U0, args.iters, args.lr, min(args.basis, T))
    row["adam_time"] = time.perf_counter() - t
    row["adam_history"], row["adam_retcode"] = res.history.mean, res.retcode.name
    row["adam_best"] = episode(env, best.numpy())
    env.close()
    print("| plan | goal loss | angle (rad) | normal force (N) | success |\n|---|---|---|---|---|")
    for key, label in (("zero", "zero actions"), ("scripted", "scripted (turn 0.6)"),
                       ("start", f"Adam's start (turn {args.turn})"),
                       ("adam_best", f"Adam, {args.iters} iters, best")):
        r = row[key]
        print(f"| {label} | {r['goal_loss']:.4g} | {r['angle']:.4f} | {r['normal_force']:.3f} | "
              f"{r['success']} |")
    print(f"Adam: {row['adam_time']:.0f} s, {row['adam_retcode']}; losses "
          + ", ".join(f"{v:.4g}" for v in row["adam_history"]), flush=True)
    (out / "results.json").write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
