"""Free (dynamic) rigid objects of ``ds.Tactile``: mass properties and the body update.

A free object is one of the scene's tools (``Sphere``, ``Box``, ``Capsule``, ``Cylinder``,
or a ``Mesh``: its pose is then its centre of mass, its inertia the full tensor from
``gridsdf.mass_properties``, its support points the convex hull's vertices) that the pads
push instead of a velocity the user prescribes. Each control step is
**semi-implicit** (a staggered, partitioned scheme):

1. the pads are solved implicitly (``ds.FEM``'s Newton step) against the body moving as a
   kinematic tool with its velocity of the step start: from pose ``q_n`` to
   ``q_{n+1} = q_n + h v_n`` (``h = dt``);
2. the contact forces of that solution, summed on the body (``state.wrench``: the exact
   reaction of the solved step, equal and opposite to the forces on the pad nodes), with
   gravity and the ground, update its velocity:
   ``v_{n+1} = v_n + h (F / m + g)``, ``w_{n+1} = w_n + h I^-1 (tau - w x I w)``
   (``I`` the world-frame inertia at ``q_{n+1}``).

This is symplectic Euler for the body (position with the old velocity, velocity with the
force at the new position); its position error is first order in ``h`` (free fall:
``y_n = y_0 - g h^2 n (n - 1) / 2``, ``g h t / 2`` above ``y_0 - g t^2 / 2``). **One-step
lag**: the pads' force reaches the body's velocity only in the next step, so the body
does not react within the step to the force it meets; the coupling is explicit for the
body, which limits the step: ``h < 2 sqrt(m / k)`` with ``k`` the stiffness of the pads
holding it (roughly ``E`` times the contact's size).

**Ground contact** of a free body (``scene.add_ground``): an inelastic velocity
constraint on its lowest point (the support point along ``-y``): after the update the
normal velocity is raised just enough that the lowest point does not go below the
ground in the next step (``lambda = max(0, -gap / h - v_y)``), and Coulomb friction with
the ground's coefficient shrinks the tangential velocity by ``mu lambda`` (never past zero;
smoothed by ``friction_eps``). It acts through the centre of mass: the ground exerts no
torque (it does not tip or spin bodies). Differentiable almost everywhere (``max`` kinks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..mpm.tools import quat_to_matrix


@dataclass(frozen=True)
class FreeBody:
    """A free object: its tool (``tool``) and object (``obj``, its ``state.wrench`` row)
    indices, shape, mass (kg) and inertia about the centre (kg m^2, body frame): the
    principal moments (3,) of an analytic shape, the full (3, 3) tensor of a mesh."""

    name: str
    tool: int
    obj: int
    kind: str
    geom: tuple
    axis: int
    mass: float
    inertia: tuple


def mass_properties(kind: str, geom: tuple, axis: int, density: float) -> tuple[float, tuple]:
    """``(mass, (Ixx, Iyy, Izz))`` of a uniform solid about its centre, in its own frame.

    ``geom`` as ``fem.base.obstacle_geometry``: sphere ``(r,)``, box half sizes, capsule
    ``(r, half_length)`` and cylinder ``(r, half_height)`` along ``axis``.
    """
    if kind == "sphere":
        (r,) = geom
        m = density * 4.0 / 3.0 * math.pi * r ** 3
        return m, (0.4 * m * r * r,) * 3
    if kind == "box":
        a, b, c = (2 * h for h in geom)
        m = density * a * b * c
        return m, (m * (b * b + c * c) / 12, m * (a * a + c * c) / 12, m * (a * a + b * b) / 12)
    r, hl = geom
    L = 2 * hl
    if kind == "cylinder":
        m = density * math.pi * r * r * L
        along, across = 0.5 * m * r * r, m * (3 * r * r + L * L) / 12
    elif kind == "capsule":
        mc = density * math.pi * r * r * L
        ms = density * 4.0 / 3.0 * math.pi * r ** 3
        m = mc + ms
        along = 0.5 * mc * r * r + 0.4 * ms * r * r
        across = mc * (L * L / 12 + r * r / 4) + ms * (0.4 * r * r + L * L / 4 + 3 * L * r / 8)
    else:
        raise ValueError(f"free objects must be Sphere, Box, Capsule or Cylinder, got {kind!r}")
    inertia = [across] * 3
    inertia[axis] = along
    return m, tuple(inertia)


def support_depth(body: FreeBody, R: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """How far the body reaches from its centre along the unit world direction ``d``.

    Args:
        R: (3, 3) the body's rotation; d: (3,) unit direction.
    """
    db = R.transpose(0, 1) @ d
    if body.kind == "sphere":
        return db.new_tensor(body.geom[0])
    if body.kind == "box":
        return (db.abs() * db.new_tensor(body.geom)).sum()
    if body.kind == "mesh":   # geom: a GridSDF; its convex hull's vertices, body frame
        return (db.new_tensor(body.geom.support) @ db).max()
    r, hl = body.geom
    da = db[body.axis]
    if body.kind == "capsule":
        return hl * da.abs() + r
    return hl * da.abs() + r * torch.sqrt((1 - da * da).clamp(min=0) + 1e-12)


def advance(bodies: tuple, h: float, gravity: torch.Tensor, ground, eps: float,
            pos: torch.Tensor, quat: torch.Tensor, vel: torch.Tensor,
            wrench: torch.Tensor) -> torch.Tensor:
    """Velocities of the free bodies after a step (see the module docstring).

    Args:
        bodies: ``FreeBody`` tuple (B).
        h: the step (s); gravity: (3,) m/s^2; ground: ``scene.ground`` or ``None``;
        eps: friction smoothing velocity (m/s).
        pos, quat: (B, 3), (B, 4) poses at the end of the step; vel: (B, 6) linear and
        angular velocities (world frame) of the step; wrench: (B, 6) force (N) and torque
        (N m, about the centre) of the pads on each body at the step's solution.

    Returns:
        (B, 6) the velocities of the next step.
    """
    out = []
    up = gravity.new_tensor([0.0, 1.0, 0.0])
    for b, p, q, u, w in zip(bodies, pos, quat, vel, wrench):
        R = quat_to_matrix(q)
        v = u[:3] + h * (w[:3] / b.mass + gravity)
        Ib = u.new_tensor(b.inertia)
        Ib = Ib if Ib.dim() == 2 else torch.diag(Ib)
        Iw = R @ Ib @ R.transpose(0, 1)
        om = u[3:]
        om = om + h * torch.linalg.solve(Iw, w[3:] - torch.linalg.cross(om, Iw @ om))
        if ground is not None:
            gap = p[1] - support_depth(b, R, -up) - ground.height
            lam = torch.relu(-gap / h - v[1])
            vt = v - v[1] * up
            shrink = torch.relu(1 - ground.friction * lam / torch.sqrt(vt.dot(vt) + eps * eps))
            v = vt * shrink + (v[1] + lam) * up
        out.append(torch.cat([v, om]))
    return torch.stack(out) if out else vel
