"""Shared machinery of the Rosenbrock (linearly implicit) methods."""

from __future__ import annotations

import torch

from .base import AbstractStiffSolver


class RosenbrockWorkspace:
    __slots__ = ("batch", "shape", "stage_state", "probe", "grad")

    def __init__(self, u0: torch.Tensor, batch: bool, grad: bool):
        self.batch, self.shape, self.grad = batch, u0.shape, grad
        self.stage_state = None
        self.probe = False


class AbstractRosenbrock(AbstractStiffSolver):
    """A Rosenbrock–Wanner method: one Jacobian and one LU factorization per step,
    stages solved with the factorization. Subclasses set ``jacobian`` ("dense" or
    "batch") as a dataclass field and implement ``step``.

    ``jacobian="dense"`` forms the full ``(N, N)`` Jacobian of ``f`` over all entries of
    ``u`` (cost ~ N vector-Jacobian products plus an O(N^3) LU). ``"batch"`` treats the
    leading dimension as independent samples and forms ``B`` blocks of ``(M, M)``: use
    it for batched neural ODEs. Per-sample stepping always uses ``"batch"``.
    """

    jacobian: str

    def _check(self):
        if self.jacobian not in ("dense", "batch"):
            raise ValueError(f"jacobian must be 'dense' or 'batch', got {self.jacobian!r}")

    def workspace(self, u0, *, grad):
        return RosenbrockWorkspace(u0, self.jacobian == "batch", grad)

    # -- linear algebra on states of any shape

    def factor(self, rhs, t, u, dt, gamma: float, ws, *, per_sample: bool):
        """f0, the LU of ``W = I/(dt*gamma) - J`` and ``ft`` at (t, u)."""
        batch = ws.batch or per_sample
        # Differentiate through the Jacobian only when the step itself is recorded
        # (direct adjoint, regularizer step); W-method gradients would be inexact.
        create_graph = ws.grad and torch.is_grad_enabled()
        f0, J, ft = rhs.jacobian(t, u, batch=batch, create_graph=create_graph)
        n = J.shape[-1]
        eye = torch.eye(n, dtype=J.dtype, device=J.device)
        if batch:
            inv = 1.0 / (dt.reshape(-1, 1, 1) * gamma) if isinstance(dt, torch.Tensor) else 1.0 / (dt * gamma)
            W = eye * inv - J
        else:
            W = eye / (dt * gamma) - J
        LU, piv = torch.linalg.lu_factor(W)
        return f0, (LU, piv, batch), ft

    def solve(self, lu, b: torch.Tensor) -> torch.Tensor:
        LU, piv, batch = lu
        if batch:
            x = torch.linalg.lu_solve(LU, piv, b.reshape(b.shape[0], -1, 1))
        else:
            x = torch.linalg.lu_solve(LU, piv, b.reshape(-1, 1))
        return x.view(b.shape)
