"""Fold: fold a sheet in half to a crease (plastic bending)."""

from __future__ import annotations

import diffsim as ds

from ..task import gripper_map
from .deformable import GRIPPER_RECIPE, PAPER, TABLE_TOP, ShellTask, over_vertex
from .geometry import jitter_tools

EDGE = 0.5              # table edge (x); the sheet overhangs it by 2 cm
X0, X1 = 0.30, 0.52     # the sheet's extent along x
MID = 0.5 * (X0 + X1)   # the fold line
RADIUS = 0.01           # finger radius (m)
GAP = 0.001             # start gap between each finger and the sheet (m), as in Lift
SPEED = 0.25            # top speed (m/s) of the gripper
CLOSE = 0.03            # top closing speed (m/s) of each finger, as in Lift


class Fold(ShellTask):
    """Fold a sheet of paper in half, leaving a crease.

    Description:
        A 22 x 12 cm sheet (paper with rest-angle plasticity: bending beyond a
        curvature of 5 /m leaves a permanent crease) lies on a table, overhanging its
        edge by 2 cm. Two spherical fingers pinch the overhanging edge; the agent must
        carry that edge up and over onto the other half, folding the sheet at its
        middle line.

    Action Space:
        ``Box(-1, 1, (4,))``, a parallel gripper: the velocity (x, y, z) of both
        fingers together, up to 0.25 m/s, and the closing speed of each finger towards
        the other (negative: opening), up to 3 cm/s.

    Observation Space:
        Finger poses, the sheet's centroid, spread and 16 vertex positions.

    Rewards:
        Decrease of the loss: the goal, mean squared distance of the vertices to the
        folded target (the far half mirrored onto the near half, one sheet-and-a-bit
        above it) divided by (5 cm)^2, plus the shaping term ``sum_fingers max(gap, 0)^2
        / (1 cm)^2`` (``gap``: a finger's distance to the nearest sheet vertex), zero
        while both fingers touch the sheet.

    Starting State:
        Sheet flat at rest; fingers (1 cm radius) 1 mm above and below the overhang, over
        a vertex 1 cm in from the edge, shifted by up to 0.5 mm (seeded).

    Episode End:
        Success: loss below 0.1 (about 1.6 cm mean distance). Truncation after
        ``horizon`` steps (default 60, 1.2 s).

    Arguments:
        ``grid_res`` (10 cells across the sheet), ``horizon`` (60).

    Version History:
        v0: initial release.
        v1: fingers start 1 mm (was 2 cm) from the sheet over a vertex, seeded shift 0.5
        mm (was 5 mm), contact-seeking shaping term: with v0's start no random 8-step
        action sequence reached the sheet, so the loss and its gradient were flat
        (issue 11). Success unchanged.
        v2: a parallel gripper's actions (the pair's velocity and a closing speed)
        instead of each finger's velocity (6 -> 4 actions), as Lift-v2: a grip then
        holds while the pair moves. Scene, loss and success unchanged.
    """

    name = "Fold"
    version = 2
    defaults = {"grid_res": 10, "horizon": 60}
    success_threshold = 0.1
    #: the framework adds the contact-seeking term (zero while the tools touch)
    contacts = (("upper", "sheet"), ("lower", "sheet"))
    recipe = GRIPPER_RECIPE

    def build_scene(self):
        scene = ds.Scene(dim=3)
        scene.add_ground(height=0.0, friction=0.5)
        scene.add_collider(ds.Box(lo=(0.2, 0.0, 0.3), hi=(EDGE, TABLE_TOP, 0.7)), friction=0.5,
                           name="table")
        t = PAPER["thickness"]
        paper = ds.ShellMaterial(**PAPER, bending_plasticity=5.0)
        scene.add_shell(ds.Rectangle(center=(MID, TABLE_TOP + t, 0.5), size=(X1 - X0, 0.12)),
                        paper, resolution=self.resolution(X1 - X0), name="sheet",
                        damping=(0.5, 0.0))
        for name, dy in (("upper", t + RADIUS + GAP), ("lower", -(RADIUS + GAP))):
            scene.add_tool(ds.Sphere(center=(X1 - 0.01, TABLE_TOP + dy, 0.5), radius=RADIUS),
                           friction=1.0, name=name)
        return scene

    def action_map(self, sim):
        return gripper_map(sim, (0, 1), SPEED, CLOSE)    # closing: upper down, lower up

    def initial_state(self, sim, rng):
        start = over_vertex(sim, sim.reset(), (0, 1), "sheet", (X1 - 0.01, 0.0, 0.5))
        return jitter_tools(start, rng, 0.0005)

    def _target(self, sim):
        if not hasattr(self, "_target_x"):
            x = sim.rest_positions.clone()
            far = x[:, 0] > MID
            x[far, 0] = 2 * MID - x[far, 0]
            x[far, 1] = x[far, 1] + 4 * PAPER["thickness"] + 0.004
            self._target_x = x
        return self._target_x

    def loss(self, sim, state):
        return ((state.x - self._target(sim)) ** 2).sum(1).mean() / 0.05 ** 2
