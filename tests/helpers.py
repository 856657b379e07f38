"""Shared helpers for the tests (not a test module)."""

import torch


def central_difference(f, x: torch.Tensor, index, eps: float) -> float:
    """(f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for one entry ``index`` of ``x``."""
    xp, xm = x.detach().clone(), x.detach().clone()
    xp[index] += eps
    xm[index] -= eps
    return (float(f(xp)) - float(f(xm))) / (2 * eps)


def assert_close_rel(a: float, b: float, rtol: float, atol: float = 0.0, what: str = ""):
    err = abs(a - b)
    assert err <= atol + rtol * max(abs(a), abs(b)), f"{what}: {a!r} vs {b!r} (err {err:.3g})"
