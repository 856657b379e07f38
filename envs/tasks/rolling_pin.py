"""RollingPin: flatten dough to a target thickness with a rolling pin."""

from __future__ import annotations

import torch

import diffsim as ds
from diffsim import solvers as dss

from ..recipe import Recipe
from ..task import Task, velocity_map
from .geometry import TABLE, jitter_tools, table

FLOOR = TABLE
DOUGH = dict(lo=(0.38, FLOOR, 0.38), hi=(0.62, FLOOR + 0.1, 0.62))


class RollingPin(Task):
    """Flatten a dough block to a target thickness with a rolling pin.

    Description:
        A plasticine dough block sits on the table under a rolling pin (a
        capsule along z). The agent presses and rolls the pin to flatten the
        dough to ``thickness`` (PlasticineLab's RollingPin).

    Action Space:
        ``Box(-1, 1, (3,))``: pin velocity along x and y (up to 0.4 m/s) and its
        spin about z (up to 10 rad/s; with friction, spinning rolls the dough).

    Observation Space:
        Pin pose, the dough's centroid, spread and 16 particles.

    Rewards:
        Decrease of the loss: the mean height (m) of dough particles above the
        target thickness, ``mean(relu(y - floor - thickness))``.

    Starting State:
        Dough at rest; the pin 2 cm above it, shifted by up to 1 cm (seeded).

    Episode End:
        Success: loss below 3 mm. Truncation after ``horizon`` steps (default 80).

    Arguments:
        ``grid_res`` (40), ``horizon`` (80), ``thickness`` (0.05 m).

    Version History:
        v0: initial release.
    """

    name = "RollingPin"
    defaults = {"grid_res": 40, "horizon": 80, "thickness": 0.05}
    episode_options = ("horizon", "thickness")
    success_threshold = 0.003
    recipe = Recipe(dss.Adam(lr=0.1), knots=8, basis="linear", budget_s=300.0, note=(
        "the pin touches the dough from the start, so plain gradients work: Adam on 8 hat "
        "functions per action (2-core CPU, float32, seeds 0-2: solved after 23-24 "
        "iterations, 140-200 s)"))

    def build_scene(self):
        scene = ds.Scene(dim=3, walls="slip")
        scene.add_collider(*table(0.8), name="table")
        scene.add_particles(ds.Box(**DOUGH), ds.Plasticine(E=3e4, nu=0.3, yield_stress=1.5e3),
                            name="dough")
        scene.add_tool(ds.Capsule(center=(0.5, FLOOR + 0.15, 0.5), radius=0.03, length=0.3,
                                  axis=2), name="pin", friction=0.5)
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.4), (0, 1, 0.4), (0, 5, 10.0)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.01)

    def loss(self, sim, state):
        y = state.x[:, 1] - FLOOR
        return torch.relu(y - self.options["thickness"]).mean()
