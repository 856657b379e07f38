"""diffsim: differentiable physics simulation on Taichi and PyTorch.

The public surface is re-exported here; see README.md for a tour.
"""

from diffsim.assets import asset_path

from . import render  # noqa: F401  (the submodule ds.render)
from .adjoint import CheckpointAdjoint
from .dispatch import solve
from .errors import ConvergenceError, GradientError, SimulationError
from .fem import FEM, Rectangle, Shell, TriMesh, VolumeMesh
from .materials import (
    Elastic,
    Fluid,
    LinearElastic,
    Material,
    NeoHookean,
    Plasticine,
    Sand,
    ShellMaterial,
    Snow,
    StableNeoHookean,
)
from .mpm import MPM
from .problem import SimulationProblem, SimulationSolution
from .runtime import init
from .scene import Scene
from .shapes import Box, Capsule, Compound, Cylinder, Mesh, Polygon, Shape, Sphere
from .state import State
from .tactile import (
    Hinge,
    Lights,
    Tactile,
    TactileCamera,
    TactilePad,
    TactilePixelModel,
    TactileReading,
    TactileSensor,
    fit_pixel_model,
)

__all__ = [
    "init", "solve", "SimulationError", "ConvergenceError", "GradientError", "asset_path",
    "Scene", "State", "MPM", "SimulationProblem", "SimulationSolution", "CheckpointAdjoint",
    "Material", "Elastic", "NeoHookean", "Plasticine", "Fluid", "Sand", "Snow",
    "Shape", "Box", "Sphere", "Capsule", "Cylinder", "Compound", "Polygon", "Mesh",
    # FEM solids and thin shells
    "FEM", "Shell", "LinearElastic", "StableNeoHookean", "ShellMaterial",
    "VolumeMesh", "TriMesh", "Rectangle",
    # tactile sensing
    "Tactile", "TactileSensor", "TactilePad", "TactileCamera", "TactileReading", "Lights",
    "TactilePixelModel", "fit_pixel_model", "Hinge",
]
__version__ = "0.1.0"
