"""``MPMEngine``: the segment primitives of ``diffsim.adjoint`` over ``MPMKernels``.

This is the thin layer that moves torch tensors in and out of the Taichi
fields; the physics is in ``kernels.py`` and the segment loops in
``diffsim/adjoint.py``.
"""

from __future__ import annotations

import torch

from .. import runtime
from ..errors import SimulationError
from .kernels import MPMKernels
from .model import MPMModel

STATE_NAMES = ("x", "v", "C", "F", "Jp")
DRIVE_NAMES = ("tool_pos", "tool_rot", "tool_vel", "tool_omega")


class MPMEngine:
    """Kernels of one model with room for ``segment`` control steps."""

    def __init__(self, model: MPMModel, segment: int, requires_grad: bool,
                 dtype: torch.dtype, device: torch.device):
        self.model = model
        self.segment = segment
        self.substeps = model.substeps
        self.requires_grad = requires_grad
        self.dtype, self.device = dtype, device
        capacity = segment * model.substeps + 1
        self._pool_key = ("MPMKernels", model.fingerprint(), capacity, requires_grad, dtype)
        self.k = runtime.pool.take(self._pool_key) or MPMKernels(model, capacity, requires_grad)
        self.resident_run = None

    def close(self) -> None:
        """Hand the kernels (fields, compiled code) to the runtime's pool for reuse."""
        if self.k is not None:
            runtime.pool.give(self._pool_key, self.k, self.k.nbytes, self.k.destroy)
            self.k = None

    # -- shapes
    def _state_like(self):
        n, d = self.model.n_particles, self.model.dim
        shapes = [(n, d), (n, d), (n, d, d), (n, d, d), (n,)]
        return [torch.empty(s, dtype=self.dtype, device=self.device) for s in shapes]

    def _drive_like(self, n: int):
        K, d, r = max(len(self.model.tools), 1), self.model.dim, self.model.rot_dim
        shapes = [(n, K, d), (n, K, d, d), (n, K, d), (n, K, r)]
        return [torch.zeros(s, dtype=self.dtype, device=self.device) for s in shapes]

    @staticmethod
    def _c(t: torch.Tensor) -> torch.Tensor:
        return t.detach().contiguous()

    # -- SegmentEngine primitives
    def set_params(self, params) -> None:
        material, friction = params
        self.k.material.from_torch(self._c(material))
        if self.model.tools:
            self.k.tool_friction.from_torch(self._c(friction))

    def load_state(self, slot: int, state) -> None:
        self.resident_run = None
        self.k.load_particles(slot, *[self._c(t) for t in state])

    def store_state(self, slot: int) -> list:
        out = self._state_like()
        self.k.store_particles(slot, *out)
        return out

    def copy_slot(self, src: int, dst: int) -> None:
        self.k.load_particles(dst, *self.store_state(src))

    def load_drive(self, drive) -> None:
        if self.model.tools:
            self.k.load_tools(drive[0].shape[0], *[self._c(t) for t in drive])

    def substep(self, s: int) -> None:
        self.k.substep(s)

    def backward_substep(self, s: int) -> None:
        self.k.backward_substep(s)

    def backward_stages(self, s: int) -> list:
        self.k._grid_dirty = True
        return self.k.backward_stages(s)

    def nonfinite_fields(self) -> dict:
        return self.k.nonfinite_fields()

    def check_step(self, slot: int, step: int) -> None:
        self.k.check(slot)
        vmax2, bad, escaped = (float(self.k.stats[i]) for i in range(3))
        m = self.model
        cfl = m.dx / m.dt
        if bad > 0:
            raise SimulationError(
                f"{int(bad)} particle(s) have non-finite position or velocity",
                step=step, quantity="x/v",
                hint=f"the simulation blew up; reduce dt (now {m.dt:g} s; particles must move "
                     f"less than dx={m.dx:g} m per substep) or stiffen less")
        if vmax2 ** 0.5 > cfl:
            raise SimulationError(
                f"particle speed {vmax2 ** 0.5:.4g} m/s exceeds the CFL limit dx/dt = {cfl:.4g} m/s",
                step=step, quantity="v",
                hint=f"reduce dt below {m.dx / max(vmax2 ** 0.5, 1e-30):.3g} s or slow the tools")
        if escaped > 0:
            raise SimulationError(
                f"{int(escaped)} particle(s) left the simulation grid", step=step, quantity="x",
                hint="keep bodies away from the domain edge, enlarge `bounds`, or use "
                     "walls='sticky'/'slip'")

    def zero_state_grads(self, n_slots: int) -> None:
        self.k.zero_state_grads(n_slots)

    def zero_param_grads(self) -> None:
        self.k.material.grad.fill(0)
        self.k.tool_friction.grad.fill(0)

    def add_state_grads(self, slot: int, grads) -> None:
        like = self._state_like()
        grads = [torch.zeros_like(z) if g is None else self._c(g).to(self.dtype)
                 for g, z in zip(grads, like)]
        self.k.add_particle_grads(slot, *grads)

    def store_state_grads(self, slot: int) -> list:
        out = self._state_like()
        self.k.store_particle_grads(slot, *out)
        return out

    def store_drive_grads(self, n: int) -> list:
        out = self._drive_like(n)
        if self.model.tools:
            self.k.store_tool_grads(n, *out)
        return out

    def store_param_grads(self) -> list:
        mat = self.k.material.grad.to_torch(device=self.device)
        fr = self.k.tool_friction.grad.to_torch(device=self.device)
        return [mat[: len(self.model.groups)].to(self.dtype), fr.to(self.dtype)]
