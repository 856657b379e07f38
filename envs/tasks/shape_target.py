"""Base of the shaping tasks whose target is a deformed copy of the material's start."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from .. import cache
from ..losses import density_loss
from ..task import Task


class ShapeTargetTask(Task):
    """Loss: density mismatch with ``target_points(start positions)`` inside ``loss_box``.

    Success: the loss falls below ``success_ratio`` times its value at the start state.
    The target and the start loss are computed once per task and cached.
    """

    loss_box: ClassVar[tuple]           # ((x, y, z) low, (x, y, z) high) of the density grid (m)
    success_ratio: ClassVar[float]

    def target_points(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) target positions (m) from the (N, 3) start positions."""
        raise NotImplementedError

    def target_positions(self, sim) -> torch.Tensor:
        """(M, 3) target positions (m); default ``target_points`` of the start positions.
        Tasks whose target is a simulated outcome override this instead."""
        return torch.as_tensor(self.target_points(sim.reset().x.cpu().numpy()),
                               dtype=sim.dtype, device=sim.device)

    def _target(self, sim):
        if not hasattr(self, "_target_x"):
            # once per shared simulator: Carve-v1's target is a 56-step reference carve
            self._target_x = cache.derived(self, sim, "target",
                                           lambda s: self.target_positions(s).detach())
        return self._target_x

    def loss(self, sim, state):
        return density_loss(state.x, self._target(sim), *self.loss_box, 12)

    def success(self, sim, state):
        if not hasattr(self, "_start_loss"):
            self._start_loss = float(self.loss(sim, sim.reset()))
        return float(self.loss(sim, state)) < self.success_ratio * self._start_loss
