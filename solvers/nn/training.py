"""``Trainer``: the training loop for every surrogate, with progress bars, checkpoints,
resumption and data-parallel training through ``torchrun``.

    trainer = dss.nn.Trainer(model, dss.nn.FieldTask(train, time_window=25, valid=valid),
                             dss.nn.TrainConfig(epochs=20, batch_size=16, lr=1e-3,
                                                checkpoint="runs/e1.pt"))
    history = trainer.fit()          # resumes from runs/e1.pt if it exists

Checkpoints are ``torch.save`` dicts of state dicts and plain values (model,
optimizer, scheduler, the batch generator's state on every rank, epoch and step,
history, the best model and the model's class and constructor arguments); they are
loaded with ``torch.load(..., weights_only=True)``, and written atomically (temporary
file + rename), so a run killed while saving keeps its previous checkpoint.

Under ``torchrun --nproc_per_node=K`` (``WORLD_SIZE`` set) the trainer joins the
process group (gloo on CPU, NCCL on CUDA), wraps the model in
``DistributedDataParallel`` and gives every rank its own batch generator; the
effective batch is ``K * batch_size``. Only rank 0 shows progress and writes files.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .tasks import Task, unwrap


@dataclasses.dataclass
class TrainConfig:
    """Training settings.

    Args:
        epochs: epochs to train (a resumed run continues up to this number).
        batch_size: samples per optimizer step (per rank).
        lr: peak learning rate (AdamW); weight_decay: AdamW's decay.
        schedule: "cosine" (to ``lr * final_lr_ratio`` over all steps), "step"
            (x ``gamma`` at each epoch in ``milestones``, as MP-PDE) or "constant".
        steps_per_epoch: optimizer steps per epoch (default: the task's, about one pass).
        grad_clip: max gradient norm, or None.
        seed: seed of the batch generator (rank r uses ``seed + 7919 r``) and of the model's
            initialisation if the caller seeds with it.
        checkpoint: file to save to and resume from (None: no checkpoints).
        save_every: also checkpoint every this many steps inside an epoch (0: only at
            epoch ends).
        max_steps: stop (with a checkpoint) after this many optimizer steps in this call.
        time_limit: stop (with a checkpoint) after this many seconds in this call, measured
            by ``clock``.
        clock: "wall" (elapsed time) or "process" (CPU time of this process: on a shared
            machine a budget of CPU seconds buys the same training whatever the load).
        progress: show a tqdm progress bar (rank 0).
        device: "cpu", "cuda", ... (default: CUDA if available, else CPU; under torchrun
            with CUDA, the local rank's GPU).
        autocast: None or "bf16": run the loss (forward passes) under ``torch.autocast`` with
            bfloat16; weights, optimizer state and the loss stay float32. bf16 matrix products
            are ~2x faster on CPUs with AVX512-BF16 and on recent GPUs (float16 would need
            loss scaling and is not offered).
    """

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-6
    schedule: str = "cosine"
    final_lr_ratio: float = 0.01
    milestones: tuple = ()
    gamma: float = 0.4
    steps_per_epoch: int | None = None
    grad_clip: float | None = None
    seed: int = 0
    checkpoint: str | None = None
    save_every: int = 0
    max_steps: int | None = None
    time_limit: float | None = None
    clock: str = "wall"
    progress: bool = True
    device: str | None = None
    autocast: str | None = None

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be > 0")
        if self.clock not in ("wall", "process"):
            raise ValueError(f"clock={self.clock!r}; allowed: 'wall', 'process'")
        if self.autocast not in (None, "bf16"):
            raise ValueError(f"autocast={self.autocast!r}; allowed: None, 'bf16'")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"schedule={self.schedule!r}; allowed: 'cosine', 'step', 'constant'")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(d["milestones"])
        return d


@dataclasses.dataclass
class Distributed:
    """The process group this run belongs to (world 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """Join the ``torchrun`` process group if ``WORLD_SIZE > 1`` (gloo on CPU, NCCL on CUDA)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return Distributed()
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        owns = True
    return Distributed(rank=dist.get_rank(), world=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")), owns_group=owns)


class Trainer:
    """Train ``model`` on ``task`` with ``config`` (see the module docstring).

    Args:
        model: an ``nn.Module`` with a ``config`` dict attribute (all diffsim models have
            one) so that checkpoints can rebuild it; plain modules work too.
        task: a :class:`Task` (``FieldTask``, ``ParticleTask``, ``NeuralPDETask``).
        config: :class:`TrainConfig`.
    """

    def __init__(self, model: nn.Module, task: Task, config: TrainConfig | None = None):
        self.config = config or TrainConfig()
        cfg = self.config
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dist = init_distributed(device)
        if device == "cuda" and self.dist.world > 1:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.task = task
        self.steps_per_epoch = cfg.steps_per_epoch or task.steps_per_epoch(cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=max(1, self.total_steps), eta_min=cfg.lr * cfg.final_lr_ratio)
        elif cfg.schedule == "step":
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, milestones=[m * self.steps_per_epoch for m in cfg.milestones], gamma=cfg.gamma)
        else:
            self.scheduler = torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)
        self.generator = torch.Generator().manual_seed(cfg.seed + 7919 * self.dist.rank)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self.best_metric = math.inf
        self.wall_time = 0.0
        self.cpu_time = 0.0
        self.train_model = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if cfg.checkpoint and Path(cfg.checkpoint).exists():
            self.load(cfg.checkpoint)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        gens = self._gather_generators()
        m = unwrap(self.model)
        return {
            "format": "diffsim.nn.checkpoint/1",
            "model_class": type(m).__name__,
            "model_config": _plain(getattr(m, "config", {})),
            "model": m.state_dict(),
            "best_model": self.best,
            "best_metric": self.best_metric,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generators": gens,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "history": self.history,
            "train_config": self.config.as_dict(),
            "world": self.dist.world,
            "wall_time": self.wall_time,
            "cpu_time": self.cpu_time,
        }

    def _gather_generators(self) -> list[torch.Tensor]:
        state = self.generator.get_state()
        if self.dist.world == 1:
            return [state]
        import torch.distributed as dist

        out = [torch.empty_like(state) for _ in range(self.dist.world)]
        dist.all_gather(out, state)
        return out

    def save(self, path=None) -> None:
        """Write a checkpoint (rank 0; every rank takes part in gathering the RNG states)."""
        path = Path(path or self.config.checkpoint)
        state = self.state()
        if not self.dist.main:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load(self, path) -> None:
        """Resume from a checkpoint written by :meth:`save`.

        Raises:
            ValueError: the file is not a checkpoint, was written for another model class
                or constructor arguments, or by a run with another number of processes.
        """
        ck = load_checkpoint(path)
        m = unwrap(self.model)
        if ck["model_class"] != type(m).__name__ or ck["model_config"] != _plain(getattr(m, "config", {})):
            raise ValueError(f"checkpoint {path} is for {ck['model_class']}({ck['model_config']}), not for this "
                             f"{type(m).__name__}({_plain(getattr(m, 'config', {}))}); use another checkpoint path")
        if ck["world"] != self.dist.world:
            raise ValueError(f"checkpoint {path} was written by {ck['world']} process(es); resume it with the same "
                             f"number (now {self.dist.world})")
        m.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.generator.set_state(ck["generators"][self.dist.rank])
        self.epoch, self.step_in_epoch = ck["epoch"], ck["step_in_epoch"]
        self.global_step, self.history = ck["global_step"], list(ck["history"])
        self.best, self.best_metric = ck["best_model"], ck["best_metric"]
        self.wall_time = ck.get("wall_time", 0.0)
        self.cpu_time = ck.get("cpu_time", 0.0)

    # ------------------------------------------------------------------ loop
    def fit(self) -> list[dict[str, float]]:
        """Train until ``config.epochs`` (or ``max_steps`` / ``time_limit`` in this call).

        Returns:
            The history: one dict per finished epoch (``epoch``, ``train_loss``, validation
            metrics, ``lr``, ``seconds``).
        """
        cfg = self.config
        start_time = call_start = self._clock()
        steps_this_call = 0
        bar = None
        if cfg.progress and self.dist.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.global_step, desc=type(unwrap(self.model)).__name__,
                       unit="step", dynamic_ncols=True)
        self.model.train()
        stopped = False
        try:
            while self.epoch < cfg.epochs:
                losses = []
                while self.step_in_epoch < self.steps_per_epoch:
                    batch = self.task.sample(self.generator, cfg.batch_size, self.epoch)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.autocast is not None):
                        loss = self.task.loss(self.train_model, batch)
                    loss = loss.float()
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"training loss is {float(loss)} at step {self.global_step}; "
                                                 "lower lr or enable grad_clip")
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    losses.append(float(loss.detach()))
                    self.step_in_epoch += 1
                    self.global_step += 1
                    steps_this_call += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=self.epoch, loss=f"{losses[-1]:.3g}")
                    now = self._clock()
                    elapsed = now[0] - call_start[0] if cfg.clock == "wall" else now[1] - call_start[1]
                    if cfg.save_every and self.global_step % cfg.save_every == 0 and cfg.checkpoint:
                        self.wall_time_update(start_time)
                        start_time = self._clock()
                        self.save()
                    if self._stop(steps_this_call, elapsed):
                        stopped = True
                        break
                if stopped and self.step_in_epoch < self.steps_per_epoch:
                    break
                record = {"epoch": self.epoch, "train_loss": sum(losses) / max(1, len(losses)),
                          "lr": self.optimizer.param_groups[0]["lr"], "steps": self.global_step}
                record.update(self._validate())
                self.history.append(record)
                self.epoch += 1
                self.step_in_epoch = 0
                if stopped:
                    break
                if cfg.checkpoint:
                    self.wall_time_update(start_time)
                    start_time = self._clock()
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        self.wall_time_update(start_time)
        if cfg.checkpoint:
            self.save()
        return self.history

    def _clock(self) -> tuple[float, float]:
        return (time.perf_counter(), time.process_time())

    def wall_time_update(self, since) -> None:
        now = self._clock()
        self.wall_time += now[0] - since[0]
        self.cpu_time += now[1] - since[1]

    def _stop(self, steps: int, elapsed: float) -> bool:
        cfg = self.config
        stop = (cfg.max_steps is not None and steps >= cfg.max_steps) or \
            (cfg.time_limit is not None and elapsed >= cfg.time_limit)
        if self.dist.world > 1:  # every rank must stop at the same step
            import torch.distributed as dist

            flag = torch.tensor([int(stop)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def _validate(self) -> dict[str, float]:
        metrics = self.task.validate(self.model) if self.dist.main else {}
        if self.dist.world > 1:
            import torch.distributed as dist

            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        if metrics:
            first = next(iter(metrics.values()))
            if first < self.best_metric:
                self.best_metric = first
                self.best = {k: v.detach().clone() for k, v in unwrap(self.model).state_dict().items()}
        return metrics

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        if self.dist.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _plain(obj):
    """Constructor arguments as plain lists/dicts (what ``weights_only`` loading keeps)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def load_checkpoint(path) -> dict:
    """``torch.load(path, weights_only=True)`` with clear errors for missing or foreign files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); it may be "
                         "truncated or not written by dss.nn.Trainer") from exc
    if not isinstance(ck, dict) or ck.get("format") != "diffsim.nn.checkpoint/1":
        raise ValueError(f"{path} is not a dss.nn.Trainer checkpoint")
    return ck


def load_model(path, *, best: bool = True) -> nn.Module:
    """Rebuild the model stored in a checkpoint (the best validated weights by default)."""
    from .base import build_model

    ck = load_checkpoint(path)
    cfg = ck["model_config"]
    for key in ("bounds", "modes", "lengths"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(tuple(v) if isinstance(v, list) else v for v in cfg[key])
    model = build_model(ck["model_class"], cfg)
    model.load_state_dict(ck["best_model"] if best and ck.get("best_model") is not None else ck["model"])
    return model
