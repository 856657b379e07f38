"""2D Navier-Stokes smoke-buoyancy data (PDEArena-like) from diffsim's Taichi solver.

PDEArena's ``NavierStokes2D`` smoke data (Gupta & Brandstetter 2023) are PhiFlow runs on
a 32 x 32 box at 128 x 128 cells: smoke starts as ``|noise|``, the flow at rest, buoyancy
0.5 upwards, viscosity 0.01, 64 steps of 1.5 s of which the first 8 are dropped. The
defaults of :class:`SmokeData` are those; the solver is :class:`diffsim.eulerian.Smoke`
(semi-Lagrangian advection, explicit viscosity, multigrid-preconditioned CG projection).
Fields are stored cell-centred as channels ``(smoke, vx, vy)``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from .datasets import open_checked, read, settings_of
from .fielddata import FieldData
from .generate import DataSpec


@dataclasses.dataclass(frozen=True)
class SmokeData(DataSpec):
    """Smoke-buoyancy trajectories.

    Args:
        res: cells per axis (square grid).
        size: box side (m).
        dt: solver step = recorded step (s).
        nu: viscosity (m^2/s); buoyancy: upward buoyancy per unit smoke (m/s^2).
        nt: recorded states per trajectory; skip: initial steps dropped.
        noise_scale, noise_smoothness: the initial smoke noise (see ``noise_field``).
        cg_tol: pressure-solve tolerance (relative residual).
        precision: Taichi precision of the workers ("f32" or "f64").
    """

    res: int = 128
    size: float = 32.0
    dt: float = 1.5
    nu: float = 0.01
    buoyancy: float = 0.5
    nt: int = 56
    skip: int = 8
    noise_scale: float = 11.0
    noise_smoothness: float = 6.0
    cg_tol: float | None = None
    precision: str = "f32"

    kind: ClassVar[str] = "SmokeBuoyancy"
    default_chunk: ClassVar[int] = 16  # the solver compiles once per chunk

    def __post_init__(self):
        if self.res < 8 or self.nt < 2 or self.skip < 0:
            raise ValueError(f"need res >= 8, nt >= 2, skip >= 0; got {self.res}, {self.nt}, {self.skip}")

    def settings(self) -> dict:
        d = dataclasses.asdict(self)
        d["solver"] = "diffsim.eulerian.Smoke (semi-Lagrangian RK2, explicit viscosity, MGPCG projection)"
        d["channels"] = ["smoke", "vx", "vy"]
        return d

    def per_sample(self) -> dict:
        return {"u": ((self.nt, 3, self.res, self.res), "float32"), "cg_iters": ((), "i8")}

    def static(self) -> dict:
        x = (np.arange(self.res) + 0.5) * self.size / self.res
        return {"t": (np.arange(self.nt) + self.skip + 1) * self.dt, "x": x, "y": x}

    def simulate(self, indices: list[int], seed: int) -> dict:
        import diffsim as ds
        from diffsim import runtime
        from diffsim.eulerian import Smoke, noise_field

        if runtime.config() is None:
            ds.init(precision=self.precision)
        sim = Smoke(res=(self.res, self.res), size=self.size, dt=self.dt, nu=self.nu, buoyancy=(0.0, self.buoyancy),
                    cg_tol=self.cg_tol)
        us, iters = [], []
        try:
            for i in indices:
                rng = np.random.default_rng([int(seed), int(i)])
                smoke0 = np.abs(noise_field((self.res, self.res), self.size, rng, self.noise_scale,
                                            self.noise_smoothness))
                sim.stats["cg_iters_total"] = 0
                frames = sim.rollout(sim.reset(smoke0), self.skip + self.nt)
                us.append(frames[self.skip + 1:].astype(np.float32))
                iters.append(sim.stats["cg_iters_total"])
        finally:
            sim.close()
        return {"u": np.stack(us), "cg_iters": np.asarray(iters)}


def load_smoke(path, dtype=torch.float32, samples=None) -> FieldData:
    """Load smoke trajectories as :class:`FieldData` (channels smoke, vx, vy; not periodic)."""
    with open_checked(path, "SmokeBuoyancy") as f:
        st = settings_of(f)
        N = int(f.attrs["n_samples"])
        u = read(f, "u", path)
        want = (N, st["nt"], 3, st["res"], st["res"])
        if u.shape != want:
            raise ValueError(f"{path}: dataset 'u' has shape {u.shape}, but the settings say {want}")
        sel = slice(None) if samples is None else samples
        u = torch.as_tensor(u[sel], dtype=dtype)
        t = torch.as_tensor(read(f, "t", path), dtype=dtype)
        x = torch.as_tensor(read(f, "x", path), dtype=dtype)
    return FieldData(u=u, t=t, coords=(x, x.clone()), lengths=(st["size"], st["size"]), periodic=False,
                     cond=torch.zeros(u.shape[0], 0, dtype=dtype), name=f"smoke {st['res']}^2",
                     meta={"settings": st, "path": str(path)})
