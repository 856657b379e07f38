"""U-Net baseline for autoregressive field prediction (1D, 2D, 3D).

Conv blocks (two 3-wide convolutions with group norm and GELU, residual), strided-conv
downsampling, transposed-conv upsampling, skip connections; circular padding on
periodic domains. A small version of the "U-Net_mod" of PDEArena.

Reference: J. K. Gupta, J. Brandstetter, "Towards Multi-spatiotemporal-scale
Generalized PDE Modeling", TMLR 2023 (PDEArena); O. Ronneberger et al., MICCAI 2015.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import AbstractFieldModel, broadcast_channels, register_model


class _Block(nn.Module):
    def __init__(self, conv, c_in, c_out, pad_mode):
        super().__init__()
        self.c1 = conv(c_in, c_out, 3, padding=1, padding_mode=pad_mode)
        self.c2 = conv(c_out, c_out, 3, padding=1, padding_mode=pad_mode)
        self.n1 = nn.GroupNorm(min(8, c_out), c_out)
        self.n2 = nn.GroupNorm(min(8, c_out), c_out)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.GELU()

    def forward(self, x):
        h = self.act(self.n1(self.c1(x)))
        h = self.n2(self.c2(h))
        return self.act(h + self.skip(x))


@register_model
class UNet(AbstractFieldModel):
    """U-Net surrogate with temporal bundling: (B, tw, C, *S) -> (B, tw, C, *S).

    Args:
        dim: spatial dimension (1, 2, 3).
        time_window, channels, n_cond, dt, t_scale, residual: as for ``FNO``.
        hidden: channels at the finest level (doubled per level).
        levels: down/up-sampling levels; every spatial size must be divisible by
            ``2 ** levels``.
        periodic: circular padding (else zeros).
    """

    def __init__(self, dim: int = 1, time_window: int = 25, channels: int = 1, hidden: int = 32, levels: int = 3,
                 n_cond: int = 0, dt: float = 1.0, t_scale: float = 1.0, periodic: bool = True,
                 residual: bool = True):
        super().__init__()
        config = dict(dim=dim, time_window=time_window, channels=channels, hidden=hidden, levels=levels,
                      n_cond=n_cond, dt=dt, t_scale=t_scale, periodic=periodic, residual=residual)
        self._setup(time_window=time_window, channels=channels, dim=dim, n_cond=n_cond, dt=dt, t_scale=t_scale,
                    residual=residual, config=config)
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
        up = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dim]
        pad = "circular" if periodic else "zeros"
        self.levels = levels
        c_in = time_window * channels + 1 + n_cond
        widths = [hidden * 2 ** k for k in range(levels + 1)]
        self.inp = _Block(conv, c_in, widths[0], pad)
        self.down = nn.ModuleList(conv(widths[k], widths[k], 2, stride=2) for k in range(levels))
        self.enc = nn.ModuleList(_Block(conv, widths[k], widths[k + 1], pad) for k in range(levels))
        self.up = nn.ModuleList(up(widths[k + 1], widths[k], 2, stride=2) for k in reversed(range(levels)))
        self.dec = nn.ModuleList(_Block(conv, 2 * widths[k], widths[k], pad) for k in reversed(range(levels)))
        self.out = conv(widths[0], time_window * channels, 1)

    def _predict(self, u, t, cond, pos):
        B, S = u.shape[0], u.shape[3:]
        f = 2 ** self.levels
        if any(n % f for n in S):
            raise ValueError(f"UNet with levels={self.levels} needs spatial sizes divisible by {f}, got {tuple(S)}")
        h = self.inp(torch.cat((u.reshape(B, -1, *S), broadcast_channels(t, cond, S)), 1))
        skips = []
        for down, enc in zip(self.down, self.enc):
            skips.append(h)
            h = enc(down(h))
        for up, dec in zip(self.up, self.dec):
            h = dec(torch.cat((up(h), skips.pop()), 1))
        return self.out(h).view(B, self.time_window, self.channels, *S)
