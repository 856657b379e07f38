"""Finite elements: ``ds.FEM`` (soft solids) and ``ds.Shell`` (thin shells); see README.md."""

from .mesh import Rectangle, TriMesh, VolumeMesh
from .simulator import FEM

__all__ = ["FEM", "Rectangle", "TriMesh", "VolumeMesh"]
