"""``dss.pde``: reference PDE solvers, data generation and evaluation of surrogates.

* The MP-PDE 1D families (``E1``, ``E2``, ``E3``): the combined Burgers/heat/KdV
  equation as a WENO5 finite-volume method of lines (:class:`CombinedEquation`),
  integrated by ``dss.solve``.
* 2D incompressible Navier-Stokes smoke buoyancy (PDEArena-like) on diffsim's Taichi
  Eulerian grid (:class:`SmokeData`, ``ds.Smoke``).
* Particle trajectories from ``ds.MPM`` scenes (:class:`ParticleData`).
* :func:`generate` writes any of them to HDF5 (attributes, progress bar, resume,
  parallel processes); :func:`load_ce`, :func:`load_smoke`, :func:`load_particles` read
  them back with checks.
* :func:`evaluate` and :func:`rollout`: one-step / accumulated errors, stability, speed.
"""

from .burgers import CombinedEquation, Forcing, cell_centres
from .datasets import CEData, downsample, load_ce, open_checked
from .evaluate import EvalResult, evaluate, rollout, step_error
from .families import E1, E2, E3, FAMILIES, CEFamily, family
from .fielddata import FieldData
from .generate import DataSpec, generate
from .particles import ParticleData, ParticleSet, load_particles
from .smoke import SmokeData, load_smoke
from .weno import godunov_burgers, rusanov_burgers, weno5, weno5_faces

__all__ = [
    "CombinedEquation", "Forcing", "cell_centres", "weno5", "weno5_faces", "godunov_burgers", "rusanov_burgers",
    "CEFamily", "E1", "E2", "E3", "FAMILIES", "family",
    "DataSpec", "CEData", "generate", "load_ce", "open_checked", "downsample", "FieldData",
    "evaluate", "rollout", "EvalResult", "step_error",
    "SmokeData", "load_smoke", "ParticleData", "ParticleSet", "load_particles",
]
