"""Stir: mix two fluids with a stirring rod."""

from __future__ import annotations

import diffsim as ds

from ..losses import mixing_index
from ..task import Task, velocity_map
from .geometry import TABLE, container, interior, jitter_tools

BASIN = dict(lo=(0.25, TABLE, 0.25), hi=(0.75, TABLE + 0.275, 0.75), wall=0.05)
TOP = TABLE + 0.145


class Stir(Task):
    """Mix two fluids (left and right halves of a basin) with a stirring rod.

    Description:
        Two fluids of equal density fill the two halves of a basin. A vertical
        rod (a capsule) dips into them; the agent stirs until they are mixed
        (FluidLab's Mixing/Stirring).

    Action Space:
        ``Box(-1, 1, (2,))``: rod velocity along x and z (up to 0.8 m/s).

    Observation Space:
        Rod pose, per fluid centroid, spread and 16 particles.

    Rewards:
        Decrease of the loss: the mixing index, an occupancy-weighted normalised
        variance of the fraction of fluid A over a 6x6x6 grid of the basin
        (1 = separated, 0 = uniformly mixed).

    Starting State:
        Fluids at rest, separated along x; rod shifted by up to 2 cm (seeded).

    Episode End:
        Success: mixing index below 0.3. Truncation after ``horizon`` steps (100).

    Arguments:
        ``grid_res`` (32), ``horizon`` (100).

    Version History:
        v0: initial release.
    """

    name = "Stir"
    defaults = {"grid_res": 32, "horizon": 100}
    success_threshold = 0.3

    def build_scene(self):
        scene = ds.Scene(dim=3, walls="slip")
        lo, hi = interior(BASIN["lo"], BASIN["hi"], BASIN["wall"])
        g = 0.01
        mid = 0.5 * (lo[0] + hi[0])
        fluid = ds.Fluid(bulk_modulus=1e4, viscosity=0.2, density=1e3)
        scene.add_particles(ds.Box(lo=tuple(lo + g), hi=(mid, TOP, hi[2] - g)), fluid, name="a")
        scene.add_particles(ds.Box(lo=(mid, lo[1] + g, lo[2] + g), hi=(hi[0] - g, TOP, hi[2] - g)),
                            fluid, name="b")
        scene.add_tool(ds.Capsule(center=(0.5, TABLE + 0.225, 0.4), radius=0.03, length=0.25, axis=1),
                       name="rod")
        scene.add_collider(container(**BASIN), name="basin")
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.8), (0, 2, 0.8)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.02)

    def loss(self, sim, state):
        lo, hi = interior(BASIN["lo"], BASIN["hi"], BASIN["wall"])
        hi = hi.copy()
        hi[1] = TOP + 0.03
        return mixing_index(state.x[sim.groups["a"]], state.x[sim.groups["b"]], lo, hi, 6)
