"""Kinematic tools, shared by every simulator: their specification, the shapes they may
take, and their trajectories from per-step velocity controls (torch, differentiable).

A control step holds each tool's linear velocity ``v`` (m/s) and angular
velocity ``w`` (rad/s; a scalar in 2D, a vector in the world frame in 3D)
constant for ``substeps`` substeps. Positions integrate exactly
(``p += dt v``); orientations integrate exactly with the exponential map
(2D angle ``a += dt w``; 3D ``q <- exp(w dt / 2) q``). The poses of every
substep are computed here, in torch, so gradients reach the controls through
ordinary autograd; the Taichi kernels of ``ds.MPM``, ``ds.FEM``/``ds.Shell`` and
``ds.Tactile`` only read the poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .shapes import Box, Capsule, Compound, Cylinder, Sphere


@dataclass(frozen=True)
class ToolSpec:
    """A kinematic tool: analytic shape ``kind`` with ``geom`` numbers in its own frame.

    ``geom``: sphere ``(radius,)``; box ``half sizes``; capsule ``(radius,
    half_length)``; cylinder ``(radius, half_height)``; ``axis`` orients the last two.
    """

    name: str
    kind: str
    geom: tuple
    axis: int
    friction: float
    contact_width: float
    position: tuple
    rotation: tuple  # 2D: (angle,) in rad; 3D: quaternion (w, x, y, z)

    @classmethod
    def of(cls, tool, geometry: tuple, contact_width: float) -> ToolSpec:
        """The spec of a scene tool (``Scene.add_tool``'s record) with ``geometry`` its
        ``(kind, geom, axis)`` (``shape_geometry`` or ``obstacle_geometry``)."""
        return cls(tool.name, *geometry, tool.friction, contact_width,
                   tuple(map(float, tool.shape.center)), tool.rotation)


def shape_geometry(shape) -> tuple[str, tuple, int]:
    """``(kind, geom, axis)`` of an analytic shape in its own frame (a ``ToolSpec``'s
    fields); a ``Compound`` gives ``("compound", ((kind, geom, axis, offset), ...), 0)``.

    Raises:
        TypeError: a shape that is not a Sphere, Box, Capsule, Cylinder or Compound.
    """
    if isinstance(shape, Sphere):
        return "sphere", (float(shape.radius),), 0
    if isinstance(shape, Box):
        return "box", tuple(float(h) for h in shape.half_size), 0
    if isinstance(shape, Capsule):
        return "capsule", (float(shape.radius), 0.5 * float(shape.length)), shape.axis
    if isinstance(shape, Cylinder):
        return "cylinder", (float(shape.radius), 0.5 * float(shape.height)), shape.axis
    if isinstance(shape, Compound):
        c = shape.center
        parts = tuple((*shape_geometry(p), tuple(float(v) for v in p.center - c))
                      for p in shape.parts)
        return "compound", parts, 0
    raise TypeError(f"unsupported tool shape {type(shape).__name__}")


def obstacle_geometry(shape) -> tuple[str, tuple, int]:
    """``shape_geometry`` of the one analytic shape that a ``ds.FEM``, ``ds.Shell`` or
    ``ds.Tactile`` tool or collider may be (no compounds: their contact kernels take one
    signed distance per obstacle).

    Raises:
        TypeError: any other shape.
    """
    if not isinstance(shape, (Sphere, Box, Capsule, Cylinder)):
        raise TypeError(f"FEM/Shell obstacles must be Sphere, Box, Capsule or Cylinder, got "
                        f"{type(shape).__name__} (mesh colliders are not supported by "
                        "ds.FEM/ds.Shell)")
    return shape_geometry(shape)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of quaternions ``(..., 4)`` in (w, x, y, z) order."""
    aw, av = a[..., :1], a[..., 1:]
    bw, bv = b[..., :1], b[..., 1:]
    w = aw * bw - (av * bv).sum(-1, keepdim=True)
    v = aw * bv + bw * av + torch.cross(av, bv, dim=-1)
    return torch.cat([w, v], -1)


def quat_exp(rotvec: torch.Tensor) -> torch.Tensor:
    """Unit quaternion of a rotation vector ``(..., 3)`` (angle * axis, rad).

    The norm is smoothed by 1e-24 so the derivative at zero rotation is finite.
    """
    theta = torch.sqrt((rotvec * rotvec).sum(-1, keepdim=True) + 1e-24)
    return torch.cat([torch.cos(0.5 * theta), torch.sin(0.5 * theta) / theta * rotvec], -1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` (normalised here)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def angle_to_matrix(a: torch.Tensor) -> torch.Tensor:
    """2D rotation matrices ``(..., 2, 2)`` of angles ``(...)`` (rad)."""
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([c, -s, s, c], -1).reshape(*a.shape, 2, 2)


def _per_step(x0: torch.Tensor, rates: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``(T * S + 1, ...)`` values of ``x0`` moving at ``rates[t]`` during control step
    ``t``, at the substep times ``tau`` (``(S + 1, ...)`` s from the step's start): each
    step starts from the value the last one ended at (positions, 2D angles)."""
    x, out = x0, []
    for rate in rates:
        xs = x[None] + tau * rate[None]
        out.append(xs[:-1])
        x = xs[-1]
    return torch.cat(out + [x[None]], 0)


def tool_trajectory(model, controls: torch.Tensor, pos0: torch.Tensor,
                    rot0: torch.Tensor):
    """Tool poses and velocities at every substep of a rollout.

    Args:
        model: the static model of any simulator (``dim``, ``dt``, ``substeps``, ``tools``,
            ``rot_dim``).
        controls: (T, action_dim) per-step controls.
        pos0: (K, d) initial positions; rot0: (K, 1) angles or (K, 4) quaternions.

    Returns:
        ``(drive, poses)``: ``drive`` is ``[pos, R, vel, omega]`` with a leading
        axis of ``T * substeps + 1`` (K >= 1 padded with a dummy tool when the
        scene has none); ``poses(s)`` gives the state tensors ``(tool_pos,
        tool_rot)`` at substep ``s``.
    """
    T, S, d, dt = controls.shape[0], model.substeps, model.dim, model.dt
    K, r = len(model.tools), model.rot_dim
    n = T * S + 1
    kw = {"dtype": controls.dtype, "device": controls.device}
    if K == 0:
        zeros = [torch.zeros(n, 1, d, **kw), torch.eye(d, **kw).expand(n, 1, d, d),
                 torch.zeros(n, 1, d, **kw), torch.zeros(n, 1, r, **kw)]
        return zeros, lambda s: (pos0, rot0)
    pos0, rot0 = pos0.to(**kw), rot0.to(**kw)
    u = controls.reshape(T, K, d + r)
    lin, ang = u[..., :d], u[..., d:]
    vel = torch.cat([lin.repeat_interleave(S, 0), lin[-1:]], 0)      # (n, K, d)
    omega = torch.cat([ang.repeat_interleave(S, 0), ang[-1:]], 0)    # (n, K, r)
    # Poses are built one control step at a time, each from the pose the step starts at
    # and the same tensor shapes whatever T is, so that T calls of ``step`` give bitwise
    # the poses of one rollout of T steps (a cumulative sum over the whole rollout rounds
    # differently in float32: 1e-8 m apart, which a grip on the edge of slipping grew into
    # another outcome in a few dozen steps).
    tau = dt * torch.arange(S + 1, **kw)[:, None, None]                # (S+1, 1, 1) s
    pos = _per_step(pos0, lin, tau)                                    # (n, K, d)
    if d == 2:
        angle = _per_step(rot0[:, 0], ang[..., 0], tau[..., 0])         # (n, K)
        R = angle_to_matrix(angle)

        def poses(s):
            return pos[s], angle[s][:, None]
    else:
        q, quat = rot0, []
        for t in range(T):
            qs = quat_mul(quat_exp(ang[t][None] * tau), q[None])      # (S+1, K, 4)
            qs = torch.cat([q[None], qs[1:] / qs[1:].norm(dim=-1, keepdim=True)], 0)
            quat.append(qs[:S])
            q = qs[S]
        quat = torch.cat(quat + [q[None]], 0)                          # (n, K, 4)
        R = quat_to_matrix(quat)

        def poses(s):
            return pos[s], quat[s]
    return [pos, R, vel, omega], poses
