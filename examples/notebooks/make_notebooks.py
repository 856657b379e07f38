"""Write the example notebooks (run: python examples/notebooks/make_notebooks.py).

The notebooks are generated from the cells below so that they stay reviewable as
code; CI executes them with ``DIFFSIM_NOTEBOOK_TINY=1`` (tests/test_notebooks.py).
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent

SETUP = '''import os

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch

import diffsim as ds
import diffsim.envs  # noqa: F401  (registers diffsim/<Task>-v0)
from diffsim import solvers as dss

TINY = os.environ.get("DIFFSIM_NOTEBOOK_TINY") == "1"   # CI runs the notebooks tiny
ds.init()                                 # CUDA if present, else CPU'''


def notebook(title, cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(title), nbf.v4.new_code_cell(SETUP)]
    for kind, src in cells:
        nb.cells.append(nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src))
    return nb


QUICKSTART = notebook("""# diffsim quickstart

Make an environment, look at it, optimise a trajectory through the simulator with exact
gradients, and watch the rollout before and after.""", [
    ("md", "## 1. An environment\n`Pour`: tilt a held cup of water into a container."),
    ("code", '''options = dict(grid_res=20, horizon=6) if TINY else {}
env = gym.make("diffsim/Pour-v0", render_mode="rgb_array", **options)
sim, task = env.unwrapped.sim, env.unwrapped.task
obs, info = env.reset(seed=0)
print(sim, "| actions:", env.action_space, "| loss at start:", info["loss"])
plt.imshow(env.render())
plt.axis("off");'''),
    ("md", "## 2. Optimise the actions of a whole episode\n`rollout_loss` is differentiable "
           "in the actions, so a `ControlProblem` can use `Adam` directly."),
    ("code", '''u = env.unwrapped
T, A = u.horizon, u.act_dim
prob = dss.ControlProblem(u.rollout_loss, u0=torch.zeros(T, A, dtype=sim.dtype), bounds=(-1.0, 1.0))
res = dss.solve(prob, dss.Adam(lr=0.2), maxiters=2 if TINY else 15, progress=not TINY)
print(res)
plt.plot(res.history.best)
plt.xlabel("iteration")
plt.ylabel("loss");'''),
    ("md", "## 3. Before and after"),
    ("code", '''def frames(actions):
    env.reset(seed=0)
    out = [env.render()]
    for a in actions:
        env.step(np.asarray(a, dtype=np.float32))
        out.append(env.render())
    return out

before, after = frames(np.zeros((T, A))), frames(res.u.numpy())
side_by_side = [np.concatenate([b, a], axis=1) for b, a in zip(before, after)]
ds.render.animate(side_by_side, fps=10)'''),
    ("code", "env.close()"),
])

FLUIDS = notebook("""# Fluid tasks: gradients and sampling

`Stir` mixes two fluids with a rod. We compare Adam on exact gradients with CEM at the same
number of simulated episodes, then look at the mixing.""", [
    ("code", '''options = dict(grid_res=20, horizon=5) if TINY else {}
env = gym.make("diffsim/Stir-v0", render_mode="rgb_array", **options)
u = env.unwrapped
env.reset(seed=0)
T, A = u.horizon, u.act_dim
prob = dss.ControlProblem(u.rollout_loss, u0=torch.zeros(T, A, dtype=u.sim.dtype), bounds=(-1.0, 1.0))
budget = 2 if TINY else 12
grad = dss.solve(prob, dss.Adam(lr=0.3), maxiters=budget)
with torch.no_grad():
    cem = dss.solve(prob, dss.CEM(population=max(budget // 3, 2), elites=2), maxevals=budget, seed=0)
print(f"zero actions {float(u.rollout_loss(torch.zeros(T, A))):.4f} | Adam {grad.loss:.4f} | CEM {cem.loss:.4f}")
plt.plot(grad.history.nevals, grad.history.best, label="Adam")
plt.plot(cem.history.nevals, cem.history.best, label="CEM")
plt.xlabel("simulated episodes")
plt.ylabel("mixing index")
plt.legend();'''),
    ("code", '''best = grad.u if grad.loss <= cem.loss else cem.u
env.reset(seed=0)
for a in best.numpy():
    env.step(a.astype(np.float32))
plt.imshow(env.render())
plt.axis("off")
env.close()'''),
])

PLASTICINE = notebook("""# Plasticine tasks: shaping with contact

`Pinch` squeezes a plasticine block between two fingers towards a target shape. Contact
makes the loss landscape flat until the fingers touch; `Hybrid` samples first (CEM), then
refines the best sample with gradients, the scheme ThinShellLab found necessary.""", [
    ("code", '''options = dict(grid_res=20, horizon=4) if TINY else {}
env = gym.make("diffsim/Pinch-v1", render_mode="rgb_array", **options)
u = env.unwrapped
env.reset(seed=0)
T, A = u.horizon, u.act_dim
prob = dss.ControlProblem(u.rollout_loss, u0=torch.zeros(T, A, dtype=u.sim.dtype), bounds=(-1.0, 1.0))
res = dss.solve(prob, dss.Hybrid(dss.CEM(population=2 if TINY else 8, elites=1 if TINY else 2),
                                 dss.Adam(lr=0.2)),
                maxevals=4 if TINY else 24, seed=0)
sampled, refined = res.stages
print(f"CEM stage {sampled.loss:.4f} -> gradient stage {refined.loss:.4f}")'''),
    ("code", '''env.reset(seed=0)
for a in res.u.numpy():
    env.step(a.astype(np.float32))
state = u.get_state()
fig, ax = plt.subplots(1, 2, figsize=(8, 4))
ax[0].imshow(env.render())
ax[0].set_title("result")
ax[0].axis("off")
target = u.task._target(u.sim).numpy()
ax[1].scatter(target[:, 0], target[:, 1], s=1)
ax[1].set_title("target (side view)")
ax[1].set_aspect("equal")
ds.render.export_state(u.sim, state, "pinch_result.ply")   # point cloud, through trimesh
env.close()'''),
])

if __name__ == "__main__":
    for name, nb in {"quickstart": QUICKSTART, "fluids": FLUIDS, "plasticine": PLASTICINE}.items():
        nbf.write(nb, HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
