"""``ActionBasis``: controls as a few weights of smooth functions of time, ``U = B @ W``.

A control sequence of T steps is rarely worth T free parameters per action: most useful
plans are smooth, and per-step parameters make gradients noisy (every step sees its own
contact events) and samplers hopeless (the search space grows with T). A basis writes the
controls as ``U[t] = sum_k B[t, k] W[k]`` with K < T weights per action; every method of
``solve`` then optimises ``W`` (``ControlProblem(..., basis=...)``).

All three kinds are non-negative partitions of unity (every row of ``B`` sums to 1), so
``U[t]`` is a convex combination of the weights whose functions cover step ``t``: box
bounds on the weights imply the same box bounds on the controls (exactly for
``"constant"``; for ``"linear"`` and ``"cubic"`` a sufficient condition, which is what
:class:`ControlProblem` uses to derive the weight bounds).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .checks import positive_int

KINDS = ("linear", "cubic", "constant")


def _linear(T: int, K: int) -> np.ndarray:
    """Hat functions centred on K knots spread evenly over the steps 0..T-1."""
    if K == 1:
        return np.ones((T, 1))
    t = np.arange(T, dtype=float)[:, None]
    knots = np.linspace(0.0, T - 1, K)[None]
    return np.clip(1.0 - np.abs(t - knots) / ((T - 1) / (K - 1)), 0.0, None)


def _cubic(T: int, K: int) -> np.ndarray:
    """Clamped uniform cubic B-splines (K control points; the curve starts at W[0] and ends
    at W[K-1]), evaluated at T evenly spaced parameters (scipy's design matrix)."""
    from scipy.interpolate import BSpline

    knots = np.r_[np.zeros(3), np.linspace(0.0, 1.0, K - 2), np.ones(3)]
    return BSpline.design_matrix(np.linspace(0.0, 1.0, T), knots, 3).toarray()


def _constant(T: int, K: int) -> np.ndarray:
    """K steps of equal length (zero-order hold): step t uses weight floor(t K / T)."""
    B = np.zeros((T, K))
    B[np.arange(T), (np.arange(T) * K) // T] = 1.0
    return B


@dataclasses.dataclass(frozen=True, eq=False)
class ActionBasis:
    """Controls of ``steps`` time steps from ``knots`` weights per action: ``U = B @ W``.

    Args:
        steps: T, the number of control steps (the first axis of the controls).
        knots: K, weights per action (1 <= K <= T; ``"cubic"`` needs K >= 4).
        kind: ``"linear"`` (piecewise-linear interpolation of K knot values spread evenly
            over the steps: hat functions; ``U`` passes through the weights at the knots),
            ``"cubic"`` (clamped uniform cubic B-spline with K control points: C2 smooth;
            de Boor, "A practical guide to splines", 1978) or ``"constant"`` (K blocks of
            equal length, each holding one value).
        offset: optional ``(T, ...)`` controls added to ``B @ W`` (e.g. a scripted plan
            that ``W`` corrects: ``U = offset + B @ W``, and ``W = 0`` is the plan). With
            an offset the weight bounds cannot imply the control bounds, so
            :class:`ControlProblem` clips ``U`` into them instead (the gradient of a
            clipped entry is zero).

    Attributes:
        matrix: ``(T, K)`` float64 tensor ``B``.

    ``basis(W)`` maps weights ``(K, ...)`` to controls ``(T, ...)``;
    ``basis(W, batched=True)`` maps ``(N, K, ...)`` to ``(N, T, ...)``;
    ``basis.fit(U)`` is the least-squares inverse.

    Raises:
        TypeError, ValueError: arguments out of range (named in the message).
    """

    steps: int
    knots: int
    kind: str = "linear"
    offset: torch.Tensor | None = None

    def __post_init__(self):
        positive_int("steps", self.steps)
        positive_int("knots", self.knots)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")
        if self.knots > self.steps:
            raise ValueError(f"knots ({self.knots}) must be <= steps ({self.steps}): a basis has "
                             "at most one weight per step")
        if self.kind == "cubic" and self.knots < 4:
            raise ValueError(f"a cubic B-spline needs knots >= 4 control points, got {self.knots}")
        if self.offset is not None:
            off = torch.as_tensor(self.offset).detach()
            if not off.is_floating_point() or off.ndim < 1 or off.shape[0] != self.steps:
                raise ValueError(f"offset must be a real tensor of shape ({self.steps}, ...), got "
                                 f"{tuple(off.shape)} {off.dtype}")
            if not bool(torch.isfinite(off).all()):
                raise ValueError("offset holds NaN/Inf")
            object.__setattr__(self, "offset", off.clone())
        B = {"linear": _linear, "cubic": _cubic, "constant": _constant}[self.kind](self.steps, self.knots)
        object.__setattr__(self, "matrix", torch.as_tensor(B, dtype=torch.float64))

    def _B(self, like: torch.Tensor) -> torch.Tensor:
        return self.matrix.to(dtype=like.dtype, device=like.device)

    def __call__(self, W: torch.Tensor, batched: bool = False) -> torch.Tensor:
        """Controls ``offset + B @ W`` (differentiable in ``W``).

        Args:
            W: ``(K, ...)`` weights, or ``(N, K, ...)`` with ``batched=True``.

        Returns:
            ``(T, ...)`` (or ``(N, T, ...)``) controls of ``W``'s dtype and device.
        """
        axis = 1 if batched else 0
        if W.ndim <= axis or W.shape[axis] != self.knots:
            want = "(N, K, ...)" if batched else "(K, ...)"
            raise ValueError(f"weights must have shape {want} with K = {self.knots}, got "
                             f"{tuple(W.shape)}")
        U = torch.movedim(torch.movedim(W, axis, -1) @ self._B(W).T, -1, axis)
        if self.offset is not None:
            U = U + self.offset.to(dtype=W.dtype, device=W.device)
        return U

    def fit(self, U: torch.Tensor) -> torch.Tensor:
        """Least-squares weights ``W`` with ``basis(W)`` closest to ``U`` (``(T, ...)`` ->
        ``(K, ...)``, minus the offset if any); exact where ``U`` lies in the basis's span."""
        U = torch.as_tensor(U)
        if U.ndim < 1 or U.shape[0] != self.steps:
            raise ValueError(f"U must have shape ({self.steps}, ...), got {tuple(U.shape)}")
        if self.offset is not None:
            U = U - self.offset.to(dtype=U.dtype, device=U.device)
        rhs = U.reshape(self.steps, -1).to(torch.float64)
        W = torch.linalg.lstsq(self.matrix.to(rhs.device), rhs).solution
        return W.reshape(self.knots, *U.shape[1:]).to(dtype=U.dtype)

    def weight_bounds(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds on ``W`` (``(K, ...)``) that keep ``B @ W`` inside ``[lo, hi]`` (``(T, ...)``).

        Each weight gets the tightest control bound over the steps its function covers
        (``B[t, k] > 0``): sufficient because every ``U[t]`` is a convex combination of the
        weights covering ``t``. With an offset, the weights get ``+-(hi - lo)`` (the
        problem clips the controls instead).
        """
        if self.offset is not None:
            width = hi - lo
            wk = torch.stack([width[self.matrix[:, k] > 0].amax(0) for k in range(self.knots)])
            return -wk, wk
        cover = self.matrix > 0
        wlo = torch.stack([lo[cover[:, k]].amax(0) for k in range(self.knots)])
        whi = torch.stack([hi[cover[:, k]].amin(0) for k in range(self.knots)])
        return wlo, whi

    def __repr__(self) -> str:
        off = "" if self.offset is None else f", offset: {tuple(self.offset.shape)}"
        return f"ActionBasis(steps={self.steps}, knots={self.knots}, kind={self.kind!r}{off})"


def default_knots(steps: int, every: int = 6, minimum: int = 4) -> int:
    """A knot count for ``steps`` control steps: one knot per ``every`` steps, at least
    ``minimum`` (and at most ``steps``)."""
    return int(min(steps, max(minimum, math.ceil(steps / every))))
