"""``Evaluator``: the one place that calls the loss, counts the calls and keeps the best point.

Counting is what makes methods comparable at equal simulation cost: one evaluation is one
call of ``loss_fn`` on one control tensor (one simulated rollout); a call of
``batch_loss_fn`` on N candidates counts N; a gradient evaluation counts one evaluation
(its forward rollout) and one backward pass (``nbackward``), reported separately.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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

    The optimised variable (``W`` with a basis, else the controls) is mapped to the
    controls by ``prob.controls`` here, so methods never see the basis.

    Args:
        prob: the problem.
        maxevals: evaluation budget (None: unlimited).
        catch: exception classes of ``loss_fn`` (or its backward pass) that count as a
            non-finite evaluation.
        deadline: ``time.perf_counter()`` value after which a population stops early
            (None: no time budget).
        weights: None, or a callable ``() -> (T,) tensor`` of per-step weights passed as
            ``loss_fn(U, weights=w)`` (a temporal schedule's current weights).
        keep: how many of the best distinct points to remember in ``top`` (>= 1).

    Attributes:
        nevals: loss evaluations so far (rollouts).
        nbackward: backward passes so far (gradient evaluations).
        nnonfinite: evaluations whose loss was NaN/Inf or raised one of ``catch``.
        best_u, best_loss: the best finite point seen (``best_loss`` is ``inf`` until one
            is seen; ``best_u`` is ``u0`` then).
        top: up to ``keep`` ``(loss, u)`` pairs, the best distinct points seen, sorted.
        failure: what went wrong last (``""`` if nothing), for messages.
    """

    def __init__(self, prob: ControlProblem, maxevals: int | None, catch: tuple[type, ...],
                 deadline: float | None = None, weights: Callable[[], torch.Tensor] | None = None,
                 keep: int = 1):
        self.prob, self.maxevals, self.catch = prob, maxevals, catch
        self.deadline, self.weights, self.keep = deadline, weights, keep
        self.nevals = self.nbackward = self.nnonfinite = 0
        self.best_u = prob.u0.clone()
        self.best_loss = math.inf
        self.top: list[tuple[float, torch.Tensor]] = []
        self.failure = ""

    @property
    def remaining(self) -> float:
        """Evaluations left in the budget (``inf`` without ``maxevals``)."""
        return math.inf if self.maxevals is None else self.maxevals - self.nevals

    @property
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def reset_best(self) -> None:
        """Forget the best point (the loss changed, e.g. a longer horizon)."""
        self.best_loss = math.inf
        self.top = []

    def _offer(self, U: torch.Tensor, loss: float) -> None:
        if not math.isfinite(loss):
            return
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_u = U.detach().clone()
        if self.keep == 1:
            self.top = [(self.best_loss, self.best_u)]
            return
        if len(self.top) == self.keep and loss >= self.top[-1][0]:
            return
        if any(torch.equal(U, u) for _, u in self.top):
            return
        self.top = sorted(self.top + [(loss, U.detach().clone())], key=lambda p: p[0])[:self.keep]

    def _call(self, fn, U: torch.Tensor):
        if self.weights is None:
            return fn(U)
        return fn(U, weights=self.weights())

    def losses(self, U: torch.Tensor) -> torch.Tensor:
        """Losses of candidates ``U`` of shape ``(N, *u0.shape)`` -> ``(n,)``, no gradients.

        Non-finite losses, and candidates whose evaluation raised one of ``catch``, come
        back as ``inf`` (a caught exception from ``batch_loss_fn`` marks its whole batch).
        Evaluated one by one, the candidates stop early when the deadline passes: then
        ``n < N`` losses come back, those of ``U[:n]`` (at least one is evaluated).
        """
        n = U.shape[0]
        prob = self.prob
        with torch.no_grad():
            if prob.batch_loss_fn is not None:
                try:
                    out = self._call(prob.batch_loss_fn, prob.controls(U, batched=True))
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
                    if i and self.out_of_time:
                        break
                    try:
                        out = self._call(prob.loss_fn, prob.controls(U[i]))
                        vals.append(float(_scalar_tensor(out, need_grad=False)))
                    except self.catch as exc:
                        vals.append(math.inf)
                        self.failure = f"loss_fn raised {type(exc).__name__}: {exc}"
                n = len(vals)
                L = torch.tensor(vals, dtype=U.dtype, device=U.device)
        self.nevals += n
        finite = torch.isfinite(L)
        nbad = int((~finite).sum())
        if nbad:
            self.nnonfinite += nbad
            self.failure = self.failure or "non-finite loss"
            L = torch.where(finite, L, torch.full_like(L, math.inf))
        if bool(finite.any()):
            order = torch.argsort(L)[:self.keep] if self.keep > 1 else [int(torch.argmin(L))]
            for i in order:
                if bool(finite[i]):
                    self._offer(U[i], float(L[i]))
        return L

    def value_and_grad(self, x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
                       ) -> tuple[float, torch.Tensor | None]:
        """Loss at the leaf ``x`` (requires grad) and its gradient, left in ``x.grad``.

        Args:
            x: the optimised variable (a leaf tensor that requires grad).
            transform: evaluate at ``transform(x)`` instead (e.g. the projection onto the
                bounds, for methods whose trial points may leave them); the gradient is
                taken through it and the point recorded is ``transform(x)``.

        Returns ``(loss, grad)``; ``grad`` is None when the loss or the gradient is
        non-finite (``failure`` says which) or the evaluation or its backward pass raised
        one of ``catch``.
        """
        x.grad = None
        u = x if transform is None else transform(x)
        try:
            out = self._call(self.prob.loss_fn, self.prob.controls(u))
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
        self._offer(u, value)
        try:
            loss.backward()
        except self.catch as exc:
            # e.g. ds.GradientError: the reverse pass met a non-finite value
            self.nnonfinite += 1
            self.failure = f"backward pass raised {type(exc).__name__}: {exc}"
            return value, None
        finally:
            self.nbackward += 1
        if x.grad is None:
            x.grad = torch.zeros_like(x)
        if not bool(torch.isfinite(x.grad).all()):
            self.nnonfinite += 1
            self.failure = "gradient holds NaN/Inf"
            return value, None
        return value, x.grad
