"""The answer of a root / steady-state / fixed-point solve."""

from __future__ import annotations

import dataclasses

import torch

from .retcode import NonlinearReturnCode


@dataclasses.dataclass
class NonlinearStats:
    """Counters of one solve (the ``*_backward`` ones fill in when ``backward()`` runs).

    Attributes:
        iterations: iterations of the method (Newton steps, Anderson / Picard updates).
        residual: ``max|F(u)|`` at the returned ``u``.
        nfev: evaluations of the residual (line-search trials included).
        njev: dense Jacobians formed (``linsolve="direct"``).
        nmatvec: Jacobian-vector products in the forward linear solves (matrix-free Newton).
        nlinear: Krylov iterations of the forward linear solves.
        nbacktrack: step-length reductions of the line search.
        nvjp_backward: vector-Jacobian products in the adjoint solves (a dense Jacobian
            counts its ``n`` rows).
        nlinear_backward: Krylov iterations of the adjoint solves.
        residual_backward: relative residual ``|(dF/du)^T w - u_bar| / |u_bar|`` of the
            last adjoint solve.
    """

    iterations: int = 0
    residual: float = float("nan")
    nfev: int = 0
    njev: int = 0
    nmatvec: int = 0
    nlinear: int = 0
    nbacktrack: int = 0
    nvjp_backward: int = 0
    nlinear_backward: int = 0
    residual_backward: float = float("nan")


class NonlinearSolution:
    """Result of ``solve`` for ``NonlinearProblem``, ``SteadyStateProblem``, ``FixedPointProblem``.

    Attributes:
        u: the solution, shaped like ``u0``; differentiable under the chosen ``sensealg``
            (``ImplicitAdjoint``: to ``p`` and everything ``f`` uses; ``u0`` gets zero,
            since a root does not depend on its starting guess).
        resid: ``F(u)`` (detached), the residual at ``u``.
        retcode: :class:`NonlinearReturnCode`.
        stats: :class:`NonlinearStats`.
        history: ``max|F(u_k)|`` of every iterate ``u_0, u_1, ...`` (floats), to judge
            convergence rates.
        prob, alg, sensealg: what was solved and how.
    """

    def __init__(self, *, u, resid, retcode, stats, prob, alg, sensealg, history=None):
        self.u: torch.Tensor = u
        self.resid: torch.Tensor = resid
        self.retcode: NonlinearReturnCode = retcode
        self.stats: NonlinearStats = stats
        self.prob, self.alg, self.sensealg = prob, alg, sensealg
        self.history: list[float] | None = history

    @property
    def successful(self) -> bool:
        return self.retcode is NonlinearReturnCode.SUCCESS

    def __repr__(self) -> str:
        s = self.stats
        return (f"NonlinearSolution(retcode={self.retcode.name}, u: {tuple(self.u.shape)}, "
                f"iterations={s.iterations}, residual={s.residual:.3g}, nfev={s.nfev})")
