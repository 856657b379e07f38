"""Pinch: squeeze a plasticine block with two fingers into a target shape."""

from __future__ import annotations

import numpy as np

import diffsim as ds
from diffsim import solvers as dss

from ..recipe import Recipe
from ..task import velocity_map
from .geometry import TABLE, jitter_tools, table
from .shape_target import ShapeTargetTask

FLOOR = TABLE
BLOCK = dict(lo=(0.42, FLOOR, 0.42), hi=(0.58, FLOOR + 0.16, 0.58))
LOSS_BOX = ((0.3, FLOOR - 0.02, 0.3), (0.7, FLOOR + 0.3, 0.7))


def pinched(x: np.ndarray, depth: float = 0.35) -> np.ndarray:
    """Target: the block narrowed along x around mid-height by up to ``depth`` of its width,
    with the squeezed material pushed up (volume roughly kept)."""
    c = np.array([0.5, 0.0, 0.5])
    ymid = FLOOR + 0.08
    squeeze = depth * np.exp(-((x[:, 1] - ymid) / 0.035) ** 2)
    out = x.copy()
    out[:, 0] = c[0] + (x[:, 0] - c[0]) * (1 - squeeze)
    out[:, 1] = FLOOR + (x[:, 1] - FLOOR) * (1 + 0.5 * depth)
    return out


class Pinch(ShapeTargetTask):
    """Pinch a plasticine block between two fingers to match a target shape.

    Description:
        A plasticine block stands on the table with a spherical finger on each
        side. The agent moves both fingers to pinch the block's waist, matching
        a target shape (PlasticineLab's Pinch, with two fingers).

    Action Space:
        ``Box(-1, 1, (6,))``: linear velocities (x, y, z) of the two fingers
        (up to 0.3 m/s).

    Observation Space:
        Finger poses, the block's centroid, spread and 16 particles.

    Rewards:
        Decrease of the objective: the L1 distance between the normalised 12^3
        density fields of the block and of the target shape (0 = same shape, at most
        2), plus the contact-seeking term of both fingers (``contacts``: zero once
        each finger is within one grid cell of the dough).

    Starting State:
        Block at rest; fingers 5 cm from its sides, shifted by up to 1 cm (seeded).

    Episode End:
        Success: loss below 60% of its start value. Truncation after ``horizon``
        steps (default 60).

    Arguments:
        ``grid_res`` (40), ``horizon`` (60).

    Version History:
        v0: initial release.
        v1: the fingers declare the dough as their contact (``contacts``; scale 5 cm,
        tolerance 2.5 cm, one grid cell of the default grid): the objective is no
        longer flat while the fingers are away, so gradients steer them in; goal loss
        and success unchanged.
    """

    name = "Pinch"
    version = 1
    #: the framework adds the contact-seeking term (zero within one grid cell of the dough)
    contacts = (("finger0", "dough"), ("finger1", "dough"))
    contact_scale = 0.05
    contact_tolerance = 0.025
    recipe = Recipe(dss.Adam(lr=0.1), knots=8, basis="linear", budget_s=300.0, note=(
        "with the contact term the gradient steers the fingers in from the first "
        "iteration, so no sampling stage: Adam on 8 hat functions per action, 300 s "
        "(2-core CPU: 54 iterations, goal loss 0.330 -> 0.196, success < 0.198)"))
    loss_box = LOSS_BOX
    success_ratio = 0.6
    defaults = {"grid_res": 40, "horizon": 60}

    def build_scene(self):
        scene = ds.Scene(dim=3, walls="sticky")
        scene.add_collider(*table(), name="table")
        scene.add_particles(ds.Box(**BLOCK), ds.Plasticine(E=3e4, nu=0.3, yield_stress=2e3),
                            name="dough")
        for i, x in enumerate((0.33, 0.67)):
            scene.add_tool(ds.Sphere(center=(x, FLOOR + 0.08, 0.5), radius=0.04),
                           name=f"finger{i}", friction=1.0)
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(t, k, 0.3) for t in range(2) for k in range(3)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.01)

    def target_points(self, x):
        return pinched(x)
