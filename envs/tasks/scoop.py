"""Scoop: lift floating objects out of water with a spoon."""

from __future__ import annotations

import torch

import diffsim as ds

from ..task import Task, velocity_map
from .geometry import TABLE, shift_bodies, water_basin

BASIN = dict(lo=(0.25, TABLE, 0.25), hi=(0.75, TABLE + 0.25, 0.75), wall=0.05)
WATER_TOP = TABLE + 0.14
LIFT = 0.12  # how far above the water surface the objects must be raised


def spoon(center_x=0.5, y=TABLE + 0.06, center_z=0.5):
    """A shallow tray with a rim and a vertical handle (a compound of boxes)."""
    w, t, rim = 0.09, 0.025, 0.05
    x0, x1, z0, z1 = center_x - w, center_x + w, center_z - w, center_z + w
    parts = [
        ds.Box(lo=(x0, y, z0), hi=(x1, y + t, z1)),                       # tray
        ds.Box(lo=(x0, y, z0), hi=(x0 + t, y + rim, z1)),                 # rims
        ds.Box(lo=(x1 - t, y, z0), hi=(x1, y + rim, z1)),
        ds.Box(lo=(x0, y, z0), hi=(x1, y + rim, z0 + t)),
        ds.Box(lo=(x0, y, z1 - t), hi=(x1, y + rim, z1)),
        ds.Box(lo=(x1 - t, y, center_z - t / 2), hi=(x1, y + 0.45, center_z + t / 2)),  # handle
    ]
    return ds.Compound(parts, center_point=(center_x, y, center_z))


class Scoop(Task):
    """Lift floating objects out of the water with a spoon.

    Description:
        Two light elastic cubes float in a basin of water. A spoon (a tray with
        a rim and a handle) rests under the surface. The agent lifts the cubes
        out of the water (FluidLab's Scooping).

    Action Space:
        ``Box(-1, 1, (4,))``: spoon velocity along x, y, z (up to 0.5 m/s) and
        angular velocity about z (up to 4 rad/s).

    Observation Space:
        Spoon pose, per body (water, cube0, cube1) centroid, spread and 16 particles.

    Rewards:
        Decrease of the loss: the mean over cubes of how far (m) each cube's
        centroid is below ``LIFT`` = 12 cm above the water surface.

    Starting State:
        Water at rest; spoon below the cubes. Each cube is shifted along ``x`` and ``z``
        by up to 1 cm (seeded, independently).

    Episode End:
        Success: loss below 1 cm. Truncation after ``horizon`` steps (default 80).

    Arguments:
        ``grid_res`` (32), ``horizon`` (80).

    Version History:
        v0: initial release.
        v1: the start varies with the seed (each cube shifted by up to 1 cm along ``x``
        and ``z``); v0 started every episode the same.
    """

    name = "Scoop"
    version = 1
    defaults = {"grid_res": 32, "horizon": 80}
    success_threshold = 0.01

    def build_scene(self):
        scene = water_basin(BASIN, WATER_TOP)
        cube = ds.NeoHookean(E=2e4, nu=0.3, density=400.0)
        for i, x in enumerate((0.44, 0.56)):
            scene.add_particles(ds.Box(lo=(x - 0.035, WATER_TOP + 0.01, 0.465),
                                       hi=(x + 0.035, WATER_TOP + 0.06, 0.535)), cube,
                                name=f"cube{i}")
        scene.add_tool(spoon(), name="spoon", friction=0.5)
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.5), (0, 1, 0.5), (0, 2, 0.5), (0, 5, 4.0)])

    def initial_state(self, sim, rng):
        state = sim.reset()
        for i in range(2):
            state = shift_bodies(state, sim, rng, 0.01, [f"cube{i}"])
        return state

    def loss(self, sim, state):
        goal = WATER_TOP + LIFT
        lows = [torch.relu(goal - state.x[sim.groups[f"cube{i}"], 1].mean()) for i in range(2)]
        return torch.stack(lows).mean()
