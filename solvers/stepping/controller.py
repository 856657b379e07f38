"""Step-size control: the PI controller, Hairer's initial step, the error norm."""

from __future__ import annotations

import dataclasses
import math

import torch


@dataclasses.dataclass(frozen=True)
class PIController:
    """Proportional–integral step-size controller.

    After a step with scaled error ratio ``r`` (``r <= 1`` accepts) and the ratio
    ``r_prev`` of the last accepted step, the next step is
    ``dt * clip(safety * r**(-beta1) * r_prev**beta2, factor_min, factor_max)``; after a
    rejection the step does not grow. ``beta2 = 0`` is the classic I controller.

    Args:
        beta1: proportional exponent; None gives ``1/k - 0.75*beta2`` with ``k`` the
            error estimator's order + 1 (Hairer's DOPRI5 choice).
        beta2: integral exponent (0.04 as in DOPRI5/DOP853).
        safety: safety factor, in (0, 1].
        factor_min, factor_max: bounds on the change of dt per step.

    Reference: K. Gustafsson, "Control theoretic techniques for stepsize selection in
    explicit Runge–Kutta methods", ACM TOMS 17(4) (1991); Hairer & Wanner, Solving ODEs
    II, Sec. IV.2.
    """

    beta1: float | None = None
    beta2: float = 0.04
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0

    def __post_init__(self):
        if not 0.0 < self.safety <= 1.0:
            raise ValueError(f"safety must be in (0, 1], got {self.safety}")
        if not 0.0 < self.factor_min < 1.0 < self.factor_max:
            raise ValueError(
                f"need 0 < factor_min < 1 < factor_max, got factor_min={self.factor_min}, "
                f"factor_max={self.factor_max}"
            )
        if self.beta2 < 0 or (self.beta1 is not None and self.beta1 <= 0):
            raise ValueError(f"need beta1 > 0 and beta2 >= 0, got beta1={self.beta1}, beta2={self.beta2}")

    def exponents(self, error_order: int) -> tuple[float, float]:
        k = error_order + 1
        b1 = self.beta1 if self.beta1 is not None else 1.0 / k - 0.75 * self.beta2
        return b1, self.beta2

    def factor(self, r: float, r_prev: float, b1: float, b2: float) -> float:
        """Multiplier of dt after an accepted step (``r <= 1``)."""
        if r == 0.0:
            return self.factor_max
        fac = self.safety * r ** (-b1) * r_prev**b2
        return min(self.factor_max, max(self.factor_min, fac))

    def reject_factor(self, r: float, b1: float) -> float:
        """Multiplier (< 1) of dt after a rejected step."""
        return min(1.0, max(self.factor_min, self.safety * r ** (-b1)))


def max_norm(q: torch.Tensor) -> torch.Tensor:
    """``max |q|`` over all entries (a norm for ``solve(..., norm=...)``)."""
    return q.abs().amax()


def max_norm_per_sample(q: torch.Tensor) -> torch.Tensor:
    """``max |q|`` over all but the leading (sample) dimension: shape ``(batch,)``."""
    return q.abs().flatten(1).amax(1)


def error_ratio(err, u0, u1, rtol, atol, *, numel: int | None = None, dims=None, norm=None) -> torch.Tensor:
    """Norm of the scaled error ``q = err / (atol + rtol*max(|u0|,|u1|))``: RMS
    ``sqrt(mean(q**2))`` unless ``norm`` is given (``norm(q)``, accepted if <= 1).

    The scale is detached: it normalizes, and its gradient would only reward large
    states when the norm is used as a regularizer.

    Args:
        numel: use only the first ``numel`` entries of the flattened tensors (the
            seminorm that leaves quadrature components out of error control).
        dims: reduce over these dims only (per-sample norms), else over everything.
        norm: ``norm(q)`` -> 0-d tensor (``(batch,)`` per sample); None is RMS.
    """
    if numel is not None:
        err, u0, u1 = err.reshape(-1)[:numel], u0.reshape(-1)[:numel], u1.reshape(-1)[:numel]
        if isinstance(rtol, torch.Tensor):
            rtol = rtol.reshape(-1)[:numel]
        if isinstance(atol, torch.Tensor):
            atol = atol.reshape(-1)[:numel]
    with torch.no_grad():
        scale = torch.maximum(u0.abs(), u1.abs()).mul_(rtol).add_(atol)
    q = err / scale
    if norm is not None:
        return norm(q)
    if dims is None:
        return torch.linalg.vector_norm(q) / math.sqrt(q.numel())
    n = 1
    for d in dims:
        n *= q.shape[d]
    return torch.linalg.vector_norm(q, dim=dims) / math.sqrt(n)


def initial_step(rhs, t0, u0, f0, direction: float, order: int, rtol, atol, *, dims=None, norm=None):
    """Hairer's starting step size (Solving ODEs I, Sec. II.4): one extra evaluation of f.

    ``norm`` is the error norm of the solve (None: RMS), applied to scaled vectors.
    Returns a positive float, or a ``(batch,)`` tensor when ``dims`` is given (per-sample).
    """
    user_norm = norm
    with torch.no_grad():
        scale = u0.abs().mul(rtol).add(atol)

        def norm(x):
            if user_norm is not None:
                return user_norm(x / scale)
            if dims is None:
                return torch.linalg.vector_norm(x / scale) / math.sqrt(x.numel())
            n = 1
            for d in dims:
                n *= x.shape[d]
            return torch.linalg.vector_norm(x / scale, dim=dims) / math.sqrt(n)

        d0, d1 = norm(u0), norm(f0)
        if dims is None:
            d0, d1 = float(d0), float(d1)
            h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
            u1 = u0 + (direction * h0) * f0
            f1 = rhs(t0 + direction * h0, u1)
            d2 = float(norm(f1 - f0)) / h0
            if not math.isfinite(d2):
                return h0 * 1e-3
            if max(d1, d2) <= 1e-15:
                h1 = max(1e-6, h0 * 1e-3)
            else:
                h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
            return min(100 * h0, h1)
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
        hv = h0.view((-1,) + (1,) * (u0.dim() - 1))
        u1 = u0 + direction * hv * f0
        f1 = rhs(t0 + direction * h0, u1)
        d2 = norm(f1 - f0) / h0
        dm = torch.maximum(d1, d2)
        h1 = torch.where(dm <= 1e-15, torch.clamp_min(h0 * 1e-3, 1e-6), (0.01 / dm.clamp_min(1e-300)) ** (1.0 / (order + 1)))
        h = torch.minimum(100 * h0, h1)
        return torch.where(torch.isfinite(h), h, h0 * 1e-3)
