"""Abstract sensitivity algorithms of ODE and SDE solves (how ``solve`` is differentiated).

They share their root, :class:`diffsim.sensitivity.AbstractSensitivity`, with the
physics core's ``ds.CheckpointAdjoint`` and with ``ImplicitAdjoint``; this family runs on
a :class:`~solvers.stepping.job.SolveJob`.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from diffsim.sensitivity import AbstractSensitivity

from ..stepping.forward import Forward
from ..stepping.job import SolveJob


class AbstractODESensitivity(AbstractSensitivity):
    """How gradients of an ODE solve's outputs reach ``u0``, ``p`` and the times
    (``DirectAdjoint`` also serves SDE solves and, unrolled, root solves).

    ``run(job)`` performs the forward pass and returns a :class:`Forward` whose
    ``values`` are differentiable with respect to ``u0`` and the job's parameters.
    """

    differentiates: ClassVar[str] = "ODE and SDE solves"

    @abc.abstractmethod
    def run(self, job: SolveJob) -> Forward:
        """Forward pass with gradients attached."""


class AbstractContinuousAdjoint(AbstractODESensitivity):
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

    @abc.abstractmethod
    def forward_pass(self, job: SolveJob) -> Forward:
        """The forward solve, without autograd, keeping what the backward sweep reads
        (saved points; the dense output or checkpoints where the adjoint needs ``u(t)``)."""

    @abc.abstractmethod
    def backward_sweep(self, job: SolveJob, fwd: Forward, grad_values: torch.Tensor
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Solve the adjoint backwards from the last saved time to ``t0``, given ``dL/du``
        at the saved points (``grad_values``, shaped like ``fwd.values``); returns
        ``(dL/du0, [dL/dparam for each of job.params])``."""

    def _check_norm(self) -> None:
        norm = getattr(self, "norm", "seminorm")
        if not (callable(norm) or norm in ("seminorm", "full")):
            raise ValueError(f"norm must be 'seminorm', 'full' or a callable norm(parts) -> 0-d tensor, got {norm!r}")
