"""``FieldData``: trajectories of fields on a grid, in memory, as the models consume them."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


@dataclasses.dataclass
class FieldData:
    """A set of field trajectories on a regular grid.

    Attributes:
        u: (N, nt, C, *S) the trajectories the surrogate learns (targets), time second.
        t: (nt,) recorded times (s); ``dt`` their spacing.
        coords: one 1-D tensor of cell-centre coordinates per spatial axis.
        lengths: domain length per spatial axis.
        periodic: whether the spatial axes are periodic.
        cond: (N, P) conditioning parameters (the PDE coefficients that vary across the
            data set), divided by ``cond_scale`` so they lie in [0, 1]; (N, 0) if none.
        cond_names: names of the columns of ``cond``.
        cond_scale: (P,) the divisors.
        baseline: (N, nt, C, *S) the reference solver at the same resolution (the
            "numerical baseline" of MP-PDE), or None.
        name: a label (``"E1 nx=100"``).
        extras: per-trajectory arrays (leading axis N) a model may need beyond ``cond``
            (the forcing parameters of the 1D families: ``A, omega, phi, l`` and the raw
            coefficients), used by ``NeuralPDE``.
        meta: the generating settings (HDF5 attributes).
    """

    u: torch.Tensor
    t: torch.Tensor
    coords: tuple
    lengths: tuple
    periodic: bool
    cond: torch.Tensor
    cond_names: tuple = ()
    cond_scale: torch.Tensor | None = None
    baseline: torch.Tensor | None = None
    name: str = ""
    extras: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.u.dim() < 4:
            raise ValueError(f"u must have shape (N, nt, C, *spatial), got {tuple(self.u.shape)}")
        if self.t.shape != (self.u.shape[1],):
            raise ValueError(f"t has shape {tuple(self.t.shape)}; u has nt={self.u.shape[1]}")
        if self.cond.shape[0] != self.u.shape[0]:
            raise ValueError(f"cond has {self.cond.shape[0]} rows for {self.u.shape[0]} trajectories")

    @property
    def n(self) -> int:
        return self.u.shape[0]

    @property
    def nt(self) -> int:
        return self.u.shape[1]

    @property
    def channels(self) -> int:
        return self.u.shape[2]

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(self.u.shape[3:])

    @property
    def dim(self) -> int:
        return self.u.dim() - 3

    @property
    def dt(self) -> float:
        return float(self.t[1] - self.t[0])

    @property
    def dx(self) -> tuple[float, ...]:
        return tuple(float(c[1] - c[0]) for c in self.coords)

    @property
    def n_cond(self) -> int:
        return self.cond.shape[1]

    def __len__(self) -> int:
        return self.n

    def subset(self, idx) -> FieldData:
        """The trajectories ``idx`` (a slice, index list or tensor)."""
        return dataclasses.replace(self, u=self.u[idx], cond=self.cond[idx],
                                   baseline=None if self.baseline is None else self.baseline[idx],
                                   extras={k: v[idx] for k, v in self.extras.items()})

    def to(self, dtype=None, device=None) -> FieldData:
        def mv(x):
            return None if x is None else x.to(dtype=dtype if x.is_floating_point() else None, device=device)
        return dataclasses.replace(self, u=mv(self.u), t=mv(self.t), cond=mv(self.cond),
                                   baseline=mv(self.baseline),
                                   coords=tuple(mv(c) for c in self.coords),
                                   cond_scale=mv(self.cond_scale),
                                   extras={k: mv(v) for k, v in self.extras.items()})

    def __repr__(self) -> str:
        return (f"FieldData({self.name!r}, u: {tuple(self.u.shape)}, dt={self.dt:.4g}, "
                f"cond={list(self.cond_names)}, baseline={'yes' if self.baseline is not None else 'no'})")
