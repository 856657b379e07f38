"""``ControlProblem``: minimise a loss over a control tensor inside box bounds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from .._checks import as_state


def _bound(name: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or a tensor, got bool")
    if isinstance(value, (int, float)):
        t = torch.tensor(float(value), dtype=like.dtype, device=like.device)
    else:
        try:
            t = torch.as_tensor(value).detach()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name} must be a number or a tensor broadcastable to u0, got "
                            f"{type(value).__name__}") from exc
        if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
        t = t.to(dtype=like.dtype, device=like.device)
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} holds NaN; use -inf / inf for an unbounded side")
    try:
        return torch.broadcast_to(t, like.shape).clone()
    except RuntimeError as exc:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, which does not broadcast to u0's "
                         f"shape {tuple(like.shape)}") from exc


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


@dataclasses.dataclass(frozen=True, eq=False)
class ControlProblem:
    """Minimise ``loss_fn(U)`` over controls ``U`` shaped like ``u0``, with ``lo <= U <= hi``.

    Args:
        loss_fn: ``loss_fn(U) -> scalar``: ``U`` has ``u0``'s shape, dtype and device
            (typically ``(T, act_dim)``: T control steps); the result is a one-element
            tensor (a Python number is accepted by the samplers). Gradient methods need
            it differentiable with respect to ``U`` (for an environment:
            ``env.unwrapped.rollout_loss``).
        u0: the initial guess (any shape, real floating); copied and detached. It must
            lie inside the bounds.
        bounds: ``(lo, hi)``, each a number or a tensor broadcastable to ``u0``'s shape;
            ``-inf``/``inf`` leave a side open. ``None`` (default) is unbounded.
        batch_loss_fn: optional vectorised loss for the samplers: ``(N, *u0.shape) ->
            (N,)``, one loss per candidate, evaluated under ``torch.no_grad()``. Without
            it the samplers call ``loss_fn`` once per candidate.

    Attributes:
        lo, hi: the bounds as tensors of ``u0``'s shape, dtype and device.

    Raises:
        TypeError: ``loss_fn``/``batch_loss_fn`` not callable, ``u0`` not real floating,
            bounds of the wrong type.
        ValueError: non-finite or empty ``u0``, NaN bounds, bounds that do not broadcast
            to ``u0``, ``lo > hi`` anywhere, ``u0`` outside the bounds.
    """

    loss_fn: Callable[[torch.Tensor], Any]
    u0: torch.Tensor
    bounds: Any = None
    batch_loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self):
        if not callable(self.loss_fn):
            raise TypeError(f"loss_fn must be callable as loss_fn(U) -> scalar, got "
                            f"{type(self.loss_fn).__name__}")
        if self.batch_loss_fn is not None and not callable(self.batch_loss_fn):
            raise TypeError(f"batch_loss_fn must be None or callable as batch_loss_fn(U: (N, "
                            f"*u0.shape)) -> (N,), got {type(self.batch_loss_fn).__name__}")
        u0 = as_state("u0", self.u0).detach().clone()
        object.__setattr__(self, "u0", u0)
        bounds = self.bounds
        if bounds is None:
            bounds = (-math.inf, math.inf)
        if isinstance(bounds, torch.Tensor) or not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise TypeError("bounds must be a pair (lo, hi) of numbers or tensors broadcastable to "
                            f"u0 (or None for unbounded), got {type(bounds).__name__}")
        lo, hi = _bound("bounds[0] (lo)", bounds[0], u0), _bound("bounds[1] (hi)", bounds[1], u0)
        bad = lo > hi
        if bool(bad.any()):
            i = _first_index(bad)
            raise ValueError(f"bounds have lo > hi at {int(bad.sum())} entries (first at index {i}: "
                             f"lo={lo[i].item():.6g} > hi={hi[i].item():.6g})")
        out = (u0 < lo) | (u0 > hi)
        if bool(out.any()):
            i = _first_index(out)
            raise ValueError(f"u0 lies outside the bounds at {int(out.sum())} entries (first at index "
                             f"{i}: u0={u0[i].item():.6g}, bounds [{lo[i].item():.6g}, "
                             f"{hi[i].item():.6g}]); clip it first: u0.clamp(lo, hi)")
        object.__setattr__(self, "bounds", (lo, hi))

    @property
    def lo(self) -> torch.Tensor:
        return self.bounds[0]

    @property
    def hi(self) -> torch.Tensor:
        return self.bounds[1]

    def project(self, U: torch.Tensor) -> torch.Tensor:
        """``U`` clipped into the bounds (out of place; broadcasts over leading dims)."""
        return torch.maximum(torch.minimum(U, self.hi), self.lo)

    def remake(self, **changes: Any) -> ControlProblem:
        """A copy with some fields replaced (``u0=``, ``bounds=``, ``loss_fn=``, ...)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (f"ControlProblem(u0: {tuple(self.u0.shape)} {self.u0.dtype}, "
                f"batched={self.batch_loss_fn is not None})")
