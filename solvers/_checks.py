"""Argument checks shared by the problem types and ``solve``: clear errors, early."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch


def as_state(name: str, value: Any) -> torch.Tensor:
    """``value`` as a floating tensor; ints and array-likes get torch's default dtype.

    Raises:
        TypeError: complex, boolean or non-numeric values.
        ValueError: NaN or Inf entries, or an empty tensor.
    """
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name} must be a torch.Tensor (any shape), got {type(value).__name__}") from exc
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
    if value.is_complex() or not value.is_floating_point():
        raise TypeError(f"{name} must have a real floating dtype (float16/32/64, bfloat16), got {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)}); it needs at least one element")
    if not bool(torch.isfinite(value.detach()).all()):
        raise ValueError(f"{name} has non-finite entries (NaN or Inf); an initial state must be finite")
    return value


def as_tspan(tspan: Any, *, allow_empty: bool = False, allow_infinite_end: bool = False) -> tuple[float, float]:
    """``(t0, t1)`` as two floats; ``t1 < t0`` integrates backwards; ``t0 == t1`` (nothing
    to integrate: the solution is ``u0``) only with ``allow_empty``; ``t1 = +-inf`` (a
    solve that a terminal event ends) only with ``allow_infinite_end``."""
    if isinstance(tspan, torch.Tensor):
        tspan = tspan.detach().cpu().tolist()
    if not isinstance(tspan, Sequence) or len(tspan) != 2:
        raise ValueError(f"tspan must be a pair (t0, t1) of finite numbers, got {tspan!r}")
    try:
        t0, t1 = (float(x.detach()) if isinstance(x, torch.Tensor) else float(x) for x in tspan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tspan must be a pair (t0, t1) of finite numbers, got {tspan!r}") from exc
    if not (math.isfinite(t0) and (math.isfinite(t1) or (allow_infinite_end and math.isinf(t1)))):
        raise ValueError(f"tspan must be finite, got ({t0}, {t1})")
    if t0 == t1 and not allow_empty:
        raise ValueError(f"tspan has zero length (t0 == t1 == {t0}); give t1 != t0 (t1 < t0 integrates backwards)")
    return t0, t1


def check_params(p: Any) -> Any:
    """``p`` must be None, a tensor, or a tuple/list of tensors and numbers."""
    if p is None or isinstance(p, torch.Tensor):
        return p
    if isinstance(p, (tuple, list)):
        for i, leaf in enumerate(p):
            if not isinstance(leaf, (torch.Tensor, int, float)):
                raise TypeError(
                    f"p[{i}] is a {type(leaf).__name__}; p must be None, a tensor, or a tuple of "
                    "tensors (numbers are allowed as constants)"
                )
        return tuple(p)
    raise TypeError(f"p must be None, a tensor, or a tuple of tensors, got {type(p).__name__}")


def param_tensors(p: Any) -> list[torch.Tensor]:
    """The tensors inside ``p`` (None, a tensor, or a tuple) in order."""
    if p is None:
        return []
    if isinstance(p, torch.Tensor):
        return [p]
    return [leaf for leaf in p if isinstance(leaf, torch.Tensor)]


def positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from exc
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and math.isfinite(v)):
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {rng}, got {value!r}")
    return v


def tolerance(name: str, value: Any, like: torch.Tensor) -> float | torch.Tensor:
    """rtol/atol: a positive number, or a tensor broadcastable to the state."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return positive(name, value.item(), allow_zero=True)
        if not bool((value >= 0).all()) or not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite and >= 0 everywhere")
        try:
            torch.broadcast_shapes(value.shape, like.shape)
        except RuntimeError as exc:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)}, which does not broadcast to the state "
                f"shape {tuple(like.shape)}"
            ) from exc
        return value.to(dtype=like.dtype, device=like.device)
    return positive(name, value, allow_zero=True)


def one_of(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def no_unknown_kwargs(fn_name: str, kwargs: dict, allowed: Sequence[str]) -> None:
    if kwargs:
        bad = ", ".join(sorted(kwargs))
        raise TypeError(
            f"{fn_name} got unknown keyword argument(s) {bad}; allowed: {', '.join(sorted(allowed))}"
        )
