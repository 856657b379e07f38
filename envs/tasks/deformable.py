"""What the thin-shell and soft-solid tasks share: simulators built from ``ds.Shell`` /
``ds.FEM`` instead of ``ds.MPM``, and the mesh resolution option.

``grid_res`` means cells across the manipulated object (the mesh resolution), so the
generic options of every task (``grid_res``, ``horizon``) keep working.
"""

from __future__ import annotations

import torch

import diffsim as ds
from diffsim import solvers as dss

from ..recipe import Recipe
from ..task import Task

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
