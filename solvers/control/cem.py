"""The cross-entropy method over the whole control tensor."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .base import AbstractSampler, Context, StepInfo
from .checks import number, positive_int, std_like
from .evaluator import Evaluator
from .problem import ControlProblem


@dataclasses.dataclass
class CEMState:
    mean: torch.Tensor
    std: torch.Tensor
    generator: torch.Generator
    elite_u: torch.Tensor | None = None
    elite_loss: torch.Tensor | None = None


def gaussian_candidates(prob: ControlProblem, mean: torch.Tensor, std: torch.Tensor, n: int,
                        generator: torch.Generator, include_mean: bool) -> torch.Tensor:
    """``n`` samples of N(mean, std^2) (independent entries), clipped to the bounds;
    with ``include_mean`` the first one is ``mean`` itself. Shape ``(n, *mean.shape)``."""
    eps = torch.randn((n, *mean.shape), generator=generator, dtype=mean.dtype, device=mean.device)
    if include_mean:
        eps[0] = 0.0
    return prob.project(mean + std * eps)


@dataclasses.dataclass(frozen=True)
class CEM(AbstractSampler):
    """Cross-entropy method (Rubinstein, "The cross-entropy method for combinatorial and
    continuous optimization", 1999; de Boer et al., "A tutorial on the cross-entropy
    method", 2005) with a diagonal Gaussian over the controls, samples clipped to the
    bounds, and smoothed updates.

    Each iteration draws ``population`` candidates ``U ~ N(mean, std^2)`` (clipped into
    ``[lo, hi]``), evaluates them (vectorised through ``batch_loss_fn`` when the problem
    has one, else one by one under ``torch.no_grad()``), and refits the Gaussian to the
    ``elites`` lowest-loss candidates:
    ``mean <- alpha * mean + (1 - alpha) * mean(elites)``, likewise ``std`` (population
    std of the elites, floored at ``min_std``). Non-finite candidates are never elites; an
    iteration whose candidates are all non-finite ends the run (``NON_FINITE``).

    Args:
        population: candidates per iteration (>= 2); the last iteration of a run with
            ``maxevals`` may draw fewer so that the budget is met exactly.
        elites: candidates the Gaussian is refitted to (1 <= elites <= population).
        init_std: initial std per entry (number or tensor broadcastable to the controls,
            control units); None: a quarter of the box width (1.0 where unbounded).
        alpha: weight of the previous mean/std in the update, in [0, 1) (0: no smoothing).
        min_std: floor of the std (keeps exploring; 0 lets the Gaussian collapse).
        include_mean: the first candidate of each iteration is the mean itself, so the
            starting guess is evaluated and the result is never worse than ``u0``.
        keep_elites: carry the previous iteration's elites, with their known losses, into
            the next selection (iCEM's elite keeping, Pinneri et al., CoRL 2020; assumes a
            deterministic loss, costs no evaluation).

    Raises:
        ValueError, TypeError: options out of range (named in the message).
    """

    population: int = 64
    elites: int = 8
    init_std: Any = None
    alpha: float = 0.1
    min_std: float = 0.0
    include_mean: bool = True
    keep_elites: bool = False

    def __post_init__(self):
        positive_int("population", self.population, minimum=2)
        positive_int("elites", self.elites)
        if self.elites > self.population:
            raise ValueError(f"elites ({self.elites}) must be <= population ({self.population})")
        if self.init_std is not None and not isinstance(self.init_std, torch.Tensor):
            number("init_std", self.init_std, lo=0.0)
        number("alpha", self.alpha, lo=0.0, hi=1.0, hi_open=True)
        number("min_std", self.min_std, lo=0.0)

    def init(self, prob: ControlProblem, u: torch.Tensor, ctx: Context) -> CEMState:
        std = std_like("init_std", self.init_std, prob.lo, prob.hi)
        return CEMState(u.detach().clone(), std, ctx.generator)

    def step(self, prob: ControlProblem, state: CEMState, ev: Evaluator) -> tuple[CEMState, StepInfo]:
        n = int(min(self.population, ev.remaining))
        U = gaussian_candidates(prob, state.mean, state.std, n, state.generator, self.include_mean)
        L = ev.losses(U)
        U = U[:len(L)]  # a deadline may stop a population early
        info = StepInfo(losses=L)
        pool_u, pool_l = U, L
        if self.keep_elites and state.elite_u is not None:
            pool_u, pool_l = torch.cat([U, state.elite_u]), torch.cat([L, state.elite_loss])
        finite = torch.isfinite(pool_l)
        k = min(self.elites, int(finite.sum()))
        if k == 0:
            info.failed = True
            return state, info
        idx = torch.argsort(pool_l, stable=True)[:k]
        E = pool_u[idx]
        a = self.alpha
        state.mean = a * state.mean + (1 - a) * E.mean(0)
        state.std = (a * state.std + (1 - a) * E.std(0, unbiased=False)).clamp_min(self.min_std)
        state.elite_u, state.elite_loss = E, pool_l[idx]
        return state, info
