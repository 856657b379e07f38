"""``Recipe``: how ``diffsim solve --method auto`` optimises a task.

A recipe is a value: the trajectory optimiser (any ``dss`` algorithm), the action
parameterisation (an ``ActionBasis`` kind and knot count), the temporal weighting of the
rollout loss (or an ``ExpandingHorizon`` schedule) and the default wall-clock budget.
A task declares its own as the class attribute ``Task.recipe``; tasks without one get
:func:`default_recipe`. ``Recipe.problem(env)`` builds the ``dss.ControlProblem`` and
``Recipe.solve_kwargs`` the keyword arguments of ``dss.solve`` that the recipe implies.
"""

from __future__ import annotations

import dataclasses

import torch

from diffsim import solvers as dss
from diffsim.solvers.control.basis import KINDS
from diffsim.solvers.control.checks import number, positive_int
from diffsim.solvers.control.temporal import WEIGHTINGS


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A task's optimisation recipe.

    Args:
        algorithm: the ``dss`` method (``Adam``, ``LBFGS``, ``CEM``, ``MPPI``, ``Hybrid``).
        knots: weights per action of an ``ActionBasis`` (clipped to the horizon); None
            optimises every step's action.
        basis: the basis kind (``"linear"``, ``"cubic"``, ``"constant"``); ``"cubic"``
            falls back to ``"linear"`` when fewer than 4 knots fit the horizon.
        weights: the rollout loss's temporal weighting (``"final"``, ``"sum"``, ``"mean"``;
            see ``dss.step_weights``), used when ``horizon`` is None.
        horizon: an ``ExpandingHorizon`` schedule (its own weighting applies).
        budget_s: default wall-clock budget (s) of a solve.
        note: free text for the README/results: why these choices (measurements).

    Raises:
        TypeError, ValueError: options out of range (named in the message).
    """

    algorithm: dss.AbstractControlAlgorithm
    knots: int | None = None
    basis: str = "linear"
    weights: str = "final"
    horizon: dss.ExpandingHorizon | None = None
    budget_s: float = 300.0
    note: str = ""

    def __post_init__(self):
        if not isinstance(self.algorithm, dss.AbstractControlAlgorithm):
            raise TypeError(f"algorithm must be a dss trajectory optimiser (Adam, LBFGS, CEM, MPPI, "
                            f"Hybrid), got {type(self.algorithm).__name__}")
        if self.knots is not None:
            positive_int("knots", self.knots)
        if self.basis not in KINDS:
            raise ValueError(f"basis must be one of {KINDS}, got {self.basis!r}")
        if self.weights not in WEIGHTINGS:
            raise ValueError(f"weights must be one of {WEIGHTINGS}, got {self.weights!r}")
        if self.horizon is not None and not isinstance(self.horizon, dss.ExpandingHorizon):
            raise TypeError(f"horizon must be None or a dss.ExpandingHorizon, got "
                            f"{type(self.horizon).__name__}")
        number("budget_s", self.budget_s, lo=0.0, lo_open=True)

    @property
    def final_state(self) -> bool:
        """Whether the optimised objective is the final state's (no temporal weighting;
        an expanding horizon weighting its last state, whose loss ``dss.solve`` reports
        at the full horizon): then it can be compared with the replay's, and a solve
        may stop once it proves success."""
        if self.horizon is not None:
            return self.horizon.weighting == "final"
        return self.weights == "final"

    def action_basis(self, steps: int) -> dss.ActionBasis | None:
        """The ``ActionBasis`` over ``steps`` control steps (None: per-step actions)."""
        if self.knots is None or self.knots >= steps:
            return None
        kind = self.basis if (self.basis != "cubic" or self.knots >= 4) else "linear"
        return dss.ActionBasis(steps, self.knots, kind)

    def problem(self, env, dtype: torch.dtype | None = None) -> dss.ControlProblem:
        """The ``ControlProblem`` of a reset environment: zero actions as the start (the
        task's own start state, no hand-written plan), bounds [-1, 1], the recipe's basis
        and weighting."""
        u = env.unwrapped
        T, A = u.horizon, u.act_dim
        dtype = dtype or u.sim.dtype
        basis = self.action_basis(T)
        weights = None if self.weights == "final" else self.weights
        if self.horizon is not None:
            def loss_fn(U, weights=None):
                return u.rollout_loss(U, weights=weights)
        elif weights is None:
            def loss_fn(U):
                return u.rollout_loss(U)
        else:
            def loss_fn(U):
                return u.rollout_loss(U, weights=weights)
        u0 = torch.zeros(T if basis is None else basis.knots, A, dtype=dtype)
        return dss.ControlProblem(loss_fn, u0=u0, bounds=(-1.0, 1.0), basis=basis)

    def solve_kwargs(self) -> dict:
        """Keyword arguments of ``dss.solve`` implied by the recipe (the horizon schedule)."""
        return {} if self.horizon is None else {"horizon": self.horizon}


def default_recipe() -> Recipe:
    """The recipe of tasks that declare none: CEM then Adam (``dss.Hybrid``) on 8 hat
    functions per action, the task's final-state loss, 300 s.

    Sampling first because most tasks start out of contact (flat gradients); a basis
    because CEM with per-step actions barely moves in 100+ dimensions at the budgets a
    simulator allows (a few hundred rollouts; see tests/solvers/test_schemes.py).
    """
    return Recipe(algorithm=dss.Hybrid(dss.CEM(population=12, elites=3, alpha=0.1, init_std=0.5,
                                               keep_elites=True),
                                       dss.Adam(lr=0.05), sampler_fraction=0.5),
                  knots=8, basis="linear", weights="final", budget_s=300.0)


PLAIN_METHODS = ("adam", "lbfgs", "cem", "mppi", "hybrid")


def plain_algorithm(method: str) -> dss.AbstractControlAlgorithm:
    """The plain method of ``diffsim solve --method NAME`` (one of ``PLAIN_METHODS``): it
    optimises every step's action on the task's final-state loss with stock options (the
    baselines of the results table)."""
    table = {
        "adam": lambda: dss.Adam(lr=0.1),
        "lbfgs": lambda: dss.LBFGS(inner=5),
        "cem": lambda: dss.CEM(population=16, elites=4, keep_elites=True),
        "mppi": lambda: dss.MPPI(samples=16, temperature=0.1),
        "hybrid": lambda: dss.Hybrid(dss.CEM(population=16, elites=4, keep_elites=True),
                                     dss.Adam(lr=0.1)),
    }
    if method not in table:
        raise ValueError(f"unknown method {method!r}; allowed: auto, {', '.join(table)}")
    return table[method]()
