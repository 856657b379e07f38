"""Repose: roll a free cylinder between two tactile pads by opposite shear."""

from __future__ import annotations

import torch

import diffsim as ds

from .tactile import GripperTask


class Repose(GripperTask):
    """Roll a free cylinder between the pads of a tactile gripper to a target angle.

    Description:
        A free rigid cylinder (radius 4 mm, length 8 mm, axis along ``z``, 40 g: density
        1e5 kg/m^3; friction 1.0) lies on the ground (``y = 0``, gravity along ``-y``)
        between two tactile sensors with flat 10 x 10 x 3 mm pads (neo-Hookean gel,
        E = 0.1 MPa) that face it along ``x``, each 1 mm away. The agent closes the fingers
        and moves them vertically in opposite directions (the left one down, the right one
        up: shear), which rolls the cylinder about its axis (``+z``). Goal: turn it by
        ``target_angle`` about ``z`` while its centre stays put and the grip force stays
        below ``crush_force``. Rolling without slip turns it by ``s / r`` for a relative
        finger travel ``s`` per finger.

    Action Space:
        ``Box(-1, 1, (2,))``: closing speed (both fingers towards the cylinder, up to
        0.1 m/s each; negative opens) and shear speed (left finger down and right finger up
        at up to 0.1 m/s each, turning the cylinder about ``+z``; negative reverses).

    Observation Space:
        Finger poses then the cylinder's pose (positions (m), quaternions), its linear (m/s)
        and angular (rad/s) velocity, then per sensor the force (N) and torque (N m) on the
        pad and the displacements (px) of a coarse 3 x 3 marker grid.

    Rewards:
        Decrease of the loss (at the current state; ``theta`` the rotation about ``z``,
        ``2 atan2(q_z, q_w)``, ``d`` the centre's offset in the ``x``-``y`` plane from the fingers'
        midpoint (``x``) and its start height (``y``), ``r`` the radius, ``F_k`` the normal force on sensor k):
        ``((theta - target) / target)^2 + drift_weight |d / r|^2 +
        sum_k (max(F_k - crush_force, 0) / crush_force)^2``, plus the contact-seeking term
        ``sum_pads max(gap, 0)^2 / (1 mm)^2`` (``gap``: the cylinder's signed distance at
        the pad's nearest node), zero while both pads touch it.

    Starting State:
        Fingers open 1 mm either side of the cylinder; the cylinder on the ground, shifted
        along ``x`` and ``z`` by up to 0.2 mm (seeded).

    Episode End:
        Success: loss below 0.05. Truncation after ``horizon`` steps (default 30, 60 ms).

    Arguments:
        ``grid_res`` (cells across a pad, default 4: 2.5 mm cells, 50 nodes per pad; at most
        8 are used), ``horizon`` (30), ``target_angle`` (0.2 rad), ``crush_force`` (3 N),
        ``drift_weight`` (1.0).

    Version History:
        v0: initial release.
        v1: contact-seeking term for the pads (``Task.contacts``): with v0 the loss
        was flat, its gradient exactly zero, until a pad touched the cylinder
        (issue 11). Goal and success unchanged.
    """

    name = "Repose"
    version = 1
    defaults = {"grid_res": 4, "horizon": 30, "target_angle": 0.2, "crush_force": 3.0,
                "drift_weight": 1.0}
    episode_options = ("horizon", "target_angle", "crush_force", "drift_weight")
    success_threshold = 0.05
    shear_speed = 0.1     # m/s per finger at action 1

    def object_shape(self):
        h = self.half
        return ds.Cylinder(center=(0.0, h, 0.0), radius=h, height=2 * h, axis=2)

    def action_map(self, sim):
        A = torch.zeros(2, sim.action_dim, dtype=sim.dtype)
        left, right = self.finger_columns(sim)
        A[0, left + 0] = self.close_speed        # the left finger closes along +x
        A[0, right + 0] = -self.close_speed
        # left finger (at -x) down, right one up: the cylinder turns about +z
        A[1, left + 1] = -self.shear_speed
        A[1, right + 1] = self.shear_speed
        return A

    def terms(self, sim, state) -> dict:
        """The loss's parts at ``state``: the angle about ``z`` (rad), the centre's
        offset ``d`` (m, see Rewards), the sensors' normal forces (N), and the angle, drift and crush
        terms."""
        target = float(self.options["target_angle"])
        k = sim.tool_index("object")
        q = state.tool_rot[k]
        theta = 2 * torch.atan2(q[3], q[0])
        fingers = [sim.tool_index(f"{s}_finger") for s in ("left", "right")]
        # in the plane of rolling: off the fingers' midpoint across, off the start height
        d = torch.stack([state.tool_pos[k, 0] - state.tool_pos[fingers, 0].mean(),
                         state.tool_pos[k, 1] - self.half])
        return {"angle": theta, "drift": d, "normal_force": self.normal_forces(sim, state),
                "angle_error": ((theta - target) / target) ** 2,
                "drift_penalty": float(self.options["drift_weight"]) * (d / self.half).pow(2).sum(),
                "crush": self.crush(sim, state)}

    def loss(self, sim, state):
        t = self.terms(sim, state)
        return t["angle_error"] + t["drift_penalty"] + t["crush"]
