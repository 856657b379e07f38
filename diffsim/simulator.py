"""``Simulator``: the contract every physics simulator of diffsim fulfils.

``ds.MPM`` (and ``ds.FEM``, ``ds.Shell``, ``ds.Tactile``) are built from a
``ds.Scene``, own Taichi fields (freed by ``close``) and are *functional*:
``step`` and ``rollout`` map a ``ds.State`` and controls to new states without
keeping episode state inside the simulator. One simulator instance can
therefore serve many episodes and environments at once (compiling its
kernels once), which matters because Taichi compiles kernels per instance.

Subclasses implement ``reset``, ``state_spec``, ``param_names``,
``internal_params`` and ``rollout`` (usually through ``diffsim.adjoint``'s
checkpointed ``rollout`` and a ``SegmentEngine``); this base provides input
validation, ``step`` and the lifecycle.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from . import runtime
from .state import State


class Simulator(abc.ABC):
    """Base class of the simulators (abstract).

    Attributes every subclass sets: ``dim``, ``dt`` (substep, s), ``substeps``
    (per control step), ``action_dim``, ``cfg`` (the runtime config).
    """

    dim: int
    dt: float
    substeps: int
    cfg: runtime.RuntimeConfig

    def _open(self) -> None:
        """Call at the end of a subclass ``__init__``."""
        self._closed = False
        runtime.register(self)

    # ---------------------------------------------------------------- contract
    @property
    @abc.abstractmethod
    def action_dim(self) -> int:
        """Entries of one control step's action."""

    @property
    @abc.abstractmethod
    def state_spec(self) -> dict[str, tuple]:
        """Name -> shape of every tensor of this simulator's ``State``."""

    @abc.abstractmethod
    def reset(self) -> State:
        """The initial state built from the scene."""

    @abc.abstractmethod
    def param_names(self) -> list[str]:
        """Names accepted in ``params`` (``SimulationProblem(params=...)``)."""

    @abc.abstractmethod
    def internal_params(self, params: dict | None = None):
        """Validate ``params`` and map them (differentiably) to the kernels' arrays."""

    @abc.abstractmethod
    def rollout(self, state: State, controls: torch.Tensor, params: dict | None = None,
                segment: int | None = None, saveat=None, check: bool = True) -> list[State]:
        """Simulate ``len(controls)`` control steps; differentiable in torch."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Free the Taichi fields (called once by ``close``)."""

    # ---------------------------------------------------------------- shared
    def default_segment(self, n_steps: int) -> int:
        """Checkpoint segment (control steps) for a gradient through ``n_steps`` steps when
        the caller gives none; simulators that know their memory use override it."""
        return max(1, min(n_steps, 32))

    @property
    def control_dt(self) -> float:
        """Duration of one control step (s)."""
        return self.dt * self.substeps

    @property
    def dtype(self) -> torch.dtype:
        return self.cfg.torch_float

    @property
    def device(self) -> torch.device:
        return self.cfg.torch_device

    def validate_state(self, state: State) -> State:
        """Check ``state`` against this simulator; return it on the simulator's device.

        Raises ``TypeError``/``ValueError`` if it does not fit. Tensors on another
        device (a CPU state given to a CUDA simulator) or in another float type are
        moved with ``Tensor.to``, which gradients pass through.
        """
        if not isinstance(state, State):
            raise TypeError(f"state must be a ds.State, got {type(state).__name__}")
        for name, shape in self.state_spec.items():
            t = state[name] if name in state.keys() else None
            if t is None or tuple(t.shape) != shape:
                got = None if t is None else tuple(t.shape)
                raise ValueError(f"state.{name} has shape {got}; this simulator needs {shape}")
            if not torch.isfinite(t).all():
                raise ValueError(f"state.{name} holds non-finite values")
        return state.map(self._to_sim)

    def _to_sim(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return t.to(device=self.device, dtype=self.dtype)
        return t.to(device=self.device)

    def validate_controls(self, controls, name: str = "controls") -> torch.Tensor:
        """Check a (T, action_dim) control tensor; returns it in the simulator's dtype."""
        if not torch.is_tensor(controls):
            controls = torch.as_tensor(np.asarray(controls), dtype=self.dtype)
        if controls.ndim != 2 or controls.shape[1] != self.action_dim or controls.shape[0] < 1:
            raise ValueError(f"{name} has shape {tuple(controls.shape)}; expected (T, "
                             f"action_dim={self.action_dim}) with T >= 1")
        if not torch.isfinite(controls).all():
            raise ValueError(f"{name} holds non-finite values (NaN or inf)")
        return controls.to(device=self.device, dtype=self.dtype)

    def step(self, state: State, action, params: dict | None = None) -> State:
        """Advance one control step with ``action`` of shape ``(action_dim,)``."""
        if not torch.is_tensor(action):
            action = torch.as_tensor(np.asarray(action, dtype=np.float64))
        if action.shape != (self.action_dim,):
            raise ValueError(f"action has shape {tuple(action.shape)}; expected "
                             f"(action_dim,) = ({self.action_dim},)")
        return self.rollout(state, action.reshape(1, -1), params=params, segment=1)[0]

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} simulator is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Free the Taichi fields of this simulator (idempotent)."""
        if not getattr(self, "_closed", True):
            self._release()
            self._closed = True
            runtime.unregister(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
