"""Argument checks of the trajectory optimizers: clear errors that name the argument."""

from __future__ import annotations

import math
from typing import Any

import torch


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def number(name: str, value: Any, *, lo: float = -math.inf, hi: float = math.inf,
           lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in the interval [lo, hi] (ends open where asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name} must be a finite number in {left}{lo}, {hi}{right}, got {value!r}")
    return v


def std_like(name: str, value: Any, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """A standard deviation per control entry, shaped like the controls.

    ``None`` gives a quarter of the box width ``(hi - lo) / 4`` (1.0 where a bound is
    infinite); a number or a tensor broadcastable to the controls is used as given (in
    control units) and must be finite and >= 0.
    """
    if value is None:
        width = hi - lo
        return torch.where(torch.isfinite(width), 0.25 * width, torch.ones_like(width))
    if isinstance(value, torch.Tensor):
        t = value.detach().to(dtype=lo.dtype, device=lo.device)
    else:
        t = torch.as_tensor(number(name, value, lo=0.0), dtype=lo.dtype, device=lo.device)
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{name} must be finite and >= 0 everywhere")
    try:
        return torch.broadcast_to(t, lo.shape).clone()
    except RuntimeError as exc:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, which does not broadcast to the "
                         f"control shape {tuple(lo.shape)}") from exc
