"""Eulerian (grid) fluid solvers on Taichi: ``Smoke`` (2D incompressible smoke buoyancy)."""

from .smoke import PRECONDITIONERS, Smoke, noise_field

__all__ = ["Smoke", "noise_field", "PRECONDITIONERS"]
