"""``Residual``: ``F(u)`` of a problem, with counters, checks and derivative products.

Every evaluation is checked (shape, dtype, device): a mismatch raises at once, on every
call, not only the first, because a reshaped residual would silently solve another
system. Jacobian-vector products for Krylov solves come from one linearisation per
Newton step (reverse over reverse), with forward-mode AD as the fallback.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..ode.methods.jacobian import _rows
from .problems import FixedPointProblem, NonlinearProblem, SteadyStateProblem
from .solution import NonlinearStats


def check_output(name: str, out, u: torch.Tensor) -> torch.Tensor:
    """``out`` of the user's function ``name`` must be a tensor like ``u``."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor shaped like u, got {type(out).__name__}")
    if out.shape != u.shape:
        raise ValueError(
            f"{name} returned shape {tuple(out.shape)} for u of shape {tuple(u.shape)}: it must return u's "
            "shape (as many equations as unknowns; non-square systems and least squares are not supported)")
    if out.dtype != u.dtype:
        raise TypeError(f"{name} returned dtype {out.dtype} for u of dtype {u.dtype}; cast inside the "
                        "function or give u0 the dtype of the computation")
    if out.device != u.device:
        raise ValueError(f"{name} returned a tensor on {out.device} but u is on {u.device}")
    return out


def residual_of(prob) -> Callable[[torch.Tensor], torch.Tensor]:
    """``u -> F(u)`` of a problem, checking the user's function on every call."""
    if isinstance(prob, FixedPointProblem):
        return lambda u: check_output("g(u, p)", prob.g(u, prob.p), u) - u
    if isinstance(prob, SteadyStateProblem):
        return lambda u: check_output("f(u, p, t)", prob.residual(u), u)
    if isinstance(prob, NonlinearProblem):
        return lambda u: check_output("f(u, p)", prob.f(u, prob.p), u)
    raise TypeError(f"not a NonlinearProblem, SteadyStateProblem or FixedPointProblem: {type(prob).__name__}")


class Residual:
    """``F(u)`` of one problem.

    Args:
        fn: ``u -> F(u)`` with its output checked (:func:`residual_of`).
        u0: the initial guess (fixes shape, dtype, device).
        stats: counters to update.
        per_sample: the leading dimension of ``u`` indexes independent problems; norms
            are taken per sample.
        problem: the problem itself, for methods that need more than ``F``
            (``DynamicSS`` integrates the ODE of a ``SteadyStateProblem``).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], u0: torch.Tensor,
                 stats: NonlinearStats, per_sample: bool = False, problem=None):
        self.fn, self.stats, self.problem = fn, stats, problem
        self.shape, self.dtype, self.device = u0.shape, u0.dtype, u0.device
        self.per_sample = per_sample
        self.n = u0.numel()

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        self.stats.nfev += 1
        return self.fn(u)

    # ------------------------------------------------------------------ norms
    def norm(self, r: torch.Tensor) -> torch.Tensor:
        """Max-norm of ``r``: a 0-d tensor, or ``(batch,)`` with ``per_sample``."""
        r = r.detach()
        if self.per_sample:
            return r.reshape(r.shape[0], -1).abs().amax(dim=1)
        return r.abs().amax()

    # ------------------------------------------------------------------ derivatives
    def linear_operator(self, u: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``v -> (dF/du) v`` at ``u``, for a Krylov solve.

        Reverse over reverse, linearised once: the graph of ``z -> J^T z`` is built a single
        time (one evaluation of ``F`` and one vector-Jacobian product with
        ``create_graph``), then each product ``J v`` is one backward pass through it.
        Cheaper per product than re-tracing forward-mode AD (``torch.func.jvp``), which is
        the fallback for functions whose ops have no double backward.
        """
        self.stats.nfev += 1
        try:
            with torch.enable_grad():
                x = u.detach().requires_grad_(True)
                y = self.fn(x)
                if not y.requires_grad:   # F does not depend on u
                    return self._counted(lambda v: torch.zeros_like(v))
                z = torch.zeros_like(y, requires_grad=True)
                (jtz,) = torch.autograd.grad(y, x, z, create_graph=True, allow_unused=True)
            if jtz is None or not jtz.requires_grad:   # J = 0
                return self._counted(lambda v: torch.zeros_like(v))

            def jvp(v: torch.Tensor) -> torch.Tensor:
                (jv,) = torch.autograd.grad(jtz, z, v, retain_graph=True, allow_unused=True)
                return torch.zeros_like(v) if jv is None else jv.detach()

            jvp(torch.zeros_like(u))   # fails here, not inside the solver, without a double backward
            return self._counted(jvp)
        except (RuntimeError, NotImplementedError):
            def fwd(v: torch.Tensor) -> torch.Tensor:
                _, out = torch.func.jvp(self.fn, (u.detach(),), (v,))
                return out.detach()
            return self._counted(fwd)

    def _counted(self, op: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def counted(v: torch.Tensor) -> torch.Tensor:
            self.stats.nmatvec += 1
            return op(v)
        return counted

    def jacobian(self, u: torch.Tensor, *, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F(u), J)`` with ``J`` of shape ``(n, n)``, ``n = u.numel()``, from ``n``
        batched vector-Jacobian products. ``create_graph=True`` keeps both
        differentiable (unrolled differentiation through Newton)."""
        self.stats.njev += 1
        with torch.enable_grad():
            x = u if (create_graph and u.requires_grad) else u.detach().requires_grad_(True)
            y = self(x)
            eye = torch.eye(self.n, dtype=self.dtype, device=self.device).reshape(self.n, *self.shape)
            if not y.requires_grad:   # F does not depend on u at all
                J = torch.zeros(self.n, self.n, dtype=self.dtype, device=self.device)
            else:
                (rows,) = _rows(y, (x,), eye, create_graph)
                J = (torch.zeros(self.n, self.n, dtype=self.dtype, device=self.device) if rows is None
                     else rows.reshape(self.n, self.n))
        if not create_graph:
            y, J = y.detach(), J.detach()
        return y, J
