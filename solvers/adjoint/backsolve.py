"""``BacksolveAdjoint``: the continuous adjoint with the state re-integrated backwards."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..ode.methods.base import AbstractODESolver
from ..stepping.forward import Forward, run_forward
from ..stepping.job import SolveJob
from .base import AbstractContinuousAdjoint
from .direct import needs_grad
from .sweep import apply_adjoint, sweep


@dataclasses.dataclass(frozen=True)
class BacksolveAdjoint(AbstractContinuousAdjoint):
    """Continuous adjoint of Chen et al. (2018): solve ``[u, lam, dL/dp]`` backwards from
    the last save time, recomputing ``u`` by integrating the ODE in reverse.

    Memory O(1) in the number of steps (only the saved points are kept). Unstable when
    the forward dynamics are dissipative or stiff: running them backwards amplifies
    errors, so ``u`` drifts from the forward trajectory (it is reset to the stored value
    at every save time, which helps with dense ``saveat``). Gradients are those of the
    exact ODE, accurate to the tolerances, not of the computed solution.

    Args:
        solver: backward-solve algorithm (default: the forward one).
        rtol, atol: backward tolerances (default: the forward ones).
        norm: error norm of the backward solve, "seminorm" (default: the parameter
            integral is excluded from error control), "full" or a callable; see
            :class:`AbstractContinuousAdjoint`.

    Reference: R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, "Neural
    Ordinary Differential Equations", NeurIPS 2018; seminorm: P. Kidger, R. T. Q. Chen,
    T. Lyons, "'Hey, that's not an ODE': Faster ODE Adjoints via Seminorms", ICML 2021.
    """

    solver: AbstractODESolver | None = None
    rtol: float | None = None
    atol: float | None = None
    norm: str | Callable = "seminorm"

    def __post_init__(self):
        self._check_norm()

    def run(self, job: SolveJob) -> Forward:
        if not needs_grad(job):
            return run_forward(job, dense=job.dense, grad=False)
        return apply_adjoint(self, job)

    def forward_pass(self, job: SolveJob) -> Forward:
        return run_forward(job, dense=job.dense, grad=False)

    def backward_sweep(self, job: SolveJob, fwd: Forward, grad_values: torch.Tensor
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return sweep(self, job, fwd, grad_values, mode="backsolve")
