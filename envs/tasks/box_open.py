"""BoxOpen: swing open a hinged lid by friction with one tactile finger."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

import diffsim as ds

from ..recipe import default_recipe
from .tactile import GRIPPER_GEL, TactileTask


class BoxOpen(TactileTask):
    """Open the hinged lid of a box with one tactile finger, by friction on its front face.

    Description:
        A box (a static collider, 18 x 10 x 12 mm) has a lid (a free rigid box, 20 mm deep
        along ``x``, 5 mm thick, 12 mm wide, 60 g: density 5e4 kg/m^3, heavy so that the
        explicit body update of ``ds.Tactile``'s free objects is stable; friction 1.0)
        hinged to the world at its back bottom edge (``ds.Hinge``: anchor ``(0, 10 mm, 0)``,
        axis ``+z``, limits 0, where it rests on the box, and 180 deg, where it would meet the
        box's back; gravity along ``-y``).
        The lid overhangs the box by 2 mm at the front. A tactile sensor with a flat
        10 x 10 x 3 mm pad (neo-Hookean gel, E = 0.1 MPa) faces the lid's front face along
        ``-x``, 0.5 mm away. The agent presses the pad on the front face and moves it up
        and around the hinge: the lid turns only through the pad's contact forces (friction
        lifts the front), gravity and the hinge. Goal: open it to ``target_angle`` while
        the pad still presses on it.

    Action Space:
        ``Box(-1, 1, (3,))``: finger velocity along ``-x`` (towards the box, up to
        0.25 m/s) and ``+y`` (up to 0.25 m/s), and angular velocity about ``+z`` (the lid's
        opening direction, up to 15 rad/s); world frame, about the finger's origin (the
        centre of the pad's back face).

    Observation Space:
        Finger then lid pose (positions (m), quaternions), the lid's linear (m/s) and
        angular (rad/s) velocity, the sensor's force (N) and torque (N m) on the pad and the
        displacements (px) of a coarse 3 x 3 marker grid, then the lid's hinge angle (rad).

    Rewards:
        Decrease of the loss (at the current state; ``theta`` the hinge angle, ``F`` the
        pad's normal force, ``F_min`` = ``min_force``):
        ``((theta - target) / target)^2 + contact_weight (max(F_min - max(F, 0), 0) /
        F_min)^2``: the angle error (overshoot counts too) and the loss of contact (at most
        ``contact_weight``), plus the contact-seeking term ``max(gap, 0)^2 / (1 mm)^2``
        (``gap``: the lid's signed distance at the pad's nearest node), zero while the pad
        touches the lid, and the lifting term ``lift_weight g softplus(2 s) / softplus(2)``
        with ``s = -(tau_pads + tau_gravity) / |tau_gravity|`` (the torques about the hinge
        axis, opening positive: how short of lifting the lid the pads are; 1 before
        contact, 0 where they balance gravity, negative where they lift it) and
        ``g = max(1 - theta / 0.1 rad, 0)``: zero once the lid is open. ``success`` uses
        the loss without the two shaping terms. ``step_loss`` adds a running crush term,
        ``(max(F - 10 N, 0) / 10 N)^2`` after every step, which the task's recipe sums
        (``weights="sum"``; see ``crush``).

    Starting State:
        Lid closed (angle 0, at rest on its limit); the finger 0.5 mm in front of the lid's
        front face, at its mid-height, shifted by up to 0.2 mm along ``y`` and ``z``
        (seeded).

    Episode End:
        Success: loss below 0.05. Truncation after ``horizon`` steps (default 40 of 4 ms:
        0.16 s).

    Arguments:
        ``grid_res`` (cells across the pad, default 4: 2.5 mm cells, 50 nodes; at most 8
        are used), ``horizon`` (50), ``target_angle`` (60 deg = 1.047 rad), ``min_force``
        (0.1 N), ``contact_weight`` (1.0), ``lift_weight`` (1.0).

    Version History:
        v0: initial release.
        v1: contact-seeking term for the pads (``Task.contacts``): with v0 the loss
        was flat, its gradient exactly zero, until a pad touched the lid
        (issue 11). Goal and success unchanged.
        v2: lifting term: with v1 the lid rests on its hinge's stop (an inelastic limit)
        until the pads' torque about the hinge exceeds gravity's, and the angle's gradient
        is exactly zero there; the optimiser had no signal to lift it (v1's default recipe:
        goal loss 1.0, the lid never moved, in 300 s). Goal and success unchanged.
    """

    name = "BoxOpen"
    version = 2
    #: the framework adds ``max(gap, 0)^2 / (1 mm)^2`` (``gap``: the lid's signed distance
    #: at the pad's nearest node), zero while the pad touches the lid
    contacts = (("lid", "finger"),)
    contact_scale = 1e-3
    defaults = {"grid_res": 4, "horizon": 50, "target_angle": math.pi / 3, "min_force": 0.1,
                "contact_weight": 1.0, "lift_weight": 1.0}
    episode_options = ("horizon", "target_angle", "min_force", "contact_weight", "lift_weight")
    success_threshold = 0.05
    # max_newton: with 40, Newton stopped short on 4 of 8 plans near a solved one (CEM's
    # best of BoxOpen-v2 seed 0 perturbed by 0.02; still descending, float32), with 100 on
    # 1, with 200 on none; a step that converges sooner is unchanged by the cap
    sim_options = dict(dt=2e-3, substeps=1, newton_tol=1e-9, cg_tol=1e-9, max_newton=200,
                       friction_eps=1e-3)
    force_limit = 20.0
    depth = 0.02          # lid depth along x, hinge to front face (m)
    thickness = 0.005     # lid thickness (m)
    width = 0.012         # lid width along z (m)
    box_height = 0.01     # the hinge's height: the top of the box (m)
    overhang = 0.002      # the lid overhangs the box's front face by this (m)
    density = 5e4         # kg/m^3: heavy, so that the explicit body update is stable
    friction = 1.0
    pad_size = 0.01
    pad_thickness = 0.003
    gap = 7e-4            # the pad starts this far from the lid's front face (m)
    max_cells = 8
    speed = 0.4           # m/s at action 1
    turn_rate = 20.0      # rad/s at action 1

    @property
    def anchor(self) -> tuple:
        return (0.0, self.box_height, 0.0)

    def build_scene(self):
        scene = ds.Scene(dim=3, gravity=(0.0, -9.8, 0.0))
        w, y0 = self.width / 2, self.box_height
        scene.add_tool(ds.Box(lo=(0.0, y0, -w), hi=(self.depth, y0 + self.thickness, w)),
                       friction=self.friction, name="lid")
        scene.add_collider(ds.Box(lo=(0.0, 0.0, -w), hi=(self.depth - self.overhang, y0, w)),
                           friction=0.5, name="box")
        return scene

    def sensors(self):
        res = self.pad_size / min(self.options["grid_res"], self.max_cells)
        pad = ds.TactilePad.flat((self.pad_size, self.pad_size, self.pad_thickness), res)
        return [ds.TactileSensor(pad=pad, material=ds.NeoHookean(**GRIPPER_GEL), markers=(3, 3),
                                 damping=(0.0, 5e-3), camera=ds.TactileCamera(resolution=(12, 10)),
                                 position=self.finger_start, normal=(-1.0, 0.0, 0.0),
                                 name="finger")]

    @property
    def finger_start(self) -> tuple:
        """The finger's start position (m): its pad ``gap`` in front of the lid's face."""
        return (self.depth + self.pad_thickness + self.gap,
                self.box_height + self.thickness / 2, 0.0)

    def build_sim(self):
        hinge = ds.Hinge(anchor=self.anchor, axis=(0.0, 0.0, 1.0), limits=(0.0, math.pi))
        return ds.Tactile(self.build_scene(), sensors=self.sensors(),
                          free_objects={"lid": self.density}, hinges={"lid": hinge},
                          **self.sim_options)

    def action_map(self, sim):
        A = torch.zeros(3, sim.action_dim, dtype=sim.dtype)
        f = 6 * sim.tool_index("finger_finger")
        A[0, f + 0] = -self.speed
        A[1, f + 1] = self.speed
        A[2, f + 5] = self.turn_rate
        return A

    def initial_state(self, sim, rng):
        state = sim.reset()
        k = sim.tool_index("finger_finger")
        shift = torch.zeros(3, dtype=state.x.dtype)
        shift[1:] = torch.as_tensor(rng.uniform(-2e-4, 2e-4, size=2))
        pos, x = state.tool_pos.clone(), state.x.clone()
        pos[k] += shift
        # the whole pad moves with its finger (not only its back face: no start stress)
        x[sim.groups["finger"]] += shift
        return state.replace(tool_pos=pos, x=x)

    def observe(self, sim, state):
        parts = [state.tool_pos.reshape(-1), state.tool_rot.reshape(-1),
                 state.body_vel.reshape(-1), sim.read(state, image=False).vector(),
                 sim.hinge_angle(state, "lid").reshape(1)]
        return torch.cat(parts)

    def observation_bounds(self, sim):
        low, high = super().observation_bounds(sim)
        K = len(sim.model.tools)
        vlim = np.array([10.0] * 3 + [100.0] * 3, dtype=np.float32)
        low = np.concatenate([low[:7 * K], -vlim, low[7 * K:], [-2 * math.pi]])
        high = np.concatenate([high[:7 * K], vlim, high[7 * K:], [2 * math.pi]])
        return low.astype(np.float32), high.astype(np.float32)

    def terms(self, sim, state) -> dict:
        """The loss's parts at ``state``: the hinge angle (rad), the pad's normal force (N),
        the angle error and the weighted contact-loss term."""
        target = float(self.options["target_angle"])
        fmin = float(self.options["min_force"])
        theta = sim.hinge_angle(state, "lid")
        fn = self.normal_force(sim, state)
        return {"angle": theta, "normal_force": fn,
                "angle_error": ((theta - target) / target) ** 2,
                # friction on a contact tilted against the pad (its edge on the lid's face)
                # can pull it (fn < 0): clamp, so that losing contact costs at most
                # contact_weight
                "contact": float(self.options["contact_weight"]) * (
                    torch.relu(fmin - torch.relu(fn)) / fmin) ** 2}

    def loss(self, sim, state):
        t = self.terms(sim, state)
        return t["angle_error"] + t["contact"]

    #: the lifting term fades out linearly up to this hinge angle (rad)
    lift_gate = 0.1
    #: pad normal force (N) above which the recipe's per-step crush term grows: plans near
    #: the best of v2's first solves pressed with 14-25 N and, pressing on, crushed the 3 mm
    #: gel (84 N, then non-finite nodes: the rollout blows up), which a final-state loss
    #: does not see
    crush_force = 10.0
    recipe = dataclasses.replace(default_recipe(), weights="sum", note=(
        "default recipe with weights='sum' over step_loss: the objective of "
        "the final state plus a crush term at every step (v2 seeds 0-2 with "
        "the final-state objective alone: 0.088, 0.813 and 0.108 in 300 s, "
        "ended NON_FINITE by pads crushed near the best plans); with it: "
        "0.333, 0.684 and 0.184, no failed run, not solved (budget-bound)"))

    def crush(self, sim, state) -> torch.Tensor:
        """``(max(F_n - crush_force, 0) / crush_force)^2``: the pad pressed harder than
        ``crush_force`` (N)."""
        return (torch.relu(self.normal_force(sim, state) - self.crush_force)
                / self.crush_force) ** 2

    def normal_force(self, sim, state) -> torch.Tensor:
        """The pad's normal force on the lid (N): the lid pushes the pad back along -z of
        its finger frame."""
        return -sim.read(state, image=False).force[2]

    def step_loss(self, sim, state, t: int) -> torch.Tensor:
        """The crush term after every step plus, after the last (``t == horizon``), the
        objective: with ``rollout_loss(weights="sum")`` the final state's objective and a
        running cost that keeps the pad from being crushed on the way."""
        out = self.crush(sim, state)
        return out + self.objective(sim, state) if t >= self.horizon else out

    def shaping(self, sim, state):
        """The contact-seeking term plus the lifting term (see the class docstring): its
        gradient reaches the pads' forces while the hinge's stop holds the lid, where the
        angle's is zero."""
        pads, gravity = sim.hinge_torques(state, "lid")
        s = -(pads + gravity) / gravity.detach().abs().clamp_min(1e-12)
        gate = torch.relu(1 - sim.hinge_angle(state, "lid") / self.lift_gate)
        # smooth through s = 0: a relu would be flat (zero gradient) on the rollouts whose
        # last step is the first to lift the lid, whose angle has not moved yet
        lift = torch.nn.functional.softplus(2 * s) / math.log1p(math.exp(2.0))
        return super().shaping(sim, state) + float(self.options["lift_weight"]) * gate * lift

    def scripted_actions(self, press_steps: int = 4, press: float = 0.25, turn: float = 0.6,
                         ramp: int = 5) -> torch.Tensor:
        """(horizon, 3) an open-loop plan: press along ``-x`` for ``press_steps`` steps at
        ``press`` (normalised), then carry the pad around the hinge as if it were glued to
        the lid (the finger's origin on its circle about the hinge axis, chord velocities,
        so no drift) at a turn rate that rises over ``ramp`` steps to ``turn`` times the
        top rate."""
        T, h = self.horizon, float(self.sim_options["dt"])
        U = torch.zeros(T, 3, dtype=torch.float64)
        n = min(press_steps, T)
        U[:n, 0] = press
        p = np.array(self.finger_start[:2]) - np.array(self.anchor[:2])
        p[0] -= press * self.speed * h * n
        for t in range(n, T):
            a = turn * min(1.0, (t - n + 1) / max(ramp, 1))
            c, s = math.cos(h * a * self.turn_rate), math.sin(h * a * self.turn_rate)
            q = np.array([c * p[0] - s * p[1], s * p[0] + c * p[1]])
            U[t] = torch.tensor([-(q[0] - p[0]) / (h * self.speed),
                                 (q[1] - p[1]) / (h * self.speed), a])
            p = q
        return U
