"""Gather: move floating objects to a region of a basin using the water only."""

from __future__ import annotations

import torch

import diffsim as ds
from diffsim import solvers as dss

from ..recipe import Recipe
from ..task import Task, velocity_map
from .geometry import TABLE, jitter_tools, water_basin

BASIN = dict(lo=(0.2, TABLE, 0.2), hi=(0.8, TABLE + 0.2, 0.8), wall=0.05)
WATER_TOP = TABLE + 0.12
BALLS = ((0.42, 0.45), (0.5, 0.58), (0.58, 0.45))


class Gather(Task):
    """Move floating balls to a target region by pushing water, not the balls.

    Description:
        Three light elastic balls float in a shallow basin. A paddle dips into
        the water; the agent drives currents that carry the balls to a target
        region (FluidLab's Gathering). Touching the balls is penalised.

    Action Space:
        ``Box(-1, 1, (2,))``: paddle velocity along x and z (up to 0.6 m/s).

    Observation Space:
        Paddle pose, per body (water, ball0..2) centroid, spread and 16 particles.

    Rewards:
        Decrease of the loss (``d_i``: the horizontal distance (m) of ball ``i``'s
        centroid to the target centre): ``tau logsumexp(d / tau)`` (a smooth maximum,
        ``tau`` = 2 cm: the success test is on the farthest ball) ``+ 0.5 mean(d) + 0.5
        mean(relu(0.1 - distance(paddle, ball)))`` (the touch penalty). The goal loss is
        ``max(d)``.

    Starting State:
        Water and balls at rest; the paddle near the basin's left wall, shifted
        by up to 2 cm per episode (seeded).

    Episode End:
        Success: every ball within 10 cm of the target (horizontally): goal loss below
        0.1.
        Truncation after ``horizon`` steps (default 80).

    Arguments:
        ``grid_res`` (32), ``horizon`` (80), ``target`` ((0.65, 0.65), x and z).

    Version History:
        v0: initial release.
        v1: the loss leads with a smooth maximum of the balls' distances, the goal loss is
        the largest distance: v0's loss, their mean, was not the success test (Adam on 12
        hat functions, 600 s: mean 0.068 m, the farthest ball 0.112 m, not solved).
    """

    name = "Gather"
    version = 1
    recipe = Recipe(dss.LBFGS(), knots=12, basis="linear", budget_s=600.0, note=(
        "L-BFGS on 12 hat functions, 600 s: the farthest ball ends at 0.099, 0.096 and "
        "0.093 m on seeds 0-2 (0.1 needed). Adam on the same basis (lr 0.1) crawled: 0.105, "
        "0.101 and 0.095 m in 600 s, still descending by about 1% per 10 iterations"))
    success_threshold = 0.1
    #: the smooth maximum's temperature (m)
    tau = 0.02
    defaults = {"grid_res": 32, "horizon": 80, "target": (0.65, 0.65)}
    episode_options = ("horizon", "target")

    def build_scene(self):
        scene = water_basin(BASIN, WATER_TOP)
        ball = ds.NeoHookean(E=2e4, nu=0.3, density=400.0)
        for i, (x, z) in enumerate(BALLS):
            scene.add_particles(ds.Sphere(center=(x, WATER_TOP + 0.02, z), radius=0.035), ball,
                                name=f"ball{i}")
        scene.add_tool(ds.Box(lo=(0.28, TABLE + 0.06, 0.38), hi=(0.32, TABLE + 0.25, 0.62)),
                      name="paddle")
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.6), (0, 2, 0.6)])

    def initial_state(self, sim, rng):
        return jitter_tools(sim.reset(), rng, 0.02)

    def _centroids(self, sim, state):
        return torch.stack([state.x[sim.groups[f"ball{i}"]].mean(0) for i in range(len(BALLS))])

    def _distances(self, sim, state):
        """(3,) the balls' horizontal distances (m) to the target centre, and (3, 3) their
        centroids."""
        c = self._centroids(sim, state)
        target = torch.as_tensor(self.options["target"], dtype=c.dtype)
        return torch.sqrt(((c[:, [0, 2]] - target) ** 2).sum(1) + 1e-12), c

    def loss(self, sim, state):
        dist, c = self._distances(sim, state)
        paddle = state.tool_pos[0]
        touch = torch.relu(0.1 - torch.sqrt(((c - paddle) ** 2).sum(1) + 1e-12))
        # the smooth maximum is above max(dist), so the loss bounds the goal loss
        return (self.tau * torch.logsumexp(dist / self.tau, 0) + 0.5 * dist.mean()
                + 0.5 * touch.mean())

    def goal_loss(self, sim, state):
        """The farthest ball's distance (m) to the target centre."""
        return self._distances(sim, state)[0].max()
