"""Carve: cut a notch into a plasticine block with a knife."""

from __future__ import annotations

import numpy as np

import diffsim as ds

from ..task import velocity_map
from .geometry import TABLE, jitter_tools, table
from .shape_target import ShapeTargetTask

FLOOR = TABLE
BLOCK = dict(lo=(0.38, FLOOR, 0.42), hi=(0.62, FLOOR + 0.14, 0.58))
LOSS_BOX = ((0.25, FLOOR - 0.02, 0.3), (0.75, FLOOR + 0.25, 0.7))


def notched(x: np.ndarray, width: float = 0.05, depth: float = 0.07) -> np.ndarray:
    """Target: the block with a V notch cut across its top (along z)."""
    top = BLOCK["hi"][1]
    cut = top - x[:, 1] < depth * (1 - np.abs(x[:, 0] - 0.5) / width)
    return x[~cut]


class Carve(ShapeTargetTask):
    """Cut a V-shaped notch into a plasticine block with a knife.

    Description:
        A plasticine block lies on the table with a knife (a thin blade) above
        it. The agent moves and tilts the knife to carve a notch across the top
        (PlasticineLab-style shaping).

    Action Space:
        ``Box(-1, 1, (3,))``: knife velocity along x and y (up to 0.3 m/s) and
        angular velocity about z (up to 3 rad/s).

    Observation Space:
        Knife pose, the block's centroid, spread and 16 particles.

    Rewards:
        Decrease of the loss: L1 distance between the normalised 12^3 density
        fields of the block and of the notched target.

    Starting State:
        Block at rest; knife 3 cm above its centre, shifted by up to 1 cm (seeded).

    Episode End:
        Success: loss below 70% of its start value. Truncation after
        ``horizon`` steps (default 60).

    Arguments:
        ``grid_res`` (40), ``horizon`` (60).

    Version History:
        v0: initial release.
    """

    name = "Carve"
    loss_box = LOSS_BOX
    success_ratio = 0.7
    defaults = {"grid_res": 40, "horizon": 60}

    def build_scene(self):
        scene = ds.Scene(dim=3, walls="sticky")
        scene.add_collider(*table(), name="table")
        scene.add_particles(ds.Box(**BLOCK), ds.Plasticine(E=3e4, nu=0.3, yield_stress=1.5e3),
                            name="block")
        top = BLOCK["hi"][1]
        scene.add_tool(ds.Box(lo=(0.49, top + 0.03, 0.36), hi=(0.51, top + 0.2, 0.64)),
                       name="knife", friction=0.1)
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.3), (0, 1, 0.3), (0, 5, 3.0)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.01)

    def target_points(self, x):
        return notched(x)
