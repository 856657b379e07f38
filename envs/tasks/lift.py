"""Lift: pinch a sheet of paper off a table with two fingers and lift it by friction."""

from __future__ import annotations

import diffsim as ds

from ..task import gripper_map
from .deformable import GRIPPER_RECIPE, PAPER, TABLE_TOP, ShellTask, centroid, over_vertex
from .geometry import jitter_tools

EDGE = 0.5          # the table ends at x = EDGE; the sheet overhangs it by 2 cm
LIFT = 0.1          # target rise of the sheet's centre (m)
RADIUS = 0.015      # finger radius (m)
GAP = 0.001         # start gap between each finger and the sheet (m)
SPEED = 0.3         # top speed (m/s) of the gripper
CLOSE = 0.03        # top closing speed (m/s) of each finger


class Lift(ShellTask):
    """Lift a sheet resting on a table with two fingers, by friction.

    Description:
        A 20 x 16 cm sheet of paper lies on a table, overhanging its edge by 2 cm. One
        spherical finger is above the overhang, one below it. The agent pinches the
        overhang between the fingers and lifts the sheet 10 cm, held only by friction
        (Coulomb, mu = 1) and the fingers' normal force (``ds.Shell`` penalty contact).

    Action Space:
        ``Box(-1, 1, (4,))``, a parallel gripper: the velocity (x, y, z) of both
        fingers together, up to 0.3 m/s, and the closing speed of each finger towards
        the other (negative: opening), up to 3 cm/s.

    Observation Space:
        Finger poses, the sheet's centroid, spread and 16 vertex positions.

    Rewards:
        Decrease of the loss: the goal ``((y_target - y_centre) / 0.1 m)^2`` (1 at the
        start, 0 when the sheet's centre is 10 cm above its start) plus the shaping term
        ``sum_fingers max(gap, 0)^2 / (1 cm)^2`` (``gap``: a finger's distance to the
        nearest sheet vertex), zero while both fingers touch the sheet: it keeps the
        loss from being flat when a finger is off the sheet.

    Starting State:
        Sheet at rest; fingers (1.5 cm radius) 1 mm above and below the overhang, over
        a vertex row, shifted by up to 0.5 mm (seeded).

    Episode End:
        Success: the goal term (without shaping) below 0.1 (the centre rose about 7
        cm). Truncation after ``horizon`` steps (default 40, 0.8 s).

    Arguments:
        ``grid_res`` (10 cells across the sheet), ``horizon`` (40).

    Version History:
        v0: initial release.
        v1: Fingers start 1 mm (was 1 cm) from the sheet, speed 0.3 m/s
        (was 0.2), shaping term; success unchanged.
        v2: a parallel gripper's actions (the pair's velocity and a closing speed)
        instead of each finger's velocity (6 -> 4 actions). With independent fingers a
        pinch that holds needs both fingers' vertical speeds to agree to a few mm/s for
        the whole lift, and the optimisers settled on pushing the overhang up from below
        (best 0.509, seed 0); the gripper holds its grip while it moves, as a robot's
        does. Scene, loss and success unchanged.
    """

    name = "Lift"
    version = 2
    defaults = {"grid_res": 10, "horizon": 40}
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
        scene.add_shell(ds.Rectangle(center=(EDGE - 0.08, TABLE_TOP + t, 0.5), size=(0.2, 0.16)),
                        ds.ShellMaterial(**PAPER), resolution=self.resolution(0.2), name="sheet",
                        damping=(0.5, 0.0))
        # the fingers pinch the overhang's middle, 1 cm in from the sheet's edge
        for name, dy in (("upper", t + RADIUS + GAP), ("lower", -(RADIUS + GAP))):
            scene.add_tool(ds.Sphere(center=(EDGE + 0.01, TABLE_TOP + dy, 0.5), radius=RADIUS),
                           friction=1.0, name=name)
        return scene

    def action_map(self, sim):
        return gripper_map(sim, (0, 1), SPEED, CLOSE)    # closing: upper down, lower up

    def initial_state(self, sim, rng):
        start = over_vertex(sim, sim.reset(), (0, 1), "sheet", (EDGE + 0.01, 0.0, 0.5))
        return jitter_tools(start, rng, 0.0005)

    def loss(self, sim, state):
        y0 = TABLE_TOP + PAPER["thickness"]
        return ((y0 + LIFT - centroid(sim, state, "sheet")[1]) / 0.1) ** 2
