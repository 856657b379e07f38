"""MPM objects for ``ds.Tactile``: pads touching elastic/plastic particle bodies, two-way.

A **partitioned, staggered** scheme; one coupled control step of length ``h = dt``:

1. **Level set** (torch, differentiable in the particles): from the particles at the step
   start, the density ``rho_I = sum_p m_p N(x_I - x_p) / dx^3`` and momentum density
   ``P_I = sum_p m_p v_p N(x_I - x_p) / dx^3`` on the MPM grid (``N`` the quadratic
   B-spline of MLS-MPM), and ``phi_I = (rho_iso - rho_I) / g_ref`` with
   ``rho_iso = rho_0 / 2`` (``rho_0`` the body's density) and ``g_ref = 0.55 rho_0 / dx``,
   the slope of ``rho`` across a flat surface after the two B-spline transfers (particle
   to grid, grid to point: their convolution is the quintic B-spline, 0.55 at its
   centre), so ``phi`` is about the distance (m) to the surface within a cell of it.
2. **Pads** (Taichi, implicit, ``ds.FEM``'s Newton step and adjoint): the object is a
   rigid body frozen at its start-of-step shape, moving locally at its velocity
   ``v_o = P / rho`` there (``mpm_kernels.py``), with the contact model of the rigid
   objects. ``phi`` and ``P`` are parameters of the one-step pad rollout, so their
   gradients come from Taichi's reverse passes and torch carries them to the particles.
3. **Reaction** (torch): the force ``-f_mpm_i`` of each pad node on the object goes to
   the particles with weights ``W_ip = m_p K(y_i, x_p) / rho(y_i)`` (``K`` the two-level
   B-spline kernel through the grid, ``rho(y)`` the interpolated density: ``sum_p W_ip =
   1``) as an impulse ``v_p += h sum_i W_ip (-f_mpm_i) / m_p``, ``y_i`` the point of the
   object the node touches. The impulse on the particles is exactly minus the pads'
   contact force times ``h`` (momentum is conserved).
4. **MPM** (Taichi, ``ds.MPM``'s explicit substeps and adjoint): ``mpm_substeps``
   substeps of ``h / mpm_substeps`` from the kicked state; the scene's tools (driven by
   the same velocities as the pads see), colliders, walls and ground act on the particles.

The pads see the object where it was at the step start (moved by ``h v_o``), and the
object gets the pads' force of this step in an explicit kick: for the object this is a
symplectic-Euler-like, one-step-lagged coupling, stable while
``h < 2 sqrt(m_s / k_s)``, ``m_s`` the mass of the particles that take a node's kick
(about ``rho_0 A`` times 1-3 cells) and ``k_s`` the contact stiffness ``A k_n`` in series
with the pad's (about ``A E / thickness``). The contact is one-sided, so above that bound
the object rattles on the pad (bounces and lets go) rather than diverging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..adjoint import CheckpointAdjoint, Rollout, RolloutPlan, stepwise_rollout
from ..mpm.simulator import MPM
from ..scene import Scene
from ..shapes import Box
from ..state import State
from ..tools import tool_trajectory

PARTICLE_STATE = ("x", "v", "C", "F", "Jp")
PAD_STATE = ("x", "v", "f", "wrench", "f_mpm")
#: slope of the doubly B-spline-smoothed density across a flat surface, times dx / rho_0
SURFACE_SLOPE = 0.55


@dataclass(frozen=True)
class LevelSetGrid:
    """The grid of the MPM object's level set (the MPM grid) and its constants."""

    obj: int          # index of the MPM object among the tactile objects
    origin: tuple
    dx: float
    shape: tuple
    rho_iso: float    # kg/m^3: density on the surface
    g_ref: float      # kg/m^4: density slope across the surface
    rho_min: float    # kg/m^3: floor of the density in v = P / rho

    @property
    def far(self) -> float:
        """``phi`` where there is no material (m)."""
        return self.rho_iso / self.g_ref


_OFFSETS = torch.tensor([(i, j, k) for i in range(3) for j in range(3) for k in range(3)])


def stencil(p: torch.Tensor, grid: LevelSetGrid):
    """Quadratic B-spline stencil of points ``p`` (n, 3): flat grid indices (n, 27) and
    weights (n, 27), zero for points whose stencil leaves the grid."""
    origin = torch.tensor(grid.origin, dtype=p.dtype, device=p.device)
    u = (p - origin) / grid.dx
    base = torch.floor(u - 0.5)
    fx = u - base
    a, b, c = 1.5 - fx, fx - 1.0, fx - 0.5
    w = torch.stack([0.5 * a * a, 0.75 - b * b, 0.5 * c * c], 1)      # (n, offset, axis)
    off = _OFFSETS.to(p.device)
    W = w[:, off[:, 0], 0] * w[:, off[:, 1], 1] * w[:, off[:, 2], 2]
    shape = torch.tensor(grid.shape, device=p.device)
    base = base.long()
    valid = ((base >= 0) & (base <= shape - 3)).all(1)
    idx = (base[:, None, :] + off[None]).clamp(min=0)
    idx = torch.minimum(idx, shape - 1)
    flat = (idx[..., 0] * grid.shape[1] + idx[..., 1]) * grid.shape[2] + idx[..., 2]
    return flat, W * valid[:, None].to(W.dtype)


def _scatter(flat, W, vals, n_cells):
    """``sum_p W_pI vals_p`` on the grid: (cells, C)."""
    out = vals.new_zeros((n_cells, vals.shape[1]))
    return out.index_add(0, flat.reshape(-1), (W[..., None] * vals[:, None, :]).reshape(
        -1, vals.shape[1]))


def _gather(flat, W, cells):
    """``sum_I W_pI cells_I``: (n, C)."""
    return (W[..., None] * cells[flat]).sum(1)


class LevelSetCoupling:
    """What every deformable object of ``ds.Tactile`` shares (MPM particles, FEM tets): the
    level set and momentum grid from sample points (``samples``: positions, velocities; masses
    ``self.mass``), the pads' implicit step against it, the reaction impulse on the samples,
    and the object's own step from the kicked state (``advance``). Subclasses set ``grid``,
    ``mass``, ``body``, ``friction`` and ``n_cells``."""

    grid: LevelSetGrid
    mass: torch.Tensor
    n_cells: int

    # ------------------------------------------------------------------ the object
    def param_names(self) -> list[str]:
        raise NotImplementedError

    def samples(self, cur: State):
        """Sample points (n, 3) and their velocities (n, 3) of the object at ``cur``."""
        raise NotImplementedError

    def advance(self, sim, cur: State, dv, U_tools, obj_params, check) -> dict:
        """The object's state after one step of ``sim.dt`` from ``cur`` with the sample
        velocities changed by ``dv`` (n, 3)."""
        raise NotImplementedError

    def check_params(self, obj_params) -> None:
        """Validate the object's parameters (raises ValueError)."""

    # ------------------------------------------------------------------ the coupled step
    def fields(self, x, v):
        """``(stencil of x, rho (cells,), phi grid, momentum grid)`` from sample points."""
        flat, W = stencil(x, self.grid)
        m = self.mass.to(x)
        vol = self.grid.dx ** 3
        rho = _scatter(flat, W, m[:, None], self.n_cells)[:, 0] / vol
        mom = _scatter(flat, W, m[:, None] * v, self.n_cells) / vol
        g = self.grid
        phi = (g.rho_iso - rho) / g.g_ref
        return (flat, W), rho, phi.reshape(g.shape), mom.reshape(*g.shape, 3)

    def object_velocity(self, y, rho, mom):
        """Velocity of the object at points ``y`` (n, 3), as the pad kernels see it."""
        flat, W = stencil(y, self.grid)
        r = _gather(flat, W, rho[:, None])[:, 0]
        P = _gather(flat, W, mom.reshape(-1, 3))
        return P / r.clamp(min=self.grid.rho_min)[:, None]

    def impulse(self, sten_p, rho, y, force, h):
        """Velocity change of the samples (n_p, 3) from forces ``force`` (n, 3) on the
        object at points ``y``: ``h / m_p sum_i W_ip force_i`` (``sum_p W_ip = 1``)."""
        flat, W = stencil(y, self.grid)
        r = _gather(flat, W, rho[:, None])[:, 0]
        a = force / r.clamp(min=self.grid.rho_min)[:, None]
        A = _scatter(flat, W, a, self.n_cells)
        return h / self.grid.dx ** 3 * _gather(*sten_p, A)

    def rollout(self, sim, state: State, U: torch.Tensor, params, saveat, check, segment: int) -> list:
        T = U.shape[0]
        params = dict(params or {})
        mine = set(self.param_names())
        obj_params = {k: v for k, v in params.items() if k in mine}
        sim._scalar_params(params)                       # names and values, as for the pads
        self.check_params(obj_params)
        return stepwise_rollout(lambda t, cur: self.step(sim, cur, U[t:t + 1], params, obj_params, check),
                                state, T, saveat, segment)

    def step(self, sim, cur: State, U1, params, obj_params, check) -> State:
        h = sim.dt
        xs, vs = self.samples(cur)
        sten, rho, phi, mom = self.fields(xs, vs)
        pad = self._pad_step(sim, cur, U1, params, phi, mom, check)
        vo = self.object_velocity(cur.x, rho, mom)
        y = pad["x"] - h * vo
        dv = self.impulse(sten, rho, y, -pad["f_mpm"], h)
        nf = len(sim.sensors)
        obj = self.advance(sim, cur, dv, U1[:, 6 * nf:], obj_params, check)
        return State(cur.time + sim.control_dt, cur.step + 1, **pad,
                     body_vel=cur.body_vel, **obj)

    def _pad_step(self, sim, cur, U1, params, phi, mom, check) -> dict:
        """One pad step against the level set (``ds.FEM``'s rollout with the grids as
        parameters)."""
        internal = list(sim.internal_params(params)) + [phi, mom]
        drive, poses = tool_trajectory(sim.model, U1, cur.tool_pos, cur.tool_rot)
        state0 = [cur[n].to(sim.dtype) for n in PAD_STATE]
        plan = RolloutPlan(engine_for=sim._engine_for, n_steps=1, saveat=(1,),
                           n_state=len(state0), n_drive=len(drive), check=check,
                           step0=cur.step)
        outs = CheckpointAdjoint(segment=1).run(Rollout(plan, tuple(state0), tuple(drive), tuple(internal)))
        tp, tr = poses(sim.substeps)
        out = {n: o[0] for n, o in zip(PAD_STATE, outs)}
        out.update(tool_pos=tp, tool_rot=tr)
        return out


class MPMCoupling(LevelSetCoupling):
    """The MPM side of a ``ds.Tactile`` with a particle body: the internal ``ds.MPM``,
    the level-set grid, the particle state and the coupled rollout."""

    def __init__(self, scene: Scene, dt: float, grid_res, substeps, friction, ppc, obj: int):
        if len(scene.bodies) != 1:
            raise ValueError(f"scene.bodies has {len(scene.bodies)} particle bodies "
                             f"({[b.name for b in scene.bodies]}): ds.Tactile supports exactly "
                             "one MPM object")
        if not (isinstance(grid_res, int) and grid_res >= 8):
            raise ValueError(f"mpm_grid_res={grid_res!r} is not allowed: it must be an int >= 8")
        if not (isinstance(substeps, int) and substeps >= 1):
            raise ValueError(f"mpm_substeps={substeps!r} is not allowed: it must be an int >= 1")
        if not (isinstance(friction, (int, float)) and math.isfinite(friction) and friction >= 0):
            raise ValueError(f"mpm_friction={friction!r} is not allowed: it must be a finite "
                             "number >= 0")
        body = scene.bodies[0]
        inner = Scene(dim=3, bounds=scene.bounds, gravity=scene.gravity, walls=scene.walls,
                      wall_friction=scene.wall_friction)
        inner.add_particles(body.shape, body.material, velocity=body.velocity, name=body.name,
                            ppc=body.ppc if ppc is None else ppc, jitter=body.jitter)
        for t in scene.tools:
            inner.add_tool(t.shape, friction=t.friction, name=t.name,
                           contact_width=t.contact_width, rotation=t.rotation)
        for c in scene.colliders:
            inner.add_collider(c.shape, friction=c.friction, name=c.name)
        if scene.ground is not None:
            lo, hi = scene.bounds[:, 0] - 1.0, scene.bounds[:, 1] + 1.0
            hi[1] = scene.ground.height
            inner.add_collider(Box(lo=tuple(lo), hi=tuple(hi)), friction=scene.ground.friction,
                               name="_ground")
        try:
            self.mpm = MPM(inner, grid_res=grid_res, dt=dt / substeps, substeps=substeps)
        except ValueError as e:
            raise ValueError(f"the MPM object with mpm_grid_res={grid_res}, mpm_substeps="
                             f"{substeps} (MPM substep = dt / mpm_substeps = {dt / substeps:g} s): "
                             f"{e}") from None
        self.body = body
        self.friction = float(friction)
        m = self.mpm.model
        rho0 = float(body.material.density)
        self.grid = LevelSetGrid(obj, tuple(m.origin), float(m.dx), tuple(m.grid_shape),
                                 0.5 * rho0, SURFACE_SLOPE * rho0 / float(m.dx), 0.1 * rho0)
        self.n_cells = int(np.prod(m.grid_shape))
        self.mass = torch.cat([torch.full((g.end - g.start,), g.p_mass, dtype=torch.float64)
                               for g in m.groups])

    # ------------------------------------------------------------------ names and states
    def param_names(self) -> list[str]:
        return [f"{self.body.name}.{p}" for p in self.body.material.param_names]

    def state_spec(self) -> dict:
        spec = self.mpm.state_spec
        return {f"particle_{n}": spec[n] for n in PARTICLE_STATE}

    def reset(self) -> dict:
        s = self.mpm.reset()
        return {f"particle_{n}": s[n] for n in PARTICLE_STATE}

    def close(self) -> None:
        self.mpm.close()

    # ------------------------------------------------------------------ the object
    def check_params(self, obj_params) -> None:
        self.mpm.internal_params(obj_params)

    def samples(self, cur: State):
        return cur.particle_x, cur.particle_v

    def advance(self, sim, cur: State, dv, U_tools, obj_params, check) -> dict:
        nf = len(sim.sensors)
        ms = State(cur.time, cur.step, x=cur.particle_x, v=cur.particle_v + dv,
                   C=cur.particle_C, F=cur.particle_F, Jp=cur.particle_Jp,
                   tool_pos=cur.tool_pos[nf:], tool_rot=cur.tool_rot[nf:])
        mn = self.mpm.rollout(ms, U_tools, obj_params, segment=1, check=check)[0]
        return {f"particle_{n}": mn[n] for n in PARTICLE_STATE}
