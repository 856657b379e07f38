"""Finite-volume building blocks on periodic 1D grids: WENO5 reconstruction and face fluxes.

All functions act on the last axis of a tensor of cell averages ``u`` (``(..., nx)``)
and return face quantities on the ``nx + 1`` faces ``x_{j+1/2}``, ``j = -1 .. nx-1``,
so that a conservative update is ``-(F[..., 1:] - F[..., :-1]) / dx`` with no roll.

References:
    G.-S. Jiang, C.-W. Shu, "Efficient Implementation of Weighted ENO Schemes",
    J. Comput. Phys. 126 (1996) (WENO5-JS).
    R. Borges, M. Carmona, B. Costa, W. S. Don, "An improved weighted essentially
    non-oscillatory scheme for hyperbolic conservation laws", J. Comput. Phys. 227
    (2008) (WENO5-Z).
"""

from __future__ import annotations

import torch

GHOST = 3  # cells of periodic padding a WENO5 face stencil needs on each side


def pad_periodic(u: torch.Tensor, n: int = GHOST) -> torch.Tensor:
    """``u`` with ``n`` periodic ghost cells on each side of the last axis."""
    return torch.cat((u[..., -n:], u, u[..., :n]), dim=-1)


def face_stencils(u: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The six shifted views ``(u_{j-2}, ..., u_{j+3})`` for the ``nx + 1`` faces ``j + 1/2``.

    Args:
        u: (..., nx) cell averages of a periodic field.

    Returns:
        six tensors (..., nx + 1): entry ``j + 1`` of the k-th is ``u_{j - 2 + k}``.
    """
    nx = u.shape[-1]
    if nx < 2 * GHOST:
        raise ValueError(f"a periodic WENO5 grid needs nx >= {2 * GHOST} cells, got nx={nx}")
    up = pad_periodic(u)
    return tuple(up[..., k:k + nx + 1] for k in range(6))


def weno5(v1, v2, v3, v4, v5, *, weights: str = "js", eps: float = 1e-6) -> torch.Tensor:
    """Fifth-order WENO value at the right face of the centre cell ``v3``, upwinded
    from the left (stencil ``v1..v5`` = cells ``j-2..j+2``).

    For the right-biased value at the same face pass the mirrored stencil
    (cells ``j+3..j-1``).

    Args:
        v1, v2, v3, v4, v5: tensors of equal shape, the cell averages j-2 .. j+2.
        weights: "js" (Jiang-Shu nonlinear weights) or "z" (Borges et al.'s WENO-Z,
            which keeps fifth order at smooth extrema).
        eps: the small constant in the weights (1e-6 for JS; WENO-Z uses 1e-40).
    """
    q0 = (2.0 * v1 - 7.0 * v2 + 11.0 * v3) / 6.0
    q1 = (-v2 + 5.0 * v3 + 2.0 * v4) / 6.0
    q2 = (2.0 * v3 + 5.0 * v4 - v5) / 6.0
    b0 = 13.0 / 12.0 * (v1 - 2.0 * v2 + v3) ** 2 + 0.25 * (v1 - 4.0 * v2 + 3.0 * v3) ** 2
    b1 = 13.0 / 12.0 * (v2 - 2.0 * v3 + v4) ** 2 + 0.25 * (v2 - v4) ** 2
    b2 = 13.0 / 12.0 * (v3 - 2.0 * v4 + v5) ** 2 + 0.25 * (3.0 * v3 - 4.0 * v4 + v5) ** 2
    if weights == "js":
        a0 = 0.1 / (eps + b0) ** 2
        a1 = 0.6 / (eps + b1) ** 2
        a2 = 0.3 / (eps + b2) ** 2
    elif weights == "z":
        tau = (b0 - b2).abs()
        a0 = 0.1 * (1.0 + (tau / (b0 + eps)) ** 2)
        a1 = 0.6 * (1.0 + (tau / (b1 + eps)) ** 2)
        a2 = 0.3 * (1.0 + (tau / (b2 + eps)) ** 2)
    else:
        raise ValueError(f"weights={weights!r} is not supported; allowed: 'js', 'z'")
    return (a0 * q0 + a1 * q1 + a2 * q2) / (a0 + a1 + a2)


def weno5_faces(u: torch.Tensor, *, weights: str = "js", eps: float | None = None):
    """Left and right WENO5 states ``(u^-, u^+)`` at the ``nx + 1`` faces of a periodic grid.

    Both sides are reconstructed in one batched evaluation (half the torch operations).
    """
    s = face_stencils(u)
    if eps is None:
        eps = 1e-6 if weights == "js" else 1e-40
    left = torch.stack((s[0], s[1], s[2], s[3], s[4]))
    right = torch.stack((s[5], s[4], s[3], s[2], s[1]))
    both = weno5(*torch.stack((left, right), dim=1), weights=weights, eps=eps)
    return both[0], both[1]


def godunov_burgers(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact Godunov flux of ``f(u) = u^2 / 2`` between left state ``a`` and right state ``b``."""
    return 0.5 * torch.maximum(a.clamp(min=0.0) ** 2, b.clamp(max=0.0) ** 2)


def rusanov_burgers(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Local Lax-Friedrichs (Rusanov) flux of ``f(u) = u^2 / 2``."""
    speed = torch.maximum(a.abs(), b.abs())
    return 0.25 * (a * a + b * b) - 0.5 * speed * (b - a)


def face_gradient(s: tuple[torch.Tensor, ...], dx: float) -> torch.Tensor:
    """Fourth-order ``u_x`` at faces from cell averages (stencil ``j-1..j+2``)."""
    return (s[1] - 15.0 * s[2] + 15.0 * s[3] - s[4]) / (12.0 * dx)


def face_second_derivative(s: tuple[torch.Tensor, ...], dx: float) -> torch.Tensor:
    """Fourth-order ``u_xx`` at faces from cell averages (stencil ``j-2..j+3``).

    Derived from the 4th-order third derivative of the primitive ``U`` (``U' = u``)
    at the face, rewritten in cell averages.
    """
    return (-s[0] + 7.0 * s[1] - 6.0 * s[2] - 6.0 * s[3] + 7.0 * s[4] - s[5]) / (8.0 * dx * dx)


def divergence(F: torch.Tensor, dx: float) -> torch.Tensor:
    """``(F_{j+1/2} - F_{j-1/2}) / dx`` for the ``nx + 1`` face values ``F``."""
    return (F[..., 1:] - F[..., :-1]) / dx
