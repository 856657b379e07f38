"""``DirectAdjoint``: backpropagation through the solver's operations."""

from __future__ import annotations

import dataclasses

import torch

from ..forward import Forward, run_forward
from ..job import ODEJob
from .base import AbstractSensitivity


def needs_grad(job: ODEJob) -> bool:
    """Autograd must record the solve: grad mode is on and something requires grad."""
    return torch.is_grad_enabled() and (job.u0.requires_grad or any(p.requires_grad for p in job.params))


@dataclasses.dataclass(frozen=True)
class DirectAdjoint(AbstractSensitivity):
    """Discrete adjoint by backpropagation through every step ("discretize-then-optimize").

    Exact gradients of the computed solution (to round-off), whatever the tolerances;
    the only sensitivity under which ``GlobalRegularization`` works and ``sol(t)`` is
    differentiable. Memory grows with the number of steps (autograd keeps every stage);
    the backward pass costs about one vector-Jacobian product per recorded evaluation
    of ``f``. Step sizes are not differentiated (the controller's decisions are treated
    as constants, as in diffrax). Fastest choice for small models and few steps.
    """

    def run(self, job: ODEJob) -> Forward:
        grad = needs_grad(job)
        fwd = run_forward(job, dense=job.dense, grad=grad)
        stats, traj = job.stats, fwd.traj
        if grad:
            recorded = job.rhs.nfe - traj.nfe_rejected

            def hook(g):
                stats.nfe_backward = recorded
                return g

            if fwd.values.requires_grad:
                fwd.values.register_hook(hook)
        return fwd
