"""The answer of a trajectory optimization: best controls, loss history, costs, return code."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from .retcode import ControlReturnCode


@dataclasses.dataclass
class ControlHistory:
    """Per-iteration records (one entry per iteration, in order).

    Attributes:
        best: the best loss found so far (non-increasing; ``inf`` before a finite one).
        mean: the mean of the iteration's finite losses (``nan`` if none was finite);
            for gradient methods, the loss at the iterate.
        minimum: the lowest loss of the iteration.
        nevals: evaluations spent so far (cumulative), for plots against simulation cost.
        stage: the algorithm that ran the iteration (``"CEM"``, ``"Adam"``, ...).
    """

    best: list[float] = dataclasses.field(default_factory=list)
    mean: list[float] = dataclasses.field(default_factory=list)
    minimum: list[float] = dataclasses.field(default_factory=list)
    nevals: list[int] = dataclasses.field(default_factory=list)
    stage: list[str] = dataclasses.field(default_factory=list)

    def record(self, losses: torch.Tensor, best: float, nevals: int, stage: str) -> None:
        finite = losses[torch.isfinite(losses)]
        self.best.append(best)
        self.mean.append(float(finite.mean()) if finite.numel() else math.nan)
        self.minimum.append(float(finite.min()) if finite.numel() else math.inf)
        self.nevals.append(nevals)
        self.stage.append(stage)

    def extend(self, other: ControlHistory, *, nevals_offset: int = 0, best_before: float = math.inf) -> None:
        """Append ``other`` (a later stage): its counts shift by ``nevals_offset`` and its
        best-so-far curve is taken jointly with ``best_before``."""
        self.best += [min(b, best_before) for b in other.best]
        self.mean += other.mean
        self.minimum += other.minimum
        self.nevals += [n + nevals_offset for n in other.nevals]
        self.stage += other.stage

    def __len__(self) -> int:
        return len(self.best)


@dataclasses.dataclass
class ControlResult:
    """Result of ``solve(ControlProblem, algorithm, ...)``.

    Attributes:
        u: the best controls found (a detached tensor of ``u0``'s shape, inside the
            bounds; ``u0`` if no finite loss was seen).
        loss: the loss at ``u`` (a float; ``inf`` if no finite loss was seen).
        history: :class:`ControlHistory`.
        nevals: loss evaluations = simulated rollouts (a gradient evaluation counts its
            forward rollout; a batched evaluation of N candidates counts N).
        nbackward: backward passes (gradient evaluations).
        niters: iterations run.
        nnonfinite: evaluations that gave NaN/Inf (or raised one of ``catch``).
        time: wall-clock seconds of the run.
        retcode: :class:`ControlReturnCode`.
        message: what ended a failed run (``""`` on success).
        prob, alg: what was solved and how.
        stages: for :class:`Hybrid`, the results of its sampler and gradient stages.
    """

    u: torch.Tensor
    loss: float
    history: ControlHistory
    nevals: int
    nbackward: int
    niters: int
    nnonfinite: int
    time: float
    retcode: ControlReturnCode
    message: str = ""
    prob: Any = None
    alg: Any = None
    stages: tuple = ()

    @property
    def successful(self) -> bool:
        return self.retcode in (ControlReturnCode.SUCCESS, ControlReturnCode.TERMINATED)

    def __repr__(self) -> str:
        return (f"ControlResult(retcode={self.retcode.name}, loss={self.loss:.6g}, u: {tuple(self.u.shape)}, "
                f"niters={self.niters}, nevals={self.nevals}, nbackward={self.nbackward}, "
                f"time={self.time:.3g}s)")
