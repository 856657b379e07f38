"""``AbstractSensitivity``: the base of every ``sensealg``, in the physics core and in
``diffsim.solvers`` alike.

A sensitivity algorithm is a value that says how a solve is differentiated. Each problem
family's ``solve`` gathers what one solve needs into a *job* and hands it to
``sensealg.run(job)``, which runs the forward computation with gradients attached:

=====================================  ==========================  ===================================
family (base)                          job                         ``run`` returns
=====================================  ==========================  ===================================
ODE/SDE solves: ``DirectAdjoint``,     ``solvers.stepping.job.``   the forward pass (saved points
``BacksolveAdjoint``, ... (``dss.      ``SolveJob``                differentiable in ``u0``, ``p``)
AbstractODESensitivity``)
simulator rollouts:                    ``diffsim.adjoint.Rollout``  the stacked saved states
``ds.CheckpointAdjoint``                                           (differentiable in the start
                                                                   state, drive and parameters)
root / fixed-point solves:             ``solvers.implicit.         the solution ``u*``
``dss.ImplicitAdjoint``                sensitivity.ImplicitJob``   (differentiable in the inputs)
=====================================  ==========================  ===================================

This module is torch-free and imports nothing from a simulator, so that both the core
(``diffsim.adjoint``) and ``diffsim.solvers`` (which must not import the core's
simulators) can build on it, as they do on ``diffsim.dispatch``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar


class AbstractSensitivity(abc.ABC):
    """How gradients of a solve's outputs reach its inputs (abstract).

    Subclasses are frozen dataclasses (values) and set :attr:`differentiates`; a
    family's abstract base (``dss.AbstractODESensitivity``, ...) says what ``job`` is.
    """

    #: what this sensitivity differentiates, for error messages ("ODE and SDE solves", ...)
    differentiates: ClassVar[str] = "solves"

    @abc.abstractmethod
    def run(self, job: Any) -> Any:
        """Run the forward computation of ``job`` with gradients attached."""

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"


def check_sensealg(sensealg: Any, family: type | tuple[type, ...], problem: str, allowed: str) -> None:
    """Raise a ``TypeError`` unless ``sensealg`` belongs to ``family``; the message names
    what it differentiates instead and what ``problem`` takes (``allowed``)."""
    if isinstance(sensealg, family):
        return
    if isinstance(sensealg, AbstractSensitivity):
        raise TypeError(f"sensealg={sensealg!r} differentiates {sensealg.differentiates}, not {problem}; "
                        f"use {allowed}")
    raise TypeError(f"sensealg must be {allowed}, got {type(sensealg).__name__}")
