"""The user's ``f(u, p, t)`` adapted to the steppers: ``rhs(t, u)`` with counting."""

from __future__ import annotations

from typing import Any

import torch

from ..ode.methods.jacobian import jacobian


class RecordingNeeded(Exception):
    """Raised by an :class:`RHS` in ``strict`` mode when ``f`` returns a tensor that
    requires grad: the solve was started unrecorded but must be recorded (internal)."""


class RHS:
    """``rhs(t, u) = f(u, p, t)``, counting evaluations.

    ``t`` arrives as a float (shared stepping) and is handed to ``f`` as a 0-d tensor
    of the state's dtype/device, or as a ``(batch,)`` tensor (per-sample stepping).
    Every result is checked to be a tensor of ``u``'s shape (a stage buffer would
    otherwise reshape a ``(1, 3)`` result into a ``(3,)`` state without a word).

    Attributes:
        strict: raise :class:`RecordingNeeded` when a result requires grad (set by
            ``DirectAdjoint`` while it runs unrecorded).
    """

    __slots__ = ("f", "p", "dtype", "device", "nfe", "njac", "strict", "name")

    def __init__(self, f, p: Any, dtype: torch.dtype, device: torch.device, name: str = "f"):
        self.f, self.p, self.dtype, self.device, self.name = f, p, dtype, device, name
        self.nfe = 0
        self.njac = 0
        self.strict = False

    def time(self, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t
        return torch.full((), t, dtype=self.dtype, device=self.device)

    def __call__(self, t, u: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        tt = self.time(t)
        out = self.f(u, self.p, tt)
        if not isinstance(out, torch.Tensor) or out.shape != u.shape or out.dtype != u.dtype:
            check_rhs_output(self.name, out, u, t=tt if self.nfe > 1 else None)
        if self.strict and out.requires_grad:
            raise RecordingNeeded
        return out

    def jacobian(self, t, u, *, batch: bool, create_graph: bool):
        """``(f(t, u), df/du, df/dt)``; see :func:`solvers.ode.methods.jacobian.jacobian`."""
        self.nfe += 1
        self.njac += 1
        return jacobian(lambda x, tt: self.f(x, self.p, tt), t, u, batch=batch, create_graph=create_graph)


class SegmentRHS:
    """An rhs seen from inside one segment ``[a, b]`` of the span whose ends are
    discontinuities of ``f`` in time (``tstops``): evaluations at (or beyond) an open end
    move to the nearest float inside, so a step ending on a jump sees the one-sided limit
    of ``f`` and the step after it the other (torchdiffeq's perturbed evaluations at
    ``jump_t``). Same interface as :class:`RHS` for the steppers."""

    __slots__ = ("rhs", "a", "b", "a_in", "b_in", "direction")

    def __init__(self, rhs, a: float, b: float, open_a: bool, open_b: bool):
        self.rhs, self.a, self.b = rhs, a, b
        self.direction = -1.0 if b < a else 1.0
        # The neighbours in the dtype f sees time in (the state's): float32 rounds a
        # float64 neighbour back onto the jump.
        dtype = getattr(rhs, "dtype", torch.float64)
        self.a_in = _inside(a, b, dtype) if open_a else None
        self.b_in = _inside(b, a, dtype) if open_b else None

    @property
    def nfe(self) -> int:
        return self.rhs.nfe

    def _clamp(self, t):
        if isinstance(t, float):
            if self.a_in is not None and self.direction * (t - self.a) <= 0.0:
                return self.a_in
            if self.b_in is not None and self.direction * (t - self.b) >= 0.0:
                return self.b_in
        return t

    def __call__(self, t, u):
        return self.rhs(self._clamp(t), u)

    def jacobian(self, t, u, **kw):
        return self.rhs.jacobian(self._clamp(t), u, **kw)


def _inside(x: float, toward: float, dtype: torch.dtype) -> float:
    """The float of ``dtype`` next to ``x`` in the direction of ``toward``."""
    return float(torch.nextafter(torch.tensor(x, dtype=dtype), torch.tensor(toward, dtype=dtype)))


def check_rhs_output(name: str, out: Any, u: torch.Tensor, t: torch.Tensor | None = None) -> None:
    """A right-hand side must return a tensor of the state's shape, dtype and device
    (checked in full on the first evaluation, and on any later one that differs)."""
    where = "(u0, p, t0)" if t is None else f"(u, p, t={_fmt_time(t)})"
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor shaped like u, got {type(out).__name__}")
    if out.shape != u.shape:
        raise ValueError(
            f"{name}{where} returned shape {tuple(out.shape)} but u0 has shape {tuple(u.shape)}; "
            f"{name} must return a tensor with the shape of u"
        )
    if out.dtype != u.dtype:
        raise TypeError(
            f"{name}{where} returned dtype {out.dtype} but u0 has dtype {u.dtype}; cast inside "
            f"{name} or give u0 the dtype of the computation"
        )
    if out.device != u.device:
        raise ValueError(f"{name}(u0, p, t0) returned a tensor on {out.device} but u0 is on {u.device}")


def _fmt_time(t: torch.Tensor) -> str:
    t = t.detach()
    return f"{float(t):.6g}" if t.numel() == 1 else f"tensor of shape {tuple(t.shape)}"
