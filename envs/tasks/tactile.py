"""Tactile tasks on ``ds.Tactile``: observations include the sensor readings.

``TactileTask`` builds a ``ds.Tactile`` and observes, per sensor, the finger pose and the
reading vector (3-axis force, torque, marker displacements in pixels).
"""

from __future__ import annotations

import numpy as np
import torch

import diffsim as ds

from ..task import Task, velocity_map

GEL = dict(E=3e5, nu=0.45, density=1000.0)


class TactileTask(Task):
    """A task on ``ds.Tactile`` (implicit steps of ``dt``)."""

    sim_options = dict(dt=0.02, substeps=1, newton_tol=1e-6, cg_tol=1e-6, max_newton=40)
    #: observation bounds: force (N), torque (N m), marker displacement (px)
    force_limit: float = 50.0
    marker_limit: float = 50.0

    def sensors(self) -> list:
        raise NotImplementedError

    def build_sim(self):
        return ds.Tactile(self.build_scene(), sensors=self.sensors(), **self.sim_options)

    def observe(self, sim, state):
        parts = [state.tool_pos.reshape(-1), state.tool_rot.reshape(-1)]
        readings = sim.read(state, image=False)
        for r in readings if isinstance(readings, list) else [readings]:
            parts.append(r.vector())
        return torch.cat(parts)

    def observation_bounds(self, sim):
        K = len(sim.model.tools)
        low = [np.full(3 * K, -1.0), np.full(4 * K, -1.0)]
        high = [np.full(3 * K, 1.0), np.full(4 * K, 1.0)]
        for o in sim.optics:
            M = len(o.sensor.marker_xy)
            f, m = self.force_limit, self.marker_limit
            low.append(np.concatenate([np.full(6, -f), np.full(2 * M, -m)]))
            high.append(np.concatenate([np.full(6, f), np.full(2 * M, m)]))
        return np.concatenate(low).astype(np.float32), np.concatenate(high).astype(np.float32)


class SurfaceFollow(TactileTask):
    """Slide a dome-shaped tactile sensor along a curved surface, pressing with 0.5 N.

    Description:
        A fixed cylinder (radius 5 cm, axis along y, friction 0.3) lies under a tactile
        sensor with a dome pad (20 x 20 mm, 3 mm base + 2 mm dome, neo-Hookean gel
        E = 0.3 MPa) that touches its top. The agent moves the finger around the
        cylinder to the angle ``target_angle`` (rad, from the top, towards +x) while the
        normal force measured by the sensor stays at 0.5 N.

    Action Space:
        ``Box(-1, 1, (3,))``: finger velocity along x and z (up to 0.05 m/s) and angular
        velocity about y (up to 1 rad/s).

    Observation Space:
        Finger pose (position, quaternion), then the sensor's force (N), torque (N m)
        and marker displacements (px) (``TactileReading.vector()``).

    Rewards:
        Decrease of the loss ``((angle - target) / target)^2 + ((F_n - 0.5 N) / 0.5 N)^2``.

    Starting State:
        The dome touches the cylinder's top; finger shifted by up to 0.2 mm (seeded).

    Episode End:
        Success: loss below 0.05. Truncation after ``horizon`` steps (default 30, 0.6 s).

    Arguments:
        ``grid_res`` (cells across the pad, default 6, at most 10 are used), ``horizon`` (30),
        ``target_angle`` (0.2 rad).

    Version History:
        v0: initial release.
    """

    name = "SurfaceFollow"
    defaults = {"grid_res": 6, "horizon": 30, "target_angle": 0.2}
    episode_options = ("horizon", "target_angle")
    success_threshold = 0.05
    radius = 0.05
    force = 0.5

    def build_scene(self):
        scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
        scene.add_collider(ds.Cylinder(center=(0.0, 0.0, 0.0), radius=self.radius, height=0.1,
                                       axis=1), friction=0.3, name="surface")
        return scene

    def sensors(self):
        pad = ds.TactilePad.dome((0.02, 0.02, 0.003), dome_height=0.002,
                                 resolution=0.02 / min(self.options["grid_res"], 10))
        return [ds.TactileSensor(pad=pad, material=ds.NeoHookean(**GEL), markers=(5, 5),
                                 camera=ds.TactileCamera(resolution=(16, 12)),
                                 position=(0.0, 0.0, self.radius + 0.005),
                                 normal=(0.0, 0.0, -1.0), name="finger")]

    def action_map(self, sim):
        return velocity_map(sim, [(0, 0, 0.05), (0, 2, 0.05), (0, 4, 1.0)])

    def initial_state(self, sim, rng):
        state = sim.reset()
        shift = torch.as_tensor(rng.uniform(-2e-4, 2e-4, size=3), dtype=state.tool_pos.dtype)
        return state.replace(tool_pos=state.tool_pos + shift[None])

    def loss(self, sim, state):
        p = state.tool_pos[0]
        angle = torch.atan2(p[0], p[2])
        fn = -sim.read(state, image=False).force[2]
        target = float(self.options["target_angle"])
        return ((angle - target) / target) ** 2 + ((fn - self.force) / self.force) ** 2
