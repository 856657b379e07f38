"""Events: zero crossings of a condition ``g(u, p, t)``, located on the dense output.

After every accepted step the conditions are evaluated at the step's end; a change of
sign brackets a root, which Brent's method (``scipy.optimize.brentq``) locates on the
step's continuous extension. A terminal event ends the solve there (the state at the
event is the last point of the solution); a recording one is kept in ``sol.event_t``.

Event times are differentiable by the implicit function theorem: from
``g(t*, u(t*; theta), theta) = 0``,

    dt*/dtheta = -(dg/du . du/dtheta + dg/dtheta) / (dg/dt + dg/du . f(u*, t*)),

and the state at the event moves with it, ``du*/dtheta = du/dtheta + f dt*/dtheta``
(torchdiffeq's ``odeint_event``, diffrax's ``Event``), under every ``sensealg``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .methods.base import dense_eval


@dataclasses.dataclass(frozen=True)
class Event:
    """A zero crossing of ``condition(u, p, t)`` (diffrax ``Event``, torchdiffeq
    ``event_fn``, Julia's ``ContinuousCallback``; scipy ``solve_ivp`` events).

    Args:
        condition: ``g(u, p, t) -> 0-d real tensor`` (``u`` in the state's structure, ``t``
            a 0-d tensor); the event happens where ``g`` changes sign after ``t0``.
        terminal: end the solve at the first such crossing (``retcode`` TERMINATED, the
            event state is the solution's last point); False records every crossing in
            ``sol.event_t`` / ``sol.event_u`` and goes on.
        direction: 0 (any crossing), +1 (``g`` rising through 0) or -1 (falling).

    One root per step and condition is found: a condition that crosses zero twice inside
    one step (an even number of times) is missed, as with scipy and torchdiffeq; lower
    ``dtmax`` if that can happen.
    """

    condition: Callable[[Any, Any, torch.Tensor], torch.Tensor]
    terminal: bool = True
    direction: int = 0

    def __post_init__(self):
        if not callable(self.condition):
            raise TypeError(f"condition must be callable as g(u, p, t), got {type(self.condition).__name__}")
        if not isinstance(self.terminal, bool):
            raise TypeError(f"terminal must be a bool, got {type(self.terminal).__name__}")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"direction must be -1, 0 or 1, got {self.direction!r}")


def as_events(event: Any) -> tuple[Event, ...]:
    """``solve``'s ``event`` argument (an :class:`Event` or a sequence of them)."""
    if event is None:
        return ()
    events = (event,) if isinstance(event, Event) else event
    if not isinstance(events, Sequence) or not events or not all(isinstance(e, Event) for e in events):
        raise TypeError(f"event must be a dss.Event or a non-empty sequence of them, got {event!r}")
    return tuple(events)


class Hit:
    """One located crossing: time, state (differentiable where the solve is recorded),
    event index, and whether it ends the solve."""

    __slots__ = ("t", "u", "index", "terminal")

    def __init__(self, t: float, u: torch.Tensor, index: int, terminal: bool):
        self.t, self.u, self.index, self.terminal = t, u, index, terminal


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


class EventTracker:
    """Watches the conditions during one integration (final, internal).

    Args:
        events: the events.
        p: the problem's parameters (handed to the conditions).
        as_state: flat state -> the user's structure (identity for tensor states).
        t0, u0: the start; crossings are looked for after it.
    """

    def __init__(self, events: tuple[Event, ...], p, as_state: Callable, t0: float, u0: torch.Tensor):
        self.events, self.p, self.as_state = events, p, as_state
        self.dtype, self.device = u0.dtype, u0.device
        self.signs = [_sign(v) for v in self._values(t0, u0, check=True)]

    def g(self, i: int, t, u: torch.Tensor) -> torch.Tensor:
        tt = t if isinstance(t, torch.Tensor) else torch.full((), t, dtype=self.dtype, device=self.device)
        return self.events[i].condition(self.as_state(u), self.p, tt)

    def _values(self, t: float, u: torch.Tensor, check: bool = False) -> list[float]:
        out = []
        with torch.no_grad():
            for i in range(len(self.events)):
                v = self.g(i, t, u)
                if check:
                    check_condition_output(i, v)
                out.append(float(v))
        for i, v in enumerate(out):
            if not math.isfinite(v):
                raise ValueError(f"event {i}: condition(u, p, t) is {v} at t={t:.6g}; it must stay finite")
        return out

    def scan(self, t: float, h: float, u: torch.Tensor, u1: torch.Tensor, t_new: float, coeffs) -> list[Hit]:
        """Crossings in the accepted step ``[t, t_new]`` in time order, up to and including
        the first terminal one."""
        from scipy.optimize import brentq

        hits: list[tuple[float, int]] = []  # (theta, index)
        for i, v in enumerate(self._values(t_new, u1)):
            s_prev, s_new = self.signs[i], _sign(v)
            self.signs[i] = s_new
            if s_prev == 0 or s_new == s_prev:
                continue  # no crossing (or the start sat on the root, which does not count)
            ev = self.events[i]
            if ev.direction and ev.direction != -s_prev:
                continue
            if s_new == 0:
                theta = 1.0
            else:
                R = coeffs()

                def g_at(th, i=i, R=R):
                    with torch.no_grad():
                        return float(self.g(i, t + th * h, dense_eval(u, R, th)))

                theta = brentq(g_at, 0.0, 1.0, xtol=2e-15, rtol=1e-15)
            hits.append((theta, i))
        hits.sort()
        out = []
        for theta, i in hits:
            if theta >= 1.0:
                t_e, u_e = t_new, u1
            else:
                t_e, u_e = t + theta * h, dense_eval(u, coeffs(), theta)
            out.append(Hit(t_e, u_e, i, self.events[i].terminal))
            if self.events[i].terminal:
                break
        return out


def check_condition_output(i: int, v: Any) -> None:
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"event {i}: condition(u, p, t) must return a 0-d real tensor, got {type(v).__name__}")
    if v.numel() != 1:
        raise ValueError(f"event {i}: condition(u, p, t) must return one value (a 0-d tensor), got shape "
                         f"{tuple(v.shape)}; combine several conditions into a list of Events instead")
    if not v.is_floating_point():
        raise ValueError(f"event {i}: condition(u, p, t) must be real valued (its sign change marks the event), "
                         f"got dtype {v.dtype}; e.g. return x - threshold instead of x > threshold")


def event_time(tracker: EventTracker, i: int, t_e: float, u_e: torch.Tensor, rate: Callable) -> torch.Tensor:
    """The event time ``t_e`` as a 0-d tensor whose gradient is the implicit-function one:
    ``t_e - (g - g.detach()) / c`` with ``g = condition(u_e, p, t_e)`` (differentiable in
    ``u_e`` and the parameters) and ``c = dg/dt + dg/du . f(u_e, t_e)`` (a constant).

    Raises:
        ValueError: ``c == 0``: the trajectory grazes the surface ``g = 0`` and the event
            time is not differentiable there.
    """
    tt = torch.full((), t_e, dtype=u_e.dtype, device=u_e.device)
    with torch.enable_grad():
        g = tracker.g(i, tt, u_e)
        if not g.requires_grad:
            return tt
        x = u_e.detach().requires_grad_(True)
        ts = tt.clone().requires_grad_(True)
        gx = tracker.g(i, ts, x).reshape(())
        if gx.requires_grad:
            dg_du, dg_dt = torch.autograd.grad(gx, (x, ts), allow_unused=True)
        else:
            dg_du = dg_dt = None
    with torch.no_grad():
        c = torch.zeros((), dtype=u_e.dtype, device=u_e.device)
        if dg_dt is not None:
            c = c + dg_dt
        if dg_du is not None:
            c = c + (dg_du * rate(tt, u_e.detach())).sum()
    if float(c) == 0.0:
        raise ValueError(f"event {i} at t={t_e:.6g}: dg/dt + dg/du . f = 0 (the trajectory grazes g = 0), so the "
                         "event time has no derivative; run under torch.no_grad() or change the condition")
    return tt + (g.reshape(()) - g.detach().reshape(())) * (-1.0 / c)
