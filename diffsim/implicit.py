"""Gradients of implicitly defined values by the implicit function theorem (torch bridge).

A value ``u*(theta)`` defined by ``F(u*, theta) = 0`` (a root, an equilibrium, a fixed
point ``F = g(u) - u``) has, where ``dF/du`` is invertible,

    du*/dtheta = -(dF/du)^-1 dF/dtheta,   so   theta_bar = -(dF/dtheta)^T w,
    where w solves the adjoint system (dF/du)^T w = u_bar.

Backpropagating through the iterations that found ``u*`` is never needed: one linear
solve per backward pass, whatever the number of iterations, and no memory for them
(SciMLSensitivity's ``SteadyStateAdjoint``; Blondel et al., "Efficient and Modular
Implicit Differentiation", NeurIPS 2022; Bai et al., "Deep Equilibrium Models", 2019).

This module holds the bookkeeping that every such value shares, independent of how
the two halves are computed: an :class:`ImplicitLinearization` says how to solve the
adjoint system and how to map its solution to the inputs' gradients, and
:func:`implicit_solution` turns ``u*`` into a tensor whose backward pass does exactly
that. ``diffsim.solvers`` implements the halves with torch (matrix-free GMRES/CG on
vector-Jacobian products, or a dense solve); ``ds.FEM``/``ds.Shell`` equilibria with
their Taichi Hessian, preconditioned CG and reverse kernels.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch


class ImplicitGradientError(RuntimeError):
    """The backward pass of an implicit value failed (the adjoint solve did not converge,
    or produced NaN/Inf). The message names the value and says what to change."""


class ImplicitLinearization(abc.ABC):
    """The two halves of the implicit-function-theorem backward pass at one ``u*``.

    Implementations keep whatever they need to evaluate the linearization at ``u*``
    (saved tensors, a simulator engine). ``implicit_solution`` calls
    :meth:`adjoint_solve` and then immediately :meth:`input_vjp`, once per backward
    pass (a stateful implementation may rely on that order).
    """

    #: a short name for error messages ("NonlinearProblem", "FEM equilibrium", ...)
    name: str = "implicit value"

    @abc.abstractmethod
    def adjoint_solve(self, u_bar: torch.Tensor) -> torch.Tensor:
        """``w`` solving ``(dF/du)^T w = u_bar`` at ``u*``; ``u_bar`` has ``u*``'s shape.

        Raises:
            ImplicitGradientError: the linear solve failed.
        """

    @abc.abstractmethod
    def input_vjp(self, w: torch.Tensor) -> Sequence[torch.Tensor | None]:
        """``-(dF/dtheta_i)^T w`` for every input ``theta_i`` given to ``implicit_solution``
        (None where an input gets no gradient)."""


class _ImplicitFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lin, u_star, *inputs):
        ctx.lin = lin
        return u_star.detach().clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u_bar):
        lin: ImplicitLinearization = ctx.lin
        w = lin.adjoint_solve(u_bar.contiguous())
        if not bool(torch.isfinite(w).all()):
            raise ImplicitGradientError(
                f"{lin.name}: the adjoint solve (dF/du)^T w = u_bar returned NaN/Inf; dF/du is "
                "probably singular at the solution (a non-isolated root or a bifurcation), or the "
                "incoming gradient u_bar is non-finite")
        grads = tuple(lin.input_vjp(w))
        if len(grads) != len(ctx.needs_input_grad) - 2:
            raise RuntimeError(f"{type(lin).__name__}.input_vjp returned {len(grads)} gradients for "
                               f"{len(ctx.needs_input_grad) - 2} inputs")
        return (None, None, *grads)


def implicit_solution(lin: ImplicitLinearization, u_star: torch.Tensor,
                      *inputs: torch.Tensor) -> torch.Tensor:
    """``u_star`` (its value, detached from how it was found) with gradients to ``inputs``
    by the implicit function theorem.

    Args:
        lin: the linearization at ``u_star`` (adjoint solve and input products).
        u_star: the solution, any shape.
        *inputs: the tensors ``theta_i`` whose gradients ``lin.input_vjp`` returns, in
            order. For torch residuals the usual input is the residual itself evaluated
            at the detached ``u_star`` (``R = F(u_star.detach(), theta)``, with its
            graph): then ``input_vjp(w) = (-w,)`` and autograd carries ``-w`` on to every
            tensor ``F`` used, module parameters and closed-over tensors included.

    Returns:
        A tensor equal to ``u_star``. Its backward pass is first-order only (no
        ``create_graph`` through the adjoint solve); it may run several times
        (``retain_graph=True``, ``torch.autograd.gradcheck``).
    """
    if not isinstance(lin, ImplicitLinearization):
        raise TypeError(f"lin must be an ImplicitLinearization, got {type(lin).__name__}")
    return _ImplicitFunction.apply(lin, u_star, *inputs)
