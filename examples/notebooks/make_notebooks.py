"""Write the example notebooks and, with ``--execute``, run them and store them executed.

    ./dev notebooks                                   # write + execute all, store with outputs
    ./dev notebooks --only shells tactile             # some of them
    python examples/notebooks/make_notebooks.py       # only write the (unexecuted) sources
    ./dev python examples/notebooks/make_notebooks.py --refresh   # new text cells, stored outputs kept

The notebooks are generated from the cells below so that they stay reviewable as code.
Executing them (nbclient, a fresh kernel each, in a scratch folder) stores their outputs:
plots and animations embedded, progress bars as tqdm's final text line, and the time each
took on this machine in its opening cell. A notebook whose outputs exceed ``--max-mb``
fails the command. ``--refresh`` rewrites only the text (markdown) cells of stored executed
notebooks whose code is unchanged, keeping their outputs and timing stamp. CI executes them tiny (``DIFFSIM_NOTEBOOK_TINY=1``,
tests/test_notebooks.py) without storing anything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent

SETUP = '''import base64
import io
import os
import time
import warnings

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from PIL import Image as PILImage
from tqdm import TqdmWarning

import diffsim as ds
import diffsim.envs  # noqa: F401  (registers diffsim/<Task>-v0)
from diffsim import solvers as dss

warnings.filterwarnings("ignore", category=TqdmWarning)  # progress bars in tqdm's text mode
TINY = os.environ.get("DIFFSIM_NOTEBOOK_TINY") == "1"   # CI runs the notebooks tiny
ds.init({init})


def show(frames, fps=10, scale=1.0, most=30):
    """Play frames inline: a GIF (``ds.render.animate``; at most ``most`` frames, evenly spaced,
    the last one kept), with the last frame as a still for viewers that show no HTML."""
    step = max(1, len(frames) // most)
    frames = list(frames[::step]) + ([frames[-1]] if (len(frames) - 1) % step else [])
    gif = ds.render.animate(frames, fps=fps, format="gif", scale=scale)
    still = io.BytesIO()
    PILImage.fromarray(frames[-1]).save(still, format="png")
    display({"text/html": gif._repr_html_(), "image/png": base64.b64encode(still.getvalue()).decode()},
            raw=True)'''

SETUP_TORCH = '''import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm import TqdmWarning

from diffsim import solvers as dss

warnings.filterwarnings("ignore", category=TqdmWarning)  # progress bars in tqdm's text mode
TINY = os.environ.get("DIFFSIM_NOTEBOOK_TINY") == "1"   # CI runs the notebooks tiny
_ = torch.manual_seed(0)'''

TIMING_MARK = "*Stored executed:"


def prune_imports(setup: str, sources: list[str]) -> str:
    """The setup cell without the imports that neither it nor the notebook's cells use."""
    lines = setup.split("\n")
    keep = []
    for i, line in enumerate(lines):
        m = re.match(r"^(?:import (\S+)(?: as (\w+))?|from \S+ import (\w+)(?: as (\w+))?)", line)
        if m and "noqa" not in line:
            name = (m.group(2) or m.group(1) or m.group(4) or m.group(3)).split(".")[0]
            rest = "\n".join(lines[:i] + lines[i + 1:] + sources)
            if not re.search(rf"\b{re.escape(name)}\b", rest):
                continue
        keep.append(line)
    return "\n".join(keep)


def notebook(title: str, about: str, minutes: str, cells, setup: str = SETUP, init: str = ""):
    """A notebook: a title cell (what it shows, how long it takes), the setup cell, ``cells``."""
    kernels = (" once the simulator's kernels are compiled (Taichi caches them; the first run on "
               "a machine compiles them too and takes longer)") if setup is SETUP else ""
    head = (f"{title}\n\n{about}\n\n**Time:** {minutes} on a 2-core CPU{kernels}; with "
            "`DIFFSIM_NOTEBOOK_TINY=1` every cell runs at a tiny size in about a minute.")
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    setup = prune_imports(setup.replace("{init}", init), [src for kind, src in cells if kind == "code"])
    nb.cells = [nbf.v4.new_markdown_cell(head), nbf.v4.new_code_cell(setup)]
    for kind, src in cells:
        nb.cells.append(nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src))
    return nb


# ------------------------------------------------------------------------------ quickstart
QUICKSTART = notebook("# diffsim quickstart", """\
What it shows: make a Gymnasium task (`Pour`: tilt a held cup of water into a container),
look at it, optimise the actions of a whole episode with exact gradients through the
simulator (`dss.solve` with `Adam` on `rollout_loss`), and watch the episode before and
after.""", "about 1 minute", [
    ("md", "## 1. An environment\n`Pour`: tilt a held cup of water into a container. The "
           "renderer draws any simulator state; a camera framed on the cup and the container "
           "shows the water better than the default view of the whole domain."),
    ("code", '''options = dict(grid_res=16, horizon=6) if TINY else {}
env = gym.make("diffsim/Pour-v1", render_mode="rgb_array", **options)
u = env.unwrapped
obs, info = env.reset(seed=0)
print(u.sim, "| actions:", env.action_space, "| loss at start:", info["loss"])
renderer = ds.render.Renderer(256, 256)
camera = ds.render.Camera.framing(((0.12, 0.88), (0.05, 0.75), (0.3, 0.7)), azimuth=20, elevation=55)


def draw():
    return renderer.render(u.sim, u.get_state(), camera=camera)


fig, ax = plt.subplots(1, 2, figsize=(8, 4))
for a, img, title in zip(ax, (env.render(), draw()), ("env.render()", "a camera of our own")):
    a.imshow(img)
    a.set_title(title)
    a.axis("off")'''),
    ("md", "## 2. Optimise the actions of a whole episode\n`rollout_loss` is differentiable "
           "in the actions, so a `ControlProblem` can use `Adam` directly. The first iteration "
           "compiles the reverse kernels (tens of seconds); the progress bar shows the best loss."),
    ("code", '''T, A = u.horizon, u.act_dim
prob = dss.ControlProblem(u.rollout_loss, u0=torch.zeros(T, A, dtype=u.sim.dtype), bounds=(-1.0, 1.0))
iters = 2 if TINY else 10
print(f"Adam on {T} x {A} actions, {iters} iterations (each: one rollout and one backward pass)")
res = dss.solve(prob, dss.Adam(lr=0.2), maxiters=iters, progress=True)
print(res)
plt.figure(figsize=(4, 3))
plt.semilogy(res.history.best, marker="o")
plt.xlabel("iteration")
plt.ylabel("best loss");'''),
    ("md", "## 3. Before and after\nThe same seeded reset, zero actions on the left, the "
           "optimised ones on the right, stepped through `env.step` as any agent would."),
    ("code", '''def episode(actions):
    env.reset(seed=0)
    frames, info = [draw()], {}
    for a in actions:
        *_, info = env.step(np.asarray(a, dtype=np.float32))
        frames.append(draw())
    return frames, info

before, info_b = episode(np.zeros((T, A)))
after, info_a = episode(res.u.numpy())
print(f"goal loss: zero actions {info_b['goal_loss']:.4g}, optimised {info_a['goal_loss']:.4g} "
      f"(success: {info_a['success']})")
show([np.concatenate([b, a], axis=1) for b, a in zip(before, after)], fps=12)'''),
    ("code", "renderer.close()\nenv.close()"),
])

# ------------------------------------------------------------------------------ fluids
FLUIDS = notebook("# Fluid tasks: gradients and sampling", """\
What it shows: `Stir` mixes two fluids with a rod (MPM, two weakly compressible fluids).
Adam on exact gradients and the cross-entropy method (CEM) get the same number of
simulated episodes; then the mixing is shown from above.""", "about 2-3 minutes", [
    ("code", '''options = dict(grid_res=16, horizon=5) if TINY else {}
env = gym.make("diffsim/Stir-v0", render_mode="rgb_array", **options)
u = env.unwrapped
env.reset(seed=0)
T, A = u.horizon, u.act_dim
prob = dss.ControlProblem(u.rollout_loss, u0=torch.zeros(T, A, dtype=u.sim.dtype), bounds=(-1.0, 1.0))
budget = 2 if TINY else 12
print(f"{budget} episodes each: Adam (rollout + backward) and CEM (rollouts only)")
grad = dss.solve(prob, dss.Adam(lr=0.3), maxiters=budget, progress=True)
with torch.no_grad():
    cem = dss.solve(prob, dss.CEM(population=max(budget // 3, 2), elites=2), maxevals=budget, seed=0,
                    progress=True)
zero = float(u.rollout_loss(torch.zeros(T, A, dtype=u.sim.dtype)))
print(f"zero actions {zero:.4f} | Adam {grad.loss:.4f} | CEM {cem.loss:.4f}")
plt.figure(figsize=(4.5, 3))
plt.plot(grad.history.nevals, grad.history.best, marker="o", label="Adam")
plt.plot(cem.history.nevals, cem.history.best, marker="s", label="CEM")
plt.xlabel("simulated episodes")
plt.ylabel("mixing index (best so far)")
plt.legend();'''),
    ("md", "The better plan, played from above (an orthographic camera looking down the y axis)."),
    ("code", '''best = grad.u if grad.loss <= cem.loss else cem.u
renderer = ds.render.Renderer(256, 256)
top = ds.render.Camera(eye=(0.5, 3.0, 0.5), target=(0.5, 0.0, 0.5), up=(0, 0, -1),
                       projection="orthographic", ortho_height=0.9)
env.reset(seed=0)
frames = [renderer.render(u.sim, u.get_state(), camera=top)]
for a in best.numpy():
    env.step(a.astype(np.float32))
    frames.append(renderer.render(u.sim, u.get_state(), camera=top))
show(frames, fps=12)
renderer.close()
env.close()'''),
])

# ------------------------------------------------------------------------------ plasticine
PLASTICINE = notebook("# Plasticine tasks: shaping with contact", """\
What it shows: `Pinch` squeezes a plasticine block (von Mises plasticity on MPM particles)
between two fingers towards a target shape. Contact would make the loss flat while the
fingers are away from the dough, so `Pinch-v1` declares the fingers' contact with the dough
and the framework adds a contact-seeking term; the task's own recipe (`task.recipe`: Adam
on 8 hat functions per action) then follows the gradient from the first iteration. The
result is compared with the target and written as a point cloud.""", "about 4-5 minutes", [
    ("code", '''options = dict(grid_res=20, horizon=4) if TINY else {}   # at 16 cells the dough meets the walls
env = gym.make("diffsim/Pinch-v1", render_mode="rgb_array", **options)
u = env.unwrapped
env.reset(seed=0)
recipe = u.task.solve_recipe()
prob = recipe.problem(env)                 # zero actions to start, bounds [-1, 1], the hat basis
print(recipe.algorithm, "|", prob.basis)
iters = 2 if TINY else 60
print(f"{iters} iterations of the recipe (each: one rollout and one backward pass)")
res = dss.solve(prob, recipe.algorithm, maxiters=iters, progress=True, **recipe.solve_kwargs())
print(res)
zero = float(u.rollout_loss(torch.zeros(u.horizon, u.act_dim, dtype=u.sim.dtype)))
print(f"objective: zero actions {zero:.4f}, after {res.niters} iterations {res.loss:.4f}")'''),
    ("md", "Sixty iterations are about what the recipe's 300 s budget allows on an unloaded "
           "2-core CPU (`diffsim solve diffsim/Pinch-v1` reached success in 54-57 iterations "
           "for seeds 0, 1 and 2). The episode is replayed through `env.step`, as any agent "
           "would run it; success is a goal loss below 60% of the start's."),
    ("code", '''renderer = ds.render.Renderer(256, 256)
camera = ds.render.Camera.framing(((0.28, 0.72), (0.08, 0.36), (0.36, 0.64)), azimuth=20, elevation=25)
env.reset(seed=0)
frames, info = [renderer.render(u.sim, u.get_state(), camera=camera)], {}
for a in res.controls.detach().clamp(-1.0, 1.0).numpy():
    *_, info = env.step(a.astype(np.float32))
    frames.append(renderer.render(u.sim, u.get_state(), camera=camera))
print(f"goal loss {info['goal_loss']:.4f} (success below {u.task.success_ratio:.0%} of the start: "
      f"{info['success']})")
show(frames, fps=10)
state = u.get_state()
fig, ax = plt.subplots(1, 2, figsize=(8, 4))
target = u.task._target(u.sim).numpy()
for a, pts, title, color in zip(ax, (state.x.numpy(), target), ("result (side view)", "target (side view)"),
                                ("tab:blue", "tab:orange")):
    a.scatter(pts[:, 0], pts[:, 1], s=1, color=color)
    a.set_title(title)
    a.set_aspect("equal")
    a.set_xlabel("x (m)")
ds.render.export_state(u.sim, state, "pinch_result.ply")   # a coloured point cloud, through trimesh
renderer.close()
env.close()'''),
])

# ------------------------------------------------------------------------------ shells
SHELLS = notebook("# Thin shells: a cloth on a sphere, a fold", """\
What it shows: `ds.Shell` (membrane triangles plus discrete bending hinges, implicit
steps, penalty contact with friction). First a square of felt drops onto a sphere and the
ground, and the adjoint gives the derivative of its mean height, a quarter second in, with
respect to its bending stiffness, compared with a finite difference. Then the `Fold` task: two fingers
pinch a paper sheet's overhanging edge and carry it over along the task's reference fold; the
paper's rest-angle plasticity leaves a crease. The notebook runs in float64, so that rounding
does not limit the finite difference; the tasks run in float32 too.""", "about 2 minutes", [
    ("md", "## 1. A cloth on a sphere"),
    ("code", '''scene = ds.Scene(dim=3)
cloth = ds.ShellMaterial(E=2e5, nu=0.3, thickness=5e-4, density=400.0, bending_stiffness=1e-4)
scene.add_shell(ds.Rectangle(center=(0.5, 0.32, 0.5), size=(0.5, 0.5)), cloth,
                resolution=0.1 if TINY else 0.04, damping=(0.5, 0.0), name="cloth")
scene.add_collider(ds.Sphere(center=(0.5, 0.15, 0.5), radius=0.15), friction=0.3, name="ball")
scene.add_ground(height=0.0, friction=0.5)
# newton_tol 3e-5 (Newton stops below steps of about 2e-5 m, 4e-5 of the cloth's size): with the
# default 1e-6 its steps stall near 1e-5 m where the cloth meets the ball (ds.ConvergenceError)
sim = ds.Shell(scene, dt=1 / 60, newton_tol=3e-5, max_newton=60)
steps = 6 if TINY else 60
print(sim, f"| {steps} steps of 1/60 s")
t0 = time.perf_counter()
with torch.no_grad():
    states = sim.rollout(sim.reset(), torch.zeros(steps, 0), saveat=range(steps + 1))
print(f"rollout: {time.perf_counter() - t0:.1f} s; Newton iterations per step:",
      sim.solver_stats()["newton_per_step"])
renderer = ds.render.Renderer(256, 256)
show([renderer.render(sim, s) for s in states], fps=15)'''),
    ("md", "The derivative of the mean height with respect to the bending stiffness `D`, a "
           "quarter second in (while the felt wraps the ball), by the adjoint (one linear solve "
           "per step, `ds.CheckpointAdjoint`), and a central finite difference (D +- 2%) for "
           "comparison. Later, as the felt slides on the ball, the height is no longer smooth "
           "in `D` (friction switches between sticking and sliding), and a finite difference "
           "depends on its step; the Newton tolerance above also bounds how small a step can be."),
    ("code", '''check = 4 if TINY else 15


def mean_height(D):
    sol = ds.solve(ds.SimulationProblem(sim, controls=torch.zeros(check, 0), params={"cloth.bending_stiffness": D}),
                   sensealg=ds.CheckpointAdjoint(segment=check))
    return sol.u[-1].x[:, 1].mean()


D0 = 1e-4
D = torch.tensor(D0, dtype=torch.float64, requires_grad=True)
h = mean_height(D)
h.backward()
eps = 0.02 * D0
with torch.no_grad():
    fd = (mean_height(torch.tensor(D0 + eps, dtype=torch.float64))
          - mean_height(torch.tensor(D0 - eps, dtype=torch.float64))) / (2 * eps)
print(f"mean height after {check} steps {h.item():.5f} m; dh/dD adjoint {D.grad.item():.4g}, "
      f"finite difference {fd.item():.4g} m/(N m)")
sim.close()'''),
    ("md", "## 2. A fold\n`Fold`: the sheet overhangs the table edge by 2 cm, and the episode "
           "starts with a parallel gripper's two fingers pinching the overhang. The task's "
           "target is the sheet after its reference fold (`reference_fold`: carry the pair up, "
           "over to -x and down along an arc), simulated once per task as PlasticineLab makes "
           "its targets: a fold that this gripper reaches in 1.2 s. The plan below is that "
           "reference, replayed from the seeded start. The goal is the mean squared distance "
           "to the target / (5 cm)^2; success is below 0.1."),
    ("code", '''from diffsim.envs.tasks.fold import reference_fold

options = dict(horizon=8) if TINY else {}
env = gym.make("diffsim/Fold-v3", render_mode="rgb_array", **options)
u = env.unwrapped
plan = reference_fold(u.horizon).numpy()     # the pinching pair's (x, y, z) velocity: up, over to -x, down
env.reset(seed=0)
frames, losses, crease = [env.render()], [], []
for a in plan:
    *_, info = env.step(a)
    frames.append(env.render())
    losses.append(info["goal_loss"])
    crease.append(float(u.get_state().rest_angle.abs().max()))
print(f"goal loss after the reference fold {losses[-1]:.2g} (success: {info['success']})")
show(frames, fps=12)
fig, ax = plt.subplots(1, 2, figsize=(8, 3))
ax[0].plot(losses)
ax[0].axhline(0.1, ls="--", c="k", lw=0.8)
ax[0].set_ylabel("goal loss")
ax[1].plot(crease)
ax[1].set_ylabel("largest rest angle (rad)")
for a in ax:
    a.set_xlabel("step")
fig.tight_layout()
renderer.close()
env.close()'''),
    ("md", "The largest hinge rest angle is the crease: plastic bending changes the rest "
           "shape, so the paper stays folded where it bent past the yield curvature. The "
           "reference reaches the goal almost exactly (it defines the target; the seeded start "
           "shifts the fingers by up to 0.5 mm). The optimisers start from zero actions "
           "instead: `diffsim solve diffsim/Fold-v3` (the task's recipe, Adam on 4 hat "
           "functions per action with an expanding horizon and `reject=1.5`) finds a fold from "
           "there; the README's results table has its figures."),
], init='arch="cpu", precision="f64"')

# ------------------------------------------------------------------------------ tactile
TACTILE = notebook("# Tactile sensing: press, slide, read, calibrate", """\
What it shows: a GelSight-like sensor (`ds.Tactile`: an FEM elastomer pad on a finger,
markers seen by a pinhole camera, a photometric RGB image). A ball presses into the pad and
slides across it; the readings (3-axis force, marker displacements, the RGB image) are
plotted along the way. Then a learned per-pixel image model (`ds.TactilePixelModel`, as in
DiffTactile) is calibrated against stand-in "recorded" images. The notebook runs in
float64 (the precision of the package's gradient checks); the tactile tasks run in float32
too.""", "about 1 minute", [
    ("md", "## 1. Press and slide"),
    ("code", '''scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
scene.add_tool(ds.Sphere(center=(-0.002, 0.0, 0.003 + 0.004), radius=0.004), friction=0.5, name="ball")
sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.012, 0.012, 0.003), 0.003 if TINY else 0.0015),
                          material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0), markers=(6, 6),
                          camera=ds.TactileCamera(distance=0.02, fov_deg=45, resolution=(48, 40)))
sim = ds.Tactile(scene, sensors=[sensor], dt=0.01)
print(sim, "| actions:", sim.action_dim, "(6 for the finger, then 6 for the ball)")
press, slide = (2, 2) if TINY else (4, 10)
U = torch.zeros(press + slide, sim.action_dim, dtype=torch.float64)
U[:press, 8] = -0.015            # the ball descends 0.15 mm per step (m/s along z)
U[press:, 6] = 0.4e-3 / 0.01     # then slides 0.4 mm per step along x
t0 = time.perf_counter()
with torch.no_grad():
    states = sim.rollout(sim.reset(), U, saveat=range(len(U) + 1))
    readings = [sim.read(s) for s in states]
print(f"{len(U)} steps in {time.perf_counter() - t0:.1f} s")
force = np.array([r.force.numpy() for r in readings])
plt.figure(figsize=(5, 3))
for k, name in enumerate("xyz"):
    plt.plot(force[:, k], label=f"F_{name}")
plt.axvline(press, c="k", lw=0.8, ls="--")
plt.xlabel("step (press, then slide)")
plt.ylabel("force on the pad (N)")
plt.legend();'''),
    ("md", "Markers in the camera image (displacement from rest, magnified) and the tactile "
           "RGB image, at the end of the press and at the end of the slide."),
    ("code", '''fig, ax = plt.subplots(2, 2, figsize=(8, 6.5))
for col, k in enumerate((press, len(U))):
    r = readings[k]
    m0, d = r.markers.numpy() - r.marker_displacement.numpy(), r.marker_displacement.numpy()
    ax[0, col].quiver(m0[:, 0], m0[:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=0.2)
    ax[0, col].invert_yaxis()
    ax[0, col].set_aspect("equal")
    ax[0, col].set_title(f"step {k}: markers (px, displacement x5)")
    ax[1, col].imshow(r.image.clamp(0, 1).numpy())
    ax[1, col].set_title(f"step {k}: tactile image")
    ax[1, col].axis("off")
fig.tight_layout()
renderer = ds.render.Renderer(256, 256)
show([renderer.render(sim, s, tactile_image=True) for s in states], fps=6)'''),
    ("md", "## 2. Calibrate a learned image model\nNo real GelSight images ship with diffsim, so "
           "*stand-in* recorded images come from a different photometric model (other light "
           "colours, 45 degree elevation, a stronger highlight). `ds.fit_pixel_model` fits the "
           "per-pixel MLP to (features, image) pairs from the press and slide; a held-out "
           "state measures the error against the uncalibrated default lights."),
    ("code", '''recorded_lights = ds.Lights(colors=((0.9, 0.45, 0.15), (0.25, 0.8, 0.35), (0.25, 0.3, 0.9)),
                           elevation_deg=45.0, ambient=0.1, albedo=0.55, specular=0.25, shininess=4.0,
                           marker_darkness=0.6)
features = [r.features for r in readings]
train = features[1::2]                       # every other state for training
held = features[-2] if len(features) % 2 == 0 else features[-1]
torch.manual_seed(0)
iters = 20 if TINY else 300
print(f"fitting the pixel model: {iters} Adam steps on {len(train)} images")
model, history = ds.fit_pixel_model(train, [recorded_lights.shade(f) for f in train],
                                    ds.TactilePixelModel(hidden=(64, 64)), iters=iters, lr=2e-2,
                                    progress=True)
with torch.no_grad():
    target = recorded_lights.shade(held)
    learned, default = model(held), sim.sensors[0].lights.shade(held)


def err(img):
    return float((img - target).abs()[held.mask].mean())


print(f"held-out state: mean abs error learned {err(learned):.4f}, default lights {err(default):.4f} (RGB in [0, 1])")
fig, ax = plt.subplots(1, 4, figsize=(11, 2.8))
ax[0].semilogy(history)
ax[0].set_title("fit loss")
for a, img, title in zip(ax[1:], (target, learned, default), ("recorded (stand-in)", "learned model", "default lights")):
    a.imshow(img.clamp(0, 1).numpy())
    a.set_title(title)
    a.axis("off")
fig.tight_layout()
renderer.close()
sim.close()'''),
], init='arch="cpu", precision="f64"')

# ------------------------------------------------------------------------------ neural ODE
NEURAL_ODE = notebook("# Neural ODEs: adjoints and local regularization", """\
What it shows: a neural ODE fits the cubic spiral of Chen et al.'s demo (`dss.NeuralODE`,
`Tsit5`). The gradient of the same loss by backpropagation through the solver
(`DirectAdjoint`) and by the continuous adjoint (`InterpolatingAdjoint`) agree to the
solver's tolerance; then the same model is trained with and without the local
solver-heuristic regularizer of Pal et al. (2023), which makes the learned dynamics cheaper
to integrate (fewer function evaluations) at a similar fit. Pure PyTorch.""", "about 1 minute", [
    ("code", '''A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
u0 = torch.tensor([[2.0, 0.0]])
T, n = 10.0, 200
ts = torch.linspace(0.0, T, n)
with torch.no_grad():
    truth = dss.solve(dss.ODEProblem(lambda u, p, t: (u ** 3) @ A, u0, (0.0, T)), dss.DP8(),
                      rtol=1e-8, atol=1e-8, saveat=ts)
print(truth.retcode, "| NFE of the reference solve:", truth.stats.nfe)
target = truth.u[:, 0]                                    # (n, 2)

class Cubic(torch.nn.Module):                            # the demo's inductive bias: the net sees u^3
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2))
    def forward(self, u):
        return self.net(u ** 3)

window = 10
t_w = ts[:window] - ts[0]
def batch(gen, size=16):
    start = torch.randint(0, n - window, (size,), generator=gen)
    return target[start], target[start[None] + torch.arange(window)[:, None]]   # (B, 2), (window, B, 2)'''),
    ("md", "## Two ways to the same gradient"),
    ("code", '''torch.manual_seed(0)
field = Cubic()
x0, y = batch(torch.Generator().manual_seed(1))
grads, times = {}, {}
for name, sensealg in (("DirectAdjoint", dss.DirectAdjoint()), ("InterpolatingAdjoint", dss.InterpolatingAdjoint())):
    layer = dss.NeuralODE(field, (0.0, float(t_w[-1])), dss.Tsit5(), sensealg, saveat=t_w, rtol=1e-6, atol=1e-8)
    field.zero_grad()
    t0 = time.perf_counter()
    (layer(x0).u - y).abs().mean().backward()
    times[name] = time.perf_counter() - t0
    grads[name] = torch.cat([p.grad.flatten() for p in field.parameters()])
rel = (grads["DirectAdjoint"] - grads["InterpolatingAdjoint"]).norm() / grads["DirectAdjoint"].norm()
print(f"relative difference of the gradients: {rel:.2e}; seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in times.items()))'''),
    ("md", "## Training with and without the local regularizer\n`LocalRegularization` adds "
           "`coeff * E_est * |dt|` of one randomly placed, restarted solver step: a penalty on "
           "the local error estimate the step-size controller sees."),
    ("code", '''iters = 5 if TINY else 500
runs = {}
for name, reg in (("none", None), ("local, biased, coeff 1", dss.LocalRegularization(sampling="biased", coeff=1.0))):
    torch.manual_seed(0)
    field = Cubic()
    layer = dss.NeuralODE(field, (0.0, float(t_w[-1])), dss.Tsit5(), dss.InterpolatingAdjoint(), reg,
                          saveat=t_w, rtol=1e-5, atol=1e-6)
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    gen, losses, nfe = torch.Generator().manual_seed(0), [], []
    t0 = time.perf_counter()
    for _ in range(iters):
        x0, y = batch(gen)
        sol = layer(x0)
        loss = (sol.u - y).abs().mean()
        opt.zero_grad()
        (loss + sol.reg).backward()
        opt.step()
        losses.append(loss.item())
        nfe.append(sol.stats.nfe)
    with torch.no_grad():      # predict the whole span from u(0) with the learned field
        pred = dss.solve(dss.ODEProblem(layer.f, u0, (0.0, T)), dss.Tsit5(), rtol=1e-5, atol=1e-6, saveat=ts)
    runs[name] = dict(losses=losses, nfe=nfe, pred=pred.u[:, 0], predict_nfe=pred.stats.nfe)
    print(f"{name:>24}: {iters} steps in {time.perf_counter() - t0:.0f} s; last loss {np.mean(losses[-20:]):.4f}; "
          f"NFE to predict t in [0, {T:g}]: {pred.stats.nfe}")'''),
    ("code", '''fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
ax[0].plot(target[:, 0], target[:, 1], "k", lw=2, label="data")
for name, r in runs.items():
    ax[0].plot(r["pred"][:, 0], r["pred"][:, 1], label=name)
    k = max(1, len(r["nfe"]) // 25)
    ax[1].plot(np.convolve(r["losses"], np.ones(k) / k, mode="valid"), label=name)
    ax[2].plot(np.convolve(r["nfe"], np.ones(k) / k, mode="valid"), label=name)
ax[0].set_title("trajectory from u(0)")
ax[0].legend(fontsize=8)
ax[1].set_title("training loss (L1)")
ax[1].set_yscale("log")
ax[2].set_title("function evaluations per forward solve")
ax[2].legend(fontsize=8)
for a in ax[1:]:
    a.set_xlabel("step")
fig.tight_layout()'''),
    ("md", "How much the regularizer saves depends on the task and its coefficient: "
           "`solvers/README.md` (\"The regularization effect\", \"Tuning the coefficient\") "
           "has measured tables on this spiral and on a digits classifier."),
], setup=SETUP_TORCH)

# ------------------------------------------------------------------------------ surrogates
SURROGATES = notebook("# Neural PDE surrogates: data, training, rollout", """\
What it shows: the 1D Burgers family E1 of the MP-PDE benchmark solved by diffsim's own
WENO5 finite-volume reference (`dss.pde`, integrated with `dss.solve`), written to an HDF5
data set; a Fourier neural operator (`dnn.FNO`, temporal bundling) trained on it with
`dnn.Trainer` for a budget of CPU seconds; an autoregressive rollout on held-out
trajectories against the reference, with the accumulated error of MP-PDE's table and the
speed of both. Pure PyTorch.""", "about 1 minute", [
    ("code", '''import tempfile
from pathlib import Path

from diffsim.solvers import nn as dnn

torch.set_num_threads(1)
folder = Path(tempfile.mkdtemp())
n_train, nx, tw = (4, 50, 25) if TINY else (96, 50, 25)
print(f"WENO5 reference solves: {n_train} training and 8 test trajectories of E1")
dss.pde.generate(dss.pde.E1, folder / "train.h5", n_train, seed=0, resolutions=(200,))
dss.pde.generate(dss.pde.E1, folder / "test.h5", 8, seed=2, resolutions=(200, nx))
train = dss.pde.load_ce(folder / "train.h5", nx)   # targets: nx = 200 downsampled, as MP-PDE
test = dss.pde.load_ce(folder / "test.h5", nx)     # + test.baseline: WENO5 solved at nx directly
print(train.name, tuple(train.u.shape), "| dt", train.dt, "| conditioning", train.cond_names)'''),
    ("code", '''budget = 5.0 if TINY else 150.0
torch.manual_seed(0)
model = dnn.FNO(dim=1, time_window=tw, n_cond=train.n_cond, dt=train.dt, t_scale=float(train.t[-1]),
                width=32, modes=16, layers=4)
task = dnn.FieldTask(train, tw, unrolling=1, valid=test)
steps_per_epoch = 50
config = dnn.TrainConfig(epochs=2 if TINY else 40, batch_size=16, lr=1e-3, steps_per_epoch=steps_per_epoch,
                         clock="process", time_limit=budget, progress=True, seed=0,
                         checkpoint=str(folder / "fno.pt"))
print(f"training an FNO ({sum(p.numel() for p in model.parameters())} weights) for at most {budget:g} CPU s")
trainer = dnn.Trainer(model, task, config)
history = trainer.fit()
print(f"{trainer.global_step} steps in {trainer.cpu_time:.0f} CPU s")'''),
    ("code", '''model.eval()
res = dss.pde.evaluate(model, test, tw, batch_size=test.n)
print(f"accumulated error {res.accumulated:.3g} (WENO5 solved at nx={nx}: {res.baseline_accumulated:.3g}); "
      f"one-step error {res.one_step:.3g}; finite: {res.finite}")
with torch.no_grad():
    t0 = time.perf_counter()
    pred = dss.pde.rollout(model, test.u, test.t, test.cond, time_window=tw)
    t_model = time.perf_counter() - t0
params = dss.pde.E1.sample(np.random.default_rng(2), test.n)
t0 = time.perf_counter()
dss.pde.E1.solve(params, nx, rtol=1e-3)
t_ref = time.perf_counter() - t0
print(f"{test.n} rollouts: FNO {t_model:.3f} s, WENO5 at nx={nx} and rtol 1e-3 {t_ref:.3f} s ({t_ref / t_model:.1f}x)")
ref, sur = test.u[0, :, 0].numpy(), pred[0, :, 0].numpy()
fig, ax = plt.subplots(1, 3, figsize=(12, 3.3), sharey=True)
ext = (0, test.lengths[0], 0, float(test.t[-1]))
vmax = np.abs(ref).max()
for a, img, title in zip(ax, (ref, sur, np.abs(sur - ref)), ("reference", "FNO rollout", "|error|")):
    im = a.imshow(img, origin="lower", aspect="auto", extent=ext, cmap="magma" if title == "|error|" else "RdBu_r",
                  vmin=0 if title == "|error|" else -vmax, vmax=None if title == "|error|" else vmax)
    a.set_title(title)
    a.set_xlabel("x")
    fig.colorbar(im, ax=a)
ax[0].set_ylabel("t")
fig.tight_layout()'''),
    ("md", "These are small CPU runs, far from the paper's training budget: read them as a "
           "working pipeline. `examples/neural_pde/mppde_benchmark.py` runs the full "
           "comparison with the paper's numbers (`solvers/pde/README.md`, Results)."),
], setup=SETUP_TORCH)

# ------------------------------------------------------------------------------ RL
RL = notebook("# Reinforcement learning with stable-baselines3", """\
What it shows: every diffsim task is a standard Gymnasium environment, so RL libraries run
on it unchanged. PPO from stable-baselines3 learns on `Pour` for a small budget of
environment steps; its episode returns and the goal loss of its deterministic policy are
compared with zero actions and with Adam on the differentiable episode
(`rollout_loss`) at a similar wall-clock cost.""", "about 2 minutes", [
    ("code", '''from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

options = dict(grid_res=16, horizon=8) if TINY else dict(horizon=40)
env = gym.make("diffsim/Pour-v1", **options)
steps = 64 if TINY else 4000
print(f"PPO on Pour (horizon {env.unwrapped.horizon}), {steps} environment steps")

class Returns(BaseCallback):
    """Collects the return of every finished episode (stable-baselines3's Monitor reports it)."""
    def __init__(self):
        super().__init__()
        self.returns = []
    def _on_step(self):
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
        return True

returns = Returns()
model = PPO("MlpPolicy", env, n_steps=32 if TINY else 400, batch_size=32 if TINY else 100, seed=0, verbose=0)
t0 = time.perf_counter()
model.learn(total_timesteps=steps, callback=returns, progress_bar=False)
ppo_seconds = time.perf_counter() - t0
print(f"{len(returns.returns)} episodes in {ppo_seconds:.0f} s")'''),
    ("code", '''def goal_loss(policy):
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(policy(obs))
        done = term or trunc
    return info["goal_loss"]

zero = goal_loss(lambda obs: np.zeros(3, np.float32))
ppo = goal_loss(lambda obs: model.predict(obs, deterministic=True)[0])
u = env.unwrapped
u.reset(seed=0)
t0 = time.perf_counter()
res = dss.solve(dss.ControlProblem(u.rollout_loss, u0=torch.zeros(u.horizon, u.act_dim), bounds=(-1.0, 1.0)),
                dss.Adam(lr=0.2), maxiters=2 if TINY else 10, progress=True)
adam_seconds = time.perf_counter() - t0
plan = iter(res.u.numpy())
adam = goal_loss(lambda obs: next(plan))
print(f"goal loss: zero actions {zero:.4f} | PPO ({steps} steps, {ppo_seconds:.0f} s) {ppo:.4f} | "
      f"Adam ({res.niters} iterations, {adam_seconds:.0f} s) {adam:.4f}")
plt.figure(figsize=(4.5, 3))
plt.plot(returns.returns, marker=".")
plt.xlabel("episode")
plt.ylabel("return (= loss decrease)")
env.close()'''),
    ("md", "The return of an episode is the decrease of the task's loss, so PPO and Adam "
           "optimise the same thing: PPO from samples of the environment, Adam from exact "
           "gradients of one differentiable episode. At budgets this small PPO has barely "
           "started to learn; the project README's results table compares the three families "
           "of methods on every task."),
])

NOTEBOOKS = {"quickstart": QUICKSTART, "fluids": FLUIDS, "plasticine": PLASTICINE, "shells": SHELLS,
             "tactile": TACTILE, "neural_ode": NEURAL_ODE, "surrogates": SURROGATES, "rl": RL}


# ------------------------------------------------------------------------------ execution
def clean_streams(nb) -> None:
    """Stream outputs as a terminal would show them: consecutive outputs of one stream
    joined (the kernel sends each tqdm redraw as its own message), then each line's text
    after its last carriage return (tqdm redraws its bar with ``\\r``), without ANSI codes."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if (out.get("output_type") == "stream" and prev is not None
                    and prev.get("output_type") == "stream" and prev["name"] == out["name"]):
                prev["text"] += out["text"]
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out["text"])
                out["text"] = "\n".join(seg.split("\r")[-1] for seg in text.split("\n"))
        if "outputs" in cell:
            cell["outputs"] = merged


def output_bytes(nb) -> int:
    return sum(len(json.dumps(out)) for c in nb.cells if c.cell_type == "code" for out in c.get("outputs", []))


def execute(name: str, nb, timeout: int, tiny: bool = False, keep_dir: str | None = None) -> tuple[object, float]:
    """Run ``nb`` in a fresh kernel in a scratch folder; returns it with its outputs and the
    seconds it took. Raises nbclient's CellExecutionError on the first failing cell."""
    from nbclient import NotebookClient

    env_before = os.environ.get("DIFFSIM_NOTEBOOK_TINY")
    os.environ["DIFFSIM_NOTEBOOK_TINY"] = "1" if tiny else "0"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": keep_dir or tmp}}).execute()
            seconds = time.perf_counter() - t0
    finally:
        if env_before is None:
            os.environ.pop("DIFFSIM_NOTEBOOK_TINY", None)
        else:
            os.environ["DIFFSIM_NOTEBOOK_TINY"] = env_before
    return nb, seconds


def stamp(nb, seconds: float) -> None:
    """Record in the opening cell how long the stored run took, where and when."""
    head = nb.cells[0]
    text = head.source.split("\n\n" + TIMING_MARK)[0]
    cpu = platform.processor() or platform.machine()
    head.source = (f"{text}\n\n{TIMING_MARK} {seconds / 60:.1f} min on a {os.cpu_count()}-core {cpu} "
                   f"CPU ({platform.system()}), {datetime.date.today().isoformat()}, "
                   "by `./dev notebooks`.*")


def refresh(nb, path: Path) -> None:
    """Give the stored executed notebook at ``path`` the text cells of ``nb`` (its generated
    version), keeping the stored outputs and timing stamp.

    Raises:
        ValueError: the stored notebook is not executed, or its cells differ from ``nb``'s
            in code or in kind (then it must be executed again).
    """
    stored = nbf.read(path, as_version=4)
    head = stored.cells[0].source if stored.cells else ""
    if TIMING_MARK not in head:
        raise ValueError(f"{path.name} is not stored executed; run ./dev notebooks --only {path.stem}")
    if ([(c.cell_type, c.source if c.cell_type == "code" else None) for c in stored.cells]
            != [(c.cell_type, c.source if c.cell_type == "code" else None) for c in nb.cells]):
        raise ValueError(f"{path.name}: its code differs from make_notebooks.py; run ./dev notebooks "
                         f"--only {path.stem}")
    for old, new in zip(stored.cells, nb.cells):
        if new.cell_type == "markdown":
            old.source = new.source
    stored.cells[0].source = nb.cells[0].source + "\n\n" + TIMING_MARK + head.split(TIMING_MARK, 1)[1]
    clean_streams(stored)
    nbf.write(stored, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--only", nargs="+", choices=list(NOTEBOOKS), default=None)
    ap.add_argument("--execute", action="store_true", help="run them and store them with their outputs")
    ap.add_argument("--refresh", action="store_true",
                    help="rewrite the text cells of the stored executed notebooks, keeping their outputs")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument("--max-mb", type=float, default=4.0, help="largest allowed stored notebook (MB)")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    out = Path(args.out)
    failed = []
    for name in args.only or list(NOTEBOOKS):
        nb = nbf.from_dict(json.loads(json.dumps(NOTEBOOKS[name])))   # a fresh copy
        path = out / f"{name}.ipynb"
        if args.refresh:
            try:
                refresh(nb, path)
            except ValueError as exc:
                print(f"[notebooks] {exc}", file=sys.stderr)
                failed.append(name)
            else:
                print("[notebooks] refreshed", path, flush=True)
            continue
        if args.execute:
            print(f"[notebooks] executing {name} ...", flush=True)
            try:
                nb, seconds = execute(name, nb, args.timeout)
            except Exception as exc:   # a failing cell: report it, keep the stored notebook
                print(f"[notebooks] {name} FAILED: {exc}", file=sys.stderr)
                failed.append(name)
                continue
            clean_streams(nb)
            stamp(nb, seconds)
            size = len(nbf.writes(nb).encode()) / 1e6
            print(f"[notebooks] {name}: {seconds / 60:.1f} min, {size:.2f} MB", flush=True)
            if size > args.max_mb:
                print(f"[notebooks] {name}: {size:.2f} MB > --max-mb {args.max_mb}; not stored "
                      "(fewer or smaller frames)", file=sys.stderr)
                failed.append(name)
                continue
        nbf.write(nb, path)
        print("[notebooks] wrote", path, flush=True)
    if failed:
        print(f"[notebooks] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
