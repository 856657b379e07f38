"""FEM objects for ``ds.Tactile``: pads touching one ``ds.FEM`` soft body, two-way.

The scheme of ``mpm_coupling.py`` (``LevelSetCoupling``) with the tets' sample points as
the "particles": every tet carries ``SAMPLES`` points at the barycentric coordinates of the
4-point Gauss rule, each with a quarter of the tet's mass, at ``x_s = sum_k B_sk x_k`` and
moving at ``v_s = sum_k B_sk v_k`` (``k`` the tet's nodes; differentiable in the nodes).
One coupled step of ``h = dt``:

1. density, momentum and level set on a grid over ``scene.bounds`` (``mpm_grid_res`` cells
   along its longest side) from the sample points, as for MPM particles;
2. the pads' implicit step against that level set;
3. the reaction impulse ``J_s = m_s dv_s`` on the samples goes to the nodes with the same
   weights, ``J_k = sum_s B_sk J_s``, and ``v_k += J_k / m_k`` with the FEM's lumped node
   masses. Since ``sum_s m_s B_sk = m_k`` per tet and ``sum_k B_sk = 1``, ``sum_k J_k =
   sum_s J_s = -h sum_i f_i``: momentum is conserved exactly (pinned nodes then hold theirs);
4. one implicit step of ``dt`` of an internal ``ds.FEM`` (its differentiable rollout) with
   the scene's gravity, tools, colliders and ground as its obstacles.

Weak points: the same lagged, explicit coupling for the object as MPM objects (stable
while ``h < 2 sqrt(m_s / k_s)``, see ``mpm_coupling.py``); the level set is the density of
the samples smoothed twice by B-splines, so the tet size must be at most about the grid
spacing (otherwise the surface is bumpy) and the object's surface is rounded at the scale
of a cell; the object's own contact with obstacles is ``ds.FEM``'s penalty (stiffness
``fem_contact_stiffness``, 1/s^2).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..fem.simulator import FEM
from ..mesh import VolumeMesh
from ..scene import Scene
from ..shapes import Mesh
from ..state import State
from .mpm_coupling import SURFACE_SLOPE, LevelSetCoupling, LevelSetGrid

_A, _B = 0.5854101966249685, 0.1381966011250105
#: (samples, nodes) barycentric weights of a tet's sample points (4-point Gauss rule)
BARY = np.array([[_A, _B, _B, _B], [_B, _A, _B, _B], [_B, _B, _A, _B], [_B, _B, _B, _A]])
SAMPLES = len(BARY)


class FEMCoupling(LevelSetCoupling):
    """The FEM side of a ``ds.Tactile`` with a soft body: the internal ``ds.FEM``, the
    level-set grid, the node state (``object_x``, ``object_v``) and the sample points."""

    def __init__(self, scene: Scene, dt: float, grid_res, friction, obj: int,
                 contact_stiffness, fem_options: dict):
        if len(scene.soft_bodies) != 1:
            raise ValueError(f"scene.soft_bodies has {len(scene.soft_bodies)} soft bodies "
                             f"({[b.name for b in scene.soft_bodies]}): ds.Tactile supports "
                             "exactly one FEM object")
        if not (isinstance(grid_res, int) and grid_res >= 8):
            raise ValueError(f"mpm_grid_res={grid_res!r} is not allowed: it must be an int >= 8 "
                             "(the FEM object's level-set grid)")
        if not (isinstance(friction, (int, float)) and math.isfinite(friction) and friction >= 0):
            raise ValueError(f"mpm_friction={friction!r} is not allowed: it must be a finite "
                             "number >= 0")
        body = scene.soft_bodies[0]
        if scene.dim != 3 or body.points.shape[1] != 3:
            raise ValueError("scene: ds.Tactile's FEM object must be a 3D tet mesh")
        lo, hi = scene.bounds[:, 0], scene.bounds[:, 1]
        dx = float((hi - lo).max() / grid_res)
        if (body.points < lo + 2 * dx).any() or (body.points > hi - 2 * dx).any():
            raise ValueError(f"scene.bounds={scene.bounds.tolist()} is not allowed with the FEM "
                             f"object {body.name!r}: its mesh must lie inside the bounds (the "
                             f"level-set grid) with a margin of 2 cells ({2 * dx:g} m)")
        inner = Scene(dim=3, gravity=scene.gravity)
        inner.add_soft_body(VolumeMesh(body.points, body.cells), body.material,
                            fixed=body.fixed if body.fixed.any() else None,
                            velocity=body.velocity, damping=(body.alpha, body.beta),
                            name=body.name)
        for t in (*scene.tools, *scene.colliders):
            if isinstance(t.shape, Mesh):
                raise ValueError(f"scene: the mesh object {t.name!r} cannot touch the FEM object "
                                 f"{body.name!r} (ds.FEM has no mesh obstacles); use an analytic "
                                 "shape (Sphere, Box, Capsule, Cylinder)")
        for t in scene.tools:
            inner.add_tool(t.shape, friction=t.friction, name=t.name,
                           contact_width=t.contact_width, rotation=t.rotation)
        for c in scene.colliders:
            inner.add_collider(c.shape, friction=c.friction, name=c.name)
        if scene.ground is not None:
            inner.add_ground(scene.ground.height, scene.ground.friction)
        try:
            self.fem = FEM(inner, dt=dt, integrator="implicit",
                           contact_stiffness=contact_stiffness, **fem_options)
        except ValueError as e:
            raise ValueError(f"the FEM object {body.name!r}: {e}") from None
        self.body = body
        self.friction = float(friction)
        rho0 = float(body.material.density)
        shape = tuple(int(round(e / dx)) + 1 for e in (hi - lo))
        self.grid = LevelSetGrid(obj, tuple(map(float, lo)), dx, shape, 0.5 * rho0,
                                 SURFACE_SLOPE * rho0 / dx, 0.1 * rho0)
        self.n_cells = int(np.prod(shape))
        m = self.fem.model
        self.elem = torch.as_tensor(np.asarray(m.elem, np.int64))
        self.bary = torch.as_tensor(BARY, dtype=torch.float64)
        tet_mass = rho0 * torch.as_tensor(np.asarray(m.rest), dtype=torch.float64)
        self.mass = (tet_mass[:, None] / SAMPLES).expand(-1, SAMPLES).reshape(-1)
        self.node_mass = torch.as_tensor(np.asarray(m.mass), dtype=torch.float64)

    # ------------------------------------------------------------------ names and states
    def param_names(self) -> list[str]:
        g = self.fem.model.groups[0]
        return [f"{self.body.name}.{p}" for p in self.fem._group_param_names(g)]

    def state_spec(self) -> dict:
        n = self.fem.n_nodes
        return {"object_x": (n, 3), "object_v": (n, 3)}

    def reset(self) -> dict:
        s = self.fem.reset()
        return {"object_x": s.x, "object_v": s.v}

    def close(self) -> None:
        self.fem.close()

    # ------------------------------------------------------------------ the object
    def check_params(self, obj_params) -> None:
        self.fem.internal_params(obj_params)

    def _at_samples(self, u):
        """Node values ``u`` (N, 3) at the sample points: (tets * SAMPLES, 3)."""
        B = self.bary.to(u)
        return torch.einsum("sk,ekd->esd", B, u[self.elem.to(u.device)]).reshape(-1, 3)

    def samples(self, cur: State):
        return self._at_samples(cur.object_x), self._at_samples(cur.object_v)

    def node_impulse(self, J):
        """Sample impulses ``J`` (tets * SAMPLES, 3) to node impulses (N, 3)."""
        B = self.bary.to(J)
        Jk = torch.einsum("sk,esd->ekd", B, J.reshape(-1, SAMPLES, 3))
        elem = self.elem.to(J.device)
        return J.new_zeros(self.fem.n_nodes, 3).index_add(0, elem.reshape(-1),
                                                          Jk.reshape(-1, 3))

    def advance(self, sim, cur: State, dv, U_tools, obj_params, check) -> dict:
        nf = len(sim.sensors)
        J = self.mass.to(dv)[:, None] * dv
        v = cur.object_v + self.node_impulse(J) / self.node_mass.to(dv)[:, None]
        fs = State(cur.time, cur.step, x=cur.object_x, v=v, tool_pos=cur.tool_pos[nf:],
                   tool_rot=cur.tool_rot[nf:])
        fn = self.fem.rollout(fs, U_tools, obj_params, segment=1, check=check)[0]
        return {"object_x": fn.x, "object_v": fn.v}
