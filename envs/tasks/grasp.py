"""Grasp: lift a free cube with a two-sensor parallel gripper, without slip or crushing."""

from __future__ import annotations

import torch

import diffsim as ds

from .tactile import GripperTask


class Grasp(GripperTask):
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
        Decrease of the loss (all at the current state; ``dy`` the cube's and ``df`` the
        fingers' rise since the start, ``L`` = ``target_lift``, ``F_k`` the normal force on
        sensor k): ``(max(L - dy, 0) / L)^2 + slip_weight ((dy - df) / L)^2 +
        sum_k (max(F_k - crush_force, 0) / crush_force)^2``. Slip is the relative vertical
        displacement since the episode start, so finger motion before contact counts too.
        Plus the contact-seeking term ``sum_pads max(gap, 0)^2 / (1 mm)^2`` (``gap``: the
        cube's signed distance at the pad's nearest node), zero while both pads touch it.

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
        v1: contact-seeking term for the pads (``Task.contacts``): with v0 the loss
        was flat, its gradient exactly zero, until a pad touched the cube
        (issue 11). Goal and success unchanged.
    """

    name = "Grasp"
    version = 1
    defaults = {"grid_res": 4, "horizon": 30, "target_lift": 0.003, "crush_force": 3.0,
                "slip_weight": 1.0}
    episode_options = ("horizon", "target_lift", "crush_force", "slip_weight")
    success_threshold = 0.05
    lift_speed = 0.2      # m/s at action 1

    def object_shape(self):
        h = self.half
        return ds.Box(lo=(-h, 0.0, -h), hi=(h, 2 * h, h))

    def action_map(self, sim):
        A = torch.zeros(2, sim.action_dim, dtype=sim.dtype)
        left, right = self.finger_columns(sim)
        A[0, left + 0] = self.close_speed        # the left finger closes along +x
        A[0, right + 0] = -self.close_speed
        A[1, left + 1] = self.lift_speed
        A[1, right + 1] = self.lift_speed
        return A

    def terms(self, sim, state) -> dict:
        """The loss's parts at ``state``: lift ``dy`` and finger lift ``df`` (m), the
        sensors' normal forces (N), and the weighted shortfall, slip and crush terms."""
        L = float(self.options["target_lift"])
        k = sim.tool_index("object")
        fingers = [sim.tool_index(f"{s}_finger") for s in ("left", "right")]
        dy = state.tool_pos[k, 1] - self.half
        df = state.tool_pos[fingers, 1].mean() - self.finger_height
        return {"lift": dy, "finger_lift": df, "normal_force": self.normal_forces(sim, state),
                "shortfall": (torch.relu(L - dy) / L) ** 2,
                "slip": float(self.options["slip_weight"]) * ((dy - df) / L) ** 2,
                "crush": self.crush(sim, state)}

    def loss(self, sim, state):
        t = self.terms(sim, state)
        return t["shortfall"] + t["slip"] + t["crush"]
