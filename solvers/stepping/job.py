"""Everything one solve needs, gathered once by ``solve`` (ODE or SDE) and handed to
the sensitivity algorithms (internal)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import torch

from .._checks import param_tensors
from ..regularization import GlobalRegularization, LocalRegularization
from ..solution import Stats
from .options import StepOptions
from .rhs import RHS
from .trajectory import REG, USER


def adjoint_params(f: Any, p: Any) -> list[torch.Tensor]:
    """Tensors that receive gradients: those in ``p`` and the parameters of an
    ``nn.Module`` right-hand side, each once."""
    out, seen = [], set()
    candidates = list(param_tensors(p))
    if isinstance(f, torch.nn.Module):
        candidates += list(f.parameters())
    for t in candidates:
        if t.requires_grad and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


@dataclasses.dataclass
class SolveJob:
    prob: Any  # the (flat) problem: f and p
    u0: torch.Tensor  # the solve's input state (flat; carries the t0 gradient if wanted)
    alg: Any  # the method: an AbstractODESolver (or an AbstractSDESolver)
    opts: StepOptions
    t0: float
    t1: float
    direction: float
    saveat: list[float] | None  # None: save every accepted step
    dense: bool  # the user asked for sol(t)
    reg: GlobalRegularization | LocalRegularization | None
    stats: Stats
    per_sample: bool
    params: list[torch.Tensor]  # tensors that receive gradients under continuous adjoints
    rhs: RHS
    f0: torch.Tensor
    generator: torch.Generator | None
    t_reg: float | None = None  # unbiased local-regularization time, drawn up front
    unflatten: Any = None  # flat state -> the user's pytree (None: the state is a tensor)
    reservoir: random.Random | None = None  # biased local-regularization sampler
    events: Any = None  # an EventTracker, or None
    tstops: list[float] | None = None  # times steps land on (discontinuities), in integration order

    def save_list(self) -> list[tuple[float, int]] | None:
        """The user's save times (tag USER) merged with the regularizer's time (tag REG)."""
        pts = [] if self.saveat is None else [(t, USER) for t in self.saveat]
        if self.t_reg is not None:
            pts.append((self.t_reg, REG))
            pts.sort(key=lambda x: (self.direction * x[0], x[1]))
        return pts if (self.saveat is not None or self.t_reg is not None) else None

    def global_reg_kind(self) -> str | None:
        return self.reg.kind if isinstance(self.reg, GlobalRegularization) else None
