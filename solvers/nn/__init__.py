"""``dss.nn``: neural PDE surrogates and neural PDE layers (PyTorch).

Models (``nn.Module``s):

* :class:`MPPDE` - message-passing neural PDE solver with temporal bundling (Brandstetter et al. 2022).
* :class:`FNO` - Fourier neural operator, 1D/2D/3D (Li et al. 2021).
* :class:`UNet` - U-Net baseline, 1D/2D/3D.
* :class:`GNS` - graph-network particle simulator, encode-process-decode (Sanchez-Gonzalez et al. 2020).
* :class:`NeuralPDE` - a finite-volume method of lines with a learned flux / closure,
  integrated by ``dss.solve`` with any ``sensealg`` and regularizer.

Training: :class:`Trainer`, :class:`TrainConfig`, tasks (:class:`FieldTask`,
:class:`ParticleTask`, :class:`NeuralPDETask`), :class:`GeneralCovariance` augmentation,
:func:`load_model`; the command line is ``diffsim train``.
"""

from .augment import GeneralCovariance
from .base import MODELS, AbstractFieldModel, build_model
from .fno import FNO, SpectralConv
from .gns import GNS
from .graph import grid_graph_1d, radius_graph, scatter_mean, scatter_sum
from .mppde import MPPDE
from .neural_pde import FiniteVolume1D, NeuralPDE, StencilFlux
from .tasks import FieldTask, NeuralPDETask, ParticleTask, Task
from .training import TrainConfig, Trainer, load_checkpoint, load_model
from .unet import UNet

__all__ = [
    "AbstractFieldModel", "MODELS", "build_model",
    "MPPDE", "FNO", "SpectralConv", "UNet", "GNS",
    "NeuralPDE", "FiniteVolume1D", "StencilFlux",
    "Trainer", "TrainConfig", "load_checkpoint", "load_model",
    "Task", "FieldTask", "ParticleTask", "NeuralPDETask", "GeneralCovariance",
    "radius_graph", "grid_graph_1d", "scatter_sum", "scatter_mean",
]
