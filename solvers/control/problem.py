"""``ControlProblem``: minimise a loss over a control tensor inside box bounds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from .._checks import as_state
from .basis import ActionBasis


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
    """Minimise ``loss_fn(U)`` over controls ``U`` shaped like ``u0``, with ``lo <= U <= hi``;
    with a ``basis``, over weights ``W`` shaped like ``u0`` with ``U = basis(W)``.

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
        basis: optional :class:`ActionBasis`: the methods optimise its weights ``W`` (``u0``
            is the initial ``W``, shape ``(K, ...)``; ``basis.fit(U0)`` finds one) and the
            loss sees ``U = basis(W)`` (shape ``(T, ...)``). ``bounds`` stay bounds on
            ``U``; the weights get bounds that imply them (``ActionBasis.weight_bounds``),
            and with a basis offset ``U`` is clipped into them.

    Attributes:
        lo, hi: bounds of the optimised variable as tensors of ``u0``'s shape, dtype and
            device (the control bounds, or with a basis the weight bounds).
        control_bounds: ``(lo, hi)`` of the controls ``U`` (equal to ``(lo, hi)`` without a
            basis).
        steps: T, the number of control steps (``u0.shape[0]``, or ``basis.steps``).

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
    basis: ActionBasis | None = None

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
        basis = self.basis
        if basis is not None and not isinstance(basis, ActionBasis):
            raise TypeError(f"basis must be None or a dss.ActionBasis, got {type(basis).__name__}")
        if basis is not None and (u0.ndim < 1 or u0.shape[0] != basis.knots):
            raise ValueError(f"with a basis, u0 holds the initial weights W of shape ({basis.knots}, "
                             f"...) (basis.knots first), got {tuple(u0.shape)}; basis.fit(U0) "
                             "gives the weights of controls U0")
        like = u0 if basis is None else basis(u0.detach())
        lo, hi = _bound("bounds[0] (lo)", bounds[0], like), _bound("bounds[1] (hi)", bounds[1], like)
        bad = lo > hi
        if bool(bad.any()):
            i = _first_index(bad)
            raise ValueError(f"bounds have lo > hi at {int(bad.sum())} entries (first at index {i}: "
                             f"lo={lo[i].item():.6g} > hi={hi[i].item():.6g})")
        object.__setattr__(self, "bounds", (lo, hi))
        if basis is not None:
            lo, hi = basis.weight_bounds(lo, hi)
            bad = lo > hi
            if bool(bad.any()):
                i = _first_index(bad)
                raise ValueError(f"the control bounds change too fast in time for this basis: the "
                                 f"weight at index {i} covers steps whose bounds do not overlap "
                                 "(lo > hi); use more knots or bounds that vary slowly")
        object.__setattr__(self, "_wbounds", (lo, hi))
        out = (u0 < lo) | (u0 > hi)
        if bool(out.any()):
            i = _first_index(out)
            raise ValueError(f"u0 lies outside the bounds at {int(out.sum())} entries (first at index "
                             f"{i}: u0={u0[i].item():.6g}, bounds [{lo[i].item():.6g}, "
                             f"{hi[i].item():.6g}]); clip it first: u0.clamp(lo, hi)")

    @property
    def lo(self) -> torch.Tensor:
        return self._wbounds[0]

    @property
    def hi(self) -> torch.Tensor:
        return self._wbounds[1]

    @property
    def control_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bounds

    @property
    def steps(self) -> int:
        return self.basis.steps if self.basis is not None else int(self.u0.shape[0])

    def project(self, U: torch.Tensor) -> torch.Tensor:
        """``U`` (the optimised variable) clipped into ``[lo, hi]`` (out of place;
        broadcasts over leading dims)."""
        return torch.maximum(torch.minimum(U, self.hi), self.lo)

    def controls(self, W: torch.Tensor, batched: bool = False) -> torch.Tensor:
        """The controls the loss sees for the optimised variable ``W`` (``W`` itself without
        a basis; ``basis(W)``, clipped into the control bounds when the basis has an
        offset). ``batched``: ``W`` has a leading candidate axis."""
        if self.basis is None:
            return W
        U = self.basis(W, batched=batched)
        if self.basis.offset is not None:
            U = torch.maximum(torch.minimum(U, self.bounds[1]), self.bounds[0])
        return U

    def remake(self, **changes: Any) -> ControlProblem:
        """A copy with some fields replaced (``u0=``, ``bounds=``, ``loss_fn=``, ...)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        basis = "" if self.basis is None else f", basis={self.basis!r}"
        return (f"ControlProblem(u0: {tuple(self.u0.shape)} {self.u0.dtype}, "
                f"batched={self.batch_loss_fn is not None}{basis})")
