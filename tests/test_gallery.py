"""The README gallery script (examples/gallery/make_gallery.py): GIF size control, choice of
`diffsim solve` runs, captions that claim success only when the replay reports it, the
README block; slow: a tiny run of a task item, a plot item and a --from-runs replay."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "gallery" / "make_gallery.py"
spec = importlib.util.spec_from_file_location("make_gallery", SCRIPT)
gallery = importlib.util.module_from_spec(spec)
sys.modules["make_gallery"] = gallery   # dataclasses look their module up
spec.loader.exec_module(gallery)


def test_gif_fits_the_size_limit_and_keeps_first_and_last_frames():
    from PIL import Image

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(60)]   # noise: large
    frames[-1][:] = 7
    data, meta = gallery.encode_gif(frames, max_bytes=120_000, max_frames=20)
    assert len(data) <= 120_000 and meta["bytes"] == len(data)
    assert meta["frames"] == 20 and meta["scale"] < 1.0
    im = Image.open(__import__("io").BytesIO(data))
    assert im.n_frames == 20
    im.seek(im.n_frames - 1)
    assert np.asarray(im.convert("RGB")).std() < 3      # the last (flat) frame is the last one
    small, meta = gallery.encode_gif(frames[:3], max_bytes=10_000_000)
    assert meta["scale"] == 1.0 and meta["frames"] == 3


def _run(folder, task, success, goal_loss, actions=True):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"task": task, "success": success,
                                                    "goal_loss": goal_loss, "seed": 0}))
    if actions:
        np.save(folder / "actions.npy", np.zeros((3, 3), np.float32))


def test_find_run_prefers_success_then_the_lowest_goal_loss(tmp_path):
    _run(tmp_path / "a", "diffsim/Pour-v1", False, 0.01)
    _run(tmp_path / "b", "diffsim/Pour-v1", True, 0.05)
    _run(tmp_path / "c", "diffsim/Pour-v1", True, 0.02)
    _run(tmp_path / "d", "diffsim/Pour-v1", True, 0.0, actions=False)   # no actions: not a run
    _run(tmp_path / "e", "diffsim/Pinch-v1", True, 0.0)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "summary.json").write_text("{not json")
    folder, summary = gallery.find_run(tmp_path, "diffsim/Pour-v1")
    assert folder.name == "c" and summary["goal_loss"] == 0.02
    assert gallery.find_run(tmp_path, "diffsim/Lift-v0") is None


def _record(success, before=0.4, after=0.1):
    return {"item": "pour", "task": "diffsim/Pour-v1", "family": "fluids (MPM)", "file": "pour.gif",
            "seed": 0, "precision": "f32", "source": "dss.solve", "method": "Adam(lr=0.2)", "iterations": 10,
            "before_label": "zero actions", "before": {"goal_loss": before, "success": False},
            "after": {"goal_loss": after, "success": success}, "machine": "m", "date": "2026-01-01T00:00"}


def test_captions_claim_success_only_when_the_replay_reports_it():
    assert "not solved (no success)" in gallery.caption(_record(False))
    assert "solved (success)" in gallery.caption(_record(True)) and "not solved" not in gallery.caption(_record(True))
    assert "0.4 -> 0.1" in gallery.caption(_record(False))


def test_captions_of_diffsim_solve_runs_name_the_recipe_and_its_cost():
    rec = dict(_record(True, 0.33, 0.197), item="pinch", task="diffsim/Pinch-v1", source="diffsim solve",
               method="auto", iterations=54, optimise_seconds=303.2)
    text = gallery.caption(rec)
    assert "`diffsim solve` (auto: the task's recipe, 54 iterations in 303 s)" in text
    assert "0.33 -> 0.197, solved (success)" in text
    plain = gallery.caption(dict(rec, method="adam", after={"goal_loss": 0.25, "success": False}))
    assert "`diffsim solve` (adam)" in plain and "not solved" in plain and "recipe" not in plain


def test_readme_block_is_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{gallery.BEGIN}\nold\n{gallery.END}\n\nafter\n")
    gallery.write_readme(readme, {"pour": _record(True)}, tmp_path / "assets" / "gallery")
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "old" not in text
    assert "![pour](assets/gallery/pour.gif)" in text and text.count(gallery.BEGIN) == 1
    once = text
    gallery.write_readme(readme, {"pour": _record(True)}, tmp_path / "assets" / "gallery")
    assert readme.read_text() == once


def test_the_readme_gallery_is_the_records_and_its_pictures_are_small():
    records = json.loads((ROOT / "assets" / "gallery" / "gallery.json").read_text())
    text = (ROOT / "README.md").read_text()
    block = text[text.index(gallery.BEGIN):text.index(gallery.END) + len(gallery.END)]
    assert block == gallery.readme_block(records)
    for rec in records.values():
        path = ROOT / "assets" / "gallery" / rec["file"]
        assert path.is_file() and path.stat().st_size < 1_000_000, rec["file"]
        assert not rec.get("tiny"), f"{rec['item']}: a --tiny run's picture is in the gallery"
    assert set(records) == set(gallery.ITEMS)


@pytest.mark.slow
def test_tiny_gallery_run(tmp_path):
    out, readme = tmp_path / "gallery", tmp_path / "README.md"
    readme.write_text(f"# x\n\n{gallery.BEGIN}\n{gallery.END}\n")
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--quiet", "--items", "pour", "ode_regularization",
           "surrogate", "--out", str(out), "--readme", str(readme), "--cache", str(tmp_path / "cache")]
    subprocess.run(cmd, check=True, timeout=900)
    records = json.loads((out / "gallery.json").read_text())
    assert set(records) == {"pour", "ode_regularization", "surrogate"}
    # the surrogate item trains through the benchmark script (its recipe) and quotes its run
    sur = records["surrogate"]
    assert sur["tiny"] and sur["nx"] == 100 and sur["finite"] and (out / "surrogate_rollout.png").exists()
    assert (tmp_path / "cache" / "neural_pde" / "runs" / "FNO_E1_100_s0_tiny.pt").exists()
    assert (out / "pour.gif").stat().st_size < 1_000_000 and (out / "ode_regularization.png").exists()
    pour = records["pour"]
    assert pour["source"] == "dss.solve" and pour["iterations"] == 1 and pour["tiny"]
    assert "![pour](gallery/pour.gif)" in readme.read_text()
    # a `diffsim solve` output folder is replayed instead of optimising
    run = tmp_path / "runs" / "pour"
    run.mkdir(parents=True)
    T = pour["horizon"]
    np.save(run / "actions.npy", np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (T, 1)))
    (run / "summary.json").write_text(json.dumps({"task": "diffsim/Pour-v1", "seed": 0, "method": "adam",
                                                  "options": pour["options"], "precision": "f32",
                                                  "success": False, "goal_loss": 1.0}))
    subprocess.run(cmd[:5] + ["pour", "--from-runs", str(tmp_path / "runs"), "--out", str(out), "--no-readme",
                              "--cache", str(tmp_path / "cache")], check=True, timeout=900)
    rec = json.loads((out / "gallery.json").read_text())["pour"]
    assert rec["source"] == "diffsim solve" and rec["method"] == "adam"
    assert rec["after"]["goal_loss"] != rec["before"]["goal_loss"]   # the tilting actions were replayed


@pytest.mark.slow
def test_tiny_recipe_item_runs_diffsim_solve(tmp_path):
    # the task's recipe through envs.solve.solve_task (one rollout), replayed; grasp also
    # draws the tactile markers beside the scene (an MPM item, pinch, takes the same path
    # without them: not run, for CI time)
    item = "grasp"
    out = tmp_path / "gallery"
    subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--quiet", "--items", item, "--out", str(out),
                    "--no-readme", "--cache", str(tmp_path / "cache")], check=True, timeout=900)
    rec = json.loads((out / "gallery.json").read_text())[item]
    assert rec["task"] == gallery.ITEMS[item].task_id() and rec["source"] == "diffsim solve"
    assert rec["method"] == "auto" and rec["iterations"] >= 1 and rec["tiny"]
    assert (out / f"{item}.gif").stat().st_size < 1_000_000
    summary = json.loads((tmp_path / "cache" / item / "summary.json").read_text())
    assert summary["goal_loss"] == pytest.approx(rec["after"]["goal_loss"], rel=1e-4)   # the replay is the run's
