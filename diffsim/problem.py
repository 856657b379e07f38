"""``SimulationProblem`` and its ``solve`` method: differentiable rollouts as values.

    prob = ds.SimulationProblem(sim, controls=U, params={"E": E})
    sol = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=32), saveat=[T])
    loss = ((sol.u[-1].x.mean(0) - target) ** 2).sum()
    loss.backward()          # gradients reach U, E and the initial state
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field

import torch

from .adjoint import CheckpointAdjoint
from .dispatch import register
from .sensitivity import check_sensealg
from .state import State


class SimulationReturnCode(enum.Enum):
    """How a rollout ended (failures raise ``ds.SimulationError`` instead)."""

    Success = "success"


@dataclass
class SimulationProblem:
    """A rollout to run: simulator, controls, parameters and start state.

    Args:
        sim: a simulator (``ds.MPM``, ...).
        controls: (T, sim.action_dim) per-step controls; T >= 1. For a scene
            without tools pass ``torch.zeros(T, 0)``.
        params: differentiable parameters by name (``sim.param_names()``), e.g.
            ``{"E": torch.tensor(5e3, requires_grad=True)}``.
        state0: start state (default ``sim.reset()``); its tensors may require grad.
    """

    sim: object
    controls: torch.Tensor
    params: dict = field(default_factory=dict)
    state0: State | None = None

    def __post_init__(self):
        self.controls = self.sim.validate_controls(self.controls)
        if self.state0 is None:
            self.state0 = self.sim.reset()
        else:
            self.state0 = self.sim.validate_state(self.state0)
        self.sim.internal_params(self.params)  # validates names and values now

    @property
    def n_steps(self) -> int:
        return int(self.controls.shape[0])


@dataclass
class SimulationStats:
    steps: int
    substeps: int
    segments: int
    wall_time: float


@dataclass
class SimulationSolution:
    """Result of ``solve(SimulationProblem)``.

    Attributes:
        t: (n_save,) simulated times (s) of the saved states.
        steps: the saved control-step indices.
        u: list of ``ds.State`` at ``steps`` (differentiable).
        stats: ``SimulationStats`` (steps, substeps, checkpoint segments, wall time).
        retcode: ``SimulationReturnCode.Success`` (failures raise ``ds.SimulationError``).
    """

    t: torch.Tensor
    steps: list
    u: list
    stats: SimulationStats
    retcode: SimulationReturnCode = SimulationReturnCode.Success

    def __getitem__(self, i: int) -> State:
        return self.u[i]

    def __len__(self) -> int:
        return len(self.u)


@register(SimulationProblem, object)
def _solve_simulation(prob: SimulationProblem, alg=None, *,
                      sensealg: CheckpointAdjoint | None = None, saveat=None,
                      check: bool = True) -> SimulationSolution:
    """Run the rollout of ``prob`` with the simulator's own time stepping.

    Args:
        alg: ``None`` (the simulator's integrator).
        sensealg: ``CheckpointAdjoint(segment=K)`` (default ``K =
            sim.default_segment(T)``: for ``ds.MPM`` the whole rollout if it fits in the
            simulator's ``memory_budget_mb``).
        saveat: control-step indices in ``[0, T]`` to keep (default ``[T]``);
            ``"all"`` keeps every step.
        check: raise ``ds.SimulationError`` on blow-ups (a cheap per-step check).
    """
    if alg is not None:
        raise TypeError(f"SimulationProblem takes no algorithm (the simulator integrates); "
                        f"got {type(alg).__name__}")
    T = prob.n_steps
    if sensealg is None:
        sensealg = CheckpointAdjoint(segment=prob.sim.default_segment(T))
    check_sensealg(sensealg, CheckpointAdjoint, "SimulationProblem", "ds.CheckpointAdjoint(segment=K)")
    if sensealg.segment > T:  # a segment longer than the rollout would only size a larger engine
        sensealg = dataclasses.replace(sensealg, segment=T)
    if isinstance(saveat, str):
        if saveat != "all":
            raise ValueError(f"saveat={saveat!r} is not allowed: use 'all' or step indices")
        saveat = range(T + 1)
    t0 = time.perf_counter()
    states = prob.sim.rollout(prob.state0, prob.controls, params=prob.params, sensealg=sensealg,
                              saveat=saveat, check=check)
    steps = [s.step - prob.state0.step for s in states]
    stats = SimulationStats(steps=T, substeps=T * prob.sim.substeps, segments=-(-T // sensealg.segment),
                            wall_time=time.perf_counter() - t0)
    t = torch.tensor([s.time for s in states], dtype=torch.float64)
    return SimulationSolution(t=t, steps=steps, u=states, stats=stats)
