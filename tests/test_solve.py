"""Solving tasks (issue 11): contact-seeking shaping, temporal rollout losses, recipes,
``diffsim solve`` and its artifacts, replay through Gymnasium, the results table.

Fast tests use forward rollouts only (Pour at grid 20, horizon 4: the kernels other env
tests compile too); gradient solves on real tasks are in the slow suite.
"""

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import diffsim as ds
import diffsim.envs as de
from diffsim import solvers as dss
from diffsim.envs import cache
from diffsim.envs.contact import contact_shaping, tool_gap, tool_sdf
from diffsim.envs.recipe import Recipe, default_recipe, plain_algorithm
from diffsim.envs.solve import solve_task
from diffsim.tools import ToolSpec, quat_to_matrix, shape_geometry

TINY = {"grid_res": 20, "horizon": 4}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pour():
    """A tiny Pour env held open for the module: every env and solve of this configuration
    shares its compiled simulator (envs/cache.py) instead of compiling its own."""
    env = gym.make("diffsim/Pour-v1", **TINY)
    yield env
    env.close()


# --------------------------------------------------------------------------- contact shaping

SHAPES = [
    ds.Sphere(center=(0.3, 0.4, 0.5), radius=0.05),
    ds.Box(lo=(0.2, 0.3, 0.4), hi=(0.3, 0.45, 0.5)),
    ds.Capsule(center=(0.5, 0.5, 0.5), radius=0.03, length=0.1, axis=2),
    ds.Cylinder(center=(0.5, 0.4, 0.5), radius=0.04, height=0.12, axis=1),
    ds.Compound([ds.Box(lo=(0.4, 0.4, 0.4), hi=(0.5, 0.42, 0.5)),
                 ds.Box(lo=(0.4, 0.4, 0.4), hi=(0.42, 0.5, 0.5))]),
]


def _spec(shape):
    kind, geom, axis = shape_geometry(shape)
    return ToolSpec("t", kind, geom, axis, 0.5, 0.0, tuple(shape.center), (1.0, 0.0, 0.0, 0.0))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: type(s).__name__)
def test_tool_sdf_matches_the_shapes_signed_distance(shape):
    """The torch SDF of a tool at a pose equals the core's numpy SDF of the shape
    (``diffsim/shapes.py``) at the points brought back into the tool's frame."""
    rng = np.random.default_rng(0)
    c = np.asarray(shape.center, float)
    x = c + rng.uniform(-0.15, 0.15, size=(200, 3))
    spec = _spec(shape)
    q = torch.tensor([0.9, 0.2, -0.3, 0.25], dtype=torch.float64)
    q = q / q.norm()
    pos = torch.tensor(c + [0.01, -0.02, 0.03])
    got = tool_sdf(spec, pos, q, torch.as_tensor(x))
    R = quat_to_matrix(q).numpy()
    local = (x - pos.numpy()) @ R          # R^T (x - p), row-wise
    want = shape.sdf(c + local)
    assert np.allclose(got.numpy(), want, atol=1e-12)
    # identity pose at the shape's centre: the world-frame SDF itself
    ident = tool_sdf(spec, torch.as_tensor(c), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64),
                     torch.as_tensor(x))
    assert np.allclose(ident.numpy(), shape.sdf(x), atol=1e-12)


class _FakeSim:
    """What the shaping reads from a simulator: tools, groups."""

    def __init__(self, spec):
        self.model = type("M", (), {"tools": (spec,)})()
        self.groups = {"body": slice(0, 3)}


class _State:
    def __init__(self, x, pos):
        self.x, self.tool_pos = x, pos
        self.tool_rot = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)


def test_contact_shaping_vanishes_in_contact_and_pulls_towards_the_body():
    spec = _spec(ds.Sphere(center=(0.0, 0.0, 0.0), radius=0.01))
    sim = _FakeSim(spec)
    x = torch.tensor([[0.05, 0.0, 0.0], [0.08, 0.0, 0.0], [0.05, 0.03, 0.0]], dtype=torch.float64)
    pos = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    st = _State(x, pos)
    gap = tool_gap(sim, st, "t", "body")
    assert float(gap.detach()) == pytest.approx(0.04)                    # nearest point 5 cm, radius 1 cm
    s = contact_shaping(sim, st, [("t", "body")], scale=0.01, tolerance=0.005, weight=2.0)
    assert float(s.detach()) == pytest.approx(2.0 * (0.035 / 0.01) ** 2)
    s.backward()
    # d/dp of 2 (|x0 - p| - r - tol)^2 / scale^2 = -4 (gap - tol) / scale^2 along x0's direction
    assert pos.grad[0].tolist() == pytest.approx([-4 * 0.035 / 0.01 ** 2, 0.0, 0.0])
    # within the tolerance (or touching) the term and its gradient are exactly zero
    near = _State(x, torch.tensor([[0.036, 0.0, 0.0]], dtype=torch.float64, requires_grad=True))
    z = contact_shaping(sim, near, [(0, "body")], scale=0.01, tolerance=0.005)
    z.backward()
    assert float(z.detach()) == 0.0 and float(near.tool_pos.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="unknown tool 'hand'; the scene's tools: \\['t'\\]"):
        tool_gap(sim, st, "hand", "body")
    with pytest.raises(ValueError, match="unknown body 'cup'"):
        tool_gap(sim, st, 0, "cup")


def test_contacts_may_name_a_static_obstacle():
    """A declared contact's tool may be a static collider (SurfaceFollow's cylinder): the
    gap is the analytic distance from the nearest body point to the obstacle's surface."""
    from types import SimpleNamespace

    from diffsim.envs.contact import static_obstacle
    from diffsim.fem.model import ColliderSpec

    cyl = ColliderSpec("surface", "cylinder", (0.05, 0.05), 1, (0.0, 0.0, 0.0), 0.3)
    sim = SimpleNamespace(model=SimpleNamespace(tools=(), colliders=(cyl,)),
                          groups={"pad": slice(0, 2)})
    x = torch.tensor([[0.0, 0.0, 0.053], [0.0, 0.01, 0.0605]], dtype=torch.float64,
                     requires_grad=True)
    st = ds.State(x=x, tool_pos=torch.zeros(0, 3, dtype=torch.float64),
                  tool_rot=torch.zeros(0, 4, dtype=torch.float64))
    gap = tool_gap(sim, st, "surface", "pad")
    assert float(gap) == pytest.approx(0.003, abs=1e-12)      # 3 mm above the top (radius 5 cm)
    gap.backward()
    assert torch.allclose(x.grad[0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert float(contact_shaping(sim, st, (("surface", "pad"),), 1e-3)) == pytest.approx(9.0)
    assert static_obstacle(sim, "table") is None
    with pytest.raises(ValueError, match="a static obstacle may be named too"):
        tool_gap(sim, st, "table", "pad")


@pytest.mark.slow
def test_surface_follow_pulls_a_lifted_pad_back():
    """SurfaceFollow-v1: a plan that lifts the pad off the cylinder (v0: zero force, a flat
    loss) has a gradient that pushes it back down."""
    env = gym.make("diffsim/SurfaceFollow-v1", horizon=3)
    u = env.unwrapped
    env.reset(seed=0)
    U = torch.zeros(3, 3, dtype=u.sim.dtype)
    U[:, 1] = 1.0                               # up along +z, away from the cylinder's top
    U.requires_grad_(True)
    loss = u.rollout_loss(U)
    loss.backward()
    assert float(loss) > 2.0 and torch.all(U.grad[:, 1] > 1.0), (float(loss), U.grad)
    env.close()


def test_migrated_shell_task_keeps_its_shaping_and_goal():
    """Lift declares its contacts instead of adding an ad-hoc term: the objective is the old
    ``goal + sum max(gap, 0)^2 / (1 cm)^2`` (finger to nearest sheet vertex), and success
    reads the unshaped goal."""
    env = gym.make("diffsim/Lift-v2", grid_res=4, horizon=3)
    u = env.unwrapped
    _, info = env.reset(seed=0)
    st = u.get_state()
    x = st.x[u.sim.groups["sheet"]]
    old = 0.0
    for k, spec in enumerate(u.sim.model.tools):
        gap = float((x - st.tool_pos[k]).norm(dim=1).min()) - spec.geom[0]
        old += max(gap, 0.0) ** 2 / 0.01 ** 2
    assert info["loss"] - info["goal_loss"] == pytest.approx(old, rel=1e-9, abs=1e-12)
    assert info["goal_loss"] == pytest.approx(float(u.task.loss(u.sim, st)))
    assert u.task.contacts == (("upper", "sheet"), ("lower", "sheet"))
    env.close()


# --------------------------------------------------------------------------- temporal losses


def test_rollout_loss_weights_sum_the_step_losses_of_the_env_path(pour):
    env = pour
    u = env.unwrapped
    env.reset(seed=1)
    A = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (4, u.act_dim)), dtype=u.sim.dtype)
    per_step = []
    for a in A.numpy():
        *_, info = env.step(a)
        per_step.append(info["loss"])
    env.reset(seed=1)
    with torch.no_grad():
        assert float(u.rollout_loss(A)) == pytest.approx(per_step[-1], rel=1e-10)
        assert float(u.rollout_loss(A, weights="final")) == pytest.approx(per_step[-1], rel=1e-10)
        assert float(u.rollout_loss(A, weights="sum")) == pytest.approx(sum(per_step), rel=1e-10)
        assert float(u.rollout_loss(A, weights="mean")) == pytest.approx(np.mean(per_step), rel=1e-10)
        w = torch.tensor([0.5, 0.0, 2.0, 0.0], dtype=torch.float64)
        assert float(u.rollout_loss(A, weights=w)) == pytest.approx(
            0.5 * per_step[0] + 2.0 * per_step[2], rel=1e-10)
        # the rollout stops after the last weighted step: later actions do not matter
        B = A.clone()
        B[3] = -B[3]
        assert float(u.rollout_loss(B, weights=w)) == float(u.rollout_loss(A, weights=w))
    with pytest.raises(ValueError, match="weights must be 'final', 'sum', 'mean' or a real \\(4,\\)"):
        u.rollout_loss(A, weights=torch.ones(3))
    with pytest.raises(ValueError, match="weights must be one of"):
        u.rollout_loss(A, weights="last")


# --------------------------------------------------------------------------- recipes


def test_recipes():
    r = default_recipe()
    assert isinstance(r.algorithm, dss.Hybrid) and r.knots == 8 and r.budget_s > 0
    assert r.action_basis(60).matrix.shape == (60, 8)
    assert r.action_basis(4) is None                       # fewer steps than knots: per-step
    cubic = Recipe(algorithm=dss.Adam(), knots=3, basis="cubic")
    assert cubic.action_basis(10).kind == "linear"         # 3 knots cannot make a cubic
    assert de.registry.task_class("Stir")().solve_recipe() == default_recipe()
    # a task's declared recipe wins
    pinch = de.registry.task_class("Pinch")
    assert pinch().solve_recipe() is pinch.recipe and isinstance(pinch.recipe.algorithm, dss.Adam)
    for m in ("adam", "lbfgs", "cem", "mppi", "hybrid"):
        assert isinstance(plain_algorithm(m), dss.AbstractControlAlgorithm)
    # the kernel warm-up compiles the backward pass where a recipe's method needs it
    from diffsim.envs.solve import _uses_gradients

    assert _uses_gradients(dss.Restarts(dss.Adam())) and _uses_gradients(default_recipe().algorithm)
    assert not _uses_gradients(dss.Restarts(dss.CEM())) and not _uses_gradients(dss.CEM())
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        plain_algorithm("newton")
    with pytest.raises(TypeError, match="algorithm must be a dss trajectory optimiser"):
        Recipe(algorithm="adam")
    with pytest.raises(ValueError, match="weights must be one of"):
        Recipe(algorithm=dss.Adam(), weights="max")
    with pytest.raises(ValueError, match="budget_s must be"):
        Recipe(algorithm=dss.Adam(), budget_s=0)


# --------------------------------------------------------------------------- diffsim solve


def _cli(*args):
    from diffsim.cli import main

    return main(["solve", *args])


def test_solve_cli_writes_artifacts_that_replay_to_the_reported_success(tmp_path, pour):
    out = tmp_path / "pour"
    env = gym.make("diffsim/Pour-v1", grid_res=20, horizon=4)   # a fresh env, as a user would
    assert _cli("diffsim/Pour-v1", "--seed", "3", "--out", str(out), "--method", "cem",
                "--max-rollouts", "4", "--budget-s", "120", "--grid-res", "20", "--horizon", "4",
                "--quiet") == 0
    s = json.loads((out / "summary.json").read_text())
    for key in ("task", "seed", "method", "success", "goal_loss", "seconds", "rollouts",
                "backward_passes", "retcode", "commit", "date", "start_goal_loss",
                "zero_actions_goal_loss"):
        assert key in s, key
    assert s["task"] == "diffsim/Pour-v1" and s["seed"] == 3 and s["method"] == "cem"
    assert s["rollouts"] == 4 and s["backward_passes"] == 0 and s["retcode"] == "SUCCESS"
    assert (out / "loss.png").stat().st_size > 0 and s["gif"] == "before_after.gif"
    from PIL import Image

    with Image.open(out / "before_after.gif") as im:   # two 192 px panels (Pillow merges
        assert im.size == (384, 192) and 1 <= im.n_frames <= 5   # identical frames)
    # replay with nothing but Gymnasium: the reported success and goal loss
    actions = np.load(out / "actions.npy")
    assert actions.shape == (4, 3) and actions.dtype == np.float64 and np.all(np.abs(actions) <= 1)
    env.reset(seed=3)
    for a in actions:
        *_, info = env.step(a)
    assert info["success"] == s["success"] and info["goal_loss"] == s["goal_loss"]
    # the optimiser's best is what the replay gives (CEM's best loss = the replayed one)
    # (bitwise: env.step repeats the rollout's rounding, and the actions keep their dtype)
    assert s["replay_gap"] == 0.0 and s["objective_optimised"] == s["objective"]
    assert s["goal_loss"] <= s["zero_actions_goal_loss"]   # CEM evaluates zero actions first
    _, start = env.reset(seed=3)
    assert s["start_goal_loss"] == start["goal_loss"]
    env.close()


def test_success_target_only_where_the_objective_decides_success():
    from diffsim.envs.solve import STOP_MARGIN, success_target

    task = de.registry.task_class
    final = Recipe(algorithm=dss.Adam())
    assert success_target(task("RollingPin")(), final) == pytest.approx(STOP_MARGIN * 0.003)
    assert success_target(task("Lift")(), final) == pytest.approx(STOP_MARGIN * 0.1)
    # Gather-v1's success is its goal loss (the farthest ball's distance), and its loss is
    # above it (a smooth maximum)
    assert success_target(task("Gather")(), final) == pytest.approx(STOP_MARGIN * 0.1)
    # their own success tests (water fraction, density L1 ratio)
    for name in ("Pour", "Pinch", "Carve"):
        assert success_target(task(name)(), final) is None, name
    # a per-step weighting, or an expanding horizon summing its steps: the objective is not
    # the final state's
    assert success_target(task("Lift")(), Recipe(algorithm=dss.Adam(), weights="sum")) is None
    assert success_target(task("Lift")(), Recipe(
        algorithm=dss.Adam(), horizon=dss.ExpandingHorizon(weighting="sum"))) is None
    # an expanding horizon of final-state losses: dss.solve stops on the target only at
    # the full horizon, where the loss is the final state's
    assert success_target(task("Lift")(), Recipe(
        algorithm=dss.Adam(), horizon=dss.ExpandingHorizon())) == pytest.approx(STOP_MARGIN * 0.1)


def test_solve_stops_once_the_objective_proves_success(tmp_path, pour, monkeypatch):
    """Pour with the default success test and a threshold its start already meets: CEM
    stops after its first population instead of spending the rollout budget."""
    from diffsim.envs.task import Task

    cls = de.registry.task_class("Pour")
    monkeypatch.setattr(cls, "success", Task.success)
    monkeypatch.setattr(cls, "success_threshold", 10.0)
    kw = dict(seed=0, method="cem", max_rollouts=40, budget_s=120, options=TINY)
    s = solve_task("diffsim/Pour-v1", **kw)
    assert s["stop_target"] == pytest.approx(9.0) and s["success"]
    assert s["rollouts"] < 40 and s["retcode"] == "SUCCESS"
    full = solve_task("diffsim/Pour-v1", stop_on_success=False, **kw)
    assert full["stop_target"] is None and full["rollouts"] == 40


def test_solve_rejects_bad_input_before_simulating(tmp_path, capsys):
    before = dict(cache._SIMS)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["diffsim/Knit-v0", "--out", str(tmp_path)], "unknown task 'diffsim/Knit-v0'"),
        (["Pinch", "--out", str(tmp_path)], "did you mean 'diffsim/Pinch-v1'"),
        (["diffsim/Pinch-v1", "--out", str(tmp_path), "--budget-s", "0"],
         "budget_s must be a number of seconds > 0, got 0.0"),
        (["diffsim/Pinch-v1", "--out", str(tmp_path), "--budget-s", "-5"], "budget_s must be"),
        (["diffsim/Pinch-v1", "--out", str(blocker / "sub")], "is not a writable folder"),
        (["diffsim/Pinch-v1", "--out", str(tmp_path), "--method", "newton"],
         "argument --method: invalid choice: 'newton'"),
        (["diffsim/Pinch-v1", "--out", str(tmp_path), "--option", "stiffness=3"],
         "unknown option\\(s\\) \\['stiffness'\\] for task Pinch"),
        (["diffsim/Pinch-v1", "--out", str(tmp_path), "--seed", "-1"], "seed must be an int >= 0"),
        (["diffsim/Pinch-v1", "--out", str(tmp_path), "--max-rollouts", "0"], "max_rollouts must be"),
    ]
    for args, msg in cases:
        with pytest.raises(SystemExit) as e:
            _cli(*args)
        assert e.value.code == 2
        import re

        assert re.search(msg, capsys.readouterr().err), msg
    assert cache._SIMS == before      # no simulator was built
    with pytest.raises(ValueError, match="method must be one of"):
        solve_task("diffsim/Pinch-v1", method="newton")


def test_python_m_diffsim_solve_reports_errors(capsys):
    out = subprocess.run([sys.executable, "-m", "diffsim", "solve", "diffsim/Knit-v0", "--out", "x"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2 and "unknown task 'diffsim/Knit-v0'" in out.stderr
    with pytest.raises(SystemExit) as e:
        _cli("--help")
    assert e.value.code == 0 and "--budget-s" in capsys.readouterr().out


def test_results_table_merges_rows_of_separate_runs(tmp_path, pour):
    sys.path.insert(0, str(ROOT / "examples" / "envs"))
    try:
        import results_table
    finally:
        sys.path.pop(0)
    res = tmp_path / "res"
    for seed in (0, 1):   # two separate runs append to one rows.jsonl
        assert results_table.main(["run", "--tasks", "Pour", "--methods", "cem", "--seeds", str(seed),
                                   "--max-rollouts", "2", "--budget-s", "60", "--grid-res", "20",
                                   "--horizon", "4", "--no-gif", "--quiet", "--results", str(res)]) == 0
    rows = results_table.read_rows(res)
    assert [r["seed"] for r in rows] == [0, 1] and all(r["rollouts"] == 2 for r in rows)
    text = results_table.markdown(rows)
    line = [x for x in text.splitlines() if x.startswith("| Pour")]
    assert len(line) == 1 and "| cem |" in line[0] and "/2 |" in line[0] and "| 0, 1 |" in line[0]
    assert rows[0]["commit"] is None or rows[0]["commit"][:8] in line[0]
    # RL rows are sized from the auto rows (none here: skipped with a message)
    assert results_table.rl_rollouts(rows, "diffsim/Pour-v1", 20) is None
    rows.append({**rows[0], "method": "auto", "rollouts": 30})
    assert results_table.rl_rollouts(rows, "diffsim/Pour-v1", 20) == 600


# --------------------------------------------------------------------------- slow: real solves


@pytest.mark.slow
def test_auto_recipe_with_gradients_on_a_tiny_pinch(tmp_path):
    """Pinch's recipe (Adam on 8 hat functions per action, the contact term steering the
    fingers) end to end with gradients through the MPM rollout (compiles the reverse
    kernels: about a minute), and the replay through Gymnasium gives the reported numbers."""
    s = solve_task("diffsim/Pinch-v1", seed=1, method="auto", budget_s=40, out=tmp_path,
                   options={"grid_res": 20, "horizon": 10})
    assert s["backward_passes"] > 1 and s["rollouts"] >= s["backward_passes"]
    assert s["algorithm"].startswith("Adam(lr=0.1")
    assert s["retcode"] == "SUCCESS" and s["basis"].startswith("ActionBasis(steps=10, knots=8")
    assert s["goal_loss"] < s["zero_actions_goal_loss"]
    env = gym.make("diffsim/Pinch-v1", grid_res=20, horizon=10)
    env.reset(seed=1)
    for a in np.load(tmp_path / "actions.npy"):
        *_, info = env.step(a)
    assert info["success"] == s["success"] and info["goal_loss"] == s["goal_loss"]
    env.close()


@pytest.mark.slow
def test_ppo_baseline_runs_under_a_rollout_budget(tmp_path):
    s = solve_task("diffsim/Pour-v1", seed=0, method="ppo", budget_s=120, max_rollouts=3,
                   out=tmp_path, options=TINY, gif=False)
    assert s["rollouts"] == 3 and s["backward_passes"] == 0 and math.isfinite(s["goal_loss"])
    assert np.load(tmp_path / "actions.npy").shape == (4, 3)


def test_a_replay_that_parts_from_the_optimised_objective_is_flagged():
    from diffsim.envs.solve import _check_replay

    rec = Recipe(algorithm=dss.Adam())
    s = {"task": "diffsim/BoxOpen-v2", "seed": 1, "objective_optimised": 0.5636, "objective": 1.528}
    with pytest.warns(RuntimeWarning, match="replay through env.step gives objective 1.528"):
        _check_replay(s, rec)
    assert s["replay_gap"] == pytest.approx(0.9644)
    ok = dict(s, objective=0.5636)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_replay(ok, rec)
    assert ok["replay_gap"] == 0.0
    summed = {k: v for k, v in s.items() if k != "replay_gap"}
    _check_replay(summed, Recipe(algorithm=dss.Adam(), weights="sum"))   # not comparable
    assert "replay_gap" not in summed
