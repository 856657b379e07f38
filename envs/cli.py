"""``diffsim solve TASK``: optimise a task's actions from its start state, with artifacts.

    diffsim solve diffsim/Pinch-v1 --seed 7 --out runs/pinch [--method auto|adam|lbfgs|cem|
        mppi|hybrid|ppo|sac] [--budget-s N] [--max-rollouts N] [--grid-res N] [--horizon N]
        [--option KEY=VALUE ...] [--precision f32|f64] [--arch cpu|cuda] [--no-gif]

Writes ``actions.npy``, ``summary.json``, ``loss.png`` and ``before_after.gif`` into
``--out`` and prints the summary's main lines. Replay the actions with Gymnasium::

    env = gym.make("diffsim/Pinch-v1"); env.reset(seed=7)
    for a in np.load("runs/pinch/actions.npy"): obs, r, term, trunc, info = env.step(a)
    info["success"]       # == summary.json's "success"
"""

from __future__ import annotations

import argparse
import ast
import sys


def _option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option must be KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)   # numbers, tuples, strings: never eval
    except (ValueError, SyntaxError):
        parsed = value
    return key.strip(), parsed


def parser() -> argparse.ArgumentParser:
    from .solve import METHODS

    ap = argparse.ArgumentParser(prog="diffsim solve", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", help="a registered id, e.g. diffsim/Pinch-v1")
    ap.add_argument("--seed", type=int, default=0, help="reset seed and optimiser seed (default 0)")
    ap.add_argument("--out", required=True, help="folder for the artifacts (created)")
    ap.add_argument("--method", default="auto", choices=METHODS,
                    help="auto: the task's recipe; the others: plain methods (default auto)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-clock budget of the optimisation in seconds (default: the recipe's)")
    ap.add_argument("--max-rollouts", type=int, default=None, help="also stop after N rollouts")
    ap.add_argument("--grid-res", type=int, default=None, help="task option grid_res")
    ap.add_argument("--horizon", type=int, default=None, help="task option horizon")
    ap.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                    help="any other task option (a Python literal), repeatable")
    ap.add_argument("--precision", choices=("f32", "f64"), default=None,
                    help="simulator precision (default: the package default)")
    ap.add_argument("--arch", default=None, help="cpu or cuda (default: DIFFSIM_ARCH or auto)")
    ap.add_argument("--no-gif", action="store_true", help="skip the before/after animation")
    ap.add_argument("--full-budget", action="store_true",
                    help="do not stop when the objective proves the task solved")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    from .solve import check_inputs, solve_task, writable_folder

    options = dict(args.option)
    for key in ("grid_res", "horizon"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    try:   # every input is checked before a simulator is built
        check_inputs(args.task, args.seed, args.method, args.budget_s, args.max_rollouts, options)
        writable_folder(args.out)
    except (ValueError, TypeError, ImportError) as exc:
        ap.error(str(exc))
    if args.arch is not None or args.precision is not None:
        import diffsim as ds

        ds.init(arch=args.arch, precision=args.precision or "f32")
    s = solve_task(args.task, seed=args.seed, method=args.method, budget_s=args.budget_s,
                   max_rollouts=args.max_rollouts, out=args.out, options=options,
                   progress=not args.quiet, gif=not args.no_gif,
                   stop_on_success=not args.full_budget)
    print(f"{s['task']} seed {s['seed']} {s['method']}: success={s['success']} "
          f"goal_loss={s['goal_loss']:.6g} (start {s['start_goal_loss']:.6g}, zero actions "
          f"{s['zero_actions_goal_loss']:.6g}) in "
          f"{s['seconds']:.1f} s, {s['rollouts']} rollouts, {s['backward_passes']} backward "
          f"passes, retcode {s['retcode']}")
    if s.get("gif_skipped"):
        print(f"no GIF: {s['gif_skipped']}")
    print(f"artifacts in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
