"""Fourier neural operator (1D, 2D, 3D) for autoregressive field prediction.

Reference: Z. Li, N. Kovachki, K. Azizzadenesheli, B. Liu, K. Bhattacharya, A. Stuart,
A. Anandkumar, "Fourier Neural Operator for Parametric Partial Differential
Equations", ICLR 2021. With temporal bundling and the pushforward trick this is the
"FNO-PF" baseline of Brandstetter et al. (ICLR 2022).

Layout: the pointwise maps (lift, the per-layer 1x1 maps, the projection) run as
``F.linear`` on channels-last tensors (one GEMM each; ``Conv1d`` with a 1-wide kernel is
several times slower on CPU) while the weights keep the ``Conv`` shapes, so checkpoints
of either layout load. In 1D the hidden state is kept spatial-first, ``(n, B, C)``, and
the truncated Fourier transform and its inverse are matrix products with cached DFT
matrices (``(2 m, n)`` and ``(n, 2 m)``): for the benchmark's sizes (n <= a few hundred,
m = 16) this is as fast as ``rfft`` and needs no transposes around it. 2D and 3D use
``torch.fft``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import AbstractFieldModel, broadcast_channels, grid_channels, register_model


def dft_matrices(n: int, modes: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``modes`` coefficients of ``rfft(x, norm="ortho")`` and ``irfft(., n, norm="ortho")``
    as real matrices.

    Returns:
        ``fwd`` (2 modes, n): ``fwd @ x`` stacks the real parts over the imaginary parts;
        ``inv`` (n, 2 modes): ``inv @ [re; im]`` is ``irfft`` of the coefficients padded with
        zeros (the imaginary parts of the mean and Nyquist modes are dropped, as irfft does).
    """
    k = torch.arange(modes, dtype=torch.float64, device=device)
    x = torch.arange(n, dtype=torch.float64, device=device)
    ang = (2.0 * math.pi / n) * k[:, None] * x[None]
    cos, sin = torch.cos(ang), torch.sin(ang)
    fwd = torch.cat((cos, -sin), 0) / math.sqrt(n)
    weight = torch.full((modes,), 2.0, dtype=torch.float64, device=device)
    weight[0] = 1.0
    if n % 2 == 0 and modes > n // 2:
        weight[n // 2] = 1.0
    inv = torch.cat((weight[:, None] * cos, -weight[:, None] * sin), 0).t() / math.sqrt(n)
    return fwd.to(dtype), inv.contiguous().to(dtype)


class SpectralConv(nn.Module):
    """``x -> irfft(W(k) * rfft(x))`` keeping the lowest ``modes`` frequencies per axis.

    Args:
        in_channels, out_channels: channel counts.
        modes: kept frequencies per spatial axis (a tuple of length ``dim``); on every
            axis but the last both signs are kept.

    Weights are stored as real tensors (``(..., 2)``) so optimisers and DDP see real
    parameters. ``forward`` takes channels-first ``(B, C, *S)``; ``forward_1d`` takes
    a spatial-first ``(n, B, C)`` 1D state and uses DFT matrices.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, ...]):
        super().__init__()
        self.modes = tuple(int(m) for m in modes)
        self.dim = len(self.modes)
        self.corners = list(itertools.product((0, 1), repeat=self.dim - 1))
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(len(self.corners), in_channels, out_channels,
                                                      *self.modes, 2))
        self._dft: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        dims = tuple(range(-self.dim, 0))
        xf = torch.fft.rfftn(x, dim=dims, norm="ortho")
        B, O = x.shape[0], self.weight.shape[2]
        out = xf.new_zeros(B, O, *xf.shape[2:])
        for c, corner in enumerate(self.corners):
            idx = [slice(None), slice(None)]
            for ax, side in enumerate(corner):
                m = min(self.modes[ax], spatial[ax] // 2)
                idx.append(slice(0, m) if side == 0 else slice(spatial[ax] - m, spatial[ax]))
            idx.append(slice(0, min(self.modes[-1], xf.shape[-1])))
            block = xf[tuple(idx)]
            shape = block.shape[2:]
            w = self.weight[c][(slice(None), slice(None)) + tuple(slice(0, n) for n in shape)]
            w = w.reshape(w.shape[0], O, -1, 2)
            xb = block.reshape(B, block.shape[1], -1)
            # complex product as two real batched matmuls over the modes (complex bmm is slow on CPU)
            xc = torch.cat((xb.real, xb.imag), 1).permute(2, 0, 1).contiguous()  # (M, B, 2I)
            wc = torch.cat((torch.cat((w[..., 0], -w[..., 1]), 0), torch.cat((w[..., 1], w[..., 0]), 0)), 1)
            y = torch.bmm(xc, wc.permute(2, 0, 1).contiguous()).permute(1, 2, 0)  # (B, 2O, M)
            re, im = y[:, :O], y[:, O:]
            out[tuple(idx)] = torch.complex(re, im).reshape(B, O, *shape)
        return torch.fft.irfftn(out, s=spatial, dim=dims, norm="ortho")

    def forward_1d(self, h: torch.Tensor) -> torch.Tensor:
        """The same map on a spatial-first 1D state: (n, B, I) -> (n, B, O)."""
        if self.dim != 1:
            raise ValueError(f"forward_1d is for 1D spectral convolutions, this one has dim={self.dim}")
        n, B, I = h.shape
        m = min(self.modes[0], n // 2 + 1)
        key = (n, m, h.dtype, h.device)
        if key not in self._dft:
            with torch.inference_mode(False):  # normal tensors: usable by autograd after an inference call
                self._dft = {key: dft_matrices(n, m, h.dtype, h.device)}
        fwd, inv = self._dft[key]
        w = self.weight[0, :, :, :m]                       # (I, O, m, 2)
        wr, wi = w[..., 0].permute(2, 0, 1), w[..., 1].permute(2, 0, 1)  # (m, I, O)
        wc = torch.cat((torch.cat((wr, wi), 2), torch.cat((-wi, wr), 2)), 1)  # (m, 2I, 2O): [re im] -> [re im]
        O = wr.shape[-1]
        xf = (fwd @ h.reshape(n, B * I)).view(2, m, B, I).permute(1, 2, 0, 3).reshape(m, B, 2 * I)
        yf = torch.bmm(xf, wc).view(m, B, 2, O).permute(2, 0, 1, 3).reshape(2 * m, B * O)
        return (inv @ yf).view(n, B, O)


def _pointwise(conv: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A 1-wide ``ConvNd`` applied to a channels-last tensor as one GEMM."""
    return F.linear(h, conv.weight.flatten(1), conv.bias)


@register_model
class FNO(AbstractFieldModel):
    """FNO surrogate with temporal bundling: (B, tw, C, *S) -> (B, tw, C, *S).

    Args:
        dim: spatial dimension (1, 2 or 3).
        time_window: states in and out.
        channels: field channels (1 for the 1D benchmark; 3 for smoke: density, vx, vy).
        modes: Fourier modes kept per axis (int or tuple).
        width: hidden channels.
        layers: Fourier layers.
        n_cond: conditioning coefficients.
        dt, t_scale: state spacing and time normaliser (s).
        coords: append cell coordinates as input channels (breaks exact translation
            equivariance; off by default for periodic problems).
        padding: zero-padding cells on each side of every axis for non-periodic domains.
        residual: predict ``u[-1] + k dt d_k`` (see ``AbstractFieldModel``).
        lengths: domain length per axis (number or tuple); positions passed as ``pos`` are
            divided by it (``coords=True`` only).
    """

    accepts_positions = True

    def __init__(self, dim: int = 1, time_window: int = 25, channels: int = 1, modes=16, width: int = 64,
                 layers: int = 4, n_cond: int = 0, dt: float = 1.0, t_scale: float = 1.0, coords: bool = False,
                 padding: int = 0, residual: bool = True, lengths=1.0):
        super().__init__()
        config = dict(dim=dim, time_window=time_window, channels=channels, modes=modes, width=width,
                      layers=layers, n_cond=n_cond, dt=dt, t_scale=t_scale, coords=coords, padding=padding,
                      residual=residual, lengths=lengths)
        self._setup(time_window=time_window, channels=channels, dim=dim, n_cond=n_cond, dt=dt,
                    t_scale=t_scale, residual=residual, config=config)
        modes = (modes,) * dim if isinstance(modes, int) else tuple(modes)
        if len(modes) != dim or min(modes) < 1:
            raise ValueError(f"modes={modes!r} must be an int or {dim} ints >= 1")
        self.coords, self.padding = bool(coords), int(padding)
        lengths = (float(lengths),) * dim if isinstance(lengths, (int, float)) else tuple(map(float, lengths))
        self.register_buffer("lengths", torch.tensor(lengths), persistent=False)
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
        c_in = time_window * channels + 1 + n_cond + (dim if coords else 0)
        self.lift = conv(c_in, width, 1)
        self.spectral = nn.ModuleList(SpectralConv(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(conv(width, width, 1) for _ in range(layers))
        self.project = nn.Sequential(conv(width, 128, 1), nn.GELU(), conv(128, time_window * channels, 1))
        self.act = nn.GELU()

    def _inputs(self, u, t, cond, pos) -> torch.Tensor:
        """Input channels, channels-first: (B, tw C + 1 + n_cond [+ dim], *S)."""
        B, S = u.shape[0], u.shape[3:]
        x = [u.reshape(B, -1, *S), broadcast_channels(t, cond, S)]
        if self.coords:
            if pos is None:
                x.append(grid_channels(S, B, u.dtype, u.device))
            else:
                x.append(torch.movedim(pos / self.lengths.to(pos.dtype), -1, 1))
        elif pos is not None:
            raise ValueError("FNO(coords=False) does not use positions; build it with coords=True")
        return torch.cat(x, 1)

    def _predict(self, u, t, cond, pos):
        B, S = u.shape[0], u.shape[3:]
        x = self._inputs(u, t, cond, pos)
        p, last = self.padding, len(self.spectral) - 1
        if self.dim == 1:  # spatial-first (n, B, C): linear maps and DFT matrices, no transposes per layer
            h = _pointwise(self.lift, x.permute(2, 0, 1))
            if p:
                h = F.pad(h, (0, 0, 0, 0, 0, p))
            for k, (sc, pw) in enumerate(zip(self.spectral, self.pointwise)):
                h = sc.forward_1d(h) + _pointwise(pw, h)
                if k < last:
                    h = self.act(h)
            if p:
                h = h[:S[0]]
            out = _pointwise(self.project[2], self.project[1](_pointwise(self.project[0], h)))
            return out.permute(1, 2, 0).reshape(B, self.time_window, self.channels, *S)
        h = _pointwise(self.lift, torch.movedim(x, 1, -1))  # channels-last (B, *S, C)
        if p:
            h = F.pad(h, (0, 0) + (0, p) * len(S))
        for k, (sc, pw) in enumerate(zip(self.spectral, self.pointwise)):
            h = torch.movedim(sc(torch.movedim(h, -1, 1)), 1, -1) + _pointwise(pw, h)
            if k < last:
                h = self.act(h)
        if p:
            h = h[(slice(None),) + tuple(slice(0, n) for n in S)]
        out = _pointwise(self.project[2], self.project[1](_pointwise(self.project[0], h)))
        return torch.movedim(out, -1, 1).reshape(B, self.time_window, self.channels, *S)

    @staticmethod
    def n_params(model: nn.Module) -> int:
        return sum(math.prod(p.shape) for p in model.parameters())
