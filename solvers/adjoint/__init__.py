"""Sensitivity algorithms (``sensealg``): how a solve is differentiated."""

from .backsolve import BacksolveAdjoint
from .base import AbstractContinuousAdjoint, AbstractODESensitivity, AbstractSensitivity
from .direct import DirectAdjoint
from .interpolating import InterpolatingAdjoint
from .quadrature import QuadratureAdjoint

__all__ = [
    "AbstractSensitivity", "AbstractODESensitivity", "AbstractContinuousAdjoint",
    "DirectAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint",
]
