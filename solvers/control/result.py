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
        horizon: the loss horizon of a temporal schedule (None without one); ``best``
            restarts at ``inf`` where it grows (losses of different horizons differ).
    """

    best: list[float] = dataclasses.field(default_factory=list)
    mean: list[float] = dataclasses.field(default_factory=list)
    minimum: list[float] = dataclasses.field(default_factory=list)
    nevals: list[int] = dataclasses.field(default_factory=list)
    stage: list[str] = dataclasses.field(default_factory=list)
    horizon: list[int | None] = dataclasses.field(default_factory=list)

    def record(self, losses: torch.Tensor, best: float, nevals: int, stage: str,
               horizon: int | None = None) -> None:
        finite = losses[torch.isfinite(losses)]
        self.best.append(best)
        self.mean.append(float(finite.mean()) if finite.numel() else math.nan)
        self.minimum.append(float(finite.min()) if finite.numel() else math.inf)
        self.nevals.append(nevals)
        self.stage.append(stage)
        self.horizon.append(horizon)

    def extend(self, other: ControlHistory, *, nevals_offset: int = 0, best_before: float = math.inf) -> None:
        """Append ``other`` (a later stage): its counts shift by ``nevals_offset`` and its
        best-so-far curve is taken jointly with ``best_before``."""
        self.best += [min(b, best_before) for b in other.best]
        self.mean += other.mean
        self.minimum += other.minimum
        self.nevals += [n + nevals_offset for n in other.nevals]
        self.stage += other.stage
        self.horizon += other.horizon

    def __len__(self) -> int:
        return len(self.best)


@dataclasses.dataclass
class ControlResult:
    """Result of ``solve(ControlProblem, algorithm, ...)``.

    Attributes:
        u: the best point found (a detached tensor of ``u0``'s shape, inside the bounds;
            ``u0`` if no finite loss was seen): the controls, or with a basis its weights.
        controls: the controls of ``u`` (``prob.controls(u)``: ``basis(u)`` with a basis).
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
        stages: for :class:`Hybrid`, the results of its sampler and gradient stages (in
            the order they ran: every sampler restart, then every refined start).
        top: the best distinct points of the run as ``(loss, u)`` pairs, best first (one
            unless a method asked for more, as ``Hybrid(top_k=...)`` does).
        horizon: the final loss horizon of a temporal schedule (None without one).
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
    top: tuple = ()
    horizon: int | None = None

    @property
    def controls(self) -> torch.Tensor:
        if self.prob is None or getattr(self.prob, "basis", None) is None:
            return self.u
        with torch.no_grad():
            return self.prob.controls(self.u)

    @property
    def successful(self) -> bool:
        return self.retcode in (ControlReturnCode.SUCCESS, ControlReturnCode.TERMINATED)

    def __repr__(self) -> str:
        return (f"ControlResult(retcode={self.retcode.name}, loss={self.loss:.6g}, u: {tuple(self.u.shape)}, "
                f"niters={self.niters}, nevals={self.nevals}, nbackward={self.nbackward}, "
                f"time={self.time:.3g}s)")
