"""Contact-seeking shaping: distances from tools to the bodies they must reach (torch).

A task whose tools start away from the object has a flat loss until they touch it: no
gradient, and samplers see no difference between plans that miss. ``Task.contacts``
declares which tool must reach which body; the framework adds (``Task.objective``)

    shaping = weight * sum_(tool, body) max(gap - tolerance, 0)^2 / scale^2

with ``gap`` the distance from the tool's surface to the nearest point (particle or
mesh node) of the body. The term is zero while every declared tool touches its body, so
it shapes only where the task loss is flat (before contact, or after losing it), as the
approach terms of PlasticineLab (Huang et al., ICLR 2021) and ThinShellLab (Wang et al.,
ICLR 2024) do. ``goal_loss`` (the success metric) never includes it.

The signed distances below are torch versions of the tool shapes of ``ds.MPM`` /
``ds.FEM`` / ``ds.Shell`` (``ToolSpec``: sphere, box, capsule, cylinder and compounds of
them), evaluated in the tool's frame at its pose in the state, so they are
differentiable in the tool pose and in the body's points.
"""

from __future__ import annotations

import torch

from diffsim.tools import angle_to_matrix, quat_to_matrix

#: shapes with a signed distance here (and compounds of them)
ANALYTIC = ("sphere", "box", "capsule", "cylinder")


def _sdf_local(kind: str, geom, axis: int, q: torch.Tensor) -> torch.Tensor:
    """Signed distance (m) of points ``q`` (N, d) in a tool part's frame."""
    if kind == "sphere":
        return q.norm(dim=1) - geom[0]
    if kind == "box":
        d = q.abs() - torch.as_tensor(geom, dtype=q.dtype, device=q.device)
        return d.clamp(min=0.0).norm(dim=1) + d.max(dim=1).values.clamp(max=0.0)
    if kind == "capsule":
        radius, half = geom
        a = q.clone()
        a[:, axis] = q[:, axis] - q[:, axis].clamp(-half, half)
        return a.norm(dim=1) - radius
    if kind == "cylinder":
        radius, half = geom
        keep = [i for i in range(q.shape[1]) if i != axis]
        radial = q[:, keep].norm(dim=1) - radius
        along = q[:, axis].abs() - half
        d = torch.stack([radial, along], 1)
        return d.clamp(min=0.0).norm(dim=1) + d.max(dim=1).values.clamp(max=0.0)
    raise TypeError(f"no signed distance for tool kind {kind!r}")


def tool_sdf(spec, pos: torch.Tensor, rot: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) signed distance (m, negative inside) of points ``x`` (N, d) to a tool.

    Args:
        spec: the tool's ``ToolSpec`` (``sim.model.tools[k]``).
        pos: (d,) tool position; rot: (1,) angle (2D, rad) or (4,) quaternion (w, x, y, z).
        x: (N, d) points (m).
    """
    R = angle_to_matrix(rot[0]) if x.shape[1] == 2 else quat_to_matrix(rot)
    q = (x - pos) @ R.to(x.dtype)          # rows: R^T (x - p), the tool frame
    if spec.kind == "compound":
        parts = [_sdf_local(k, g, a, q - torch.as_tensor(o, dtype=q.dtype, device=q.device))
                 for k, g, a, o in spec.geom]
        return torch.stack(parts).min(0).values
    return _sdf_local(spec.kind, spec.geom, spec.axis, q)


def tool_index(sim, tool) -> int:
    """The index of ``tool`` (a name or an index) in ``sim.model.tools``."""
    tools = sim.model.tools
    if isinstance(tool, int) and not isinstance(tool, bool):
        if not 0 <= tool < len(tools):
            raise ValueError(f"tool index {tool} out of range: the scene has {len(tools)} tool(s)")
        return tool
    names = [t.name for t in tools]
    if tool not in names:
        raise ValueError(f"unknown tool {tool!r}; the scene's tools: {names} (a static "
                         "obstacle may be named too: a ds.FEM/ds.Shell collider or a "
                         "ds.Tactile static object)")
    return names.index(tool)


def static_obstacle(sim, name: str):
    """The analytic static obstacle ``name`` of a scene, as ``(spec, position)``: a
    ``ds.FEM``/``ds.Shell`` collider (``sim.model.colliders``) or a ``ds.Tactile`` static
    object (``sim.objects`` with no tool); None when there is none of that name. ``spec``
    has the ``kind``, ``geom`` and ``axis`` of a ``ToolSpec``; obstacles are not rotated."""
    colliders = getattr(sim.model, "colliders", None)
    found = [c for c in (colliders if isinstance(colliders, tuple) else ())
             if c.name == name]
    found += [o for o in getattr(sim, "objects", ()) if o.name == name and o.tool == -1
              and o.kind in ANALYTIC]
    if not found:
        return None
    return found[0], found[0].center


def tool_gap(sim, state, tool, body: str) -> torch.Tensor:
    """Distance (m) from a tool's surface to the nearest point of ``body`` (negative when
    a point is inside the tool); differentiable in the tool pose and the points (the
    gradient reaches the nearest point).

    Args:
        sim: the simulator (``model.tools``, ``groups``).
        state: a state of ``sim`` (``x``, ``tool_pos``, ``tool_rot``).
        tool: the tool's name or index, or the name of a static analytic obstacle
            (``static_obstacle``: a collider the body must reach, e.g. a surface to follow).
        body: a body name (``sim.groups``).
    """
    if body not in sim.groups:
        raise ValueError(f"unknown body {body!r}; the scene's bodies: {list(sim.groups)}")
    x = state.x[sim.groups[body]]
    is_tool = not isinstance(tool, str) or tool in [t.name for t in sim.model.tools]
    obstacle = None if is_tool else static_obstacle(sim, tool)
    if obstacle is not None:
        spec, center = obstacle
        pos = torch.as_tensor(center, dtype=x.dtype, device=x.device)
        rot = x.new_zeros(1) if x.shape[1] == 2 else torch.tensor(
            [1.0, 0.0, 0.0, 0.0], dtype=x.dtype, device=x.device)
        return tool_sdf(spec, pos, rot, x).min()
    k = tool_index(sim, tool)
    phi = tool_sdf(sim.model.tools[k], state.tool_pos[k], state.tool_rot[k], x)
    return phi.min()


def contact_shaping(sim, state, contacts, scale: float, tolerance: float = 0.0,
                    weight: float = 1.0) -> torch.Tensor:
    """``weight * sum max(gap - tolerance, 0)^2 / scale^2`` over ``(tool, body)`` pairs.

    Args:
        contacts: ``(tool name or index, body name)`` pairs; the tool may be a static
            obstacle's name (``static_obstacle``).
        scale: length (m) at which a pair's term is ``weight``.
        tolerance: gap (m) that already counts as contact (e.g. a soft-contact width).
        weight: the term's weight.

    Returns:
        A scalar tensor (0 when every tool is within ``tolerance`` of its body).
    """
    out = state.x.new_zeros(())
    for tool, body in contacts:
        gap = tool_gap(sim, state, tool, body)
        out = out + (gap - tolerance).clamp(min=0.0) ** 2
    return weight * out / scale ** 2
