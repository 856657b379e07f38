"""General-covariance data augmentation for neural PDE solvers on periodic 1D grids.

A random smooth, monotone, periodic change of coordinates ``xi(x) = x + sum_k a_k
L / (2 pi k) sin(2 pi k x / L + theta_k)`` (with ``sum |a_k| <= strength < 1``, so
``xi' > 0``) is drawn per training sample; the whole training span (inputs and
targets) is resampled at the warped nodes ``xi(x_i)`` and the model receives these
node coordinates as ``pos``. The physics is unchanged - the same solution, sampled on
another grid - so a model that uses coordinates (``MPPDE``, ``FNO(coords=True)``)
learns to be consistent across grids instead of memorising one.

Reference: V. Fanaskov, T. Yu, A. Rudikov, I. Oseledets, "General Covariance Data
Augmentation for Neural PDE Solvers", ICML 2023.
"""

from __future__ import annotations

import math

import torch


class GeneralCovariance:
    """Random smooth periodic grid warps (see the module docstring).

    Args:
        strength: bound on ``sum |a_k|`` (in [0, 1)); 0 disables the warp.
        modes: number of sine terms.
        probability: fraction of samples that are warped.
    """

    def __init__(self, strength: float = 0.3, modes: int = 3, probability: float = 1.0):
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"strength={strength} must be in [0, 1) to keep the map monotone")
        if modes < 1 or not 0.0 <= probability <= 1.0:
            raise ValueError(f"need modes >= 1 and probability in [0, 1], got {modes}, {probability}")
        self.strength, self.modes, self.probability = float(strength), int(modes), float(probability)

    def draw(self, gen: torch.Generator, batch: int) -> dict:
        a = torch.rand(batch, self.modes, generator=gen, dtype=torch.float64) * 2 - 1
        a = a / a.abs().sum(1, keepdim=True).clamp(min=1e-12) * self.strength
        a = a * torch.rand(batch, 1, generator=gen, dtype=torch.float64)  # random overall size
        keep = torch.rand(batch, 1, generator=gen, dtype=torch.float64) < self.probability
        theta = torch.rand(batch, self.modes, generator=gen, dtype=torch.float64) * 2 * math.pi
        return {"a": a * keep, "theta": theta}

    @staticmethod
    def warp(x: torch.Tensor, a: torch.Tensor, theta: torch.Tensor, L: float) -> torch.Tensor:
        """``xi(x)`` for nodes ``x`` (n,) and per-sample coefficients (B, K): (B, n)."""
        k = torch.arange(1, a.shape[1] + 1, dtype=x.dtype)
        arg = 2 * math.pi * k[None, :, None] * x[None, None] / L + theta[..., None]
        return x[None] + (a[..., None] * L / (2 * math.pi * k[None, :, None]) * torch.sin(arg)).sum(1)

    def apply(self, span: torch.Tensor, draw: dict, data) -> tuple[torch.Tensor, torch.Tensor]:
        """Resample ``span`` (B, T, C, n) at the warped nodes; returns ``(span, pos)``, pos (B, n)."""
        if data.dim != 1 or not data.periodic:
            raise ValueError("GeneralCovariance supports periodic 1D data")
        L = data.lengths[0]
        n = span.shape[-1]
        x = torch.arange(n, dtype=torch.float64) * (L / n)
        xi = self.warp(x, draw["a"], draw["theta"], L)  # (B, n)
        # periodic linear interpolation of the uniform samples at xi
        s = torch.remainder(xi, L) / (L / n)
        i0 = torch.floor(s).long() % n
        w = (s - torch.floor(s)).to(span.dtype)
        i1 = (i0 + 1) % n
        B = span.shape[0]
        g0 = torch.gather(span, -1, i0.view(B, 1, 1, n).expand(*span.shape[:3], n).to(span.device))
        g1 = torch.gather(span, -1, i1.view(B, 1, 1, n).expand(*span.shape[:3], n).to(span.device))
        wv = w.view(B, 1, 1, n).to(span.device)
        return g0 * (1 - wv) + g1 * wv, xi.to(span.dtype)
