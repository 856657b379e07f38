"""The answer of a solve: times, states, dense output, statistics, return code."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .retcode import ReturnCode


@dataclasses.dataclass
class Stats:
    """Counters of one solve.

    Attributes:
        nfe: evaluations of ``f`` in the forward solve (stages, the initial-step
            heuristic, dense-output stages; a Jacobian counts one evaluation).
        naccept, nreject: accepted and rejected steps of the forward solve (summed over
            samples with ``per_sample=True``).
        njac: Jacobians formed (stiff solvers).
        nfe_reg: evaluations spent by the regularizer's extra step.
        nfe_backward: evaluations of ``f`` (each with a vector-Jacobian product) in the
            backward pass; filled in when ``backward()`` runs. Under ``DirectAdjoint`` it
            is the number of ``f`` calls recorded in the graph (one vjp each);
            checkpointed re-solves count here too.
        naccept_backward, nreject_backward: steps of the adjoint solve.
        ng: evaluations of the diffusion ``g`` (SDEs).
        niters: loop iterations with ``per_sample=True`` (each advances every unfinished
            sample by one attempted step); equals ``naccept + nreject`` otherwise.
    """

    nfe: int = 0
    naccept: int = 0
    nreject: int = 0
    njac: int = 0
    nfe_reg: int = 0
    nfe_backward: int = 0
    naccept_backward: int = 0
    nreject_backward: int = 0
    niters: int = 0
    ng: int = 0

    @property
    def nfe_forward(self) -> int:
        return self.nfe

    @property
    def nfe_total(self) -> int:
        return self.nfe + self.nfe_reg + self.nfe_backward


class ODESolution:
    """Result of ``solve`` for ODE and SDE problems.

    Attributes:
        t: (T,) tensor of save times (``saveat``, or every accepted step when ``saveat``
            is None; a terminal event's time last), on ``u0``'s device. Differentiable
            where the times are: ``saveat`` or ``tspan`` entries that require grad,
            event times.
        u: (T, *u0.shape) tensor of states at ``t``, time first (for a pytree state: the
            same pytree with a leading time axis on every leaf); differentiable with
            every ``sensealg``, also with respect to ``t0``, ``t1`` and ``saveat``.
        stats: :class:`Stats`.
        retcode: :class:`ReturnCode`; a failed solve holds only the points saved
            before the failure.
        reg: the weighted regularization term (0-d tensor; zero without
            ``regularization``), differentiable: add it to the loss.
        event_t, event_u, event_index: the event crossings found (``event=``): times
            ``(K,)``, states ``(K, *u0.shape)`` (pytree like ``u``) and which event of the
            list each one is; differentiable by the implicit function theorem. None
            without events.
        prob, alg, sensealg: what was solved and how.

    Calling ``sol(t)`` (a float, or a 1-D sequence/tensor of times) evaluates the dense
    output; it needs ``dense=True`` (the default when ``saveat`` is None). Values from
    ``sol(t)`` are differentiable under ``DirectAdjoint`` and detached under the
    continuous adjoints (their gradients flow only through ``sol.u``).
    """

    def __init__(self, *, t, u, stats, retcode, reg, dense, prob, alg, sensealg, t_final=None, layout=None,
                 event_t=None, event_u=None, event_index=None):
        self.t: torch.Tensor = t
        self.u = u
        self.stats: Stats = stats
        self.retcode: ReturnCode = retcode
        self.reg: torch.Tensor = reg
        self.prob, self.alg, self.sensealg = prob, alg, sensealg
        self._dense = dense
        self._layout = layout  # the pytree layout of the state, or None
        self.t_final = t_final
        self.event_t, self.event_u, self.event_index = event_t, event_u, event_index

    @property
    def successful(self) -> bool:
        return self.retcode in (ReturnCode.SUCCESS, ReturnCode.TERMINATED)

    def __call__(self, t: Any):
        if self._dense is None:
            raise ValueError(
                "this solution has no dense output: solve with dense=True (the default when "
                "saveat is None) to evaluate sol(t)"
            )
        if isinstance(t, torch.Tensor):
            if t.dim() == 0:
                out = self._dense.eval(float(t))
            else:
                out = torch.stack([self._dense.eval(float(ti)) for ti in t.reshape(-1)])
        elif isinstance(t, (list, tuple)):
            out = torch.stack([self._dense.eval(float(ti)) for ti in t])
        else:
            out = self._dense.eval(float(t))
        return out if self._layout is None else self._layout.tree(out)

    def __len__(self) -> int:
        return self.t.shape[0]

    def __repr__(self) -> str:
        shape = tuple(self.u.shape) if isinstance(self.u, torch.Tensor) else type(self.u).__name__
        return (
            f"ODESolution(retcode={self.retcode.name}, t: {tuple(self.t.shape)}, u: {shape}, "
            f"nfe={self.stats.nfe}, naccept={self.stats.naccept}, nreject={self.stats.nreject})"
        )
