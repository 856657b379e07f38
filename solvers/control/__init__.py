"""Trajectory optimization: ``ControlProblem`` solved by gradients, sampling, or both.

    prob = ControlProblem(loss_fn, u0=U0, bounds=(-1.0, 1.0))      # loss_fn(U) -> scalar
    res = solve(prob, Adam(lr=1e-2), maxiters=100)                 # also LBFGS, CEM, MPPI, Hybrid
    res.u, res.loss, res.history.best, res.nevals, res.nbackward, res.retcode
    basis = ActionBasis(steps=T, knots=8, kind="cubic")            # U = B @ W, W: (8, act_dim)
    prob = ControlProblem(loss_fn, u0=torch.zeros(8, A), bounds=(-1.0, 1.0), basis=basis)
    res = solve(prob, Hybrid(CEM(), Adam(), restarts=3), maxtime=60, seed=0)
    res = solve(prob, Restarts(Adam(reject=1.5), scale=0.1), maxtime=60, seed=0)  # basin hopping
    res = solve(prob, Adam(), maxiters=200, horizon=ExpandingHorizon(start=10, step=10))
    out = receding_horizon(env, MPC(CEM(), horizon=10, maxiters=5), steps=30)

Algorithms are frozen dataclasses registered with diffsim's one ``solve``; the loop
in ``solve.py`` owns budgets, history, callbacks and progress bars.
"""

from . import hybrid as _hybrid  # noqa: F401  (registers the Hybrid method)
from . import restarts as _restarts  # noqa: F401  (registers the Restarts method)
from . import solve as _solve  # noqa: F401  (registers the optimizer method)
from .adam import Adam
from .base import (
    AbstractControlAlgorithm,
    AbstractGradientMethod,
    AbstractOptimizer,
    AbstractSampler,
    Context,
    StepInfo,
)
from .basis import ActionBasis
from .cem import CEM
from .evaluator import Evaluator
from .hybrid import Hybrid
from .lbfgs import LBFGS
from .mpc import MPC, MPCResult, receding_horizon
from .mppi import MPPI
from .problem import ControlProblem
from .restarts import Restarts
from .result import ControlHistory, ControlResult
from .retcode import ControlError, ControlReturnCode
from .solve import Iteration
from .temporal import ExpandingHorizon, step_weights

__all__ = [
    "ControlProblem", "ControlResult", "ControlHistory", "ControlReturnCode", "ControlError",
    "Iteration", "AbstractControlAlgorithm", "AbstractOptimizer", "AbstractGradientMethod",
    "AbstractSampler", "Context", "StepInfo", "Evaluator",
    "Adam", "LBFGS", "CEM", "MPPI", "Hybrid", "Restarts", "MPC", "MPCResult", "receding_horizon",
    "ActionBasis", "ExpandingHorizon", "step_weights",
]
