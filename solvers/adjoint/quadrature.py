"""``QuadratureAdjoint``: adjoint for ``lam`` alone, parameter gradient by quadrature."""

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
class QuadratureAdjoint(AbstractContinuousAdjoint):
    """Continuous adjoint that integrates only ``lam`` backwards (its vector-Jacobian
    products are taken with respect to ``u`` alone, and error control sees only ``lam``)
    and computes ``dL/dp = int lam^T df/dp dt`` by an ``nodes``-point Gauss–Legendre rule
    on each backward step, reading ``lam`` from that step's dense output and ``u`` from
    the forward dense output.

    Memory: the forward dense output (as :class:`InterpolatingAdjoint` without
    checkpoints). Cost: ``nodes`` extra parameter vjps per backward step, in exchange
    for cheaper stage vjps; pays off when ``p`` is small or the backward solve takes
    few, long steps. The quadrature error is not controlled (it is of the order of the
    step's dense-output error).

    Args:
        nodes: Gauss–Legendre nodes per backward step (exact for polynomials of degree
            ``2*nodes - 1``).
        solver, rtol, atol: options of the backward solve (defaults: the forward ones).
        norm: error norm of the backward solve ("seminorm" and "full" coincide here: only
            ``lam`` is integrated), or a callable ``norm((lam,))``; see
            :class:`AbstractContinuousAdjoint`.

    Reference: SciMLSensitivity.jl ``QuadratureAdjoint``; Y. Ma et al., HPEC 2021
    (see :class:`InterpolatingAdjoint`).
    """

    nodes: int = 3
    solver: AbstractODESolver | None = None
    rtol: float | None = None
    atol: float | None = None
    norm: str | Callable = "seminorm"

    def __post_init__(self):
        self._check_norm()
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or not 1 <= self.nodes <= 16:
            raise ValueError(f"nodes must be an int in [1, 16], got {self.nodes!r}")

    def run(self, job: SolveJob) -> Forward:
        if not needs_grad(job):
            return run_forward(job, dense=job.dense, grad=False)
        return apply_adjoint(self, job)

    def forward_pass(self, job: SolveJob) -> Forward:
        return run_forward(job, dense=True, grad=False)

    def backward_sweep(self, job: SolveJob, fwd: Forward, grad_values: torch.Tensor
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        dense = fwd.dense
        return sweep(self, job, fwd, grad_values, mode="quad", u_provider=lambda hi, lo: dense.eval,
                     quad_nodes=self.nodes)
