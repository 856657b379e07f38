"""Grasp: lift a free cube with a two-sensor parallel gripper, without slip or crushing."""

from __future__ import annotations

import numpy as np
import torch

import diffsim as ds

from .tactile import TactileTask


class Grasp(TactileTask):
    """Close a tactile parallel gripper on a free cube resting on the ground and lift it.

    Description:
        A free rigid cube (8 mm, 51 g: density 1e5 kg/m^3, heavy so that the explicit body
        update of ``ds.Tactile``'s free objects is stable at ``dt`` = 2 ms; friction 1.0)
        rests on the ground (``y = 0``, gravity along ``-y``). Two tactile sensors with flat
        10 x 10 x 3 mm pads (neo-Hookean gel, E = 0.1 MPa) face it along ``x``, each 1 mm
        away. The agent closes the fingers and lifts them; the cube moves only through the
        pads' contact forces (friction), gravity and the ground. Goal: raise the cube by
        ``target_lift`` while it does not slide in the fingers and the grip force stays
        below ``crush_force``.

    Action Space:
        ``Box(-1, 1, (2,))``: closing speed (both fingers towards the cube, up to 0.1 m/s
        each; negative opens) and vertical lift speed of both fingers (up to 0.2 m/s).

    Observation Space:
        Finger poses then the cube's pose (positions (m), quaternions), the cube's linear
        (m/s) and angular (rad/s) velocity, then per sensor the force (N) and torque (N m)
        on the pad and the displacements (px) of a coarse 3 x 3 marker grid.

    Rewards:
        Decrease of the loss (all at the current state, lift ``dy`` of the cube,
        ``df`` of the fingers, ``L`` = ``target_lift``, ``F_k`` normal force on sensor k):
        ``(max(L - dy, 0) / L)^2 + slip_weight ((dy - df) / L)^2 +
        sum_k (max(F_k - crush_force, 0) / crush_force)^2``.

    Starting State:
        Fingers open 1 mm either side of the cube; the cube on the ground, shifted along
        ``x`` and ``z`` by up to 0.2 mm (seeded).

    Episode End:
        Success: loss below 0.05. Truncation after ``horizon`` steps (default 30, 60 ms).

    Arguments:
        ``grid_res`` (cells across a pad, default 4: 2.5 mm cells, 50 nodes per pad; at most
        8 are used), ``horizon`` (30), ``target_lift`` (3 mm), ``crush_force`` (3 N),
        ``slip_weight`` (1.0).

    Version History:
        v0: initial release.
    """

    name = "Grasp"
    defaults = {"grid_res": 4, "horizon": 30, "target_lift": 0.003, "crush_force": 3.0,
                "slip_weight": 1.0}
    episode_options = ("horizon", "target_lift", "crush_force", "slip_weight")
    success_threshold = 0.05
    sim_options = dict(dt=2e-3, substeps=1, newton_tol=1e-9, cg_tol=1e-9, max_newton=40,
                       friction_eps=1e-3)
    force_limit = 20.0
    half = 0.004          # half size of the cube (m)
    gap = 0.001           # each pad starts this far from the cube (m)
    thickness = 0.003     # pad thickness (m)
    pad_size = 0.01       # pad side (m)
    density = 1e5         # kg/m^3
    friction = 1.0
    close_speed = 0.1     # m/s per finger at action 1
    lift_speed = 0.2      # m/s at action 1

    @property
    def finger_height(self) -> float:
        """Height (m) of the fingers' centres: the pads clear the ground by 1 mm."""
        return self.pad_size / 2 + 0.001

    def build_scene(self):
        scene = ds.Scene(dim=3, gravity=(0.0, -9.8, 0.0))
        h = self.half
        scene.add_tool(ds.Box(lo=(-h, 0.0, -h), hi=(h, 2 * h, h)), friction=self.friction,
                       name="cube")
        scene.add_ground(0.0, friction=0.5)
        return scene

    def sensors(self):
        res = self.pad_size / min(self.options["grid_res"], 8)
        pad = ds.TactilePad.flat((self.pad_size, self.pad_size, self.thickness), res)
        mat = ds.NeoHookean(E=1e5, nu=0.4, density=1000.0)
        xg = self.half + self.thickness + self.gap
        return [ds.TactileSensor(pad=pad, material=mat, markers=(3, 3), damping=(0.0, 5e-3),
                                 camera=ds.TactileCamera(resolution=(12, 10)),
                                 position=(sx * xg, self.finger_height, 0.0),
                                 normal=(-sx, 0.0, 0.0), name=name)
                for sx, name in ((-1, "left"), (1, "right"))]

    def build_sim(self):
        return ds.Tactile(self.build_scene(), sensors=self.sensors(),
                          free_objects={"cube": self.density}, **self.sim_options)

    def action_map(self, sim):
        A = torch.zeros(2, sim.action_dim, dtype=sim.dtype)
        left, right = (6 * sim.tool_index(f"{s}_finger") for s in ("left", "right"))
        A[0, left + 0] = self.close_speed        # the left finger closes along +x
        A[0, right + 0] = -self.close_speed
        A[1, left + 1] = self.lift_speed
        A[1, right + 1] = self.lift_speed
        return A

    def initial_state(self, sim, rng):
        state = sim.reset()
        k = sim.tool_index("cube")
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

    def terms(self, sim, state) -> dict:
        """The loss's parts at ``state``: lift ``dy`` and finger lift ``df`` (m), the
        sensors' normal forces (N), and the weighted shortfall, slip and crush terms."""
        L = float(self.options["target_lift"])
        fc = float(self.options["crush_force"])
        k = sim.tool_index("cube")
        fingers = [sim.tool_index(f"{s}_finger") for s in ("left", "right")]
        dy = state.tool_pos[k, 1] - self.half
        df = state.tool_pos[fingers, 1].mean() - self.finger_height
        # the force of the cube on a pad pushes it back along -z of its finger frame
        fn = torch.stack([-r.force[2] for r in sim.read(state, image=False)])
        return {"lift": dy, "finger_lift": df, "normal_force": fn,
                "shortfall": (torch.relu(L - dy) / L) ** 2,
                "slip": float(self.options["slip_weight"]) * ((dy - df) / L) ** 2,
                "crush": ((torch.relu(fn - fc) / fc) ** 2).sum()}

    def loss(self, sim, state):
        t = self.terms(sim, state)
        return t["shortfall"] + t["slip"] + t["crush"]
