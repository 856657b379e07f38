"""Every task, every method: the README's results table, built from rows of separate runs.

``run`` solves tasks with ``diffsim.envs.solve_task`` (what ``diffsim solve`` does) for
each method and seed, and appends one JSON line per solve to ``RESULTS/rows.jsonl`` (the
solve's summary: task, method, seed, success, goal loss, seconds, rollouts, backward
passes, retcode, commit, date, ...; the artifacts go to ``RESULTS/runs/...``). Rows of
different runs, commits and machines merge: ``table`` groups them by task and method and
prints the Markdown table (success rate over seeds, goal loss median and min-max, wall
time, rollouts and backward passes, the commits and dates the rows came from).

    python examples/envs/results_table.py run --tasks Pinch LatteArt --methods auto adam cem \\
        hybrid --seeds 0 1 2 --budget-s 600 --results diffsim-out/results
    python examples/envs/results_table.py run --tasks Pinch --methods ppo --seeds 0 1 2 \\
        --rl-factor 20 --budget-s 3600 --results diffsim-out/results
    python examples/envs/results_table.py table --results diffsim-out/results

RL rows (``ppo``, ``sac``) get ``--rl-factor`` (default 20) times the median rollouts of
the task's ``auto`` rows already in the results (run ``auto`` first), or ``--max-rollouts``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import diffsim as ds
from diffsim.envs.registry import TASKS, env_id
from diffsim.envs.solve import METHODS, RL_METHODS, solve_task


def read_rows(results: Path) -> list[dict]:
    path = results / "rows.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rl_rollouts(rows: list[dict], task: str, factor: float) -> int | None:
    """``factor`` times the median rollouts of the task's ``auto`` rows (None if none)."""
    n = [r["rollouts"] for r in rows if r["task"] == task and r["method"] == "auto"]
    return math.ceil(factor * statistics.median(n)) if n else None


def run(args) -> int:
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if args.precision or args.arch:
        ds.init(arch=args.arch, precision=args.precision or "f32")
    options = {k: v for k, v in (("grid_res", args.grid_res), ("horizon", args.horizon)) if v}
    import gymnasium as gym

    for name in args.tasks:
        tid = env_id(name)
        # an env held open keeps the task's compiled simulator alive between the solves
        # (envs/cache.py): the kernels compile once per task, not once per solve
        keep = gym.make(tid, **options)
        try:
            run_task(args, results, name, tid, options)
        finally:
            keep.close()
    return 0


def run_task(args, results: Path, name: str, tid: str, options: dict) -> None:
    for method in args.methods:
        max_rollouts = args.max_rollouts
        if method in RL_METHODS and max_rollouts is None:
            max_rollouts = rl_rollouts(read_rows(results), tid, args.rl_factor)
            if max_rollouts is None:
                print(f"skip {tid} {method}: no 'auto' rows to size the RL budget from "
                      "(run auto first, or give --max-rollouts)", file=sys.stderr)
                continue
        for seed in args.seeds:
            out = results / "runs" / name / method / f"seed{seed}"
            s = solve_task(tid, seed=seed, method=method, budget_s=args.budget_s,
                           max_rollouts=max_rollouts, out=out, options=options,
                           progress=not args.quiet, gif=not args.no_gif)
            s["artifacts"] = os.path.relpath(out, results)
            with open(results / "rows.jsonl", "a") as f:
                f.write(json.dumps(s, default=str) + "\n")
            print(f"{tid} {method} seed {seed}: success={s['success']} goal_loss="
                  f"{s['goal_loss']:.4g} {s['seconds']:.0f} s {s['rollouts']} rollouts "
                  f"{s['backward_passes']} backward {s['retcode']}", flush=True)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def markdown(rows: list[dict]) -> str:
    """One line per (task, method, options): the README's table."""
    groups = defaultdict(list)
    for r in rows:
        key = (r["task"], r["method"], json.dumps(r.get("options", {}), sort_keys=True))
        groups[key].append(r)
    order = {env_id(n): i for i, n in enumerate(TASKS)}
    morder = {m: i for i, m in enumerate(METHODS)}
    lines = ["| task | method | success | goal loss: median (min-max) | start | zero actions | "
             "wall s (median) | "
             "rollouts | backward | retcodes | budget s | seeds | commit, date |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (task, method, opts), rs in sorted(groups.items(), key=lambda kv: (
            order.get(kv[0][0], 99), morder.get(kv[0][1], 99), kv[0][2])):
        g = [r["goal_loss"] for r in rs]
        ok = sum(bool(r["success"]) for r in rs)
        rc = defaultdict(int)
        for r in rs:
            rc[r["retcode"]] += 1
        commits = sorted({(r.get("commit") or "?")[:8] + ("+" if r.get("dirty") else "")
                          for r in rs})
        dates = sorted({(r.get("date") or "?")[:10] for r in rs})
        name = task.split("/", 1)[1] + ("" if opts == "{}" else f" {json.loads(opts)}")
        lines.append(
            f"| {name} | {method} | {ok}/{len(rs)} | {_fmt(statistics.median(g))} ({_fmt(min(g))}-"
            f"{_fmt(max(g))}) | {_fmt(statistics.median(r['start_goal_loss'] for r in rs))} | "
            f"{_fmt(statistics.median(r['zero_actions_goal_loss'] for r in rs))} | "
            f"{statistics.median(r['seconds'] for r in rs):.0f} | "
            f"{statistics.median(r['rollouts'] for r in rs):.0f} | "
            f"{statistics.median(r['backward_passes'] for r in rs):.0f} | "
            f"{', '.join(f'{k} {v}' for k, v in sorted(rc.items()))} | "
            f"{statistics.median(r['budget_s'] for r in rs):.0f} | "
            f"{', '.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | "
            f"{', '.join(commits)}; {', '.join(dates)} |")
    return "\n".join(lines) + "\n"


def table(args) -> int:
    rows = read_rows(Path(args.results))
    if not rows:
        print(f"no rows in {Path(args.results) / 'rows.jsonl'}", file=sys.stderr)
        return 1
    text = markdown(rows)
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="solve tasks and append rows to RESULTS/rows.jsonl")
    r.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    r.add_argument("--methods", nargs="+", default=["auto", "adam", "cem", "hybrid"],
                   choices=list(METHODS))
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--budget-s", type=float, default=None,
                   help="wall-clock budget per solve (default: each task's recipe)")
    r.add_argument("--max-rollouts", type=int, default=None)
    r.add_argument("--rl-factor", type=float, default=20.0,
                   help="RL rollouts = factor x the median rollouts of the task's auto rows")
    r.add_argument("--grid-res", type=int, default=None, help="override every task's grid")
    r.add_argument("--horizon", type=int, default=None, help="override every task's horizon")
    r.add_argument("--precision", choices=("f32", "f64"), default=None)
    r.add_argument("--arch", default=None)
    r.add_argument("--no-gif", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--results", default="diffsim-out/results")
    t = sub.add_parser("table", help="print the Markdown table of RESULTS/rows.jsonl")
    t.add_argument("--results", default="diffsim-out/results")
    t.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    return run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    raise SystemExit(main())
