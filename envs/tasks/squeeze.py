"""Squeeze: grip a soft object with a two-finger gripper and lift it without dropping it."""

from __future__ import annotations

import diffsim as ds

from ..task import velocity_map
from .deformable import SolidTask, centroid
from .geometry import jitter_tools

SIZE = 0.05            # edge of the soft cube (m)
LIFT = 0.1             # target rise of its centre (m)
GAP = 0.001            # start gap between each finger and the cube (m)
PAD = 0.01             # half thickness of a finger pad (m): a squeeze deeper than this
                       # pushes cube nodes through the pad (node contact)


class Squeeze(SolidTask):
    """Grip a soft cube between two fingers and lift it 10 cm.

    Description:
        A 5 cm cube of soft rubber (stable neo-Hookean, E = 50 kPa, nu = 0.45, 600
        kg/m^3; ``ds.FEM`` tetrahedra) rests on the ground between two flat fingers
        (boxes 2 cm thick, friction 1.0) 1 mm from its sides. The agent squeezes the cube and lifts
        it by friction; too little grip lets it slip out.

    Action Space:
        ``Box(-1, 1, (6,))``: linear velocities (x, y, z) of the left and right finger,
        up to 0.3 m/s.

    Observation Space:
        Finger poses, the cube's centroid, spread and 16 node positions.

    Rewards:
        Decrease of the loss: the goal ``((y_target - y_centre) / 0.1 m)^2`` (1 at the
        start) plus the shaping term ``sum_fingers max(gap, 0)^2 / (1 cm)^2`` (``gap``:
        a finger's distance to the nearest cube node), which is zero while both fingers
        touch the cube and otherwise pulls them back to it: without it the goal is flat
        (zero gradient) whenever a finger is off the cube.

    Starting State:
        Cube at rest on the ground; fingers 1 mm from its sides, shifted by up to 0.5 mm
        (seeded).

    Episode End:
        Success: the goal term (without shaping) below 0.1 (the cube's centre rose
        about 7 cm). Truncation after ``horizon`` steps (default 30, 0.6 s).

    Arguments:
        ``grid_res`` (4 cells across the cube), ``horizon`` (30).

    Version History:
        v0: initial release.
        v1: Fingers 2 cm thick (was 1 cm) and 1 mm (was 1 cm) from the
        cube, speed 0.3
        m/s (was 0.2), horizon 30 (was 40), shaping term; success unchanged.
    """

    name = "Squeeze"
    version = 1
    defaults = {"grid_res": 4, "horizon": 30}
    success_threshold = 0.1
    #: the framework adds the contact-seeking term (zero while the tools touch)
    contacts = (("left", "cube"), ("right", "cube"))

    def build_scene(self):
        scene = ds.Scene(dim=3)
        scene.add_ground(height=0.0, friction=0.5)
        c = 0.5
        scene.add_soft_body(ds.Box(lo=(c - SIZE / 2, 0.0, c - SIZE / 2),
                                   hi=(c + SIZE / 2, SIZE, c + SIZE / 2)),
                            ds.StableNeoHookean(E=5e4, nu=0.45, density=600.0),
                            resolution=self.resolution(SIZE), name="cube", damping=(1.0, 0.002))
        for name, side in (("left", -1), ("right", 1)):
            x = c + side * (SIZE / 2 + GAP + PAD)
            scene.add_tool(ds.Box(lo=(x - PAD, 0.005, c - 0.03), hi=(x + PAD, 0.045, c + 0.03)),
                           friction=1.0, name=name)
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(t, k, 0.3) for t in range(2) for k in range(3)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.0005)

    def loss(self, sim, state):
        return ((SIZE / 2 + LIFT - centroid(sim, state, "cube")[1]) / 0.1) ** 2
