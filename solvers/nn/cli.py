"""``diffsim train``: train a neural PDE surrogate on a data file from ``dss.pde.generate``.

Examples::

    diffsim train --data e1_train.h5 --valid e1_valid.h5 --test e1_test.h5 --model MPPDE --nx 100 \\
        --epochs 20 --checkpoint runs/mppde_e1_100.pt
    torchrun --nproc_per_node=2 -m diffsim train --data ... --model FNO --device cpu     # DDP (gloo)

Running the same command again resumes from ``--checkpoint``. The kind of data in the
file picks the task: combined-equation or smoke files train a field model (``MPPDE``,
``FNO``, ``UNet``) with temporal bundling and pushforward; particle files train a
``GNS``. With ``--test`` the rollout errors (and the baseline's) are printed and, with
``--metrics``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="diffsim train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training HDF5 file (dss.pde.generate)")
    ap.add_argument("--valid", help="validation file (model selection by accumulated error)")
    ap.add_argument("--test", help="test file (errors printed at the end)")
    ap.add_argument("--model", default="MPPDE", choices=["MPPDE", "FNO", "UNet", "GNS"])
    ap.add_argument("--nx", type=int, default=100, help="1D resolution (combined-equation data)")
    ap.add_argument("--time-window", type=int, default=25)
    ap.add_argument("--unrolling", type=int, default=1, help="max pushforward unrolls (0: off)")
    ap.add_argument("--pushforward-start", type=int, default=1, help="first epoch with pushforward unrolls")
    ap.add_argument("--loss", default="l2", choices=["l2", "mse"],
                    help="field models: l2 = sqrt of the batch sum of squares (the MP-PDE code's), or mse")
    ap.add_argument("--field-noise", type=float, default=0.0, help="field models: Gaussian input noise std")
    ap.add_argument("--warmup", type=int, default=2, help="ground-truth windows before a test rollout")
    ap.add_argument("--hidden", type=int, default=128, help="MPPDE/GNS hidden size; UNet base width")
    ap.add_argument("--layers", type=int, default=None, help="MPPDE message layers / FNO Fourier layers")
    ap.add_argument("--width", type=int, default=64, help="FNO width")
    ap.add_argument("--modes", type=int, default=16, help="FNO Fourier modes per axis")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps-per-epoch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"])
    ap.add_argument("--grad-clip", type=float, default=None)
    ap.add_argument("--augment", choices=["none", "covariance"], default="none",
                    help="general-covariance augmentation (Fanaskov et al. 2023; 1D periodic data)")
    ap.add_argument("--noise-std", type=float, default=3e-4, help="GNS input noise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", help="checkpoint file (resumed if present)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (resumable)")
    ap.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds (resumable)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--metrics", help="write test metrics here (JSON)")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def _kind(path) -> str:
    from ..pde.datasets import open_checked

    with open_checked(path) as f:
        return str(f.attrs["kind"])


def build(args):
    """(model, task, test data or None) for the parsed arguments."""
    import torch

    from .. import pde
    from . import FNO, GNS, MPPDE, FieldTask, GeneralCovariance, ParticleTask, UNet

    torch.manual_seed(args.seed)
    kind = _kind(args.data)
    if kind == "Particles":
        if args.model != "GNS":
            raise SystemExit(f"{args.data} holds particle trajectories: use --model GNS")
        from ..pde.particles import load_particles

        tr = load_particles(args.data)
        model = GNS(dim=tr.dim, history=5, n_types=tr.n_types, radius=tr.radius, bounds=tr.bounds,
                    hidden=args.hidden, message_steps=args.layers or 10)
        model.set_statistics(tr.positions, args.noise_std)
        valid = load_particles(args.valid) if args.valid else None
        task = ParticleTask(tr.positions, tr.types, noise_std=args.noise_std,
                            valid=None if valid is None else (valid.positions[:4], valid.types[:4]))
        test = load_particles(args.test) if args.test else None
        return model, task, test
    if args.model == "GNS":
        raise SystemExit(f"{args.data} holds {kind} fields: use --model MPPDE, FNO or UNet")
    if kind == "CombinedEquation":
        def load(p):
            return pde.load_ce(p, args.nx)
    elif kind == "SmokeBuoyancy":
        from ..pde.smoke import load_smoke

        load = load_smoke
    else:
        raise SystemExit(f"{args.data}: unsupported data kind {kind!r}")
    tr = load(args.data)
    valid = load(args.valid) if args.valid else None
    test = load(args.test) if args.test else None
    tw = args.time_window
    t_scale = float(tr.t[-1])
    common = dict(time_window=tw, n_cond=tr.n_cond, dt=tr.dt, t_scale=t_scale)
    if args.model == "MPPDE":
        if tr.dim != 1:
            raise SystemExit("MPPDE here runs on 1D grids; use FNO or UNet for 2D fields")
        model = MPPDE(hidden=args.hidden, layers=args.layers or 6, length=tr.lengths[0], **common)
    elif args.model == "FNO":
        model = FNO(dim=tr.dim, channels=tr.channels, modes=args.modes, width=args.width, layers=args.layers or 4,
                    padding=0 if tr.periodic else max(2, tr.spatial[0] // 8), coords=args.augment == "covariance",
                    lengths=tr.lengths, **common)
    else:
        model = UNet(dim=tr.dim, channels=tr.channels, hidden=args.hidden if args.hidden != 128 else 32,
                     periodic=tr.periodic, **common)
    augment = GeneralCovariance() if args.augment == "covariance" else None
    task = FieldTask(tr, tw, unrolling=args.unrolling, valid=valid, warmup=args.warmup, augment=augment,
                     loss=args.loss, noise_std=args.field_noise, pushforward_start=args.pushforward_start)
    return model, task, test


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    import torch

    from . import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    model, task, test = build(args)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                      steps_per_epoch=args.steps_per_epoch, grad_clip=args.grad_clip, seed=args.seed,
                      checkpoint=args.checkpoint, max_steps=args.max_steps, time_limit=args.time_limit,
                      progress=not args.no_progress, device=args.device)
    trainer = Trainer(model, task, cfg)
    history = trainer.fit()
    main_rank = trainer.dist.main
    trainer.close()
    if not main_rank:
        return 0
    if history:
        last = history[-1]
        print("epoch {epoch}: train_loss {train_loss:.4g}".format(**last)
              + "".join(f", {k} {v:.4g}" for k, v in last.items() if k.startswith("valid")))
    done = trainer.epoch >= cfg.epochs
    print(f"steps {trainer.global_step}, epochs {trainer.epoch}/{cfg.epochs}"
          + ("" if done else " (stopped early; run again to resume)"))
    if test is not None and done:
        metrics = evaluate_model(trainer, test, args)
        print(json.dumps(metrics, indent=1))
        if args.metrics:
            Path(args.metrics).write_text(json.dumps(metrics, indent=1))
    return 0


def evaluate_model(trainer, test, args) -> dict:
    from .tasks import unwrap

    model = unwrap(trainer.model)
    if trainer.best is not None:
        model.load_state_dict(trainer.best)
    if args.model == "GNS":
        import torch

        H = model.history
        errs = []
        for i in range(test.positions.shape[0]):
            x = test.positions[i].to(model.vel_mean)
            pred = model.rollout(x[:H + 1].permute(1, 0, 2), test.types[i], x.shape[0] - H - 1)
            errs.append(((pred - x[H + 1:]) ** 2).sum(-1).mean())
        return {"rollout_mse": float(torch.stack(errs).mean()), "steps": trainer.global_step}
    from ..pde.evaluate import evaluate

    res = evaluate(model, test, args.time_window, warmup=args.warmup)
    out = res.summary()
    out["steps"] = trainer.global_step
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
