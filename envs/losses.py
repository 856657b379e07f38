"""Differentiable measures of particle sets used by the task losses (torch).

All functions take particle positions ``x`` of shape (N, d) in metres and are
differentiable with respect to them.
"""

from __future__ import annotations

import itertools

import torch


def splat(x: torch.Tensor, lo, hi, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Multilinear splatting of particles onto a regular grid (cell-centred).

    Args:
        x: (N, d) positions.
        lo, hi: (d,) corners of the gridded box (m).
        n: cells per axis.
        weights: (N,) per-particle mass (default 1 each).

    Returns:
        (n,)*d tensor of the summed weights per cell; differentiable in ``x``
        (the weights vary linearly between cell centres). Particles outside the
        box contribute to the nearest border cells.
    """
    d = x.shape[1]
    lo = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    u = ((x - lo) / (hi - lo) * n - 0.5).clamp(0, n - 1 - 1e-6)
    base = u.floor().long()
    frac = u - base
    w0 = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if weights is None else weights
    out = torch.zeros(n ** d, dtype=x.dtype, device=x.device)
    for corner in itertools.product((0, 1), repeat=d):
        c = torch.tensor(corner, device=x.device)
        idx = (base + c).clamp(max=n - 1)
        w = w0 * torch.where(c.bool(), frac, 1 - frac).prod(1)
        flat = torch.zeros_like(idx[:, 0])
        for k in range(d):
            flat = flat * n + idx[:, k]
        out = out.index_add(0, flat, w)
    return out.reshape((n,) * d)


def soft_inside_box(x: torch.Tensor, lo, hi, width: float) -> torch.Tensor:
    """(N,) soft indicator in [0, 1] of particles inside an axis-aligned box.

    A product of sigmoids with transition ``width`` (m) at each face.
    """
    lo = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    return (torch.sigmoid((x - lo) / width) * torch.sigmoid((hi - x) / width)).prod(1)


def density_loss(x: torch.Tensor, target: torch.Tensor, lo, hi, n: int) -> torch.Tensor:
    """Mean absolute difference of normalised splatted densities (PlasticineLab-style)."""
    a = splat(x, lo, hi, n)
    b = splat(target, lo, hi, n)
    return (a / a.sum() - b / b.sum()).abs().sum()


def mixing_index(xa: torch.Tensor, xb: torch.Tensor, lo, hi, n: int) -> torch.Tensor:
    """How unmixed two particle sets are: 0 when every occupied cell holds both equally.

    The occupancy-weighted mean of ``(c - c_mean)^2 / (c_mean (1 - c_mean))`` where
    ``c`` is the fraction of set A in a cell (a normalised variance of concentration).
    """
    ma, mb = splat(xa, lo, hi, n), splat(xb, lo, hi, n)
    total = ma + mb
    occ = total / total.sum()
    c = ma / (total + 1e-9)
    c_mean = xa.shape[0] / (xa.shape[0] + xb.shape[0])
    return (occ * (c - c_mean) ** 2).sum() / (c_mean * (1 - c_mean))
