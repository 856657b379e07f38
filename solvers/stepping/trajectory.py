"""What one integration records (internal; ``solve`` wraps it in a solution)."""

from __future__ import annotations

import torch

from ..retcode import ReturnCode

#: tags of saved points: the user's save times, the local regularizer's point, event crossings
USER, REG, EVENT = 0, 1, 2


class Trajectory:
    """Saved points, statistics and end state of one integration (final)."""

    def __init__(self):
        self.ts: list[float] = []
        self.us: list[torch.Tensor] = []
        self.tags: list[int] = []  # per saved point: the tag given with its time
        self.save_h: list[float] = []  # size of the step that produced each saved point
        self.sampled: tuple[float, torch.Tensor, float] | None = None
        self.nfe_rejected = 0
        self.retcode = ReturnCode.SUCCESS
        self.t_end = 0.0
        self.u_end: torch.Tensor | None = None
        self.f_end: torch.Tensor | None = None
        self.dt_next: float = 0.0
        self.dense = None  # a dense output (see ``dense.py``) when asked for
        self.step_starts: list[float] = []
        self.step_dts: list[float] = []
        self.naccept = 0
        self.nreject = 0
        self.niters = 0  # loop iterations (attempted steps; per-sample: batch-wide iterations)
        self.reg_terms: list[torch.Tensor] = []
        self.checkpoints: list[tuple[float, torch.Tensor, float]] = []
        self.event_ids: list[int] = []  # which event, per saved point tagged EVENT

    def save(self, t: float, u: torch.Tensor, tag: int, h: float) -> None:
        """Record a saved point ``u`` at ``t`` with its tag and the producing step size."""
        self.ts.append(t)
        self.us.append(u)
        self.tags.append(tag)
        self.save_h.append(abs(h))
