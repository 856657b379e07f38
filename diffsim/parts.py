"""Scene parts for the mesh-based simulators: soft bodies, thin shells and the ground.

``Scene.add_soft_body``, ``Scene.add_shell`` and ``Scene.add_ground`` mesh and check what the
user describes and store these frozen records; ``ds.FEM``, ``ds.Shell`` and ``ds.Tactile``
build their models from them. They sit below ``scene.py`` (which imports no simulator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .materials import Material


@dataclass(frozen=True, eq=False)
class SoftBody:
    """A meshed volumetric body of ``ds.FEM`` (see ``Scene.add_soft_body``)."""

    name: str
    points: np.ndarray
    cells: np.ndarray
    material: Material
    fixed: np.ndarray
    velocity: tuple
    alpha: float
    beta: float


@dataclass(frozen=True, eq=False)
class ShellBody:
    """A meshed thin shell of ``ds.Shell`` (see ``Scene.add_shell``)."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    hinges: np.ndarray
    material: Material
    fixed: np.ndarray
    velocity: tuple
    alpha: float
    beta: float


@dataclass(frozen=True)
class Ground:
    """The plane ``x[1] = height`` with Coulomb ``friction``."""

    height: float
    friction: float


def check_fixed(fixed, points: np.ndarray, what: str) -> np.ndarray:
    """Evaluate a ``fixed`` argument to a boolean mask over ``points``; check it pins some,
    not all."""
    n = len(points)
    if fixed is None:
        return np.zeros(n, dtype=bool)
    if callable(fixed):
        try:
            mask = fixed(points.copy())
        except Exception as e:
            raise ValueError(f"fixed: calling fixed(x) on the rest positions (shape {points.shape}"
                             f") of {what} failed: {e}") from e
    else:
        mask = fixed
    mask = np.asarray(mask)
    if mask.shape != (n,) or mask.dtype != bool:
        raise ValueError(f"fixed must give a boolean array of shape ({n},) for {what} (one entry "
                         f"per node), got shape {mask.shape} and dtype {mask.dtype}")
    lo, hi = points.min(0).round(4).tolist(), points.max(0).round(4).tolist()
    if not mask.any():
        raise ValueError(f"fixed pins no node of {what} (its nodes span {lo}..{hi}); check the "
                         "mask, or pass fixed=None for a free body")
    if mask.all():
        raise ValueError(f"fixed pins every node of {what}: nothing could move; pin fewer nodes")
    return mask.copy()
