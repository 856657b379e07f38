"""The static MPM model: everything fixed once a scene is built.

``MPMModel`` is what the kernels are compiled against (dimension, grid, time
step, particle groups and their constitutive models, tool geometry, walls).
The time-varying data lives in ``ds.State``; the differentiable parameters
(material parameters, tool friction) are passed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..materials import Material


@dataclass(frozen=True)
class GroupSpec:
    """A contiguous range ``[start, end)`` of particles of one material.

    Attributes:
        p_vol: volume each particle stands for (m^3, m^2 in 2D).
        p_mass: particle mass (kg).
    """

    name: str
    material: Material
    model: type
    start: int
    end: int
    p_vol: float
    p_mass: float

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, eq=False)
class ColliderGrid:
    """Static colliders baked on the grid nodes (signed distance, unit normal, friction)."""

    sdf: np.ndarray
    normal: np.ndarray
    friction: np.ndarray
    contact_width: float


@dataclass(frozen=True, eq=False)
class MPMModel:
    dim: int
    origin: tuple
    dx: float
    grid_shape: tuple
    dt: float
    substeps: int
    bound: int
    gravity: tuple
    groups: tuple
    tools: tuple
    colliders: ColliderGrid | None
    walls: str
    wall_friction: float
    contact_skin: float = 0.0

    @property
    def n_particles(self) -> int:
        return self.groups[-1].end if self.groups else 0

    def fingerprint(self) -> tuple:
        """A hashable value equal for models the kernels compile identically for (the
        collider arrays enter by content digest)."""
        import hashlib

        coll = None
        if self.colliders is not None:
            c = self.colliders
            h = hashlib.sha1()
            for a in (c.sdf, c.normal, c.friction):
                h.update(np.ascontiguousarray(a).tobytes())
            coll = (h.hexdigest(), c.contact_width)
        return (self.dim, self.origin, self.dx, self.grid_shape, self.dt, self.substeps,
                self.bound, self.gravity, self.groups, self.tools, coll, self.walls,
                self.wall_friction, self.contact_skin)

    @property
    def inv_dx(self) -> float:
        return 1.0 / self.dx

    @property
    def needs_svd(self) -> bool:
        return any(g.model.needs_svd for g in self.groups)

    @property
    def rot_dim(self) -> int:
        """Size of a tool's angular velocity: 1 in 2D, 3 in 3D."""
        return 1 if self.dim == 2 else 3

    @property
    def action_dim(self) -> int:
        return len(self.tools) * (self.dim + self.rot_dim)
