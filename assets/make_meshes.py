"""Regenerate the shipped meshes (run: python assets/make_meshes.py).

Each mesh is a watertight solid of revolution about the y axis (y is up in
diffsim scenes), in metres, with its base at y = 0 and its axis at x = z = 0.
"""

from pathlib import Path

import numpy as np
import trimesh

HERE = Path(__file__).resolve().parent / "meshes"


def revolve_y(profile, sections=48):
    """Revolve a closed (r, y) profile polygon about the y axis."""
    pts = np.asarray(profile, float)
    if pts[0, 0] > 0:  # a profile off the axis must be closed explicitly
        pts = np.vstack([pts, pts[:1]])
    mesh = trimesh.creation.revolve(pts, sections=sections)
    # trimesh revolves about z with (r, z) profiles: turn z into y
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    mesh.fix_normals()
    assert mesh.is_watertight, "mesh must be watertight"
    return mesh


def cup(r_out=0.5, height=1.0, wall=0.08, bottom=0.08):
    """Open cup of unit height: outer radius r_out, wall and bottom thickness."""
    r_in = r_out - wall
    return revolve_y([(0, 0), (r_out, 0), (r_out, height), (r_in, height), (r_in, bottom),
                      (0, bottom)])


def funnel(r_top=0.5, r_spout=0.2, height=1.0, spout=0.3, wall=0.05):
    """Funnel: a cone from r_top at the top down to a spout of radius r_spout."""
    return revolve_y([(r_spout, 0), (r_spout + wall, 0), (r_spout + wall, spout),
                      (r_top + wall, height), (r_top, height), (r_spout, spout)])


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, mesh in {"cup": cup(), "funnel": funnel()}.items():
        mesh.export(HERE / f"{name}.obj")
        print(name, len(mesh.faces), "faces, volume", round(mesh.volume, 4))
