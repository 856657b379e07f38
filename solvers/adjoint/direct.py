"""``DirectAdjoint``: backpropagation through the solver's operations."""

from __future__ import annotations

import dataclasses

import torch

from ..stepping.forward import Forward, run_forward
from ..stepping.job import SolveJob
from ..stepping.rhs import RecordingNeeded
from .base import AbstractODESensitivity


def needs_grad(job: SolveJob) -> bool:
    """Autograd must record the solve: grad mode is on and something requires grad."""
    return torch.is_grad_enabled() and (job.u0.requires_grad or any(p.requires_grad for p in job.params))


@dataclasses.dataclass(frozen=True)
class DirectAdjoint(AbstractODESensitivity):
    """Discrete adjoint by backpropagation through every step ("discretize-then-optimize").

    Exact gradients of the computed solution (to round-off), whatever the tolerances;
    the only sensitivity under which ``GlobalRegularization`` works, ``sol(t)`` is
    differentiable, and tensors that ``f`` merely closes over receive gradients. Run
    inference under ``torch.no_grad()`` to skip recording. Memory grows with the number of steps (autograd keeps every stage);
    the backward pass costs about one vector-Jacobian product per recorded evaluation
    of ``f``. Step sizes are not differentiated (the controller's decisions are treated
    as constants, as in diffrax). Fastest choice for small models and few steps.
    """

    def run(self, job: SolveJob) -> Forward:
        # Record when grad mode is on and u0, a tensor of p, a module parameter or the
        # first evaluation of f (tensors f closes over) requires grad. Otherwise the lean,
        # unrecorded path runs, in strict mode: should f start to depend on something
        # that requires grad later in the span (a parameter used only for t > t0), the
        # solve restarts recorded instead of writing a recorded stage into a buffer.
        grad = torch.is_grad_enabled() and (job.u0.requires_grad or job.f0.requires_grad or bool(job.params))
        if grad or not torch.is_grad_enabled():
            fwd = run_forward(job, dense=job.dense, grad=grad)
        else:
            nfe, state = job.rhs.nfe, job.reservoir.getstate() if job.reservoir is not None else None
            job.rhs.strict = True
            try:
                fwd = run_forward(job, dense=job.dense, grad=False)
            except RecordingNeeded:
                fwd = None
            finally:
                job.rhs.strict = False
            if fwd is None:
                job.rhs.nfe = nfe
                if state is not None:
                    job.reservoir.setstate(state)
                grad = True
                fwd = run_forward(job, dense=job.dense, grad=True)
        stats, traj = job.stats, fwd.traj
        if grad:
            recorded = job.rhs.nfe - traj.nfe_rejected

            def hook(g):
                stats.nfe_backward = recorded
                return g

            if fwd.values.requires_grad:
                fwd.values.register_hook(hook)
        return fwd
