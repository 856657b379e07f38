"""Abstract sensitivity algorithms (how ``solve`` is differentiated)."""

from __future__ import annotations

import abc

from ..stepping.forward import Forward
from ..stepping.job import SolveJob


class AbstractSensitivity(abc.ABC):
    """How gradients of a solve's outputs reach ``u0`` and ``p``.

    ``run(job)`` performs the forward pass and returns a :class:`Forward` whose
    ``values`` are differentiable with respect to ``u0`` and the job's parameters.
    """

    @abc.abstractmethod
    def run(self, job: SolveJob) -> Forward:
        """Forward pass with gradients attached."""

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"


class AbstractContinuousAdjoint(AbstractSensitivity):
    """Marker: gradients from an adjoint ODE solved backwards in time.

    Subclasses hold the options of the backward solve: ``solver`` (default: the
    forward algorithm), ``rtol``/``atol`` (default: the forward ones) and ``norm``, the
    error norm of the backward solve:

    * ``"seminorm"`` (default): RMS over the state and adjoint parts only; the parameter
      integral ``dL/dp`` is left out of error control (Kidger, Chen & Lyons, ICML 2021;
      torchdiffeq's ``adjoint_options=dict(norm="seminorm")``).
    * ``"full"``: RMS over the whole augmented state, parameter integral included
      (torchdiffeq's default; more backward steps, no more accuracy in ``dL/du0``).
    * a callable ``norm(parts) -> 0-d tensor`` of the scaled error, with ``parts`` a
      tuple ``(u, lam, *param_parts)``: ``u`` only for :class:`BacksolveAdjoint`, ``u``
      and ``lam`` in the state's structure (tensor or pytree), one part per parameter
      tensor when the integral is part of the backward state (explicit Runge-Kutta
      backward solvers; :class:`QuadratureAdjoint` and Rosenbrock backward solvers
      integrate it outside, so there it is neither in ``parts`` nor affected by
      ``"full"``).
    """

    def _check_norm(self) -> None:
        norm = getattr(self, "norm", "seminorm")
        if not (callable(norm) or norm in ("seminorm", "full")):
            raise ValueError(f"norm must be 'seminorm', 'full' or a callable norm(parts) -> 0-d tensor, got {norm!r}")
