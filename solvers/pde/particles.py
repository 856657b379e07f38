"""Particle trajectories from ``ds.MPM`` scenes, for learned particle simulators (GNS).

Each instance drops ``blocks`` square blocks of material (fluid, sand, elastic, or one
of each for ``"mixed"``) at random non-overlapping places of the unit box with random
initial velocities, and records the particle positions every ``substeps`` MPM
substeps. The simulator is built once per chunk (kernels compile per instance) and
instances only change the initial state.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from .datasets import open_checked, read, settings_of
from .generate import DataSpec

MATERIALS = ("fluid", "sand", "elastic")


def _material(name: str):
    import diffsim as ds

    if name == "fluid":
        return ds.Fluid(bulk_modulus=2e4, viscosity=0.0, density=1e3)
    if name == "sand":
        return ds.Sand(E=2e5, nu=0.3, friction_angle=35.0, density=1.6e3)
    if name == "elastic":
        return ds.NeoHookean(E=2e4, nu=0.3, density=1e3)
    raise ValueError(f"material={name!r}; allowed: {', '.join(MATERIALS)}, 'mixed'")


@dataclasses.dataclass(frozen=True)
class ParticleData(DataSpec):
    """MPM particle trajectories in the 2D unit box (slip walls, gravity -9.8 m/s^2).

    Args:
        material: "fluid", "sand", "elastic" or "mixed" (one block of each).
        blocks: blocks per scene (ignored for "mixed", which has 3).
        block: block side (m).
        grid_res: MPM grid cells per axis; ppc: particles per cell.
        dt: MPM substep (s); substeps: substeps per recorded frame.
        nt: recorded frames; max_speed: initial speed per block ~ U[0, max_speed] (m/s).
        radius: the connectivity radius suggested to GNS (m), stored as an attribute.
    """

    material: str = "fluid"
    blocks: int = 2
    block: float = 0.2
    grid_res: int = 64
    ppc: float = 2.0
    dt: float = 2e-4
    substeps: int = 25
    nt: int = 100
    max_speed: float = 1.0
    radius: float = 0.035

    kind: ClassVar[str] = "Particles"
    default_chunk: ClassVar[int] = 16  # the simulator compiles once per chunk

    def __post_init__(self):
        if self.material not in MATERIALS + ("mixed",):
            raise ValueError(f"material={self.material!r}; allowed: {', '.join(MATERIALS)}, 'mixed'")
        if not 0 < self.block < 0.45 or self.blocks < 1 or self.nt < 3:
            raise ValueError("need 0 < block < 0.45, blocks >= 1 and nt >= 3")

    @property
    def materials(self) -> tuple[str, ...]:
        return MATERIALS if self.material == "mixed" else (self.material,) * self.blocks

    def _scene(self, los):
        import diffsim as ds

        scene = ds.Scene(dim=2, walls="slip")
        for k, (name, lo) in enumerate(zip(self.materials, los)):
            scene.add_particles(ds.Box(lo=tuple(lo), hi=tuple(np.asarray(lo) + self.block)), _material(name),
                                name=f"b{k}", ppc=self.ppc)
        return scene

    def _template(self):
        n = len(self.materials)
        return [np.array([0.1 + k * (0.8 - self.block) / max(n - 1, 1), 0.1]) for k in range(n)]

    def counts(self) -> tuple[int, np.ndarray]:
        """(particle count, types (P,)) of the template scene (needs Taichi for nothing)."""
        import diffsim as ds

        scene = self._scene(self._template())
        sim = ds.MPM(scene, grid_res=self.grid_res, dt=self.dt, substeps=self.substeps)
        try:
            types = np.zeros(sim.n_particles, dtype=np.int64)
            for k, name in enumerate(self.materials):
                types[sim.groups[f"b{k}"]] = MATERIALS.index(name)
            return sim.n_particles, types
        finally:
            sim.close()

    def settings(self) -> dict:
        d = dataclasses.asdict(self)
        d["frame_dt"] = self.dt * self.substeps
        d["bounds"] = [[0.0, 1.0], [0.0, 1.0]]
        return d

    def per_sample(self) -> dict:
        n, _ = self._count_cached()
        return {"positions": ((self.nt, n, 2), "float32"), "lo": ((len(self.materials), 2), "f8"),
                "velocity": ((len(self.materials), 2), "f8")}

    def static(self) -> dict:
        _, types = self._count_cached()
        return {"types": types, "t": np.arange(self.nt) * self.dt * self.substeps}

    def _count_cached(self):
        key = "_counts"
        if key not in self.__dict__:
            object.__setattr__(self, key, self.counts())
        return self.__dict__[key]

    def _draw(self, rng):
        n = len(self.materials)
        margin = 0.06
        for _ in range(1000):
            los = rng.uniform(margin, 1.0 - margin - self.block, (n, 2))
            ok = all(np.any(np.abs(los[a] - los[b]) > self.block + 0.02) for a in range(n) for b in range(a))
            if ok:
                break
        else:  # pragma: no cover
            raise ValueError("could not place the blocks without overlap: use fewer or smaller blocks")
        ang = rng.uniform(0, 2 * np.pi, n)
        speed = rng.uniform(0, self.max_speed, n)
        return los, np.stack((np.cos(ang), np.sin(ang)), 1) * speed[:, None]

    def simulator(self):
        """The MPM simulator of the template scene (instances move its blocks)."""
        import diffsim as ds
        from diffsim import runtime

        if runtime.config() is None:
            ds.init(precision="f32")
        return ds.MPM(self._scene(self._template()), grid_res=self.grid_res, dt=self.dt, substeps=self.substeps)

    def rollouts(self, sim, indices: list[int], seed: int) -> dict:
        """Simulate instances ``indices`` with an existing :meth:`simulator`."""
        template = self._template()
        out = {"positions": [], "lo": [], "velocity": []}
        base = sim.reset()
        for i in indices:
            los, vel = self._draw(np.random.default_rng([int(seed), int(i)]))
            x, v = base.x.clone(), base.v.clone()
            for k in range(len(self.materials)):
                g = sim.groups[f"b{k}"]
                x[g] += torch.as_tensor(los[k] - template[k], dtype=x.dtype, device=x.device)
                v[g] = torch.as_tensor(vel[k], dtype=v.dtype, device=v.device)
            state = base.replace(x=x, v=v)
            T = self.nt - 1
            with torch.no_grad():
                states = sim.rollout(state, torch.zeros(T, 0), saveat=range(T + 1), segment=min(T, 32))
            out["positions"].append(torch.stack([s.x for s in states]).cpu().numpy().astype(np.float32))
            out["lo"].append(los)
            out["velocity"].append(vel)
        return {k: np.stack(v) for k, v in out.items()}

    def simulate(self, indices: list[int], seed: int) -> dict:
        sim = self.simulator()
        try:
            return self.rollouts(sim, indices, seed)
        finally:
            sim.close()


@dataclasses.dataclass
class ParticleSet:
    """Particle trajectories in memory.

    Attributes:
        positions: (N, T, P, dim) positions (m), frame spacing ``frame_dt`` (s).
        types: (P,) material index per particle (0 fluid, 1 sand, 2 elastic).
        bounds: ((lo, hi), ...) per axis; radius: suggested GNS connectivity radius.
    """

    positions: torch.Tensor
    types: torch.Tensor
    bounds: tuple
    radius: float
    frame_dt: float
    meta: dict

    @property
    def dim(self) -> int:
        return self.positions.shape[-1]

    @property
    def n_types(self) -> int:
        return len(MATERIALS)


def load_particles(path, dtype=torch.float32, samples=None) -> ParticleSet:
    """Load MPM particle trajectories written by ``generate(ParticleData(...), ...)``."""
    with open_checked(path, "Particles") as f:
        st = settings_of(f)
        N = int(f.attrs["n_samples"])
        x = read(f, "positions", path)
        types = read(f, "types", path)
        if x.shape[:2] != (N, st["nt"]) or x.shape[2] != types.shape[0]:
            raise ValueError(f"{path}: positions have shape {x.shape}, types {types.shape}: they do not match "
                             f"the settings (N={N}, nt={st['nt']})")
        sel = slice(None) if samples is None else samples
        pos = torch.as_tensor(x[sel], dtype=dtype)
    return ParticleSet(positions=pos, types=torch.as_tensor(types, dtype=torch.long),
                       bounds=tuple(tuple(b) for b in st["bounds"]), radius=float(st["radius"]),
                       frame_dt=float(st["frame_dt"]), meta={"settings": st, "path": str(path)})
