"""Vision-based tactile sensing (``ds.Tactile``): GelSight-like FEM pads on kinematic fingers."""

from .pad import TactilePad
from .reading import TactileReading
from .rigid import Hinge
from .sensor import Lights, TactileCamera, TactileSensor
from .simulator import Tactile

__all__ = ["Tactile", "Hinge", "TactileSensor", "TactilePad", "TactileCamera", "TactileReading", "Lights"]
