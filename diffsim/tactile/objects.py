"""The objects a ``ds.Tactile``'s pads touch: their specifications (``ObjectSpec``) built
from a scene's tools, colliders and ground, and the signed-distance grids of mesh objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import Scene
from ..shapes import Mesh, Sphere
from ..tools import obstacle_geometry
from .gridsdf import GridSDF


@dataclass(frozen=True)
class ObjectSpec:
    """An object the pads touch: a kinematic tool (``tool`` its index), a static collider or
    the ground (``tool = -1``, ``center`` its position). ``geom``: the analytic shape's
    sizes (``diffsim.tools.obstacle_geometry``), or for ``kind == "mesh"`` its ``gridsdf.GridSDF``."""

    name: str
    kind: str
    geom: tuple
    axis: int
    tool: int
    center: tuple
    stiffness: float
    damping: float
    friction: float


def _mesh_grid(shape: Mesh, name: str, ref: np.ndarray, sdf_spacing) -> GridSDF:
    """The grid SDF of a mesh object in its own frame (origin ``ref``, world axes)."""
    import trimesh

    spacing = sdf_spacing.get(name) if isinstance(sdf_spacing, dict) else sdf_spacing
    arg = f"sdf_spacing[{name!r}]" if isinstance(sdf_spacing, dict) else "sdf_spacing"
    if not shape.mesh.is_watertight:
        raise ValueError(f"object {name!r}: the mesh is not watertight: a signed distance needs "
                         "a closed surface (try trimesh's repair.fill_holes)")
    local = trimesh.Trimesh(np.asarray(shape.mesh.vertices, np.float64) - ref,
                            np.asarray(shape.mesh.faces), process=False)
    try:
        return GridSDF.bake(local, spacing, name=arg)
    except ValueError as e:
        raise ValueError(f"object {name!r}: {e}") from None


def _mesh_center_of_mass(shape: Mesh) -> np.ndarray:
    return np.asarray(shape.mesh.mass_properties.center_mass, np.float64)


def rigid_objects(scene: Scene, inner: Scene, free_names: set, sdf_spacing, stiffness: float,
                  damping: float) -> list:
    """The rigid objects the pads touch: the scene's tools (added to ``inner``, the pads'
    ``ds.FEM`` scene, as its tools: a mesh tool as a small stand-in sphere, its own contact
    off), its static colliders and the ground, as ``ObjectSpec``s in that order.

    Args:
        scene: the user's scene; ``inner``: the pads' scene (tools are appended).
        free_names: names of the tools that are free rigid bodies (a free mesh body's pose
            moves its centre of mass, a kinematic one's its bounding box's centre).
        sdf_spacing: grid spacing (m) of mesh objects' signed distances (a number, or a
            dict by object name, or None for the default).
        stiffness, damping: contact penalty stiffness and damping of every object.

    Raises:
        ValueError: a bad ``sdf_spacing``; a mesh that is not watertight.
    """
    objects = []
    meshes = [o.name for o in (*scene.tools, *scene.colliders) if isinstance(o.shape, Mesh)]
    if sdf_spacing is not None and not (
            isinstance(sdf_spacing, dict) and set(sdf_spacing) <= set(meshes)
            or isinstance(sdf_spacing, (int, float))):
        raise ValueError(f"sdf_spacing={sdf_spacing!r} is not allowed: expected None, a "
                         "spacing (m) or a dict {mesh object name: spacing}; mesh objects: "
                         f"{meshes}")
    for t in scene.tools:
        if isinstance(t.shape, Mesh):
            # the pose of a mesh tool moves its bounding box's centre (Shape.center); a
            # free mesh body's moves its centre of mass (the body's reference point)
            ref = (_mesh_center_of_mass(t.shape) if t.name in free_names else
                   np.asarray(t.shape.center, np.float64))
            kind, geom, axis = "mesh", _mesh_grid(t.shape, t.name, ref, sdf_spacing), 0
            # a stand-in for ds.FEM's tool list (its own contact is off, as the fingers')
            inner.add_tool(Sphere(center=tuple(ref), radius=1e-3), friction=t.friction,
                           name=t.name, rotation=t.rotation)
        else:
            kind, geom, axis = obstacle_geometry(t.shape)
            inner.add_tool(t.shape, friction=t.friction, name=t.name, rotation=t.rotation)
        objects.append(ObjectSpec(t.name, kind, geom, axis, len(inner.tools) - 1,
                                  (0.0, 0.0, 0.0), float(stiffness), float(damping), t.friction))
    for c in scene.colliders:
        if isinstance(c.shape, Mesh):
            kind, geom, axis = "mesh", _mesh_grid(c.shape, c.name, np.asarray(
                c.shape.center, np.float64), sdf_spacing), 0
        else:
            kind, geom, axis = obstacle_geometry(c.shape)
        objects.append(ObjectSpec(c.name, kind, geom, axis, -1,
                                  tuple(map(float, c.shape.center)), float(stiffness),
                                  float(damping), c.friction))
    if scene.ground is not None:
        objects.append(ObjectSpec("ground", "ground", (), 0, -1, (0.0, scene.ground.height, 0.0),
                                  float(stiffness), float(damping), scene.ground.friction))
    return objects
