"""``export_state``: a simulator state to a point-cloud / mesh file through trimesh.

Particles become a ``trimesh.PointCloud`` with per-body vertex colours (2D
scenes at ``z = 0``). With ``tools`` or ``colliders`` the file holds a
``trimesh.Scene`` (particles plus one mesh per tool at its pose and per
collider), which needs a scene format: ``.glb`` or ``.gltf``. Point clouds
alone go to any format trimesh writes for them (``.ply``, ``.xyz``, ``.glb``,
...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCENE_FORMATS = ("glb", "gltf")


def export_state(sim, state, path, tools: bool = False, colliders: bool = False,
                 colors: dict | None = None) -> Path:
    """Write the particles of ``state`` (and optionally tools/colliders) to ``path``.

    Args:
        sim: the simulator of ``state`` (``ds.MPM``).
        state: a ``ds.State`` of ``sim``.
        path: output file; the suffix picks the format (``.ply``, ``.xyz``,
            ``.glb``, ...). Existing files are overwritten.
        tools: also write the tool meshes at their poses (needs ``.glb``/``.gltf``).
        colliders: also write the static collider meshes (needs ``.glb``/``.gltf``).
        colors: ``{body name: colour}`` overriding the default palette.

    Returns:
        The written path.

    Raises:
        ValueError: a format that cannot hold what was asked for, a state that
            does not fit ``sim``, unknown body names in ``colors``.
        TypeError: ``sim`` is not a ``ds.MPM`` (FEM, shell and tactile states are
            drawn by the renderer, not exported here yet).
    """
    import trimesh

    from .meshes import pose_matrices, shape_mesh, tool_mesh
    from .renderer import COLLIDER_COLOR, PALETTE, TOOL_COLOR, _rgb

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if not fmt:
        raise ValueError(f"path={str(path)!r} has no suffix: name the format, e.g. 'out.ply'")
    if (tools or colliders) and fmt not in SCENE_FORMATS:
        raise ValueError(f"path={str(path)!r}: writing tools or colliders needs a scene format "
                         f"({', '.join('.' + f for f in SCENE_FORMATS)}); use one, or write the "
                         "particles alone")
    if not hasattr(sim, "n_particles"):
        raise TypeError(f"export_state writes the particles of a ds.MPM state; sim is a "
                        f"{type(sim).__name__} (draw it with ds.render.Renderer.render, or "
                        "write its nodes state.x and sim's faces with trimesh)")
    x = state.x.detach().cpu().numpy().astype(np.float64)
    if x.shape != (sim.n_particles, sim.dim):
        raise ValueError(f"state.x has shape {x.shape}; this simulator needs "
                         f"{(sim.n_particles, sim.dim)}")
    if sim.dim == 2:
        x = np.concatenate([x, np.zeros((len(x), 1))], 1)
    colors = dict(colors or {})
    unknown = set(colors) - set(sim.groups)
    if unknown:
        raise ValueError(f"colors has unknown body name(s) {sorted(unknown)}; bodies: "
                         f"{list(sim.groups)}")
    rgba = np.full((len(x), 4), 255, np.uint8)
    for i, (name, sl) in enumerate(sim.groups.items()):
        rgb = _rgb(f"colors[{name!r}]", colors.get(name, PALETTE[i % len(PALETTE)]))
        rgba[sl, :3] = np.round(rgb * 255).astype(np.uint8)
    cloud = trimesh.PointCloud(x, colors=rgba)
    if not (tools or colliders):
        cloud.export(str(path), file_type=fmt)
        return path

    scene = trimesh.Scene()
    scene.add_geometry(cloud, geom_name="particles")

    def add(name, tm, color):
        mesh = trimesh.Trimesh(tm.vertices, tm.faces, vertex_normals=tm.normals, process=False)
        mesh.visual.face_colors = np.append(np.round(_rgb(name, color) * 255), 255).astype(
            np.uint8)
        scene.add_geometry(mesh, geom_name=name)

    if tools and sim.model.tools:
        poses = pose_matrices(state.tool_pos.detach().cpu().numpy(),
                              state.tool_rot.detach().cpu().numpy())
        for t, pose in zip(sim.model.tools, poses):
            add(f"tool:{t.name}", tool_mesh(t.kind, t.geom, t.axis, sim.dim).transformed(pose),
                TOOL_COLOR)
    if colliders:
        for c in sim.scene.colliders:
            add(f"collider:{c.name}", shape_mesh(c.shape), COLLIDER_COLOR)
    scene.export(str(path), file_type=fmt)
    return path


__all__ = ["export_state", "SCENE_FORMATS"]
