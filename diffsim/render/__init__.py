"""``diffsim.render``: a Taichi software renderer for simulator states, and notebook output.

* :class:`Renderer` draws any simulator's state into an (H, W, 3) uint8 image,
  on the CPU or CUDA, with no display or OpenGL: MPM particles as shaded sphere
  splats, FEM solids, shells and tactile pads as shaded triangle surfaces (with
  the pads' markers and, optionally, the tactile images beside the scene),
  tools, free and hinged rigid objects, colliders and a floor (``drawing.py``
  says what each simulator shows, ``raster.py`` holds the kernel);
* :class:`Camera` (``camera.py``) places the view; :meth:`Camera.framing`
  frames a scene's bounds;
* :func:`animate` turns frames into an HTML player or a GIF for notebooks;
* :func:`export_state` writes a state as a point cloud / scene file (trimesh).

Example::

    r = ds.render.Renderer(256, 256)
    img = r.render(sim, state)
    ds.render.animate([r.render(sim, s) for s in states], fps=20)
"""

from .animate import Animation, animate
from .camera import Camera
from .export import export_state
from .meshes import TriMesh
from .renderer import PALETTE, Floor, Renderer, render_state
from .surfaces import Surface, boundary_faces

__all__ = ["Renderer", "Camera", "Floor", "render_state", "animate", "Animation",
           "export_state", "TriMesh", "Surface", "boundary_faces", "PALETTE"]
