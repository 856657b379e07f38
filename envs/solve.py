"""Solve a task from its start state and keep the evidence: ``solve_task`` (library) behind
``diffsim solve TASK`` (command line, ``envs/cli.py``).

A solve optimises the task's actions with the task's recipe (``method="auto"``) or a
plain method, then replays the best actions through ``env.step`` from the same seeded
reset: the reported ``success`` and ``goal_loss`` are those of the replay, so
``actions.npy`` reproduces them with nothing but Gymnasium. Artifacts (``out``):
``actions.npy`` (normalised actions, (T, act_dim), in the simulator's float type), ``summary.json``,
``loss.png`` and ``before_after.gif`` (zero actions beside the solution; only where the
renderer supports the task's simulator, else ``summary.json`` says why).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import diffsim as ds
from diffsim import solvers as dss

from .recipe import PLAIN_METHODS, Recipe, plain_algorithm
from .registry import TASKS, env_ids, make_task
from .task import Task

#: an early stop needs the objective this far below the success threshold: the replay
#: through ``env.step`` then succeeds with a margin, not by a rounding difference
STOP_MARGIN = 0.9

RL_METHODS = ("ppo", "sac")
METHODS = ("auto", *PLAIN_METHODS, *RL_METHODS)


# ------------------------------------------------------------------------------ checks
def parse_task_id(task: str) -> str:
    """The task name of a registered id ``diffsim/<Name>-v<N>``.

    Raises:
        ValueError: not a registered id (the message lists them).
    """
    ids = env_ids()
    if not isinstance(task, str) or task not in ids:
        hint = ""
        if isinstance(task, str) and task in TASKS:
            hint = f" (did you mean {next(i for i in ids if i.split('/')[1].rsplit('-v', 1)[0] == task)!r}?)"
        raise ValueError(f"unknown task {task!r}{hint}; registered: {', '.join(ids)}")
    return task.split("/", 1)[1].rsplit("-v", 1)[0]


def writable_folder(out) -> Path:
    """``out`` created if needed and checked writable (a probe file is written and removed).

    Raises:
        ValueError: the folder cannot be created or written (the OS error is quoted).
    """
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".diffsim-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"out={str(out)!r} is not a writable folder: {exc}") from exc
    return path


def check_inputs(task: str, seed, method: str, budget_s, max_rollouts, options: dict) -> str:
    """Validate everything a solve needs before any simulator is built; returns the task name.

    Raises:
        ValueError, TypeError: the argument, its value and what is allowed.
        ImportError: an RL method without stable-baselines3.
    """
    name = parse_task_id(task)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if budget_s is not None:
        if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not (
                math.isfinite(budget_s) and budget_s > 0):
            raise ValueError(f"budget_s must be a number of seconds > 0, got {budget_s!r}")
    if max_rollouts is not None and (isinstance(max_rollouts, bool) or not isinstance(
            max_rollouts, int) or max_rollouts < 1):
        raise ValueError(f"max_rollouts must be an int >= 1, got {max_rollouts!r}")
    make_task(name, **options)   # checks the task options; builds no simulator
    if method in RL_METHODS:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"method={method!r} needs stable-baselines3 (pip install "
                              "stable-baselines3, or the [dev] extra)") from exc
    return name


# ------------------------------------------------------------------------------ replay
def replay(env, actions: np.ndarray, seed: int, frames: list | None = None, renderer=None) -> dict:
    """Step ``actions`` through ``env`` from ``env.reset(seed=seed)`` (the Gymnasium path).

    Returns ``success``, ``goal_loss`` and ``objective`` after the last action,
    ``first_success_step`` (1-based, None if never), ``return`` (summed rewards) and
    ``start_goal_loss`` (at the reset state).
    With a ``renderer`` and a ``frames`` list, the start and every step are drawn into it.
    """
    u = env.unwrapped
    _, start = env.reset(seed=seed)
    if renderer is not None:
        frames.append(renderer.render(u.sim, u.get_state()))
    first, ret, info = None, 0.0, {}
    for t, a in enumerate(actions):
        _, r, term, _, info = env.step(a)
        ret += r
        if term and first is None:
            first = t + 1
        if renderer is not None:
            frames.append(renderer.render(u.sim, u.get_state()))
    return {"success": bool(info["success"]), "goal_loss": float(info["goal_loss"]),
            "objective": float(info["loss"]), "first_success_step": first, "return": ret,
            "start_goal_loss": float(start["goal_loss"])}


def provenance() -> dict:
    """Git commit, whether the checkout has uncommitted changes, and the date (UTC)."""
    root = Path(__file__).resolve().parents[1]
    out = {"commit": None, "dirty": None,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        out["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                       text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        out["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass   # not a git checkout (a wheel install): commit stays None
    return out


# ------------------------------------------------------------------------------ solve
def _uses_gradients(alg) -> bool:
    if isinstance(alg, dss.Restarts):
        return _uses_gradients(alg.method)
    return isinstance(alg, (dss.AbstractGradientMethod, dss.Hybrid))


def warm_up(u, gradients: bool) -> float:
    """Compile the simulator's kernels before the budget's clock starts: a rollout of zero
    actions over the whole horizon from the start state (and its backward pass for
    gradient methods). Returns the seconds it took (Taichi compiles each kernel on first
    use, tens of seconds for the reverse kernels, which would otherwise eat a short
    budget). The whole horizon, not a short rollout: the engine is sized by the rollout's
    checkpoint segment (``sim.default_segment(T)``), and an engine of another size
    allocates new fields, for which Taichi compiles the kernels again."""
    t0 = time.perf_counter()
    A = torch.zeros(u.horizon, u.act_dim, dtype=u.sim.dtype, requires_grad=gradients)
    if gradients:
        u.rollout_loss(A).backward()
    else:
        with torch.no_grad():
            u.rollout_loss(A)
    return time.perf_counter() - t0


def success_target(task: Task, recipe: Recipe) -> float | None:
    """The objective value at which a solve may stop early because the task is solved,
    or None where the objective does not decide success.

    It decides it where the task's success test is the default ``goal_loss <
    success_threshold`` and the recipe optimises the final state's objective: the
    objective is ``goal_loss`` plus non-negative shaping terms, so an objective below
    the threshold is a success. Tasks with their own test (a fraction of water inside,
    every ball within a radius) and per-step weightings run their whole budget.
    ``STOP_MARGIN`` times the threshold leaves a margin for the replay.
    """
    if type(task).success is not Task.success or not recipe.final_state or \
            not task.success_threshold > 0:
        return None
    return STOP_MARGIN * float(task.success_threshold)


def _plain_recipe(method: str, recipe: Recipe) -> Recipe:
    return Recipe(algorithm=plain_algorithm(method), knots=None, weights="final",
                  budget_s=recipe.budget_s)


def solve_task(task: str, *, seed: int = 0, method: str = "auto", budget_s: float | None = None,
               max_rollouts: int | None = None, out=None, options: dict | None = None,
               progress: bool = False, gif: bool = True, stop_on_success: bool = True) -> dict:
    """Optimise a task's actions from its own start state and replay the result.

    Args:
        task: a registered id, e.g. ``"diffsim/Pinch-v1"``.
        seed: the ``env.reset`` seed (task variation) and the optimiser's seed.
        method: ``"auto"`` (the task's recipe), a plain method (``PLAIN_METHODS``: every
            step's action, final-state loss) or ``"ppo"`` / ``"sac"`` (stable-baselines3).
        budget_s: wall-clock budget (s) of the optimisation (default: the recipe's).
        max_rollouts: also stop after this many rollouts (simulated episodes).
        out: folder for the artifacts (None: none are written).
        options: task options (``grid_res``, ``horizon``, ...).
        progress: show tqdm progress bars with the loss.
        gif: write the before/after animation (where the renderer supports the simulator).
        stop_on_success: stop the optimiser once its objective proves the task solved
            (:func:`success_target`; ``summary["stop_target"]``), so ``seconds`` is the
            time to a solution; False spends the whole budget.

    Returns:
        The summary (also ``out/summary.json``): task, seed, method, success, goal_loss,
        seconds, rollouts, backward passes, retcode, commit and date, among others;
        ``start_goal_loss`` is the goal loss of the reset state, ``zero_actions_goal_loss``
        that after T zero actions (the do-nothing baseline).

    Raises:
        ValueError, TypeError, ImportError: bad input, before any simulation.
    """
    import gymnasium as gym

    options = dict(options or {})
    check_inputs(task, seed, method, budget_s, max_rollouts, options)
    folder = writable_folder(out) if out is not None else None
    t_start = time.perf_counter()
    env = gym.make(task, **options)
    try:
        u = env.unwrapped
        recipe = u.task.solve_recipe()
        budget = float(budget_s if budget_s is not None else recipe.budget_s)
        summary = {"task": task, "seed": seed, "method": method, "options": options,
                   "precision": ds.runtime.ensure_init().precision, "budget_s": budget,
                   "max_rollouts": max_rollouts, "horizon": u.horizon, "act_dim": u.act_dim}
        # the checkout's commit as the solve starts: a checkout that changes during a long
        # solve must not be credited with it
        origin = provenance()
        env.reset(seed=seed)
        if method in RL_METHODS:
            from .rl import train_rl

            actions, stats = train_rl(env, method, seed=seed, budget_s=budget,
                                      max_rollouts=max_rollouts, progress=progress)
            history = stats.pop("history")
            summary.update(stats)
        else:
            rec = recipe if method == "auto" else _plain_recipe(method, recipe)
            prob = rec.problem(env)
            summary["warmup_seconds"] = warm_up(u, gradients=_uses_gradients(rec.algorithm))
            target = success_target(u.task, rec) if stop_on_success else None
            summary["stop_target"] = target
            res = dss.solve(prob, rec.algorithm, maxtime=budget, maxevals=max_rollouts, seed=seed,
                            target=target, progress=progress, catch=(ds.SimulationError,),
                            **rec.solve_kwargs())
            # in the simulator's float type: float64 actions rounded to float32 would
            # replay another trajectory than the optimiser's
            actions = res.controls.detach().clamp(-1.0, 1.0).cpu().numpy()
            history = {"rollouts": list(res.history.nevals), "best": list(res.history.best),
                       "iteration": list(res.history.minimum), "stage": list(res.history.stage)}
            summary.update({
                "algorithm": repr(rec.algorithm), "basis": repr(prob.basis),
                "weights": rec.weights if rec.horizon is None else repr(rec.horizon),
                "objective_optimised": res.loss, "seconds": res.time, "rollouts": res.nevals,
                "backward_passes": res.nbackward, "iterations": res.niters,
                "nonfinite_evaluations": res.nnonfinite, "retcode": res.retcode.name,
                "message": res.message, "final_horizon": res.horizon})
        renderer, frames_after, frames_before, gif_note = None, [], [], None
        if folder is not None and gif:
            renderer, gif_note = _renderer_for(u)
        zero = np.zeros_like(actions)
        before = replay(env, zero, seed, frames_before, renderer)
        after = replay(env, actions, seed, frames_after, renderer)
        summary.update({"success": after["success"], "goal_loss": after["goal_loss"],
                        "objective": after["objective"],
                        "first_success_step": after["first_success_step"],
                        "return": after["return"], "start_goal_loss": after["start_goal_loss"],
                        "zero_actions_goal_loss": before["goal_loss"],
                        "zero_actions_success": before["success"]})
        _check_replay(summary, rec if method not in RL_METHODS else None)
        summary.update(origin)
        summary["total_seconds"] = time.perf_counter() - t_start
        if folder is not None:
            np.save(folder / "actions.npy", actions)
            _loss_png(folder / "loss.png", history, summary)
            if renderer is not None:
                _gif(folder / "before_after.gif", frames_before, frames_after)
                renderer.close()
                summary["gif"] = "before_after.gif"
            else:
                summary["gif"] = None
                summary["gif_skipped"] = gif_note or "not asked (gif=False)"
            (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary
    finally:
        env.close()


def _check_replay(summary: dict, rec: Recipe | None) -> None:
    """Where the optimiser minimised the final state's objective, the replay must give it
    back: ``replay_gap`` (replayed minus optimised objective) in the summary, and a
    warning where they part by more than 1e-3 of the value (the optimiser's rollouts and
    ``env.step`` diverging, e.g. through rounding that contact amplifies, would make the
    reported success a different trajectory's)."""
    if rec is None or not rec.final_state:
        return
    opt, got = summary.get("objective_optimised"), summary["objective"]
    if opt is None or not math.isfinite(opt):
        return
    summary["replay_gap"] = got - opt
    if abs(got - opt) > 1e-3 * max(1.0, abs(opt)):
        warnings.warn(f"{summary['task']} seed {summary['seed']}: the replay through env.step "
                      f"gives objective {got:.6g}, the optimiser's rollouts gave {opt:.6g}",
                      RuntimeWarning, stacklevel=3)


# ------------------------------------------------------------------------------ artifacts
def _renderer_for(u):
    """A renderer for the env's simulator and None, or None and the reason it cannot draw
    it (the renderer draws ``ds.MPM`` particle states; others may not be supported yet)."""
    from diffsim.render import Camera, Renderer

    state = u.get_state()
    r = Renderer(width=192, height=192, camera=Camera.framing(_scene_box(u.sim, state), margin=1.1))
    try:
        r.render(u.sim, state)
    except (AttributeError, TypeError, NotImplementedError, ValueError) as exc:
        r.close()
        return None, (f"ds.render cannot draw {type(u.sim).__name__} states yet "
                      f"({type(exc).__name__}: {exc})")
    return r, None


def _scene_box(sim, state) -> np.ndarray:
    """(d, 2) box around the bodies and tools of ``state`` (grown so motion stays in view),
    inside the scene bounds: the task's region rather than the whole domain."""
    pts = state.x.detach().cpu().numpy()
    if state.tool_pos.numel():
        pts = np.concatenate([pts, state.tool_pos.detach().cpu().numpy()])
    lo, hi = pts.min(0), pts.max(0)
    c, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    half = np.maximum(1.6 * half, 0.15 * float(np.max(hi - lo)) + 1e-3)
    b = np.asarray(sim.scene.bounds, dtype=float)
    return np.stack([np.maximum(c - half, b[:, 0]), np.minimum(c + half, b[:, 1])], 1)


def _gif(path: Path, before: list, after: list) -> None:
    from diffsim.render import animate

    n = max(len(before), len(after))
    pad = [before[-1]] * (n - len(before)), [after[-1]] * (n - len(after))
    frames = [np.concatenate([b, a], axis=1) for b, a in zip(before + pad[0], after + pad[1])]
    animate(frames, fps=10, format="gif").save(path)


def _loss_png(path: Path, history: dict, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = history.get("rollouts", [])
    if x:
        ax.plot(x, history["iteration"], ".", ms=3, alpha=0.5, label="iteration's best")
        ax.plot(x, history["best"], "-", label="best so far")
    finite = [v for k in ("iteration", "best") for v in history.get(k, []) if math.isfinite(v)]
    if finite and min(finite) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("rollouts (simulated episodes)")
    ax.set_ylabel("objective" if summary["method"] not in RL_METHODS else "episode goal loss")
    ax.set_title(f"{summary['task']} seed {summary['seed']}, {summary['method']}: "
                 f"{'success' if summary['success'] else 'no success'}, goal loss "
                 f"{summary['goal_loss']:.4g}", fontsize=9)
    ax.grid(alpha=0.3)
    if x:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_actions(path) -> np.ndarray:
    """``actions.npy`` of a solve, checked: a (T, act_dim) float array in [-1, 1]."""
    a = np.load(path)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating) or not np.all(np.abs(a) <= 1):
        raise ValueError(f"{path} does not hold (T, act_dim) normalised actions")
    return a
