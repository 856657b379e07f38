"""Separate: slide the top sheet off a stack of sheets."""

from __future__ import annotations

import diffsim as ds

from ..task import velocity_map
from .deformable import PAPER, ShellTask, centroid
from .geometry import jitter_tools

N_SHEETS = 3
SIZE = 0.14            # sheet edge (m)
SHIFT = 0.15           # the top sheet's target displacement along +x (m)


class Separate(ShellTask):
    """Slide the top sheet off a stack with one finger, leaving the others in place.

    Description:
        Three 14 x 14 cm sheets lie stacked on the ground. A spherical finger (friction
        1.0) touches the top sheet; dragging it moves the top sheet, which is kept apart
        from the sheet below by approximate self-contact (vertex repulsion of radius 0.6
        mesh edges, so the sheets rest that far apart; frictionless: see
        ``diffsim/fem/selfcontact.py``), while the lower sheets rest on the ground
        (friction 0.8). The agent must slide the top sheet 15 cm along +x without
        dragging the rest.

    Action Space:
        ``Box(-1, 1, (3,))``: linear velocity (x, y, z) of the finger, up to 0.3 m/s.

    Observation Space:
        Finger pose; per sheet its centroid, spread and 16 vertex positions.

    Rewards:
        Decrease of the loss ``((x_target - x_top) / 0.15)^2 + sum_lower |c - c0|^2 /
        (2 cm)^2`` (``x_top``: the top sheet's centre; ``c``: the lower sheets' centres).

    Starting State:
        Stack at rest; finger resting on the top sheet near its left edge, shifted by up
        to 3 mm (seeded).

    Episode End:
        Success: loss below 0.1. Truncation after ``horizon`` steps (default 40, 0.8 s).

    Arguments:
        ``grid_res`` (8 cells across a sheet), ``horizon`` (40).

    Version History:
        v0: initial release.
    """

    name = "Separate"
    defaults = {"grid_res": 8, "horizon": 40}
    success_threshold = 0.1

    @property
    def self_contact(self) -> float:
        """Vertex repulsion radius: 0.6 edges keeps a vertex from slipping between the
        vertices of the sheet below (the farthest point of an equilateral triangle from
        its vertices is 0.58 edges away)."""
        return 0.6 * self.resolution(SIZE)

    def build_scene(self):
        scene = ds.Scene(dim=3)
        scene.add_ground(height=0.0, friction=0.8)
        t, gap = PAPER["thickness"], self.self_contact
        for k in range(N_SHEETS):
            scene.add_shell(ds.Rectangle(center=(0.45, t + k * gap, 0.5), size=(SIZE, SIZE)),
                            ds.ShellMaterial(**PAPER), resolution=self.resolution(SIZE),
                            name=f"sheet{k}", damping=(0.5, 0.0))
        top = t + (N_SHEETS - 1) * gap
        scene.add_tool(ds.Sphere(center=(0.42, top + 0.0148, 0.5), radius=0.015), friction=1.0,
                       name="finger")
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, k, 0.3) for k in range(3)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.003)

    def loss(self, sim, state):
        if not hasattr(self, "_c0"):
            rest = sim.reset()
            self._c0 = [centroid(sim, rest, f"sheet{k}") for k in range(N_SHEETS)]
        top = centroid(sim, state, f"sheet{N_SHEETS - 1}")
        loss = ((self._c0[-1][0] + SHIFT - top[0]) / SHIFT) ** 2
        for k in range(N_SHEETS - 1):
            loss = loss + ((centroid(sim, state, f"sheet{k}") - self._c0[k]) ** 2).sum() / 0.02 ** 2
        return loss
