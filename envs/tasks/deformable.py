"""What the thin-shell and soft-solid tasks share: simulators built from ``ds.Shell`` /
``ds.FEM`` instead of ``ds.MPM``, and the mesh resolution option.

``grid_res`` means cells across the manipulated object (the mesh resolution), so the
generic options of every task (``grid_res``, ``horizon``) keep working.
"""

from __future__ import annotations

import dataclasses
import math

import torch

import diffsim as ds
from diffsim import solvers as dss

from ..recipe import Recipe
from ..task import Task, gripper_map

#: table top height (m) of the shell and solid tasks
TABLE_TOP = 0.1
#: every shell task's paper-like sheet: 0.3 mm, 800 kg/m^3
PAPER = dict(E=1e6, nu=0.3, thickness=3e-4, density=800.0, bending_stiffness=3e-5)
#: the recipe of the sheet tasks driven by a two-finger gripper (Lift, Fold)
GRIPPER_RECIPE = Recipe(
    dss.Adam(lr=0.1), knots=4, horizon=dss.ExpandingHorizon(start=10, step=10, patience=3),
    budget_s=600.0, note=("Adam on 4 hat functions per action with FluidLab's expanding horizon "
                          "(from 10 steps, 10 more at each plateau of 3 iterations): the short "
                          "horizons learn to close on the sheet before they learn to carry it"))


# The sheet tasks that start with a pinch (Fold, Flip): a gripper's two spherical fingers,
# PINCH_GAP above and below the sheet, close for PINCH_STEPS steps at PINCH_CLOSE per finger
# before the episode (4.8 mm each: a pinch about 3.8 mm deep; a 1.4 mm one let the sheet
# slip under plans far from a solution).
PINCH_FINGER = 0.01     # finger radius (m)
PINCH_GAP = 0.001       # gap (m) between each open finger and the sheet
PINCH_STEPS = 8
PINCH_CLOSE = 0.03      # closing speed (m/s) of each finger, Lift-v2's top speed
#: the recipe of the tasks that carry a pinched sheet along an arc (Fold, Flip)
PINCH_RECIPE = dataclasses.replace(GRIPPER_RECIPE, algorithm=dss.Adam(lr=0.1, reject=1.5), note=(
    "Lift-v2's recipe (Adam on 4 hat functions with an expanding horizon from 10 steps) with "
    "reject=1.5: a plan that loses the grip jumps the objective from about 0.2 to 2-19, and "
    "without reject Adam did not come back (Fold-v3 seed 0: 0.169 in 600 s; with it: 0.089)"))


class ShellTask(Task):
    """A task on ``ds.Shell`` (implicit steps of ``dt``; stiff penalty contact)."""

    sim_options = dict(dt=0.02, substeps=1, contact_stiffness=3e5, friction_eps=1e-3,
                       newton_tol=1e-4, cg_tol=1e-3, max_newton=60)
    self_contact: float | None = None

    def resolution(self, size: float) -> float:
        return size / self.options["grid_res"]

    def build_sim(self):
        return ds.Shell(self.build_scene(), self_contact=self.self_contact, **self.sim_options)


class SolidTask(Task):
    """A task on ``ds.FEM``."""

    sim_options = dict(dt=0.02, substeps=1, contact_stiffness=3e5, friction_eps=1e-3,
                       newton_tol=1e-5, max_newton=60)

    def resolution(self, size: float) -> float:
        return size / self.options["grid_res"]

    def build_sim(self):
        return ds.FEM(self.build_scene(), **self.sim_options)


def centroid(sim, state, body: str) -> torch.Tensor:
    """Mass-weighted centre (m) of one body."""
    sl = sim.groups[body]
    m = sim.masses[sl]
    return (state.x[sl] * m[:, None]).sum(0) / m.sum()


def over_vertex(sim, state, tools, body: str, near) -> object:
    """``state`` with ``tools`` moved (in the sheet's plane, x and z) onto the vertex of
    ``body`` nearest the point ``near`` (node contact: a finger centred on a vertex
    touches it first, rather than falling between vertices)."""
    x = sim.rest_positions[sim.groups[body]]
    p = torch.as_tensor(near, dtype=x.dtype, device=x.device)
    v = x[int(((x[:, [0, 2]] - p[[0, 2]]) ** 2).sum(1).argmin())]
    pos = state.tool_pos.clone()
    for k in tools:
        pos[k, 0], pos[k, 2] = v[0], v[2]
    return state.replace(tool_pos=pos)


def add_pinch(scene, x: float, y: float, z: float, thickness: float) -> None:
    """Add the gripper's open fingers ``"upper"`` and ``"lower"`` (tools 0 and 1 when the
    scene has no other tools; friction 1) over ``(x, z)``, ``PINCH_GAP`` above and below a
    sheet of ``thickness`` whose underside is at height ``y``."""
    r = PINCH_FINGER
    for name, cy in (("upper", y + thickness + r + PINCH_GAP), ("lower", y - r - PINCH_GAP)):
        scene.add_tool(ds.Sphere(center=(x, cy, z), radius=r), friction=1.0, name=name)


def pinch(sim, state, fingers=(0, 1), steps: int = PINCH_STEPS,
          close: float = PINCH_CLOSE) -> object:
    """``state`` after ``steps`` control steps of closing the gripper ``fingers`` (tools
    ``fingers[0]`` above, ``fingers[1]`` below the sheet) at ``close`` m/s each, without
    gradients: the start of a task whose episode begins with the sheet held."""
    U = gripper_map(sim, fingers, 0.0, close)[sim.dim:].to(sim.dtype)
    with torch.no_grad():
        return sim.rollout(state, U.expand(steps, -1))[-1]


def turn_angle(x: torch.Tensor, centre) -> torch.Tensor:
    """(N,) angle (rad) of points ``x`` (N, 3) about the line along z through ``centre``
    (x, y), from +x (a sheet lying flat beyond the line: 0) towards +y (turned over onto
    the other side: near pi). Its branch cut points straight down, into the table or book
    under the line, which the sheet cannot reach: the angle is continuous along a turn."""
    a = torch.atan2(x[:, 1] - centre[1], x[:, 0] - centre[0])
    return torch.where(a < -0.5 * math.pi, a + 2 * math.pi, a)


class AlongTurn:
    """The squared distance (m^2) of points to their targets along a turn about a line
    along z through ``centre``: ``(r_target (angle - angle_target))^2`` per point, for the
    points that ``turns`` (N,) selects (0 for the others). Unlike the straight distance it
    points up and over, not through the sheet, and it agrees with it near the target."""

    def __init__(self, target: torch.Tensor, centre, turns: torch.Tensor):
        r = torch.linalg.norm(target[:, :2] - target.new_tensor(centre), dim=1)
        self.centre = tuple(centre)
        self.radius = torch.where(turns.to(target.device), r, 0.0)
        self.angle = turn_angle(target, centre)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (self.radius * (turn_angle(x, self.centre) - self.angle)) ** 2
