"""Push (or throw) a jelly blob to a target by gradient descent through 300 MPM steps.

This is the project's main demo (`diffsim demo`); see diffsim/demo.py for the scene.

    python examples/mpm/throw_to_target.py --steps 300 --iters 40 --out diffsim-out/demo
"""

import argparse

from diffsim import demo


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/demo")
    args = ap.parse_args(argv)
    return demo.main(["--steps", str(args.steps), "--iters", str(args.iters), "--out", args.out]
                     + (["--arch", args.arch] if args.arch else []))


if __name__ == "__main__":
    raise SystemExit(main())
