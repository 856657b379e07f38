"""Abstract ODE solvers and the stage storage their steps share.

A solver is a small immutable value with ``order()``, ``step`` and
``dense_coeffs``; the integration loop (``solvers/stepping``) owns time,
step-size control and saving. Capabilities are marker bases:
:class:`AbstractAdaptiveSolver` has an embedded error estimate,
:class:`AbstractStiffSolver` uses the Jacobian of ``f``.

Steps work in two "time forms": shared stepping passes ``t``/``dt`` as Python floats;
per-sample stepping passes ``t`` as a ``(batch,)`` tensor and ``dt`` as a tensor that
broadcasts against the state (``(batch, 1, ..., 1)``), so the same arithmetic serves both.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch

from .tableau import ButcherTableau, tableau_tensors


class StepResult:
    """What a step hands back: the proposed state, its error estimate and FSAL value.

    Attributes:
        u1: proposed state at ``t + dt`` (shape of ``u``).
        err: local error estimate (shape of ``u``), already multiplied by ``dt``;
            None for fixed-step methods.
        f1: ``f(t + dt, u1)`` when the method computed it (FSAL), else None.
    """

    __slots__ = ("u1", "err", "f1")

    def __init__(self, u1, err, f1):
        self.u1, self.err, self.f1 = u1, err, f1


class AbstractODESolver(abc.ABC):
    """Base of every ODE method. Subclasses are frozen dataclasses (values)."""

    #: ``step`` returns ``f(t1, u1)`` for reuse as the next step's first stage.
    fsal: ClassVar[bool] = False

    @abc.abstractmethod
    def order(self) -> int:
        """Order of convergence of the solution (global error ~ dt**order)."""

    def error_order(self) -> int | None:
        """Order of the embedded solution the error estimate compares against."""
        return None

    @abc.abstractmethod
    def workspace(self, u0: torch.Tensor, *, grad: bool) -> Any:
        """Per-solve scratch space (stage buffers, coefficient tensors)."""

    @abc.abstractmethod
    def step(self, rhs, t, u, dt, f0, ws) -> StepResult:
        """One step from ``(t, u)`` of size ``dt``; ``f0 = f(t, u)`` or None."""

    @abc.abstractmethod
    def dense_coeffs(self, rhs, t, u, dt, step: StepResult, ws) -> torch.Tensor:
        """Continuous extension of the last step: ``R`` of shape ``(d, *u.shape)`` with
        ``u(t + theta*dt) = u + sum_j theta**(j+1) R[j]``. Must be called before the
        next ``step`` (it reads the stage buffer)."""

    def dense_order(self) -> int:
        """Order of the continuous extension (the local error is O(dt**(order+1)))."""
        return self.order()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AbstractAdaptiveSolver(AbstractODESolver):
    """Marker: ``step`` returns an error estimate, so ``dt`` can be adapted."""

    def error_order(self) -> int:  # pragma: no cover - every adaptive method overrides
        raise NotImplementedError


class AbstractStiffSolver(AbstractAdaptiveSolver):
    """Marker: linearly implicit (uses the Jacobian of f, computed by torch autograd)."""


def dense_eval(u0: torch.Tensor, R: torch.Tensor, theta) -> torch.Tensor:
    """``u0 + sum_j theta**(j+1) R[j]`` by Horner's rule; theta a float or broadcastable tensor."""
    acc = R[-1]
    scalar = not isinstance(theta, torch.Tensor)
    for j in range(R.shape[0] - 2, -1, -1):
        acc = torch.add(R[j], acc, alpha=theta) if scalar else torch.addcmul(R[j], theta, acc)
    return torch.add(u0, acc, alpha=theta) if scalar else torch.addcmul(u0, theta, acc)


# ----------------------------------------------------------------------------- stages


class _BufferStages:
    """Stages in one preallocated (s, N) buffer: each stage input is a single
    matrix-vector product, the stage's row a single copy. Row and transposed-prefix
    views are made once, since per-stage Python overhead is what a small state pays."""

    __slots__ = ("K", "shape", "_rows", "_prefix_T", "_prefix")

    def __init__(self, s: int, u0: torch.Tensor):
        self.shape = u0.shape
        self.K = torch.empty((s, u0.numel()), dtype=u0.dtype, device=u0.device)
        self._rows = [self.K[i] for i in range(s)]  # select views (unbind views cannot be written)
        self._prefix = [self.K[:n] for n in range(s + 1)]
        self._prefix_T = [p.T for p in self._prefix]

    def set(self, i: int, k: torch.Tensor) -> None:
        self._rows[i].copy_(k.reshape(-1))

    def comb(self, coef: torch.Tensor, n: int) -> torch.Tensor:
        return torch.mv(self._prefix_T[n], coef).view(self.shape)

    def stage_input(self, u, coef, n, dt):
        if isinstance(dt, float):
            return torch.addmv(u.reshape(-1), self._prefix_T[n], coef, alpha=dt).view(self.shape)
        return torch.addcmul(u, dt, self.comb(coef, n))

    def matmul(self, M: torch.Tensor, n: int) -> torch.Tensor:
        """``M @ K[:n]`` reshaped to ``(rows, *shape)``."""
        return torch.mm(M, self._prefix[n]).view((M.shape[0], *self.shape))


class _ListStages:
    """Stages kept as separate tensors so autograd can record every combination."""

    __slots__ = ("ks",)

    def __init__(self, s: int, u0: torch.Tensor):
        self.ks: list[torch.Tensor | None] = [None] * s

    def set(self, i: int, k: torch.Tensor) -> None:
        self.ks[i] = k

    def comb(self, coef: torch.Tensor, n: int) -> torch.Tensor:
        if n == 1:
            return self.ks[0] * coef[0]
        return torch.stack(self.ks[:n], dim=-1) @ coef

    def stage_input(self, u, coef, n, dt):
        c = self.comb(coef, n)
        return torch.add(u, c, alpha=dt) if isinstance(dt, float) else torch.addcmul(u, dt, c)

    def matmul(self, M: torch.Tensor, n: int) -> torch.Tensor:
        return torch.tensordot(M, torch.stack(self.ks[:n]), dims=1)


def stage_storage(s: int, u0: torch.Tensor, grad: bool):
    return _ListStages(s, u0) if grad else _BufferStages(s, u0)


def time_at(t, c: float, dt):
    """Stage time ``t + c*dt`` in either time form (floats, or (batch,) tensors)."""
    if isinstance(t, float):
        return t + c * dt
    return t + c * dt.reshape(-1)


# ----------------------------------------------------------------------------- explicit RK


class _RKWorkspace:
    __slots__ = ("tt", "stages", "stage_state", "probe")

    def __init__(self, tt, stages):
        self.tt, self.stages = tt, stages
        self.probe = False  # keep the input of the stiffness-probe stage
        self.stage_state = None


class AbstractExplicitRK(AbstractODESolver):
    """An explicit Runge–Kutta method given by a :class:`ButcherTableau`.

    Subclasses set ``tableau`` and ``order()``; adaptive ones also inherit
    :class:`AbstractAdaptiveSolver` and set ``error_order()``.
    """

    tableau: ClassVar[ButcherTableau]
    #: indices (i, j) of two stages evaluated at the same time with c = 1, used by the
    #: Shampine/Hairer stiffness estimate ||k_j - k_i|| / ||g_j - g_i||; None if absent.
    stiffness_stages: ClassVar[tuple[int, int] | None] = None

    @property
    def fsal(self) -> bool:  # type: ignore[override]
        return self.tableau.fsal

    def workspace(self, u0, *, grad):
        tab = self.tableau
        return _RKWorkspace(tableau_tensors(tab, u0.dtype, u0.device), stage_storage(tab.stages, u0, grad))

    def step(self, rhs, t, u, dt, f0, ws):
        tab, tt, st = self.tableau, ws.tt, ws.stages
        s = tab.stages
        if f0 is None:
            f0 = rhs(t, u)
        st.set(0, f0)
        probe = self.stiffness_stages[0] if (ws.probe and self.stiffness_stages) else -1
        ui, k = u, f0
        for i in range(1, s):
            ui = st.stage_input(u, tt.a_rows[i], i, dt)
            if i == probe:
                ws.stage_state = ui
            k = rhs(time_at(t, tt.c[i], dt), ui)
            st.set(i, k)
        if tab.fsal:
            # The last stage was evaluated at (t1, u1); keep rhs's own tensor, not the
            # buffer row, which the next step overwrites.
            u1, f1 = ui, k
        else:
            u1, f1 = st.stage_input(u, tt.b, s, dt), None
        err = None
        if tt.b_err is not None:
            e = st.comb(tt.b_err, s)
            err = e * dt
        return StepResult(u1, err, f1)

    def dense_coeffs(self, rhs, t, u, dt, step, ws):
        tt = ws.tt
        if tt.dense_t is None:  # pragma: no cover - all shipped tableaus have one
            raise NotImplementedError(f"{type(self).__name__} has no continuous extension")
        R = ws.stages.matmul(tt.dense_t, self.tableau.stages)
        return R * dt
