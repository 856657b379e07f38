"""Abstract sensitivity algorithms (how ``solve`` is differentiated)."""

from __future__ import annotations

import abc

from ..forward import Forward
from ..job import ODEJob


class AbstractSensitivity(abc.ABC):
    """How gradients of a solve's outputs reach ``u0`` and ``p``.

    ``run(job)`` performs the forward pass and returns a :class:`Forward` whose
    ``values`` are differentiable with respect to ``u0`` and the job's parameters.
    """

    @abc.abstractmethod
    def run(self, job: ODEJob) -> Forward:
        """Forward pass with gradients attached."""

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"


class AbstractContinuousAdjoint(AbstractSensitivity):
    """Marker: gradients from an adjoint ODE solved backwards in time.

    Subclasses hold the options of the backward solve: ``solver`` (default: the
    forward algorithm), ``rtol``/``atol`` (default: the forward ones).
    """
