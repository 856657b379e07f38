"""Flip: turn the page of an open book."""

from __future__ import annotations

import numpy as np

import diffsim as ds

from ..task import velocity_map
from .deformable import PAPER, ShellTask
from .geometry import jitter_tools

SPINE = 0.3            # the spine line x (the page's bound edge)
BOOK_TOP = 0.05
PAGE = 0.22            # page width (m): it overhangs the book's right cover by 2 cm


class Flip(ShellTask):
    """Turn the page of an open book with one finger.

    Description:
        An open book (a block 40 x 5 x 24 cm, spine at its middle) has a 22 x 16 cm page
        lying on its right half, bound along the spine (the spine's vertices are pinned:
        the page hinges about them) and overhanging the right cover by 2 cm. A spherical
        finger below the overhang lifts the page and turns it over the spine onto the
        left half.

    Action Space:
        ``Box(-1, 1, (3,))``: linear velocity (x, y, z) of the finger, up to 0.4 m/s.

    Observation Space:
        Finger pose, the page's centroid, spread and 16 vertex positions.

    Rewards:
        Decrease of the loss: mean squared distance of the page's vertices to the turned
        page (mirrored about the spine), divided by (10 cm)^2.

    Starting State:
        Page flat on the right half at rest; finger (2 cm radius) 5 mm below the overhang, shifted by
        up to 3 mm (seeded).

    Episode End:
        Success: loss below 0.1. Truncation after ``horizon`` steps (default 60, 1.2 s).

    Arguments:
        ``grid_res`` (10 cells across the page), ``horizon`` (60).

    Version History:
        v0: initial release.
    """

    name = "Flip"
    defaults = {"grid_res": 10, "horizon": 60}
    success_threshold = 0.1

    def build_scene(self):
        scene = ds.Scene(dim=3)
        scene.add_ground(height=0.0, friction=0.5)
        scene.add_collider(ds.Box(lo=(SPINE - 0.2, 0.0, 0.38), hi=(SPINE + 0.2, BOOK_TOP, 0.62)),
                           friction=0.3, name="book")
        t = PAPER["thickness"]
        scene.add_shell(ds.Rectangle(center=(SPINE + PAGE / 2, BOOK_TOP + t, 0.5),
                                     size=(PAGE, 0.16)),
                        ds.ShellMaterial(**PAPER), resolution=self.resolution(PAGE),
                        fixed=lambda x: np.abs(x[:, 0] - SPINE) < 1e-9, name="page",
                        damping=(0.5, 0.0))
        # the finger is wider than the mesh edge: node-based contact lets a smaller tool
        # pass between the vertices
        scene.add_tool(ds.Sphere(center=(SPINE + PAGE - 0.005, BOOK_TOP - 0.025, 0.5),
                                 radius=0.02), friction=0.5, name="finger")
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, k, 0.4) for k in range(3)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.003)

    def _target(self, sim):
        if not hasattr(self, "_target_x"):
            x = sim.rest_positions.clone()
            x[:, 0] = 2 * SPINE - x[:, 0]
            self._target_x = x
        return self._target_x

    def loss(self, sim, state):
        return ((state.x - self._target(sim)) ** 2).sum(1).mean() / 0.1 ** 2
