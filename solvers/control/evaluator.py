"""``Evaluator``: the one place that calls the loss, counts the calls and keeps the best point.

Counting is what makes methods comparable at equal simulation cost: one evaluation is one
call of ``loss_fn`` on one control tensor (one simulated rollout); a call of
``batch_loss_fn`` on N candidates counts N; a gradient evaluation counts one evaluation
(its forward rollout) and one backward pass (``nbackward``), reported separately.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .problem import ControlProblem


def _scalar_tensor(out: Any, *, need_grad: bool) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        if need_grad:
            raise TypeError(f"loss_fn must return a one-element torch.Tensor with a graph to U for "
                            f"gradient methods, got {type(out).__name__}")
        try:
            return torch.tensor(float(out))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"loss_fn must return a scalar (a one-element tensor or a number), got "
                            f"{type(out).__name__}") from exc
    if out.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar (one element), got shape {tuple(out.shape)}")
    if out.is_complex() or not out.is_floating_point():
        raise TypeError(f"loss_fn must return a real floating tensor, got dtype {out.dtype}")
    return out.reshape(())


class Evaluator:
    """Calls ``prob``'s loss under a budget of evaluations; counts and validates.

    Attributes:
        nevals: loss evaluations so far (rollouts).
        nbackward: backward passes so far (gradient evaluations).
        nnonfinite: evaluations whose loss was NaN/Inf or raised one of ``catch``.
        best_u, best_loss: the best finite point seen (``best_loss`` is ``inf`` until one
            is seen; ``best_u`` is ``u0`` then).
        failure: what went wrong last (``""`` if nothing), for messages.
    """

    def __init__(self, prob: ControlProblem, maxevals: int | None, catch: tuple[type, ...]):
        self.prob, self.maxevals, self.catch = prob, maxevals, catch
        self.nevals = self.nbackward = self.nnonfinite = 0
        self.best_u = prob.u0.clone()
        self.best_loss = math.inf
        self.failure = ""

    @property
    def remaining(self) -> float:
        """Evaluations left in the budget (``inf`` without ``maxevals``)."""
        return math.inf if self.maxevals is None else self.maxevals - self.nevals

    def _offer(self, U: torch.Tensor, loss: float) -> None:
        if math.isfinite(loss) and loss < self.best_loss:
            self.best_loss = loss
            self.best_u = U.detach().clone()

    def losses(self, U: torch.Tensor) -> torch.Tensor:
        """Losses of candidates ``U`` of shape ``(N, *u0.shape)`` -> ``(N,)``, no gradients.

        Non-finite losses, and candidates whose evaluation raised one of ``catch``, come
        back as ``inf`` (a caught exception from ``batch_loss_fn`` marks its whole batch).
        """
        n = U.shape[0]
        prob = self.prob
        with torch.no_grad():
            if prob.batch_loss_fn is not None:
                try:
                    out = prob.batch_loss_fn(U)
                except self.catch as exc:
                    out = torch.full((n,), math.inf, dtype=U.dtype, device=U.device)
                    self.failure = f"batch_loss_fn raised {type(exc).__name__}: {exc}"
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n,):
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise ValueError(f"batch_loss_fn must return a tensor of shape ({n},) for {n} "
                                     f"candidates of shape {tuple(U.shape)}, got {got}")
                L = out.detach().to(dtype=U.dtype, device=U.device)
            else:
                vals = []
                for i in range(n):
                    try:
                        vals.append(float(_scalar_tensor(prob.loss_fn(U[i]), need_grad=False)))
                    except self.catch as exc:
                        vals.append(math.inf)
                        self.failure = f"loss_fn raised {type(exc).__name__}: {exc}"
                L = torch.tensor(vals, dtype=U.dtype, device=U.device)
        self.nevals += n
        finite = torch.isfinite(L)
        nbad = int((~finite).sum())
        if nbad:
            self.nnonfinite += nbad
            self.failure = self.failure or "non-finite loss"
            L = torch.where(finite, L, torch.full_like(L, math.inf))
        if bool(finite.any()):
            i = int(torch.argmin(L))
            self._offer(U[i], float(L[i]))
        return L

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """Loss at the leaf ``x`` (requires grad) and its gradient, left in ``x.grad``.

        Returns ``(loss, grad)``; ``grad`` is None when the loss or the gradient is
        non-finite (``failure`` says which) or the evaluation raised one of ``catch``.
        """
        x.grad = None
        try:
            out = self.prob.loss_fn(x)
        except self.catch as exc:
            self.nevals += 1
            self.nnonfinite += 1
            self.failure = f"loss_fn raised {type(exc).__name__}: {exc}"
            return math.inf, None
        loss = _scalar_tensor(out, need_grad=True)
        if not loss.requires_grad:
            raise ValueError(
                "loss_fn(U) has no autograd graph to U (requires_grad is False), so gradient "
                "methods cannot use it: build the loss from U with torch operations (for an env: "
                "env.unwrapped.rollout_loss(U)), or use a sampler (CEM, MPPI)")
        self.nevals += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            self.nnonfinite += 1
            self.failure = f"loss is {value}"
            return value, None
        loss.backward()
        self.nbackward += 1
        self._offer(x, value)
        if x.grad is None:
            x.grad = torch.zeros_like(x)
        if not bool(torch.isfinite(x.grad).all()):
            self.nnonfinite += 1
            self.failure = "gradient holds NaN/Inf"
            return value, None
        return value, x.grad
