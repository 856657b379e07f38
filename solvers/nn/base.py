"""``AbstractFieldModel``: the interface every autoregressive field surrogate shares.

A field model maps a window of ``time_window`` past states to the next
``time_window`` states (temporal bundling, Brandstetter et al. 2022):

    u_next = model(u, t=t, cond=cond)      # u, u_next: (B, time_window, C, *spatial)

``t`` (B,) is the time of the last input state (s), ``cond`` (B, n_cond) the PDE
coefficients (scaled to about [0, 1]), ``pos`` optional (B, *spatial, dim) node
coordinates (irregular or warped grids, see ``GeneralCovariance``). With
``residual=True`` the network's raw output ``d`` is turned into
``u_next[k] = u[-1] + (k + 1) dt * d[k]``, the MP-PDE decoder's form, so an untrained
model predicts "nothing changes".
"""

from __future__ import annotations

import abc

import torch
from torch import nn

MODELS: dict[str, type] = {}


def register_model(cls):
    """Class decorator: make the model buildable by name from a checkpoint."""
    MODELS[cls.__name__] = cls
    return cls


def build_model(name: str, config: dict) -> nn.Module:
    """``MODELS[name](**config)``, with a clear error for an unknown name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**config)


class AbstractFieldModel(nn.Module, abc.ABC):
    """Base of grid surrogates (abstract). Subclasses implement ``_predict``.

    Attributes (set by ``_setup``): ``time_window``, ``channels``, ``dim``, ``n_cond``,
    ``dt`` (spacing of the states, s), ``t_scale`` (time normaliser, s), ``residual``,
    ``config`` (constructor keyword arguments, for checkpoints).
    """

    accepts_positions = False

    def _setup(self, *, time_window: int, channels: int, dim: int, n_cond: int, dt: float,
               t_scale: float, residual: bool, config: dict):
        for name, v, lo in (("time_window", time_window, 1), ("channels", channels, 1), ("dim", dim, 1),
                            ("n_cond", n_cond, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}={v!r} must be an int >= {lo}")
        if not (dt > 0 and t_scale > 0):
            raise ValueError(f"dt={dt!r} and t_scale={t_scale!r} must be > 0")
        self.time_window, self.channels, self.dim, self.n_cond = time_window, channels, dim, n_cond
        self.dt, self.t_scale, self.residual = float(dt), float(t_scale), bool(residual)
        self.config = dict(config)

    def check_input(self, u: torch.Tensor, t, cond) -> tuple[torch.Tensor, torch.Tensor]:
        want = 3 + self.dim
        if u.dim() != want or u.shape[1] != self.time_window or u.shape[2] != self.channels:
            raise ValueError(f"{type(self).__name__} expects u of shape (B, time_window={self.time_window}, "
                             f"channels={self.channels}, *{self.dim} spatial), got {tuple(u.shape)}")
        B = u.shape[0]
        if t is None:
            t = torch.zeros(B, dtype=u.dtype, device=u.device)
        t = torch.as_tensor(t, dtype=u.dtype, device=u.device).expand(B) if torch.as_tensor(t).dim() == 0 \
            else torch.as_tensor(t, dtype=u.dtype, device=u.device)
        if self.n_cond:
            if cond is None or cond.shape != (B, self.n_cond):
                raise ValueError(f"{type(self).__name__} was built with n_cond={self.n_cond}: pass cond of shape "
                                 f"({B}, {self.n_cond}), got {None if cond is None else tuple(cond.shape)}")
            cond = cond.to(u.dtype)
        else:
            cond = u.new_zeros(B, 0)
        return t, cond

    def forward(self, u: torch.Tensor, t=None, cond: torch.Tensor | None = None,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        t, cond = self.check_input(u, t, cond)
        if pos is not None and not self.accepts_positions:
            raise ValueError(f"{type(self).__name__} does not take node positions (pos=...)")
        d = self._predict(u, t / self.t_scale, cond, pos)
        if not self.residual:
            return d
        steps = torch.arange(1, self.time_window + 1, dtype=u.dtype, device=u.device) * self.dt
        shape = (1, -1) + (1,) * (u.dim() - 2)
        return u[:, -1:] + steps.view(shape) * d

    @abc.abstractmethod
    def _predict(self, u: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, pos) -> torch.Tensor:
        """Raw output (B, time_window, C, *S) from the window, normalised time and cond."""


def broadcast_channels(t: torch.Tensor, cond: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """(B, 1 + P, *spatial) constant channels holding the time and the coefficients."""
    v = torch.cat((t[:, None], cond), 1)
    return v.view(*v.shape, *(1,) * len(spatial)).expand(*v.shape, *spatial)


def grid_channels(spatial: tuple[int, ...], batch: int, dtype, device) -> torch.Tensor:
    """(B, dim, *spatial) cell-centre coordinates in [0, 1)."""
    axes = [torch.arange(n, dtype=dtype, device=device) / n for n in spatial]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    return mesh[None].expand(batch, *mesh.shape)
