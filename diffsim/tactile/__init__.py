"""Vision-based tactile sensing (``ds.Tactile``): GelSight-like FEM pads on kinematic fingers."""

from .pad import TactilePad
from .pixel_model import TactilePixelModel, fit_pixel_model
from .reading import PixelFeatures, TactileReading
from .rigid import Hinge
from .sensor import Lights, TactileCamera, TactileSensor
from .simulator import Tactile

__all__ = ["Tactile", "Hinge", "TactileSensor", "TactilePad", "TactileCamera", "TactileReading",
           "Lights", "PixelFeatures", "TactilePixelModel", "fit_pixel_model"]
