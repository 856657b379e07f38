"""Training tasks: what a batch is and what loss a model gets on it.

A task draws batches from its data with a ``torch.Generator`` (so that a resumed or
distributed run draws exactly the batches it would have drawn) and computes the loss.

* :class:`FieldTask` - autoregressive field surrogates (``MPPDE``, ``FNO``, ``UNet``):
  temporal bundling and the pushforward trick of Brandstetter et al. (ICLR 2022).
* :class:`ParticleTask` - ``GNS`` on particle trajectories with random-walk input noise
  (Sanchez-Gonzalez et al., ICML 2020).
* :class:`NeuralPDETask` - a ``NeuralPDE`` layer fitted to trajectory segments through
  ``dss.solve``, with the solver-heuristic regularizer added to the loss.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from ..pde.fielddata import FieldData


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


class Task(abc.ABC):
    """A training objective over a data set (abstract)."""

    @abc.abstractmethod
    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps that make one epoch."""

    @abc.abstractmethod
    def sample(self, gen: torch.Generator, batch_size: int, epoch: int) -> dict:
        """Draw one batch description (indices, start times, ...)."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """Scalar training loss of ``model`` on ``batch``."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics (lower is better for the first one); empty if no validation data."""
        return {}


def windows(u: torch.Tensor, idx: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """``u[idx[b], start[b] : start[b] + length]`` for every b: (B, length, ...)."""
    steps = start[:, None] + torch.arange(length, device=u.device)[None]
    return u[idx[:, None], steps]


class FieldTask(Task):
    """Temporal bundling + pushforward training of a field surrogate.

    A batch picks trajectories and start steps ``s``; the model sees the ``time_window``
    states before ``s`` and must predict the next ``time_window``. With pushforward, the
    model is first unrolled ``r`` windows without gradient and the loss is taken on the
    window after that, so the model learns from its own input distribution. ``r`` is
    drawn uniformly from ``0..max_unroll(epoch)`` per batch, where ``max_unroll`` grows by
    one per epoch from ``pushforward_start`` up to ``unrolling`` (the paper: from epoch 1,
    one unroll at most, an epoch being 250 passes over 2048 trajectories).

    Args:
        data: training :class:`FieldData`.
        time_window: states per window (the model's ``time_window``).
        unrolling: maximal pushforward unrolls (1 in the paper; 0 disables it).
        valid: validation :class:`FieldData` (the accumulated rollout error is reported).
        warmup: ground-truth windows given before the validation rollout (2 in the paper).
        augment: an augmentation with ``__call__(u_span, gen) -> (u_span, pos)``
            (e.g. :class:`GeneralCovariance`), or None.
        valid_samples: validate on the first this many trajectories of ``valid`` (None: all).
        valid_batch: trajectories per validation forward pass.
        loss: "mse" (mean of the squared error) or "l2" (its square root summed over the
            batch: ``sqrt(sum (pred - target)^2)``, the MP-PDE code's criterion; its gradient
            is the MSE's divided by the error norm, which keeps Adam's steps large as the
            error falls).
        noise_std: std of Gaussian noise added to the ground-truth input window (data
            units; 0 disables it); targets stay clean.
        pushforward_start: first epoch at which pushforward unrolls are drawn.
    """

    LOSSES = ("mse", "l2")

    def __init__(self, data: FieldData, time_window: int, unrolling: int = 1, valid: FieldData | None = None,
                 warmup: int = 2, augment=None, valid_samples: int | None = 64, valid_batch: int = 32,
                 loss: str = "l2", noise_std: float = 0.0, pushforward_start: int = 1):
        if time_window < 1 or data.nt < (2 + unrolling) * time_window:
            raise ValueError(f"trajectories of nt={data.nt} are too short for time_window={time_window} with "
                             f"unrolling={unrolling}: need nt >= (2 + unrolling) * time_window")
        if loss not in self.LOSSES:
            raise ValueError(f"loss={loss!r}; allowed: {', '.join(self.LOSSES)}")
        if not (noise_std >= 0 and math.isfinite(noise_std)):
            raise ValueError(f"noise_std={noise_std!r} must be a finite number >= 0")
        if unrolling < 0 or pushforward_start < 0:
            raise ValueError(f"unrolling={unrolling!r} and pushforward_start={pushforward_start!r} must be >= 0")
        self.data, self.tw, self.unrolling = data, int(time_window), int(unrolling)
        self.valid = valid if valid is None or valid_samples is None else valid.subset(slice(0, valid_samples))
        self.warmup, self.augment, self.valid_batch = warmup, augment, valid_batch
        self.loss_kind, self.noise_std, self.pushforward_start = loss, float(noise_std), int(pushforward_start)

    def max_unroll(self, epoch: int) -> int:
        """Largest pushforward unroll drawn in ``epoch``."""
        return max(0, min(self.unrolling, epoch - self.pushforward_start + 1))

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, math.ceil(self.data.n / batch_size))

    def sample(self, gen, batch_size, epoch):
        tw, nt = self.tw, self.data.nt
        r = int(torch.randint(0, self.max_unroll(epoch) + 1, (), generator=gen))
        idx = torch.randint(0, self.data.n, (batch_size,), generator=gen)
        hi = nt - tw - tw * r  # last admissible start, inclusive
        start = torch.randint(tw, hi + 1, (batch_size,), generator=gen)
        batch = {"idx": idx, "start": start, "r": r}
        if self.noise_std > 0:
            batch["noise_seed"] = int(torch.randint(0, 2**31 - 1, (), generator=gen))
        if self.augment is not None:
            batch["aug"] = self.augment.draw(gen, batch_size)
        return batch

    def loss(self, model, batch):
        d, tw, r = self.data, self.tw, batch["r"]
        p = next(model.parameters())
        dev, dtype = p.device, p.dtype
        idx, start = batch["idx"], batch["start"]
        span = windows(d.u, idx, start - tw, tw * (r + 2)).to(dev, dtype)
        pos = None
        if "aug" in batch:
            span, pos = self.augment.apply(span, batch["aug"], d)
            pos = pos.to(dev, dtype)
        cond = d.cond[idx].to(dev, dtype)
        t = d.t.to(dev, dtype)
        s = start.to(dev)
        inp = span[:, :tw]
        if "noise_seed" in batch:
            g = torch.Generator().manual_seed(batch["noise_seed"])
            inp = inp + self.noise_std * torch.randn(inp.shape, generator=g, dtype=inp.dtype).to(dev)
        with torch.no_grad():
            for k in range(r):
                inp = model(inp, t=t[s + k * tw - 1], cond=cond, pos=pos)
        pred = model(inp, t=t[s + r * tw - 1], cond=cond, pos=pos)
        target = span[:, (r + 1) * tw:(r + 2) * tw]
        if self.loss_kind == "l2":
            return (pred - target).square().sum().sqrt()
        return nn.functional.mse_loss(pred, target)

    def validate(self, model):
        if self.valid is None:
            return {}
        from ..pde.evaluate import evaluate

        res = evaluate(unwrap(model), self.valid, self.tw, warmup=self.warmup, batch_size=self.valid_batch,
                       one_step=False)
        return {"valid_accumulated": res.accumulated}


class ParticleTask(Task):
    """One-step acceleration training of a :class:`GNS` on particle trajectories.

    Args:
        positions: (N, T, P, dim) trajectories (oldest frame first).
        types: (P,) or (N, P) particle types.
        noise_std: std of the random-walk noise added to the input velocities (the last
            input velocity's noise has this std); the target acceleration is corrected
            so the next position stays the clean one.
        valid: optional ``(positions, types)`` for a rollout error after each epoch.
    """

    def __init__(self, positions: torch.Tensor, types: torch.Tensor, noise_std: float = 3e-4,
                 valid=None, valid_steps: int | None = None):
        if positions.dim() != 4:
            raise ValueError(f"positions must be (N, T, P, dim), got {tuple(positions.shape)}")
        self.x = positions
        self.types = types if types.dim() == 2 else types.expand(positions.shape[0], -1)
        self.noise_std, self.valid, self.valid_steps = float(noise_std), valid, valid_steps

    def steps_per_epoch(self, batch_size: int) -> int:
        N, T = self.x.shape[:2]
        return max(1, math.ceil(N * T / (batch_size * 50)))

    def sample(self, gen, batch_size, epoch):
        N, T = self.x.shape[:2]
        return {"idx": torch.randint(0, N, (batch_size,), generator=gen),
                "seed": int(torch.randint(0, 2**31 - 1, (), generator=gen))}

    def loss(self, model, batch):
        m = unwrap(model)
        H = m.history
        N, T, P, dim = self.x.shape
        g = torch.Generator().manual_seed(batch["seed"])
        idx = batch["idx"]
        start = torch.randint(0, T - H - 1, (idx.numel(),), generator=g)
        seq = windows(self.x, idx, start, H + 2)  # (B, H + 2, P, dim)
        dev = next(m.parameters()).device
        seq = seq.to(dev, m.vel_mean.dtype)
        B = seq.shape[0]
        inp = seq[:, :H + 1]
        target_next = seq[:, H + 1]
        if self.noise_std > 0:
            # random walk on velocities: each step's noise std is noise_std / sqrt(H)
            vel_noise = torch.randn(B, H, P, dim, generator=g).to(seq) * (self.noise_std / math.sqrt(H))
            vel_noise = torch.cumsum(vel_noise, 1)
            pos_noise = torch.cat((torch.zeros_like(vel_noise[:, :1]), torch.cumsum(vel_noise, 1)), 1)
            inp = inp + pos_noise
            # as in the reference implementation: the target keeps the last position's noise,
            # so the model learns to undo the velocity noise, not the position noise
            target_next = target_next + pos_noise[:, -1]
        pos = inp.permute(0, 2, 1, 3).reshape(B * P, H + 1, dim)
        types = self.types[idx].reshape(-1).to(dev)
        batch_vec = torch.arange(B, device=dev).repeat_interleave(P)
        target_next = target_next.reshape(B * P, dim)
        a = target_next - 2 * pos[:, -1] + pos[:, -2]
        a_norm = (a - m.acc_mean) / m.acc_std
        return nn.functional.mse_loss(model(pos, types, batch_vec), a_norm)

    def validate(self, model):
        if self.valid is None:
            return {}
        m = unwrap(model)
        x, types = self.valid
        H = m.history
        steps = self.valid_steps or (x.shape[1] - H - 1)
        errs = []
        for i in range(x.shape[0]):
            pred = m.rollout(x[i, :H + 1].permute(1, 0, 2).to(m.vel_mean), types[i] if types.dim() == 2 else types,
                             steps)
            errs.append(((pred - x[i, H + 1:H + 1 + steps].to(pred)) ** 2).sum(-1).mean())
        return {"valid_rollout_mse": float(torch.stack(errs).mean())}


class NeuralPDETask(Task):
    """Fit a :class:`NeuralPDE` to trajectory segments of 1D field data.

    A batch is ``batch_size`` trajectories with a start step ``s``; the layer integrates
    from ``u[s]`` over ``horizon`` recorded steps (one solve, ``saveat`` the recorded
    times) and the loss is the MSE to ``u[s+1 .. s+horizon]`` plus ``sol.reg``.

    Args:
        data: :class:`FieldData` of a combined-equation family (its ``extras`` carry the
            forcing).
        horizon: recorded steps per segment.
    """

    def __init__(self, data: FieldData, horizon: int = 10, valid: FieldData | None = None):
        if not 1 <= horizon < data.nt:
            raise ValueError(f"horizon={horizon} must be in [1, nt={data.nt})")
        self.data, self.horizon, self.valid = data, int(horizon), valid
        self.last_stats = None

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, math.ceil(self.data.n / batch_size))

    def sample(self, gen, batch_size, epoch):
        idx = torch.randint(0, self.data.n, (batch_size,), generator=gen)
        start = int(torch.randint(0, self.data.nt - self.horizon, (), generator=gen))
        return {"idx": idx, "start": start}

    def forcing(self, idx):
        from ..pde.burgers import Forcing

        e = self.data.extras
        return Forcing(e["A"][idx], e["omega"][idx], e["phi"][idx], e["l"][idx], self.data.lengths[0])

    def loss(self, model, batch):
        d, idx, s = self.data, batch["idx"], batch["start"]
        layer = unwrap(model)
        dtype = next(layer.parameters()).dtype
        u = d.u[idx, s:s + self.horizon + 1, 0].to(dtype)
        ts = d.t[s:s + self.horizon + 1].to(dtype)
        sol = model(u[:, 0], saveat=ts, tspan=(float(ts[0]), float(ts[-1])), forcing=self.forcing(idx),
                    cond=d.cond[idx].to(dtype) if d.n_cond else None)
        self.last_stats = sol.stats
        if not sol.successful:
            raise RuntimeError(f"the neural PDE solve failed: {sol.retcode.value}")
        pred = sol.u.transpose(0, 1)
        return nn.functional.mse_loss(pred[:, 1:], u[:, 1:]) + sol.reg
