"""Sensitivity algorithms (``sensealg``): how a solve is differentiated."""

from .backsolve import BacksolveAdjoint
from .base import AbstractContinuousAdjoint, AbstractSensitivity
from .direct import DirectAdjoint
from .interpolating import InterpolatingAdjoint
from .quadrature import QuadratureAdjoint

__all__ = [
    "AbstractSensitivity", "AbstractContinuousAdjoint",
    "DirectAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint",
]
