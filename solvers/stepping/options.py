"""The step-size options of a solve (``StepOptions``) and the checks of ``solve``'s
arguments that the ODE and SDE front-ends share: clear errors naming the argument, the
value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._checks import positive, tolerance
from .controller import PIController, max_norm, max_norm_per_sample


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """Step-size options of one integration (see ``solve`` for their meaning)."""

    rtol: float | torch.Tensor = 1e-3
    atol: float | torch.Tensor = 1e-6
    dt: float | None = None
    adaptive: bool = True
    dtmin: float = 0.0
    dtmax: float = math.inf
    max_steps: int = 100_000
    controller: PIController = PIController()
    force_dtmin: bool = False
    norm: Callable | None = None  # norm(scaled error) -> 0-d tensor; None: RMS


def step_options(alg, adaptive_alg: bool, u0: torch.Tensor, *, rtol, atol, dt, adaptive, dtmin, dtmax, max_steps,
                 controller, force_dtmin: bool = False, norm=None) -> StepOptions:
    """The step-size options of ``solve`` (ODEs and SDEs), checked: clear errors naming
    the argument, the value and what is allowed."""
    rtol = tolerance("rtol", rtol, u0)
    atol = tolerance("atol", atol, u0)
    check_tolerances(rtol, atol)
    if not isinstance(adaptive, bool):
        raise TypeError(f"adaptive must be a bool, got {type(adaptive).__name__}")
    if dt is not None:
        dt = positive("dt", dt)
    if (not adaptive_alg or not adaptive) and dt is None:
        why = "is a fixed-step method" if not adaptive_alg else "runs with adaptive=False"
        raise ValueError(f"{type(alg).__name__} {why}: pass dt=... (the step size, > 0)")
    dtmin = positive("dtmin", dtmin, allow_zero=True)
    if not isinstance(force_dtmin, bool):
        raise TypeError(f"force_dtmin must be a bool, got {type(force_dtmin).__name__}")
    if force_dtmin and dtmin == 0.0:
        raise ValueError("force_dtmin=True needs dtmin > 0")
    dtmax = float(dtmax)
    if not dtmax > 0:
        raise ValueError(f"dtmax must be > 0, got {dtmax}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    if not isinstance(controller, PIController):
        raise TypeError(f"controller must be a PIController, got {type(controller).__name__}")
    return StepOptions(rtol=rtol, atol=atol, dt=dt, adaptive=adaptive and adaptive_alg, dtmin=dtmin, dtmax=dtmax,
                       max_steps=max_steps, controller=controller, force_dtmin=force_dtmin, norm=norm)


def error_norm(norm: Any, u0: torch.Tensor, per_sample: bool) -> Callable | None:
    """``solve``'s ``norm`` argument as a function of the scaled error (None: RMS), with
    a callable checked once on a tensor of ones."""
    if norm is None or norm == "rms":
        return None
    if norm == "max":
        return max_norm_per_sample if per_sample else max_norm
    if not callable(norm):
        raise ValueError(f"norm must be 'rms', 'max' or a callable norm(q) -> 0-d tensor, got {norm!r}")
    with torch.no_grad():
        out = norm(torch.ones_like(u0))
    want = (u0.shape[0],) if per_sample else ()
    if not isinstance(out, torch.Tensor) or out.shape != want or not out.is_floating_point():
        got = f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"norm(q) must return a real tensor of shape {want}"
                         f"{' (one norm per sample)' if per_sample else ''}; got {got}")
    return norm


def check_tolerances(rtol, atol) -> None:
    """Every entry needs ``rtol > 0`` or ``atol > 0``: with both zero its error scale is
    zero and no step would ever be accepted (the solve would run to max_steps)."""
    if isinstance(rtol, float) and isinstance(atol, float):
        if rtol == 0.0 and atol == 0.0:
            raise ValueError("rtol and atol are both 0; at least one must be > 0")
        return
    both_zero = (torch.as_tensor(rtol) == 0) & (torch.as_tensor(atol) == 0)
    if bool(both_zero.any()):
        idx = tuple(int(i) for i in both_zero.nonzero()[0]) if both_zero.dim() else ()
        raise ValueError(f"rtol and atol are both 0 at entry {idx} (tensor tolerances); every entry needs "
                         "rtol > 0 or atol > 0")


def check_tstops(tstops: Any, t0: float, t1: float) -> list[float]:
    """``tstops`` as floats strictly inside the span, in the direction of integration
    (the ends are landed on anyway)."""
    if tstops is None:
        return []
    if isinstance(tstops, torch.Tensor):
        tstops = tstops.detach().reshape(-1).cpu().tolist()
    elif isinstance(tstops, (int, float)):
        tstops = [tstops]
    elif not isinstance(tstops, Sequence) or isinstance(tstops, str):
        raise TypeError(f"tstops must be None, a number, a sequence or a 1-D tensor of times, got "
                        f"{type(tstops).__name__}")
    lo, hi = sorted((t0, t1))
    out = set()
    for t in tstops:
        t = float(t)
        if not (math.isfinite(t) and lo <= t <= hi):
            raise ValueError(f"tstops contains {t}, outside tspan [{lo}, {hi}]")
        if t not in (t0, t1):
            out.add(t)
    direction = -1.0 if t1 < t0 else 1.0
    return sorted(out, key=lambda x: direction * x)


def check_saveat(saveat: Any, t0: float, t1: float, like: torch.Tensor) -> list[float] | None:
    if saveat is None:
        return None
    if isinstance(saveat, torch.Tensor):
        saveat = saveat.detach().reshape(-1).cpu().tolist()
    elif isinstance(saveat, (int, float)):
        saveat = [saveat]
    elif not isinstance(saveat, Sequence) or isinstance(saveat, str):
        raise TypeError(f"saveat must be None, a number, a sequence or a 1-D tensor of times, got {type(saveat).__name__}")
    ts = [float(x) for x in saveat]
    if not ts:
        raise ValueError("saveat is empty; pass None to save every step")
    direction = 1.0 if t1 > t0 else -1.0
    lo, hi = sorted((t0, t1))
    for t in ts:
        if not (math.isfinite(t) and lo <= t <= hi):
            raise ValueError(f"saveat contains {t}, outside tspan [{lo}, {hi}]")
    for a, b in zip(ts, ts[1:]):
        if direction * (b - a) < 0:
            order = "increasing" if direction > 0 else "decreasing (t1 < t0)"
            raise ValueError(f"saveat must be {order}; got {a} before {b}")
    return ts
