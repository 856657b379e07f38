"""``State``: the time-varying data of a simulator as named torch tensors.

Each simulator documents its fields (``sim.state_spec``: name -> shape and
units). For ``ds.MPM`` with N particles in d dimensions and K tools:

====================  ================  =======================================
name                  shape             meaning (SI units)
====================  ================  =======================================
``x``                 (N, d)            particle positions (m)
``v``                 (N, d)            particle velocities (m/s)
``F``                 (N, d, d)         elastic deformation gradients
``C``                 (N, d, d)         APIC affine velocity matrices (1/s)
``Jp``                (N,)              plastic volume ratio (snow; 1 otherwise)
``tool_pos``          (K, d)            tool positions (m)
``tool_rot``          (K, 1) or (K, 4)  tool angle (rad, 2D) / quaternion (w,x,y,z)
====================  ================  =======================================

States are values: ``sim.step`` returns a new one and never changes its input.
Setting a tensor (``state.v = ...``) and passing the state back in is how users
edit a simulation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class State:
    """Named tensors plus the simulated time (s) and the control step count."""

    def __init__(self, time: float = 0.0, step: int = 0, **tensors: torch.Tensor):
        object.__setattr__(self, "_tensors", dict(tensors))
        object.__setattr__(self, "time", float(time))
        object.__setattr__(self, "step", int(step))

    def __getattr__(self, name: str) -> torch.Tensor:
        tensors = object.__getattribute__(self, "_tensors")
        if name in tensors:
            return tensors[name]
        raise AttributeError(f"State has no field {name!r}; fields: {', '.join(tensors)}")

    def __setattr__(self, name: str, value) -> None:
        if name in ("time", "step"):
            object.__setattr__(self, name, value)
        elif name in self._tensors:
            if not torch.is_tensor(value):
                raise TypeError(f"State.{name} must be a torch.Tensor, got {type(value).__name__}")
            if value.shape != self._tensors[name].shape:
                raise ValueError(f"State.{name} must keep shape {tuple(self._tensors[name].shape)}, "
                                 f"got {tuple(value.shape)}")
            self._tensors[name] = value
        else:
            raise AttributeError(f"State has no field {name!r}; fields: {', '.join(self._tensors)}")

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def keys(self):
        return self._tensors.keys()

    def items(self):
        return self._tensors.items()

    def replace(self, **changes) -> State:
        """A new state with some tensors (or ``time``/``step``) replaced."""
        time = changes.pop("time", self.time)
        step = changes.pop("step", self.step)
        new = State(time, step, **self._tensors)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def map(self, fn) -> State:
        """Apply ``fn`` to every tensor (e.g. ``lambda t: t.detach()``)."""
        return State(self.time, self.step, **{k: fn(v) for k, v in self._tensors.items()})

    def clone(self) -> State:
        return self.map(torch.clone)

    def detach(self) -> State:
        return self.map(torch.Tensor.detach)

    def to(self, *args, **kwargs) -> State:
        return self.map(lambda t: t.to(*args, **kwargs))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self._tensors.items())
        return f"State(time={self.time:.6g}, step={self.step}, {shapes})"

    def __getstate__(self):
        return {"time": self.time, "step": self.step, "tensors": self._tensors}

    def __setstate__(self, d):
        object.__setattr__(self, "_tensors", d["tensors"])
        object.__setattr__(self, "time", d["time"])
        object.__setattr__(self, "step", d["step"])
