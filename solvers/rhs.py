"""The user's ``f(u, p, t)`` adapted to the steppers: ``rhs(t, u)`` with counting."""

from __future__ import annotations

from typing import Any

import torch

from .ode.jacobian import jacobian


class RHS:
    """``rhs(t, u) = f(u, p, t)``, counting evaluations.

    ``t`` arrives as a float (shared stepping) and is handed to ``f`` as a 0-d tensor
    of the state's dtype/device, or as a ``(batch,)`` tensor (per-sample stepping).
    """

    __slots__ = ("f", "p", "dtype", "device", "nfe", "njac")

    def __init__(self, f, p: Any, dtype: torch.dtype, device: torch.device):
        self.f, self.p, self.dtype, self.device = f, p, dtype, device
        self.nfe = 0
        self.njac = 0

    def time(self, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t
        return torch.full((), t, dtype=self.dtype, device=self.device)

    def __call__(self, t, u: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.f(u, self.p, self.time(t))

    def jacobian(self, t, u, *, batch: bool, create_graph: bool):
        """``(f(t, u), df/du, df/dt)``; see :func:`solvers.ode.jacobian.jacobian`."""
        self.nfe += 1
        self.njac += 1
        return jacobian(lambda x, tt: self.f(x, self.p, tt), t, u, batch=batch, create_graph=create_graph)


def check_rhs_output(name: str, out: Any, u: torch.Tensor) -> None:
    """The first evaluation of a right-hand side must look like the state."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor shaped like u, got {type(out).__name__}")
    if out.shape != u.shape:
        raise ValueError(
            f"{name}(u0, p, t0) returned shape {tuple(out.shape)} but u0 has shape {tuple(u.shape)}; "
            f"{name} must return a tensor with the shape of u"
        )
    if out.dtype != u.dtype:
        raise TypeError(
            f"{name}(u0, p, t0) returned dtype {out.dtype} but u0 has dtype {u.dtype}; cast inside "
            f"{name} or give u0 the dtype of the computation"
        )
    if out.device != u.device:
        raise ValueError(f"{name}(u0, p, t0) returned a tensor on {out.device} but u0 is on {u.device}")
