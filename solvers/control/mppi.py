"""Model predictive path integral (MPPI) updates over the whole control tensor."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .base import AbstractSampler, Context, StepInfo
from .cem import gaussian_candidates
from .checks import number, positive_int, std_like
from .evaluator import Evaluator
from .problem import ControlProblem


@dataclasses.dataclass
class MPPIState:
    mean: torch.Tensor
    std: torch.Tensor
    generator: torch.Generator


@dataclasses.dataclass(frozen=True)
class MPPI(AbstractSampler):
    """The information-theoretic MPPI update (Williams et al., "Information theoretic MPC
    for model-based reinforcement learning", ICRA 2017), used as an optimizer of the
    control tensor.

    Each iteration perturbs the mean with Gaussian noise of fixed ``noise_std``,
    ``U_k = clip(mean + eps_k)``, evaluates the costs ``S_k`` and moves the mean to the
    exponentially weighted average
    ``mean <- mean + sum_k w_k (U_k - mean)``, ``w_k ∝ exp(-(S_k - min S) / temperature)``.
    Using the clipped perturbation keeps the mean inside the bounds (a convex combination
    of feasible points). With ``normalize=True`` the costs are first divided by their
    range in the iteration, so ``temperature`` is scale-free (0.1: the best candidate
    gets e^10 times the weight of the worst); ``normalize=False`` is the paper's form, in
    loss units. The paper's control-cost term ``lambda u^T Sigma^-1 eps`` is not added:
    put control penalties into ``loss_fn``. Non-finite candidates get zero weight.

    Args:
        samples: candidates per iteration (>= 2).
        temperature: lambda of the paper (> 0); lower is greedier.
        noise_std: std of the perturbations (number or tensor broadcastable to the
            controls); None: a quarter of the box width (1.0 where unbounded).
        normalize: scale the costs to [0, 1] before weighting.
        include_mean: the first candidate is the mean itself (zero noise), so the current
            plan is always evaluated and the result is never worse than ``u0``.

    Raises:
        ValueError, TypeError: options out of range (named in the message).
    """

    samples: int = 64
    temperature: float = 0.1
    noise_std: Any = None
    normalize: bool = True
    include_mean: bool = True

    def __post_init__(self):
        positive_int("samples", self.samples, minimum=2)
        number("temperature", self.temperature, lo=0.0, lo_open=True)
        if self.noise_std is not None and not isinstance(self.noise_std, torch.Tensor):
            number("noise_std", self.noise_std, lo=0.0)

    def init(self, prob: ControlProblem, u: torch.Tensor, ctx: Context) -> MPPIState:
        std = std_like("noise_std", self.noise_std, prob.lo, prob.hi)
        return MPPIState(u.detach().clone(), std, ctx.generator)

    def step(self, prob: ControlProblem, state: MPPIState, ev: Evaluator) -> tuple[MPPIState, StepInfo]:
        n = int(min(self.samples, ev.remaining))
        U = gaussian_candidates(prob, state.mean, state.std, n, state.generator, self.include_mean)
        S = ev.losses(U)
        U = U[:len(S)]  # a deadline may stop a population early
        info = StepInfo(losses=S)
        finite = torch.isfinite(S)
        if not bool(finite.any()):
            info.failed = True
            return state, info
        smin = S[finite].min()
        cost = S - smin
        if self.normalize:
            span = S[finite].max() - smin
            cost = cost / span if float(span) > 0 else torch.zeros_like(cost)
        logw = torch.where(finite, -cost / self.temperature, torch.full_like(cost, -torch.inf))
        w = torch.softmax(logw, dim=0)
        state.mean = state.mean + torch.tensordot(w, U - state.mean, dims=1)
        return state, info
