"""Geometry shared by the task scenes: open containers and utensils as compounds of boxes.

Every scene puts its table top at ``TABLE`` (m): above the domain's wall layer
(three grid cells) for any grid of 20 cells or more, so tasks build at small
test resolutions too.
"""

from __future__ import annotations

import numpy as np
import torch

import diffsim as ds

TABLE = 0.15


def table(friction: float = 1.0):
    """A static table filling the domain below ``TABLE`` (a collider)."""
    return ds.Box(lo=(0.0, 0.0, 0.0), hi=(1.0, TABLE, 1.0)), friction


def container(lo, hi, wall: float) -> ds.Compound:
    """An open-top box (bottom + four walls) with outer corners ``lo``, ``hi`` (3D, y up)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    parts = [
        ds.Box(lo=(x0, y0, z0), hi=(x1, y0 + wall, z1)),          # bottom
        ds.Box(lo=(x0, y0, z0), hi=(x0 + wall, y1, z1)),          # -x wall
        ds.Box(lo=(x1 - wall, y0, z0), hi=(x1, y1, z1)),          # +x wall
        ds.Box(lo=(x0, y0, z0), hi=(x1, y1, z0 + wall)),          # -z wall
        ds.Box(lo=(x0, y0, z1 - wall), hi=(x1, y1, z1)),          # +z wall
    ]
    return ds.Compound(parts)


def interior(lo, hi, wall: float):
    """The inside (lo, hi) of a ``container`` with the same arguments."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return lo + np.array([wall, wall, wall]), hi - np.array([wall, 0.0, wall])


def water_basin(basin: dict, water_top: float, gap: float = 0.01) -> ds.Scene:
    """A scene (slip walls) with a ``container(**basin)`` collider filled with water.

    The water fills the container's inside, ``gap`` (m) from its walls, up to height
    ``water_top`` (m); it is the scene's first particle group, named ``"water"``.
    """
    scene = ds.Scene(dim=3, walls="slip")
    lo, hi = interior(basin["lo"], basin["hi"], basin["wall"])
    scene.add_particles(ds.Box(lo=tuple(lo + gap), hi=(hi[0] - gap, water_top, hi[2] - gap)),
                        ds.Fluid(bulk_modulus=1e4, viscosity=0.1, density=1e3), name="water")
    scene.add_collider(container(**basin), name="basin")
    return scene


def box_outside_distance(x: torch.Tensor, lo, hi) -> torch.Tensor:
    """(N,) distance (m) of points outside an axis-aligned box (0 inside); differentiable."""
    lo = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    d = torch.maximum(lo - x, x - hi).clamp(min=0.0)
    return torch.sqrt((d * d).sum(-1) + 1e-12) - 1e-6


def jitter_tools(state: ds.State, rng: np.random.Generator, scale: float) -> ds.State:
    """Shift every tool's start position by up to ``scale`` metres (episode variation)."""
    if scale <= 0 or state.tool_pos.numel() == 0:
        return state
    shift = torch.as_tensor(rng.uniform(-scale, scale, size=tuple(state.tool_pos.shape)),
                            dtype=state.tool_pos.dtype)
    return state.replace(tool_pos=state.tool_pos + shift)


def shift_bodies(state: ds.State, sim, rng: np.random.Generator, scale: float, groups,
                 axes=(0, 2), tools: bool = False) -> ds.State:
    """Shift particle bodies by one seeded offset of up to ``scale`` metres (episode
    variation).

    Args:
        state: a start state (``sim.reset()``); ``sim``: its simulator (for ``groups``).
        rng: the episode's generator; ``scale``: the largest shift (m) per axis.
        groups: names of the particle groups moved together by the one offset.
        axes: the axes (0 = x, 1 = y, 2 = z) the offset has components along.
        tools: whether every tool moves by the same offset (a cup with its water).
    """
    offset = np.zeros(sim.dim)
    offset[list(axes)] = rng.uniform(-scale, scale, size=len(axes))
    off = torch.as_tensor(offset, dtype=state.x.dtype, device=state.x.device)
    x = state.x.clone()
    for name in groups:
        x[sim.groups[name]] += off
    changes = {"x": x}
    if tools and state.tool_pos.numel():
        changes["tool_pos"] = state.tool_pos + off.to(state.tool_pos.dtype)
    return state.replace(**changes)
