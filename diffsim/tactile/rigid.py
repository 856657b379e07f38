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

**Hinges** (``Hinge``): a free body hinged to the world turns only about a fixed axis
``e`` through a fixed anchor ``a``; its one degree of freedom is the hinge angle
``theta`` (rad, right-handed about ``e``, 0 at the body's scene pose). The update is the
same staggered scheme reduced to that angle: with ``r = c - a`` (``c`` the centre at the
end of the step), the moment of inertia about the axis (parallel-axis theorem)
``I_a = e^T I_w e + m |r - (r.e) e|^2`` and the torque about the axis
``tau_a = e . (tau + r x F + r x m g)`` (``F``, ``tau`` the pads' wrench about ``c``), the
angular speed is ``omega_{n+1} = (omega_n + h (tau_a - k (theta - theta_0)) / I_a) /
(1 + h (d + h k) / I_a)`` (spring ``k`` and damper ``d`` implicit, so they never limit
the step), clamped so that ``theta + h omega_{n+1}`` stays within the limits (an
inelastic stop, like the ground). The body then gets the angular velocity
``omega e`` and the linear velocity of the chord ``v = (Rot(e, h omega) r - r) / h``
(``omega e x r`` to first order in ``h``): the tools' poses integrate the position
linearly and the rotation exactly, so the centre lands on its circle about the axis and
the anchor stays put to round-off, however large the step. The ground ignores hinged
bodies (the hinge holds them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..tools import quat_mul, quat_to_matrix


@dataclass(frozen=True)
class Hinge:
    """A revolute joint of a free object to the world (``ds.Tactile(..., hinges=...)``).

    Args:
        anchor: (3,) a point of the axis (m, world frame, at the scene's pose).
        axis: (3,) the axis direction (normalised here); the hinge angle is right-handed
            about it, 0 at the body's scene pose.
        damping: viscous damping ``d`` of the joint (N m s/rad, >= 0).
        stiffness: torsional spring ``k`` (N m/rad, >= 0) towards ``rest_angle`` (rad).
        limits: ``(low, high)`` angle range (rad; ``None`` for an open side) or ``None``:
            the body stops inelastically at a limit (a lid resting on its box at 0).

    Raises:
        ValueError: non-finite or wrongly shaped anchor/axis, a zero axis, negative
            damping/stiffness, ``low > high``.
    """

    anchor: tuple
    axis: tuple
    damping: float = 0.0
    stiffness: float = 0.0
    rest_angle: float = 0.0
    limits: tuple | None = None

    def __post_init__(self):
        for name in ("anchor", "axis"):
            v = getattr(self, name)
            try:
                t = tuple(float(c) for c in v)
            except (TypeError, ValueError):
                t = ()
            if len(t) != 3 or not all(math.isfinite(c) for c in t):
                raise ValueError(f"Hinge {name}={v!r} is not allowed: expected 3 finite numbers")
            object.__setattr__(self, name, t)
        n = math.sqrt(sum(c * c for c in self.axis))
        if n < 1e-12:
            raise ValueError(f"Hinge axis={self.axis!r} is not allowed: it must be non-zero")
        object.__setattr__(self, "axis", tuple(c / n for c in self.axis))
        for name in ("damping", "stiffness", "rest_angle"):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and math.isfinite(v) and (
                name == "rest_angle" or v >= 0)
            if not ok:
                allowed = "a finite number" if name == "rest_angle" else "a finite number >= 0"
                raise ValueError(f"Hinge {name}={v!r} is not allowed: it must be {allowed}")
            object.__setattr__(self, name, float(v))
        if self.limits is not None:
            lim = tuple(self.limits)
            ok = len(lim) == 2 and all(x is None or (isinstance(x, (int, float))
                                                     and math.isfinite(x)) for x in lim)
            if ok and None not in lim:
                ok = lim[0] <= lim[1]
            if not ok:
                raise ValueError(f"Hinge limits={self.limits!r} is not allowed: expected "
                                 "(low, high) in rad with low <= high (None for an open side)")
            object.__setattr__(self, "limits", tuple(None if x is None else float(x)
                                                     for x in lim))


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
    #: the joint to the world, or ``None`` for a body free in all six directions
    hinge: Hinge | None = None
    #: (4,) the rotation (w, x, y, z) at hinge angle 0 (the scene's pose)
    rot0: tuple = (1.0, 0.0, 0.0, 0.0)


def check_hinges(hinges, free_objects) -> dict:
    """``{name: Hinge}`` from ``ds.Tactile``'s ``hinges`` argument (values ``Hinge`` or
    ``(anchor, axis)``), every name one of ``free_objects``.

    Raises:
        ValueError: not a dict, a name that is not a free object, a bad value.
    """
    if not isinstance(hinges, dict):
        raise ValueError(f"hinges={hinges!r} is not allowed: expected a dict "
                         "{free object name: ds.Hinge}")
    out = {}
    for name, hinge in hinges.items():
        if name not in free_objects:
            raise ValueError(f"hinges: {name!r} is not a free object; hinge one of "
                             f"free_objects {sorted(free_objects)}")
        if isinstance(hinge, (tuple, list)) and len(hinge) == 2:
            hinge = Hinge(*hinge)
        if not isinstance(hinge, Hinge):
            raise ValueError(f"hinges[{name!r}]={hinge!r} is not allowed: expected a ds.Hinge "
                             "or (anchor, axis)")
        out[name] = hinge
    return out


def hinge_angle(body: FreeBody, quat: torch.Tensor) -> torch.Tensor:
    """The hinge angle (rad) of a hinged body at the rotation ``quat`` (4,): the rotation
    from ``body.rot0`` about the hinge axis (in (-2 pi, 2 pi), continuous along a rollout)."""
    q0 = quat.new_tensor(body.rot0)
    rel = quat_mul(quat, q0 * q0.new_tensor([1.0, -1.0, -1.0, -1.0]))
    return 2 * torch.atan2(rel[1:] @ quat.new_tensor(body.hinge.axis), rel[0])


def hinge_torques(body: FreeBody, gravity: torch.Tensor, pos: torch.Tensor,
                  wrench: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The torques (N m) about a hinged body's axis, positive in the right-handed sense
    about ``body.hinge.axis`` (the direction of increasing hinge angle): of the pads'
    ``wrench`` (6,) (force, and torque about the centre ``pos`` (3,), m) and of gravity
    (3,) (m/s^2) on the body's mass. Their sum drives the hinge (``_advance_hinged``)."""
    e = pos.new_tensor(body.hinge.axis)
    r = pos - pos.new_tensor(body.hinge.anchor)
    return (e.dot(wrench[3:] + torch.linalg.cross(r, wrench[:3])),
            e.dot(torch.linalg.cross(r, body.mass * gravity)))


def mass_properties(kind: str, geom: tuple, axis: int, density: float) -> tuple[float, tuple]:
    """``(mass, (Ixx, Iyy, Izz))`` of a uniform solid about its centre, in its own frame.

    ``geom`` as ``diffsim.tools.obstacle_geometry``: sphere ``(r,)``, box half sizes, capsule
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
        if b.hinge is not None:
            out.append(_advance_hinged(b, h, gravity, p, q, u, w))
            continue
        R = quat_to_matrix(q)
        v = u[:3] + h * (w[:3] / b.mass + gravity)
        Iw = _world_inertia(b, R, u)
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


def _world_inertia(b: FreeBody, R: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(3, 3) inertia about the centre in the world frame (``b.inertia``: principal moments
    (3,) of an analytic shape or the full body-frame tensor (3, 3) of a mesh)."""
    Ib = like.new_tensor(b.inertia)
    Ib = Ib if Ib.dim() == 2 else torch.diag(Ib)
    return R @ Ib @ R.transpose(0, 1)


def _advance_hinged(b: FreeBody, h: float, gravity: torch.Tensor, p: torch.Tensor,
                    q: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(6,) the next velocities of a hinged body (see the module docstring)."""
    j = b.hinge
    e = p.new_tensor(j.axis)
    r = p - p.new_tensor(j.anchor)
    R = quat_to_matrix(q)
    Iw = _world_inertia(b, R, u)
    r_perp = r - r.dot(e) * e
    Ia = e.dot(Iw @ e) + b.mass * r_perp.dot(r_perp)
    tau_pads, tau_gravity = hinge_torques(b, gravity, p, w)
    tau = tau_pads + tau_gravity
    theta = hinge_angle(b, q)
    om = (u[3:].dot(e) + h * (tau - j.stiffness * (theta - j.rest_angle)) / Ia) / (
        1 + h * (j.damping + h * j.stiffness) / Ia)
    if j.limits is not None:
        lo, hi = j.limits
        if lo is not None:
            om = torch.maximum(om, (lo - theta) / h)
        if hi is not None:
            om = torch.minimum(om, (hi - theta) / h)
    phi = h * om
    # the chord of the centre's circle about the axis (Rodrigues): the pose update moves
    # the centre by h v in a straight line, so this keeps the anchor fixed exactly
    turned = r * torch.cos(phi) + torch.linalg.cross(e, r) * torch.sin(phi) + e * r.dot(e) * (
        1 - torch.cos(phi))
    return torch.cat([(turned - r) / h, om * e])
