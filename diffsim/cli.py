"""Command line: ``diffsim demo``, ``diffsim solve TASK``, ``diffsim train`` (also
``python -m diffsim ...``)."""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "demo": ("diffsim.demo", "push a jelly blob to a target by gradient descent (main demo)"),
    "solve": ("diffsim.envs.cli", "optimise a task's actions from its start state (diffsim solve "
              "diffsim/Pinch-v1 --seed 7 --out DIR)"),
    "train": ("diffsim.solvers.nn.cli", "train a neural PDE surrogate (MPPDE, FNO, UNet, GNS) on generated data"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="diffsim", description="diffsim command line")
    sub = ap.add_subparsers(dest="command", metavar="command")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        ap.print_help()
        return 0
    if argv[0] not in COMMANDS:
        ap.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
    import importlib

    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
