"""Finite elements: ``ds.FEM`` (soft solids) and ``ds.Shell`` (thin shells); see README.md."""

from ..mesh import Rectangle, TriMesh, VolumeMesh
from .shell import Shell
from .simulator import FEM

__all__ = ["FEM", "Shell", "Rectangle", "TriMesh", "VolumeMesh"]
