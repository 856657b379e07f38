"""Tactile tasks on ``ds.Tactile``: observations include the sensor readings.

``TactileTask`` builds a ``ds.Tactile`` and observes, per sensor, the finger pose and the
reading vector (3-axis force, torque, marker displacements in pixels).
"""

from __future__ import annotations

import numpy as np
import torch

import diffsim as ds
from diffsim import solvers as dss

from ..recipe import Recipe
from ..task import Task, velocity_map

GEL = dict(E=3e5, nu=0.45, density=1000.0)
#: the gripper's gel: softer, so that a 0.2 mm squeeze holds a 51 g cube (about 0.5 N)
GRIPPER_GEL = dict(E=1e5, nu=0.4, density=1000.0)


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

    def render_options(self, sim) -> dict:
        """The sensors' tactile images beside the scene: what the agent's sensors see."""
        return {"tactile_image": True}

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
        Decrease of the loss ``((angle - target) / target)^2 + ((F_n - 0.5 N) / 0.5 N)^2``,
        plus the contact-seeking term of the pad and the cylinder (``contacts``: zero while
        the pad touches it, ``(gap / 1 mm)^2`` once it lifts off).

    Starting State:
        The dome touches the cylinder's top; finger shifted by up to 0.2 mm (seeded).

    Episode End:
        Success: loss below 0.05. Truncation after ``horizon`` steps (default 30, 0.6 s).

    Arguments:
        ``grid_res`` (cells across the pad, default 6, at most 10 are used), ``horizon`` (30),
        ``target_angle`` (0.2 rad).

    Version History:
        v0: initial release.
        v1: the pad declares the cylinder as its contact: with v0, a plan that lifted the
        pad off lost the force term's gradient (zero force, a flat loss), and Adam's
        iterates stayed there (issue 11); goal loss and success unchanged.
    """

    name = "SurfaceFollow"
    version = 1
    recipe = Recipe(dss.LBFGS(), knots=8, basis="linear", budget_s=300.0, note=(
        "L-BFGS on 8 hat functions: seeds 0-2 solved in 79, 69 and 42 s (goal 0.0003, "
        "0.0023, 0.0014 against 0.05); the default CEM-then-Adam recipe ended at 0.16-1.04 "
        "in 300 s, Adam alone did not improve on zero actions (fixed steps overshoot the "
        "1 mm contact term; the line search does not)"))
    defaults = {"grid_res": 6, "horizon": 30, "target_angle": 0.2}
    episode_options = ("horizon", "target_angle")
    success_threshold = 0.05
    radius = 0.05
    force = 0.5
    contacts = (("surface", "finger"),)
    contact_scale = 1e-3

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


class GripperTask(TactileTask):
    """A parallel gripper: two flat tactile sensors facing each other along ``x`` either side
    of one free rigid object (the tool ``"object"``, from ``object_shape``) that rests on
    the ground (``y = 0``, gravity along ``-y``). Subclasses give the object and the
    action map; the loss helpers measure the object and the sensors' normal forces.

    Observation: finger poses then the object's pose (positions (m), quaternions), the
    object's linear (m/s) and angular (rad/s) velocity, then per sensor the force (N) and
    torque (N m) on the pad and the displacements (px) of a coarse 3 x 3 marker grid.
    """

    sim_options = dict(dt=2e-3, substeps=1, newton_tol=1e-9, cg_tol=1e-9, max_newton=40,
                       friction_eps=1e-3)
    force_limit = 20.0
    half = 0.004          # half width of the object across the gripper (m)
    gap = 0.001           # each pad starts this far from the object (m)
    thickness = 0.003     # pad thickness (m)
    pad_size = 0.01       # pad side (m)
    density = 1e5         # kg/m^3: heavy, so that the explicit body update is stable
    friction = 1.0
    close_speed = 0.1     # m/s per finger at action 1
    max_cells = 8         # grid_res is capped here

    @property
    def finger_height(self) -> float:
        """Height (m) of the fingers' centres: the pads clear the ground by 1 mm."""
        return self.pad_size / 2 + 0.001

    def object_shape(self):
        raise NotImplementedError

    #: the framework adds ``sum_pads max(gap, 0)^2 / (1 mm)^2`` (``gap``: the object's
    #: signed distance at the pad's nearest node), zero while both pads touch the object
    contacts = (("object", "left"), ("object", "right"))
    contact_scale = 1e-3

    def build_scene(self):
        scene = ds.Scene(dim=3, gravity=(0.0, -9.8, 0.0))
        scene.add_tool(self.object_shape(), friction=self.friction, name="object")
        scene.add_ground(0.0, friction=0.5)
        return scene

    def sensors(self):
        res = self.pad_size / min(self.options["grid_res"], self.max_cells)
        pad = ds.TactilePad.flat((self.pad_size, self.pad_size, self.thickness), res)
        mat = ds.NeoHookean(**GRIPPER_GEL)
        xg = self.half + self.thickness + self.gap
        return [ds.TactileSensor(pad=pad, material=mat, markers=(3, 3), damping=(0.0, 5e-3),
                                 camera=ds.TactileCamera(resolution=(12, 10)),
                                 position=(sx * xg, self.finger_height, 0.0),
                                 normal=(-sx, 0.0, 0.0), name=name)
                for sx, name in ((-1, "left"), (1, "right"))]

    def build_sim(self):
        return ds.Tactile(self.build_scene(), sensors=self.sensors(),
                          free_objects={"object": self.density}, **self.sim_options)

    def finger_columns(self, sim) -> tuple[int, int]:
        """First action columns of the left and right fingers."""
        return tuple(6 * sim.tool_index(f"{s}_finger") for s in ("left", "right"))

    def initial_state(self, sim, rng):
        state = sim.reset()
        k = sim.tool_index("object")
        shift = rng.uniform(-2e-4, 2e-4, size=2)
        pos = state.tool_pos.clone()
        pos[k, 0] += float(shift[0])
        pos[k, 2] += float(shift[1])
        return state.replace(tool_pos=pos)

    def observe(self, sim, state):
        parts = [state.tool_pos.reshape(-1), state.tool_rot.reshape(-1),
                 state.body_vel.reshape(-1)]
        parts += [r.vector() for r in sim.read(state, image=False)]
        return torch.cat(parts)

    def observation_bounds(self, sim):
        low, high = super().observation_bounds(sim)
        K = len(sim.model.tools)
        vlim = np.tile(np.array([10.0] * 3 + [100.0] * 3, dtype=np.float32), len(sim.free))
        low = np.concatenate([low[:7 * K], -vlim, low[7 * K:]])
        high = np.concatenate([high[:7 * K], vlim, high[7 * K:]])
        return low, high

    def normal_forces(self, sim, state) -> torch.Tensor:
        """(2,) normal force (N, compressive > 0) on the left and right pads."""
        # the object pushes a pad back along -z of its finger frame
        return torch.stack([-r.force[2] for r in sim.read(state, image=False)])

    def crush(self, sim, state) -> torch.Tensor:
        """``sum_k (max(F_k - crush_force, 0) / crush_force)^2`` over the two sensors."""
        fc = float(self.options["crush_force"])
        return ((torch.relu(self.normal_forces(sim, state) - fc) / fc) ** 2).sum()
