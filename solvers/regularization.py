"""Solver-heuristic regularizers of Pal et al.: make learned dynamics cheap to solve.

Both penalize what an adaptive solver measures while it works, the local error
estimate ``E_est`` (or the stiffness estimate), so that training prefers dynamics the
solver can cross in few steps. ``sol.reg = coeff * R`` is differentiable; add it to
the loss.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ._checks import one_of, positive
from .ode.methods.base import AbstractAdaptiveSolver, AbstractExplicitRK
from .stepping.controller import error_ratio, initial_step


@dataclasses.dataclass(frozen=True)
class GlobalRegularization:
    """Global solver-heuristic regularization (Pal et al., ICML 2021).

    ``kind="error"``: ``R_E = sum over accepted steps of E_est * |dt|``, where ``E_est``
    is the scaled RMS error estimate the step-size controller compares with 1.
    ``kind="stiffness"``: ``R_S = sum over accepted steps of rho * |dt|`` with ``rho =
    ||k7 - k6|| / ||g7 - g6||`` Shampine/Hairer's estimate of the dominant eigenvalue
    (needs a method with two stages at c = 1: ``DP5`` or ``Tsit5``).

    Step sizes are detached (the controller's choices are not differentiated); ``E_est``
    and ``rho`` are differentiated through every step, so this needs
    ``sensealg=DirectAdjoint()`` (the discrete adjoint of the paper) and a method with
    an error estimate (it also works with ``adaptive=False``: the estimate of each fixed
    step is summed); for the continuous adjoints use :class:`LocalRegularization`.

    Args:
        kind: "error" or "stiffness".
        coeff: weight (>= 0) of the term in ``sol.reg``, a weight against *your* loss
            (solvers/README.md, "Tuning the coefficient"). Default (``None``): 0.05 for
            "error", 0.003 for "stiffness" (``R_S`` is ~100x ``R_E``: ``rho * dt`` is
            ``|h lambda|`` of order 1 per step where ``E_est * dt`` is 0.1-1 of a step).
            Measured on the README's examples (float32, Tsit5, seeds 0-2, ratios
            regularized / unregularized of the same seed): "error" at 0.05 fits the
            cubic spiral 1.17-1.38x worse (NFE 0.88-1.10x) and the digits classifier
            equally well (test loss 0.89-0.97x, NFE 1.00x); "stiffness" at 0.003 gives
            0.99-1.12x (NFE 0.94-1.09x) and 0.95-0.99x (NFE 1.00x). The former default 1
            fitted the spiral 8-9x worse ("error"; "stiffness" at 0.1 already 11-14x). So the
            defaults keep the fit but hardly reduce NFE on these tasks: a safe start, not
            a tuned value. To cut NFE, raise ``coeff`` on a task that tolerates it
            (digits: "error" at 1 gives 0.71x NFE at a better test loss), or weigh the
            term relative to the loss, ``loss + loss.detach() * sol.reg`` with ``coeff=1``
            ("error": spiral 1.20-1.36x fit, digits 0.90x NFE on every seed).

    Reference: A. Pal, Y. Ma, V. Shah, C. Rackauckas, "Opening the Blackbox:
    Accelerating Neural Differential Equations by Regularizing Internal Solver
    Heuristics", ICML 2021.
    """

    kind: str = "error"
    coeff: float | None = None

    #: the default ``coeff`` of each kind (see the class docstring for the measurement)
    DEFAULT_COEFF: ClassVar[dict[str, float]] = {"error": 0.05, "stiffness": 0.003}

    def __post_init__(self):
        one_of("kind", self.kind, ("error", "stiffness"))
        if self.coeff is None:
            # frozen: resolve the kind's default once, so repr and sol.reg show the weight used
            object.__setattr__(self, "coeff", self.DEFAULT_COEFF[self.kind])
        positive("coeff", self.coeff, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class LocalRegularization:
    """Local solver-heuristic regularization (Pal et al., ICML 2023).

    Draws one time ``t_r``, restarts the solver for a single step from ``sol(t_r)``
    with a detached step size ``dt_r`` and differentiates that step alone:
    ``r = E_est * |dt_r|``. One extra step per solve, instead of differentiating every
    step, and it works with every ``sensealg`` (under the continuous adjoints
    ``u(t_r)`` becomes one more output of the adjoint, with its own jump).

    Args:
        sampling: "unbiased": ``t_r`` uniform in the time span; "biased": ``t_r`` uniform
            among the start times of the solver's own accepted steps (reservoir
            sampling, no storage).
        coeff: weight (>= 0) of the term in ``sol.reg``. The default 0.1 keeps the fit of
            the README's examples within 1.3x of the unregularised one (3 seeds); it is a
            weight against *your* loss, so tune it to its scale (solvers/README.md,
            "Tuning the coefficient"): ``r`` is typically 0.005-0.05 (``E_est`` of an
            accepted step is 0.1-1, times a step of the span's order), so ``coeff * r``
            should stay well below the loss you expect to reach. Classification losses
            (cross-entropy) tolerate 1-10; small regression losses (L1 ~ 1e-2) need <= 0.1.
        step: how the restarted step's (detached) size ``dt_r`` is chosen. "solver"
            (default): the size of the forward solve's step that contains ``t_r``, so
            ``r`` measures the error of the steps the solver actually takes. "initial":
            Hairer's starting-step heuristic at ``(t_r, u(t_r))`` (two extra
            evaluations); that heuristic aims at an error ~100x below tolerance, so the
            penalty is weak (in examples/neural_ode it did not reduce NFE at all).

    ``t_r`` is drawn from ``solve``'s ``generator`` (default: torch's global RNG), so
    ``torch.manual_seed`` makes it reproducible. With ``per_sample=True`` one ``t_r``
    serves the whole batch and ``r`` is averaged over samples.

    Reference: A. Pal, A. Edelman, C. Rackauckas, "Locally Regularized Neural
    Differential Equations: Some Black Boxes Were Meant to Remain Closed!", ICML 2023.
    """

    sampling: str = "unbiased"
    coeff: float = 0.1
    step: str = "solver"

    def __post_init__(self):
        one_of("sampling", self.sampling, ("unbiased", "biased"))
        one_of("step", self.step, ("initial", "solver"))
        positive("coeff", self.coeff, allow_zero=True)


def check_regularization(reg, alg, sensealg_is_direct: bool) -> None:
    """Raise early when a regularizer cannot work with the chosen method."""
    if reg is None:
        return
    if not isinstance(reg, (GlobalRegularization, LocalRegularization)):
        raise TypeError(
            f"regularization must be GlobalRegularization(...), LocalRegularization(...) or None, "
            f"got {type(reg).__name__}"
        )
    if not isinstance(alg, AbstractAdaptiveSolver):
        raise ValueError(
            f"{type(reg).__name__} needs the error estimate of an adaptive solver; {type(alg).__name__} "
            "is fixed-step (use Tsit5, DP5, BS3, DP8, Rosenbrock23 or Rodas5P)"
        )
    if isinstance(reg, GlobalRegularization):
        if not sensealg_is_direct:
            raise ValueError(
                "GlobalRegularization differentiates every step and needs sensealg=DirectAdjoint(); "
                "use LocalRegularization with continuous adjoints"
            )
        if reg.kind == "stiffness" and not (
            isinstance(alg, AbstractExplicitRK) and alg.stiffness_stages is not None
        ):
            raise ValueError(
                f"GlobalRegularization(kind='stiffness') needs two stages at c = 1 (DP5 or Tsit5); "
                f"{type(alg).__name__} has none"
            )


def draw_time(t0: float, t1: float, generator: torch.Generator | None) -> float:
    """Uniform time in the span (the unbiased sampler)."""
    x = float(torch.rand((), generator=generator, dtype=torch.float64))
    return t0 + x * (t1 - t0)


def local_step_error(alg, rhs, t_r, u_r, dt_r, rtol, atol, direction, *, per_sample_dims=None):
    """``E_est * |dt_r|`` of one differentiable step of ``alg`` from ``(t_r, u_r)``.

    ``dt_r`` is a positive float, or a (batch,) tensor with ``per_sample_dims``.
    Returns a 0-d tensor (the per-sample values averaged).
    """
    if dt_r is None:
        with torch.no_grad():
            f_r = rhs(t_r, u_r.detach())
            dt_r = initial_step(rhs, t_r, u_r.detach(), f_r, direction, alg.error_order(), rtol, atol,
                                dims=per_sample_dims)
    ws = alg.workspace(u_r, grad=True)
    if per_sample_dims is None:
        h = direction * float(dt_r)
        step = alg.step(rhs, t_r, u_r, h, None, ws)
        return error_ratio(step.err, u_r, step.u1, rtol, atol) * abs(h)
    h = (direction * dt_r.detach()).view((-1,) + (1,) * (u_r.dim() - 1))
    t_vec = torch.full_like(dt_r, t_r) if not isinstance(t_r, torch.Tensor) else t_r
    step = alg.step(rhs, t_vec, u_r, h, None, ws)
    e = error_ratio(step.err, u_r, step.u1, rtol, atol, dims=per_sample_dims)
    return (e * dt_r.detach().abs()).mean()

