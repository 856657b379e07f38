"""Evaluation of field surrogates against the reference solver: one-step and accumulated
rollout errors (the MP-PDE metrics), error over time, long-rollout stability, and the
speed-up over the reference solver measured in the same run.

The accumulated error of a trajectory is the paper's ``sum_t sum_x (u - u_hat)^2 / n_x``
over the predicted times ``t >= warmup * time_window`` (the first ``warmup`` windows
are given), averaged over trajectories; with several channels and axes the inner sum
runs over channels and points and is divided by the number of points.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from .fielddata import FieldData


@dataclasses.dataclass
class EvalResult:
    """Errors of a surrogate on a data set.

    Attributes:
        accumulated: mean accumulated rollout error (paper metric).
        accumulated_per_sample: (N,) the same per trajectory.
        baseline_accumulated: the reference solver at the model's resolution against the
            same targets (MP-PDE's "WENO5" column), or None without a baseline.
        one_step: mean per-step error of teacher-forced predictions (every window from
            ground-truth inputs), or None when not computed.
        mse_per_time: (nt,) mean over trajectories of the per-step error of the rollout
            (zeros over the warm-up).
        baseline_per_time: (nt,) the same for the baseline, or None.
        finite: every predicted value is finite.
        max_abs_ratio: max |prediction| / max |target| (a blow-up shows as >> 1).
        seconds: wall time of the rollout of the whole set (batched), s.
        predictions: (N, nt, C, *S) the rollout (ground truth over the warm-up).
    """

    accumulated: float
    accumulated_per_sample: torch.Tensor
    baseline_accumulated: float | None
    one_step: float | None
    mse_per_time: torch.Tensor
    baseline_per_time: torch.Tensor | None
    finite: bool
    max_abs_ratio: float
    seconds: float
    predictions: torch.Tensor

    def summary(self) -> dict:
        return {"accumulated": self.accumulated, "baseline_accumulated": self.baseline_accumulated,
                "one_step": self.one_step, "finite": self.finite, "max_abs_ratio": self.max_abs_ratio,
                "seconds": self.seconds}


def step_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per (trajectory, time) error ``sum over channels and points of err^2 / points``:
    (N, T, C, *S) -> (N, T)."""
    points = math.prod(pred.shape[3:])
    return ((pred - target) ** 2).flatten(2).sum(-1) / points


@torch.inference_mode()
def rollout(model, u: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, time_window: int, warmup: int = 2,
            n_windows: int | None = None, dt: float | None = None, autocast=None) -> torch.Tensor:
    """Autoregressive rollout from the ``warmup``-th ground-truth window.

    Args:
        model: a field model.
        u: (B, >= warmup * tw, C, *S) trajectories (only the first ``warmup * tw`` states are read).
        t: (nt,) the recorded times of ``u`` (extended with spacing ``dt`` beyond them).
        cond: (B, P).
        time_window: the model's window.
        warmup: ground-truth windows; the model starts from window ``warmup - 1``.
        n_windows: windows to predict (default: fill ``t``).
        autocast: a lower-precision dtype (``torch.bfloat16``) for the model's matrix
            products (``torch.autocast``); the state carried from window to window stays
            in ``u``'s dtype (field models add a low-precision increment to it).

    Returns:
        (B, warmup * tw + n_windows * tw, C, *S): ground truth, then predictions.
    """
    tw = time_window
    nt = t.numel()
    if n_windows is None:
        n_windows = (nt - warmup * tw) // tw
    dt = float(t[1] - t[0]) if dt is None else dt
    out = [u[:, :warmup * tw]]
    inp = u[:, (warmup - 1) * tw:warmup * tw]
    for k in range(n_windows):
        last = warmup * tw + k * tw - 1
        t_last = t[last] if last < nt else t[-1] + (last - nt + 1) * dt
        with torch.autocast(u.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            inp = model(inp, t=t_last.expand(u.shape[0]), cond=cond)
        inp = inp.to(u.dtype)
        out.append(inp)
    return torch.cat(out, 1)


@torch.inference_mode()
def evaluate(model, data: FieldData, time_window: int, *, warmup: int = 2, batch_size: int = 32,
             one_step: bool = True, dtype=None, autocast=None) -> EvalResult:
    """Rollout and one-step errors of ``model`` on ``data`` (and of ``data.baseline``).

    Args:
        model: a field surrogate (``MPPDE``, ``FNO``, ``UNet``).
        data: test :class:`FieldData`.
        time_window: the model's window.
        warmup: ground-truth windows given first (2 in MP-PDE: the first 50 of 250 states).
        batch_size: trajectories per forward pass.
        one_step: also compute the teacher-forced one-step error.
        dtype: evaluation dtype (default the model's).
        autocast: lower-precision dtype for the rollout's matrix products (see :func:`rollout`).
    """
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    dtype = dtype or p.dtype
    dev = p.device
    tw, nt = time_window, data.nt
    n_win = (nt - warmup * tw) // tw
    end = warmup * tw + n_win * tw
    t = data.t.to(dev, dtype)
    preds, one = [], []
    seconds = 0.0
    for lo in range(0, data.n, batch_size):
        u = data.u[lo:lo + batch_size].to(dev, dtype)
        cond = data.cond[lo:lo + batch_size].to(dev, dtype)
        t0 = time.perf_counter()
        pr = rollout(model, u, t, cond, tw, warmup, autocast=autocast)
        seconds += time.perf_counter() - t0
        preds.append(pr.cpu())
        if one_step:
            errs = []
            for k in range(1, nt // tw):
                inp = u[:, (k - 1) * tw:k * tw]
                out = model(inp, t=t[k * tw - 1].expand(u.shape[0]), cond=cond)
                errs.append(step_error(out, u[:, k * tw:(k + 1) * tw]))
            one.append(torch.cat(errs, 1).mean(1).cpu())
    pred = torch.cat(preds)
    target = data.u[:, :end].to(pred)
    err = step_error(pred, target)
    err[:, :warmup * tw] = 0.0
    acc = err.sum(1)
    base_acc = base_curve = None
    if data.baseline is not None:
        b = step_error(data.baseline[:, :end].to(pred), target)
        b[:, :warmup * tw] = 0.0
        base_acc, base_curve = float(b.sum(1).mean()), b.mean(0)
    if was_training:
        model.train()
    finite = bool(torch.isfinite(pred).all())
    return EvalResult(
        accumulated=float(acc.mean()), accumulated_per_sample=acc, baseline_accumulated=base_acc,
        one_step=float(torch.cat(one).mean()) if one_step else None, mse_per_time=err.mean(0),
        baseline_per_time=base_curve, finite=finite,
        max_abs_ratio=float(pred.abs().max() / target.abs().max().clamp(min=1e-12)) if finite else math.inf,
        seconds=seconds, predictions=pred)


def time_it(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls of ``fn()`` (s)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
