"""The README gallery and the task catalogue's pictures, made from the package itself.

    ./dev gallery                                  # everything, default budgets (about 30 min on 2 CPU cores)
    ./dev gallery --part readme                    # only the README gallery
    ./dev gallery --items pour rollingpin          # some items; the others keep their pictures
    ./dev gallery --reuse                          # redraw from the last run's actions (build/gallery)
    ./dev gallery --from-runs runs/                # task items replay `diffsim solve` outputs instead
    ./dev gallery --part tasks                     # only the catalogue pictures (docs/tasks/images)
    python examples/gallery/make_gallery.py --tiny --out /tmp/g --readme /tmp/g/README.md   # smoke run

Items (``--items``; ``ITEMS`` below holds each one's budget):

* task items (``pour``: fluids, ``pinch``: plasticine, ``lift``: a thin shell, ``grasp``:
  tactile with the sensor's markers beside the scene): an animated GIF of the episode
  before and after optimisation, side by side, each under ``--max-bytes``, both from the
  task's own start (zero actions). Without ``--from-runs`` the script optimises with the
  package's own ``dss.solve`` (Adam on ``rollout_loss``) for the item's budget of
  iterations; an item with ``solver="recipe"`` (``pinch``, ``grasp``) runs ``diffsim
  solve``'s own ``solve_task`` (the task's recipe until success or its wall-clock budget:
  about 6 min for Pinch, 1-3 min for Grasp). With ``--from-runs DIR`` it
  takes the best ``actions.npy`` of a ``diffsim solve`` run of the task found under DIR
  (``summary.json`` names the task, seed, options and precision) and shows zero actions
  beside it. Either way "before" and "after" are replayed through ``env.step`` from the
  seeded reset, and the caption quotes the goal loss and success that this replay reports.
* ``ode_regularization``: a neural ODE digits classifier (examples/neural_ode) trained with
  and without the local regularizer of Pal et al. (2023): the solver's function evaluations
  per training step, and the test accuracy and prediction cost.
* ``surrogate``: the FNO of ``examples/neural_pde/mppde_benchmark.py`` on MP-PDE's E1 at 100
  cells (its recipe and budget: 2048 WENO5 trajectories from ``dss.pde``, 600 CPU s; kept in
  ``--cache`` and loaded, not retrained, on the next run), rolled out on a held-out
  trajectory beside the reference solution.

Each item runs in its own process (task items choose their float precision: the FEM, shell
and tactile implicit steps run in float64, see the records), writes its picture and a
record (the caption's numbers, seconds, machine, seed, commit) into ``--out``
(``gallery.json``), and the grid of README.md between the ``gallery:begin``/``gallery:end``
markers is rewritten from all records. Nothing in a caption is typed by hand.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "assets" / "gallery"
TASK_PICTURES = ROOT / "docs" / "tasks"
BEGIN, END = "<!-- gallery:begin -->", "<!-- gallery:end -->"
COMMAND = "./dev gallery"


@dataclass(frozen=True)
class TaskItem:
    """A task shown before and after optimisation (self-run budget: Adam iterations)."""

    name: str
    task: str                     # a task name; its registered id (diffsim/<Task>-v<N>) is looked up
    family: str
    precision: str = "f32"
    iters: int = 10
    lr: float = 0.2
    options: dict = field(default_factory=dict)
    tiny_options: dict = field(default_factory=dict)
    why_precision: str = ""
    camera: dict | None = None    # Camera.framing arguments (None: env.render()'s own view)
    marker_gain: float = 0.0      # >0 (tactile): a panel of the sensor's markers, displacements x gain
    solver: str = "adam"          # "adam": dss.solve with Adam for ``iters``; "recipe": envs.solve.solve_task
                                  # (the task's recipe and budget, as ``diffsim solve TASK``)

    def task_id(self) -> str:
        """The registered id of the task's current version, ``diffsim/<Task>-v<N>``."""
        from diffsim.envs.registry import env_id

        return env_id(self.task)


@dataclass(frozen=True)
class PlotItem:
    name: str
    family: str


ITEMS = {
    "pour": TaskItem("pour", "Pour", "fluids (MPM)", iters=10, lr=0.2,
                     tiny_options=dict(grid_res=16, horizon=4),
                     camera=dict(bounds=((0.12, 0.88), (0.05, 0.75), (0.3, 0.7)), azimuth=20,
                                 elevation=55)),
    "pinch": TaskItem("pinch", "Pinch", "plasticine (MPM)", solver="recipe",
                      tiny_options=dict(grid_res=20, horizon=3),   # at 16 cells the dough meets the walls
                      camera=dict(bounds=((0.28, 0.72), (0.08, 0.36), (0.36, 0.64)), azimuth=20,
                                  elevation=25)),
    "lift": TaskItem("lift", "Lift", "thin shell (ds.Shell)", solver="recipe",
                     tiny_options=dict(horizon=3)),
    "grasp": TaskItem("grasp", "Grasp", "tactile (ds.Tactile)", solver="recipe", marker_gain=3.0,
                      tiny_options=dict(horizon=3)),
    "ode_regularization": PlotItem("ode_regularization", "neural ODE"),
    "surrogate": PlotItem("surrogate", "neural PDE surrogate"),
}


# ------------------------------------------------------------------------------ helpers
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core {cpu} CPU ({platform.system()})"


def commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def fmt(x: float) -> str:
    """A loss for a caption: 3 significant digits."""
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def font(size: int):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def font_size(texts, width: int, largest: int = 12) -> int:
    """The largest font size (<= ``largest``) at which every text fits ``width`` pixels."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    size = largest
    while size > 7 and any(draw.textlength(t, font=font(size)) > width - 8 for t in texts):
        size -= 1
    return size


def label(img: np.ndarray, text: str, size: int = 12, height: int = 22) -> np.ndarray:
    """``img`` with a white strip above it that carries ``text``."""
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    canvas = Image.new("RGB", (w, h + height), "white")
    canvas.paste(Image.fromarray(img), (0, height))
    ImageDraw.Draw(canvas).text((4, (height - size) // 2 - 1), text, fill=(20, 20, 20),
                                font=font(size))
    return np.asarray(canvas)


def side_by_side(left: list[np.ndarray], right: list[np.ndarray], gap: int = 4) -> list[np.ndarray]:
    """Frames of two rollouts side by side (the shorter one holds its last frame); panels
    wider than tall (tactile: scene + sensor images) are stacked instead."""
    n = max(len(left), len(right))
    left = left + [left[-1]] * (n - len(left))
    right = right + [right[-1]] * (n - len(right))
    out = []
    for a, b in zip(left, right):
        if a.shape[1] > 1.3 * a.shape[0]:
            sep = np.full((gap, a.shape[1], 3), 255, np.uint8)
            out.append(np.concatenate([a, sep, b], axis=0))
        else:
            sep = np.full((a.shape[0], gap, 3), 255, np.uint8)
            out.append(np.concatenate([a, sep, b], axis=1))
    return out


def encode_gif(frames: list[np.ndarray], max_bytes: int, max_frames: int = 40,
               frame_ms: int = 90) -> tuple[bytes, dict]:
    """An animated GIF under ``max_bytes``: frames subsampled evenly to at most ``max_frames``
    (the first and last kept; the last held 1.5 s), one palette for all of them (no dithering:
    flat shading compresses well), then scaled down in steps of 15% until the file fits."""
    from PIL import Image

    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    chosen = [Image.fromarray(frames[i]) for i in idx]
    scale = 1.0
    while True:
        pil = chosen
        if scale < 1.0:
            size = (max(1, round(chosen[0].width * scale)), max(1, round(chosen[0].height * scale)))
            pil = [p.resize(size, Image.LANCZOS) for p in chosen]
        # the palette from a strip of a few frames: colours of the start, middle and end
        sample = [pil[0], pil[len(pil) // 2], pil[-1]]
        strip = Image.new("RGB", (sample[0].width, sample[0].height * 3))
        for k, im in enumerate(sample):
            strip.paste(im, (0, k * im.height))
        palette = strip.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        indexed = [p.quantize(palette=palette, dither=Image.Dither.NONE) for p in pil]
        durations = [frame_ms] * (len(indexed) - 1) + [1500]
        buf = io.BytesIO()
        indexed[0].save(buf, format="GIF", save_all=True, append_images=indexed[1:], duration=durations,
                        loop=0, disposal=1, optimize=False)
        data = buf.getvalue()
        if len(data) <= max_bytes or scale < 0.3:
            return data, {"frames": len(indexed), "size": list(indexed[0].size), "bytes": len(data),
                          "scale": round(scale, 3)}
        scale *= 0.85


def marker_panel(readings, resolution, gain: float, size: int = 256) -> np.ndarray:
    """The sensors' markers as a picture: rest positions (grey) and displacements magnified
    ``gain`` times (red), in the tactile camera's pixel frame, with the force on each pad."""
    from PIL import Image, ImageDraw

    readings = readings if isinstance(readings, list) else [readings]
    rows = len(readings)
    img = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    h = size // rows
    W, H = resolution
    scale = 0.8 * min(size / W, h / H)
    small = font(11)
    for k, r in enumerate(readings):
        ox, oy = (size - W * scale) / 2, k * h + (h - H * scale) / 2 + 6
        draw.rectangle([ox, oy, ox + W * scale, oy + H * scale], outline=(170, 170, 170))
        m = r.markers.detach().cpu().numpy()
        d = r.marker_displacement.detach().cpu().numpy()
        for (x, y), (dx, dy) in zip(m - d, d):
            p0 = (ox + x * scale, oy + y * scale)
            p1 = (p0[0] + gain * dx * scale, p0[1] + gain * dy * scale)
            draw.ellipse([p0[0] - 3, p0[1] - 3, p0[0] + 3, p0[1] + 3], fill=(150, 150, 150))
            draw.line([p0, p1], fill=(200, 30, 30), width=2)
            draw.ellipse([p1[0] - 2, p1[1] - 2, p1[0] + 2, p1[1] + 2], fill=(200, 30, 30))
        f = r.force.detach().cpu().numpy()
        draw.text((6, k * h + 2), f"markers, displacement x{gain:g}", fill=(20, 20, 20), font=small)
        draw.text((6, k * h + h - 16), f"force on the pad {np.linalg.norm(f):.2f} N", fill=(20, 20, 20),
                  font=small)
    return np.asarray(img)


# ------------------------------------------------------------------------------ task items
def replay(env, actions: np.ndarray, seed: int, draw, every: int = 1) -> tuple[list[np.ndarray], dict]:
    """Frames (``draw(env)`` at the start and every ``every`` steps) and the final ``info``
    of ``actions`` stepped through ``env`` from its seeded reset."""
    env.reset(seed=seed)
    frames = [draw(env)]
    info = {}
    for t, a in enumerate(np.asarray(actions, dtype=np.float32)):
        _, _, _, _, info = env.step(a)
        if (t + 1) % every == 0 or t == len(actions) - 1:
            frames.append(draw(env))
    return frames, {"goal_loss": float(info["goal_loss"]), "success": bool(info["success"]),
                    "loss": float(info["loss"])}


def find_run(runs: Path, task: str) -> tuple[Path, dict] | None:
    """The best ``diffsim solve`` run of ``task`` under ``runs``: a folder with a
    ``summary.json`` naming it and an ``actions.npy``; successful runs first, then the
    lowest goal loss."""
    found = []
    for summary in sorted(Path(runs).rglob("summary.json")):
        try:
            s = json.loads(summary.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"[gallery] skipping {summary}: {exc}", file=sys.stderr)
            continue
        if s.get("task") == task and (summary.parent / "actions.npy").exists():
            found.append((not s.get("success", False), float(s.get("goal_loss", math.inf)),
                          summary.parent, s))
    if not found:
        return None
    found.sort(key=lambda r: r[:2])
    return found[0][2], found[0][3]


def optimise(item: TaskItem, u, iters: int, progress: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """The item's start plan and Adam's best actions from it (``dss.solve`` on
    ``rollout_loss``), and what the run did."""
    import torch

    import diffsim as ds
    from diffsim import solvers as dss

    T, A, dtype = u.horizon, u.act_dim, u.sim.dtype
    U0 = torch.zeros(T, A, dtype=dtype)
    print(f"[gallery] {item.name}: Adam on rollout_loss, {iters} iterations (horizon {T})", flush=True)
    res = dss.solve(dss.ControlProblem(u.rollout_loss, u0=U0.clone(), bounds=(-1.0, 1.0)),
                    dss.Adam(lr=item.lr), maxiters=iters, catch=(ds.SimulationError,), progress=progress)
    meta = {"method": f"Adam(lr={item.lr})",
            "iterations": res.niters, "rollouts": res.nevals, "retcode": res.retcode.name,
            "before_label": "zero actions", "after_label": f"Adam, {res.niters} iterations",
            "optimiser_losses": [float(x) for x in res.history.mean], "optimise_seconds": res.time}
    return U0.cpu().numpy(), res.u.detach().cpu().numpy(), meta


def run_task_item(item: TaskItem, args) -> dict:
    import gymnasium as gym
    import torch

    import diffsim as ds
    import diffsim.envs  # noqa: F401  (registers the tasks)

    torch.set_num_threads(1)
    task_id = item.task_id()
    options = dict(item.options)
    seed, precision = args.seed, item.precision
    run_dir = run = None
    if args.from_runs:
        hit = find_run(Path(args.from_runs), task_id)
        if hit is None:
            raise SystemExit(f"--from-runs {args.from_runs}: no run of {task_id} (a folder with "
                             f"summary.json naming it and actions.npy); run `diffsim solve {task_id} "
                             f"--out {args.from_runs}/{item.name}` or leave --from-runs out")
        run_dir, run = hit
        options = dict(run.get("options") or {})
        seed = int(run.get("seed", 0))
        precision = run.get("precision", precision)
    if args.tiny:
        options.update(item.tiny_options)
    cache = Path(args.cache) / item.name
    ds.init(arch=args.arch, precision=precision)
    env = gym.make(task_id, render_mode="rgb_array", **options)
    u = env.unwrapped
    env.reset(seed=seed)
    T, A = u.horizon, u.act_dim
    record = {"item": item.name, "task": task_id, "family": item.family, "seed": seed,
              "precision": precision, "options": options, "horizon": T}
    if item.why_precision and precision == "f64":
        record["precision_note"] = item.why_precision
    if run is not None:
        U_before = np.zeros((T, A), np.float32)
        U_after = np.load(run_dir / "actions.npy")
        record.update(source="diffsim solve", run=str(run_dir), method=run.get("method"),
                      before_label="zero actions", after_label=f"diffsim solve, method {run.get('method')}",
                      optimise_seconds=run.get("seconds") or run.get("total_seconds"),
                      iterations=run.get("iterations"), solve_commit=run.get("commit"),
                      budget_s=run.get("budget_s"))
    elif args.reuse and (cache / "meta.json").exists():
        meta = json.loads((cache / "meta.json").read_text())
        if meta.get("options") != options or meta.get("precision") != precision or meta.get("seed") != seed:
            raise SystemExit(f"--reuse: {cache} holds a run with other settings; delete it or drop --reuse")
        U_before, U_after = np.load(cache / "before.npy"), np.load(cache / "actions.npy")
        record.update({k: v for k, v in meta.items() if k not in ("options", "precision", "seed")},
                      source="dss.solve (the last run's actions, --reuse)")
    elif item.solver == "recipe":
        from diffsim.envs.solve import solve_task

        print(f"[gallery] {item.name}: diffsim solve {task_id} --seed {seed} (the task's recipe)", flush=True)
        summary = solve_task(task_id, seed=seed, options=options, out=cache, progress=not args.quiet,
                             gif=False, **(dict(budget_s=120.0, max_rollouts=1) if args.tiny else {}))
        U_before, U_after = np.zeros((T, A), np.float32), np.load(cache / "actions.npy")
        record.update(source="diffsim solve", run=str(cache), method=summary["method"],
                      before_label="zero actions", after_label=f"diffsim solve, method {summary['method']}",
                      optimise_seconds=summary["seconds"], iterations=summary["iterations"],
                      budget_s=summary["budget_s"], solve_commit=summary.get("commit"))
    else:
        U_before, U_after, meta = optimise(item, u, 1 if args.tiny else item.iters, not args.quiet)
        cache.mkdir(parents=True, exist_ok=True)   # re-render later with --reuse
        np.save(cache / "before.npy", U_before)
        np.save(cache / "actions.npy", U_after)
        (cache / "meta.json").write_text(json.dumps({**meta, "options": options, "precision": precision,
                                                     "seed": seed}, indent=1))
        record.update(meta, source="dss.solve")
    renderer = None
    if item.camera:
        renderer = ds.render.Renderer(256, 256)
        camera = ds.render.Camera.framing(**item.camera)
        opts = dict(u.task.render_options(u.sim))
        opts["camera"] = camera

        def draw(env):
            return renderer.render(u.sim, u.get_state(), **opts)
    else:
        def draw(env):
            return env.render()
    if item.marker_gain:
        scene_draw = draw
        cam = u.sim.sensors[0].camera

        def draw(env):
            with torch.no_grad():
                panel = marker_panel(u.sim.read(u.get_state()), cam.resolution, item.marker_gain)
            frame = scene_draw(env)
            sep = np.full((frame.shape[0], 2, 3), 255, np.uint8)
            return np.concatenate([frame, sep, panel[:frame.shape[0]]], axis=1)
    every = max(1, T // 40)
    print(f"[gallery] {item.name}: replaying and drawing both episodes", flush=True)
    frames_b, before = replay(env, U_before, seed, draw, every)
    frames_a, after = replay(env, U_after, seed, draw, every)
    if renderer is not None:
        renderer.close()
    env.close()
    record.update(before=before, after=after)
    texts = (f"before: {record['before_label']}, goal loss {fmt(before['goal_loss'])}",
             f"after: {record['after_label']}, goal loss {fmt(after['goal_loss'])}"
             + (" (success)" if after["success"] else ""))
    size = font_size(texts, frames_b[0].shape[1])
    frames = side_by_side([label(f, texts[0], size) for f in frames_b],
                          [label(f, texts[1], size) for f in frames_a])
    data, meta = encode_gif(frames, max_bytes=args.max_bytes)
    path = Path(args.out) / f"{item.name}.gif"
    path.write_bytes(data)
    record.update(file=path.name, gif=meta)
    return record


# ------------------------------------------------------------------------------ plot items
def _example_module(rel: str, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_ode_item(args) -> dict:
    """Digits neural ODE (examples/neural_ode/regularization_effect.py's task), trained with
    and without ``LocalRegularization(sampling="biased")``: NFE per training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from diffsim import solvers as dss

    torch.set_num_threads(1)
    ex = _example_module("examples/neural_ode/regularization_effect.py", "regularization_effect")
    task = ex.DigitsTask()
    iters = 4 if args.tiny else 400
    coeff = task.coeffs[1]
    variants = {"no regularization": None,
                f"local regularization (biased, coeff {coeff:g})": dss.LocalRegularization(
                    sampling="biased", coeff=coeff)}
    rows, curves = {}, {}
    t_all = time.perf_counter()
    for name, reg in variants.items():
        print(f"[gallery] ode_regularization: training '{name}' for {iters} steps", flush=True)
        torch.manual_seed(args.seed)
        fieldnet = task.model().float()
        heads = task.heads().float()
        layer = task.layer(fieldnet, reg, dss.DirectAdjoint())
        opt = torch.optim.Adam(list(fieldnet.parameters()) + list(heads.parameters()), lr=3e-3)
        batches = task.batches(torch.Generator().manual_seed(args.seed))
        nfe = []
        t0 = time.perf_counter()
        for _ in range(iters):
            loss, sol = task.loss(layer, heads, next(batches))
            nfe.append(int(sol.stats.nfe))
            opt.zero_grad()
            (loss + sol.reg).backward()
            opt.step()
        train_s = time.perf_counter() - t0
        pred_nfe, _, test_loss, acc = task.evaluate(layer, heads)
        curves[name] = nfe
        rows[name] = {"predict_nfe": int(pred_nfe), "test_loss": test_loss, "accuracy": acc,
                      "train_seconds": train_s, "iters": iters}
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    for name, nfe in curves.items():
        k = max(1, len(nfe) // 40)
        smooth = np.convolve(nfe, np.ones(k) / k, mode="valid")
        r = rows[name]
        ax.plot(np.arange(len(smooth)) + k, smooth,
                label=f"{name}: prediction NFE {r['predict_nfe']}, test acc {100 * r['accuracy']:.1f}%")
    ax.set_xlabel("training step")
    ax.set_ylabel("function evaluations per forward solve")
    ax.set_title("Neural ODE classifier (8x8 digits, Tsit5, rtol 1e-6): solver work per training step",
                 fontsize=8.5)
    ax.legend(fontsize=7.5, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(args.out) / "ode_regularization.png"
    fig.savefig(path)
    plt.close(fig)
    return {"item": "ode_regularization", "family": "neural ODE", "file": path.name, "seed": args.seed,
            "precision": "float32 (torch)", "variants": rows, "optimise_seconds": time.perf_counter() - t_all}


def run_surrogate_item(args) -> dict:
    """The FNO of the surrogate benchmark (MP-PDE E1, nx = 100), rolled out on a held-out
    trajectory beside the WENO5 reference.

    The model is trained by ``examples/neural_pde/mppde_benchmark.py`` itself, with its
    recipe and budget (2048 training trajectories, 600 CPU s; its README table), into
    ``--cache``/neural_pde: a second run loads the finished checkpoint and its data instead
    of training again, so the picture and the benchmark's table show the same model."""
    import importlib.util

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from diffsim.solvers import nn as dnn
    from diffsim.solvers import pde

    torch.set_num_threads(1)
    script = ROOT / "examples" / "neural_pde" / "mppde_benchmark.py"
    spec = importlib.util.spec_from_file_location("mppde_benchmark", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    nx, tw = 100, bench.TW
    folder = Path(args.cache) / "neural_pde"
    argv = ["--out", str(folder), "--families", "E1", "--nx", str(nx), "--models", "FNO", "--seeds",
            str(args.seed), "--repeats", "1"] + (["--tiny"] if args.tiny else []) + (
            ["--quiet"] if args.quiet else [])
    print(f"[gallery] surrogate: python {script.relative_to(ROOT)} {' '.join(argv)}", flush=True)
    t_all = time.perf_counter()
    (row,) = bench.main(argv)
    run = row["FNO"]["runs"][0]
    tag = "_tiny" if args.tiny else ""
    model = dnn.load_model(folder / "runs" / f"FNO_E1_{nx}_s{args.seed}{tag}.pt").eval()
    test_file = min((p for p in (folder / "data").glob(f"E1_test_*{tag}.h5")
                     if p.stem[len("E1_test_"):len(p.stem) - len(tag)].isdigit()),
                    key=lambda p: int(p.stem[len("E1_test_"):len(p.stem) - len(tag)]))
    test = pde.load_ce(test_file, nx, samples=slice(0, row["n_test"]))
    with torch.inference_mode():
        pred = pde.rollout(model, test.u[:1].to(torch.float32), test.t.to(torch.float32),
                           test.cond[:1].to(torch.float32), time_window=tw)
    accumulated, baseline = run["accumulated"], row["baseline_accumulated"]
    ref = test.u[0, :, 0].cpu().numpy()
    sur = pred[0, :, 0].cpu().numpy()
    tmax = float(test.t[-1])
    L = float(test.lengths[0])
    panels = [(f"reference (WENO5 at nx=200, downsampled to {nx} cells)", ref),
              (f"FNO rollout (after the first {2 * tw} states)", sur), ("|FNO - reference|", np.abs(sur - ref))]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.2), dpi=100, sharey=True)
    vmax = float(np.abs(ref).max())
    for ax, (title, img) in zip(axes, panels):
        err = title.startswith("|")
        im = ax.imshow(img, origin="lower", aspect="auto", extent=(0, L, 0, tmax),
                       cmap="magma" if err else "RdBu_r", vmin=0 if err else -vmax, vmax=vmax if not err else None)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("x")
        fig.colorbar(im, ax=ax, fraction=0.046)
    axes[0].set_ylabel("t")
    for ax in axes[1:]:
        ax.axhline(float(test.t[2 * tw - 1]), color="k", lw=0.6, ls="--")
    fig.suptitle(f"Burgers (MP-PDE E1): FNO trained {run['train_seconds']:.0f} CPU s on {row['n_train']} "
                 f"trajectories; accumulated error over {row['n_test']} test trajectories {accumulated:.3g} "
                 f"(WENO5 at nx={nx}: {baseline:.3g})", fontsize=8.5)
    fig.tight_layout()
    path = Path(args.out) / "surrogate_rollout.png"
    fig.savefig(path)
    plt.close(fig)
    return {"item": "surrogate", "family": "neural PDE surrogate", "file": path.name, "seed": args.seed,
            "precision": "float32 (torch); data float64", "n_train": row["n_train"], "nx": nx,
            "train_cpu_seconds": run["train_seconds"], "train_steps": run["train_steps"],
            "accumulated": accumulated, "baseline_accumulated": baseline,
            "n_test": row["n_test"], "speedup": run["speedup"], "finite": bool(run["finite"]),
            "optimise_seconds": time.perf_counter() - t_all}


# ------------------------------------------------------------------------------ captions
def caption(rec: dict) -> str:
    if rec["item"] == "ode_regularization":
        v = list(rec["variants"].items())
        (_, r0), (_, r1) = v[0], v[1]
        return (f"Neural ODE classifier (8x8 digits), {r0['iters']} Adam steps each: prediction NFE "
                f"{r0['predict_nfe']} -> {r1['predict_nfe']} with the local regularizer, test accuracy "
                f"{100 * r0['accuracy']:.1f}% -> {100 * r1['accuracy']:.1f}%.")
    if rec["item"] == "surrogate":
        return (f"FNO surrogate of Burgers (MP-PDE E1, {rec['nx']} cells) after {rec['train_cpu_seconds']:.0f} "
                f"CPU s of training on {rec['n_train']} trajectories (`mppde_benchmark.py`'s recipe), rolled "
                f"out beside the WENO5 reference: accumulated error {rec['accumulated']:.3g} over "
                f"{rec['n_test']} test trajectories (WENO5 solved at {rec['nx']} cells: "
                f"{rec['baseline_accumulated']:.3g}).")
    b, a = rec["before"], rec["after"]
    name = rec["task"].split("/")[1]
    verdict = "solved (success)" if a["success"] else "not solved (no success)"
    if rec.get("source") == "diffsim solve":
        how = f"`diffsim solve` ({rec.get('method')}" + (
            f": the task's recipe, {rec['iterations']} iterations in {rec['optimise_seconds']:.0f} s)"
            if rec.get("method") == "auto" and rec.get("iterations") and rec.get("optimise_seconds")
            else ")")
    else:
        how = f"{rec['method']}, {rec['iterations']} iterations"
    return (f"{name}, {rec['family']}: {how}. Goal loss {fmt(b['goal_loss'])} -> {fmt(a['goal_loss'])}, "
            f"{verdict}. Left: {rec['before_label']}; right: the optimised actions ({rec['precision']}, seed "
            f"{rec['seed']}).")


def readme_block(records: dict, pictures: str = "assets/gallery") -> str:
    order = [k for k in ITEMS if k in records]
    date = max((r.get("date", "") for r in records.values()), default="")
    lines = [BEGIN, "",
             "| | |", "|---|---|"]
    cells = []
    for k in order:
        r = records[k]
        cells.append(f"![{r['item']}]({pictures}/{r['file']})<br><sub>{caption(r)}</sub>")
    if len(cells) % 2:
        cells.append("")
    for i in range(0, len(cells), 2):
        lines.append(f"| {cells[i]} | {cells[i + 1]} |")
    machines = sorted({r.get("machine", "?") for r in records.values()})
    lines += ["", f"<sub>Made by `{COMMAND}` (`examples/gallery/make_gallery.py`, which says what each "
                  f"item runs and its budget) on {', '.join(machines)}, last run {date[:10]}; "
                  "the numbers are those of the replayed episodes.</sub>", "", END]
    return "\n".join(lines)


def write_readme(path: Path, records: dict, out: Path) -> None:
    text = path.read_text() if path.exists() else ""
    block = readme_block(records, os.path.relpath(out.resolve(), path.resolve().parent))
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    path.write_text(text)


# ------------------------------------------------------------------------------ catalogue
def task_pictures(args) -> None:
    """docs/tasks/images/<Task>.png (the start state, ``env.render()``, seed 0) and
    docs/tasks/catalogue.json (the registered spaces) for every task."""
    import gymnasium as gym
    from PIL import Image

    import diffsim as ds
    import diffsim.envs  # noqa: F401
    from diffsim.envs import TASKS, env_ids

    ds.init(arch=args.arch)
    out = Path(args.catalogue_out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    path = out / "catalogue.json"
    catalogue = json.loads(path.read_text()) if path.exists() else {}
    records = catalogue.get("tasks", {})
    wanted = args.tasks or list(TASKS)
    for env_id in env_ids():
        name = env_id.split("/")[1].rsplit("-v", 1)[0]
        if name not in wanted:
            continue
        print(f"[gallery] catalogue: {env_id}", flush=True)
        options = {"horizon": 2} if args.tiny else {}
        env = gym.make(env_id, render_mode="rgb_array", **options)
        env.reset(seed=0)
        img = env.render()
        u = env.unwrapped
        sim = u.sim
        what = type(sim).__name__
        size = (f"{sim.n_particles} particles" if hasattr(sim, "n_particles") else
                f"{sim.n_nodes} nodes" if hasattr(sim, "n_nodes") else "")
        pic = Image.fromarray(img).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        pic.save(out / "images" / f"{name}.png", optimize=True)
        obs = env.observation_space
        records[name] = {
            "image": f"images/{name}.png",
            "caption": f"Start state (reset with seed 0, default options), drawn by env.render() "
                       f"({img.shape[1]}x{img.shape[0]}).",
            "simulator": f"ds.{what}" + (f" ({size})" if size else ""),
            "action_space": repr(env.action_space),
            "observation_space": f"Box({obs.shape[0]},) float32, bounds from the task",
            "horizon": u.horizon, "precision": ds.runtime.ensure_init().precision}
        env.close()
    catalogue = {"command": "./dev gallery --part tasks", "machine": machine(), "commit": commit(),
                 "date": datetime.date.today().isoformat(), "tasks": records}
    path.write_text(json.dumps(catalogue, indent=1) + "\n")


# ------------------------------------------------------------------------------ main
def worker(args) -> None:
    item = ITEMS[args.worker]
    os.makedirs(args.out, exist_ok=True)
    if isinstance(item, TaskItem):
        rec = run_task_item(item, args)
    elif item.name == "ode_regularization":
        rec = run_ode_item(args)
    else:
        rec = run_surrogate_item(args)
    command = f"{COMMAND} --items {item.name}"
    if args.from_runs and isinstance(item, TaskItem):   # how the replayed run was made, then this
        command = (f"diffsim solve {rec['task']} --seed {rec['seed']} --method {rec.get('method')} --out DIR; "
                   f"{command} --from-runs DIR")
    rec.update(machine=machine(), commit=commit(), date=datetime.datetime.now().isoformat(timespec="seconds"),
               command=command, tiny=bool(args.tiny))
    Path(args.record).write_text(json.dumps(rec, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--part", choices=["readme", "tasks", "all"], default=None,
                    help="readme: the gallery items; tasks: the catalogue pictures; all: both (the "
                         "default, unless --items or --tasks pick one part)")
    ap.add_argument("--items", nargs="+", choices=list(ITEMS), default=None, help="gallery items (default: all)")
    ap.add_argument("--tasks", nargs="+", default=None, help="catalogue tasks (default: all)")
    ap.add_argument("--from-runs", default=None, help="folder of `diffsim solve` outputs for the task items")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the pictures and gallery.json")
    ap.add_argument("--catalogue-out", default=str(TASK_PICTURES))
    ap.add_argument("--readme", default=str(ROOT / "README.md"), help="README whose gallery block is rewritten")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--max-bytes", type=int, default=950_000, help="size limit of each GIF")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(ROOT / "build" / "gallery"),
                    help="where task items keep their optimised actions (for --reuse)")
    ap.add_argument("--reuse", action="store_true",
                    help="task items: draw the actions of the last self-run from --cache instead of optimising")
    ap.add_argument("--arch", default="cpu")
    ap.add_argument("--tiny", action="store_true", help="smoke run: tiny sizes and budgets")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--worker", choices=list(ITEMS), help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.part is None:
        args.part = "readme" if args.items else "tasks" if args.tasks else "all"
    if args.from_runs and not Path(args.from_runs).is_dir():
        ap.error(f"--from-runs {args.from_runs!r} is not a folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.part in ("tasks", "all"):
        task_pictures(args)
    if args.part == "tasks":
        return 0
    db = out / "gallery.json"
    records = json.loads(db.read_text()) if db.exists() else {}
    for name in [k for k in records if k not in ITEMS]:   # an item that was removed from ITEMS
        stale = records.pop(name)
        if not any(r["file"] == stale["file"] for r in records.values()):
            (out / stale["file"]).unlink(missing_ok=True)
        print(f"[gallery] dropped {name}: no longer an item", flush=True)
    failed = []
    for name in args.items or list(ITEMS):
        rec_path = out / f".{name}.record.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--record", str(rec_path),
               "--out", str(out), "--seed", str(args.seed), "--arch", args.arch, "--max-bytes", str(args.max_bytes)]
        cmd += ["--tiny"] * args.tiny + ["--quiet"] * args.quiet + ["--reuse"] * args.reuse
        cmd += ["--cache", args.cache]
        if args.from_runs and isinstance(ITEMS[name], TaskItem):
            cmd += ["--from-runs", args.from_runs]
        print(f"[gallery] {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0 or not rec_path.exists():
            failed.append(name)
            print(f"[gallery] {name} FAILED (exit {proc.returncode}); its old picture stays", file=sys.stderr)
            continue
        records[name] = json.loads(rec_path.read_text())
        rec_path.unlink()
        records[name]["wall_seconds"] = time.perf_counter() - t0
        print(f"[gallery] {name}: {caption(records[name])} ({records[name]['wall_seconds']:.0f} s)", flush=True)
        db.write_text(json.dumps(records, indent=1) + "\n")
    if not args.no_readme and records:
        write_readme(Path(args.readme), records, out)
    if failed:
        print(f"[gallery] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
