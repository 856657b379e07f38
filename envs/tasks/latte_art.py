"""LatteArt: pour milk into coffee to draw a target pattern on the surface."""

from __future__ import annotations

import numpy as np
import torch

import diffsim as ds

from ..losses import soft_inside_box, splat
from ..task import Task, velocity_map
from .geometry import TABLE, box_outside_distance, container, interior

CUP = dict(lo=(0.30, TABLE, 0.30), hi=(0.70, TABLE + 0.225, 0.70), wall=0.05)
PITCHER = dict(lo=(0.22, TABLE + 0.325, 0.42), hi=(0.40, TABLE + 0.525, 0.58), wall=0.05)
GRID = 8  # top-view pattern resolution over the cup's inside
REACH_SCALE = 0.1  # m: the reach term is 1 when the milk is on average 10 cm from the cup
TARGET = np.array([0.55, 0.5])  # m: centre (x, z) of the target disc, before variation
TARGET_RANGE = 0.04  # m: the seeded shift of the target centre along x and z


class LatteArt(Task):
    """Pour milk into coffee so that the milk forms a target pattern (two fluids).

    Description:
        Coffee fills a cup on the table; a pitcher of milk is held above its
        left rim. Pouring places the milk; the task asks for the milk to gather
        in a target spot, seen from above (FluidLab's LatteArt, simplified).

    Action Space:
        ``Box(-1, 1, (3,))``: pitcher velocity along x and z (up to 0.6 m/s) and
        angular velocity about z (up to 8 rad/s; negative tilts towards +x).

    Observation Space:
        Pitcher pose, centroids and spreads of milk and coffee, 16 particles of each,
        then the target centre (x, z; m).

    Rewards:
        Decrease of the loss: the goal, the L1 distance between the top-view
        distribution of the milk inside the cup (an 8x8 histogram of the milk below
        the rim, normalised by all the milk) and the target pattern, a disc at
        ``target`` (x, z), in [0, 2]; plus the reach term, the milk's mean distance
        (m) to the cup's inside / 0.1 m, zero once all the milk is in the cup (it
        gives the pour a gradient while no milk has left the pitcher).

    Starting State:
        Both fluids at rest. The target centre is drawn uniformly within 4 cm of
        (0.55, 0.5) per episode from the seed.

    Episode End:
        Success: goal below 0.8. Truncation after ``horizon`` steps (default 80).

    Arguments:
        ``grid_res`` (32), ``horizon`` (80).

    Version History:
        v0: initial release.
        v1: the histogram counts milk below the cup's rim only (v0 counted milk still in
        the pitcher held over the cup), and the reach term: with v0 the loss was 1 and
        flat until milk left the pitcher (Adam and 270 CEM rollouts never poured;
        issue 11).
        v2: the observation ends with the target centre (v1 drew it per episode but did
        not show it, so a policy could not know where to pour).
    """

    name = "LatteArt"
    version = 2
    defaults = {"grid_res": 32, "horizon": 80}
    success_threshold = 0.8

    def build_scene(self):
        scene = ds.Scene(dim=3, walls="slip")
        lo, hi = interior(CUP["lo"], CUP["hi"], CUP["wall"])
        g = 0.01
        scene.add_particles(ds.Box(lo=tuple(lo + g), hi=(hi[0] - g, lo[1] + 0.06, hi[2] - g)),
                            ds.Fluid(bulk_modulus=1e4, viscosity=0.5, density=1e3),
                            name="coffee")
        plo, phi = interior(PITCHER["lo"], PITCHER["hi"], PITCHER["wall"])
        scene.add_particles(ds.Box(lo=tuple(plo + g), hi=(phi[0] - g, plo[1] + 0.08, phi[2] - g)),
                            ds.Fluid(bulk_modulus=1e4, viscosity=0.5, density=1e3), name="milk")
        scene.add_tool(container(**PITCHER), name="pitcher")
        scene.add_collider(container(**CUP), name="cup")
        return scene

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.6), (0, 2, 0.6), (0, 5, 8.0)])

    def initial_state(self, sim, rng):
        self.target = TARGET + rng.uniform(-TARGET_RANGE, TARGET_RANGE, size=2)
        return sim.reset()

    def observe(self, sim, state):
        target = torch.as_tensor(getattr(self, "target", TARGET), dtype=state.x.dtype,
                                 device=state.x.device)
        return torch.cat([super().observe(sim, state), target])

    def observation_bounds(self, sim):
        low, high = super().observation_bounds(sim)
        return (np.concatenate([low, TARGET - TARGET_RANGE]).astype(np.float32),
                np.concatenate([high, TARGET + TARGET_RANGE]).astype(np.float32))

    def _pattern(self, dtype):
        lo, hi = interior(CUP["lo"], CUP["hi"], CUP["wall"])
        c = (np.arange(GRID) + 0.5) / GRID
        gx = lo[0] + c * (hi[0] - lo[0])
        gz = lo[2] + c * (hi[2] - lo[2])
        target = getattr(self, "target", TARGET)
        d2 = (gx[:, None] - target[0]) ** 2 + (gz[None, :] - target[1]) ** 2
        p = np.exp(-d2 / (2 * 0.04 ** 2))
        return torch.as_tensor(p / p.sum(), dtype=dtype)

    def goal_loss(self, sim, state):
        lo, hi = interior(CUP["lo"], CUP["hi"], CUP["wall"])
        milk = state.x[sim.groups["milk"]]
        xz = milk[:, [0, 2]]
        # milk outside the cup counts as missing, not as border cells; milk above the
        # rim (still in the pitcher) as missing too
        inside = soft_inside_box(milk, lo, hi, width=0.005)
        hist = splat(xz, lo[[0, 2]], hi[[0, 2]], GRID, weights=inside) / milk.shape[0]
        return (hist - self._pattern(milk.dtype)).abs().sum()

    def loss(self, sim, state):
        lo, hi = interior(CUP["lo"], CUP["hi"], CUP["wall"])
        reach = box_outside_distance(state.x[sim.groups["milk"]], lo, hi).mean() / REACH_SCALE
        return self.goal_loss(sim, state) + reach
