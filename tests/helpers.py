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


def assert_grads_match_fd(loss, args, cases, rtol: float, atol: float = 0.0):
    """Backpropagate ``loss(*args)`` once and compare, for each ``(i, index, eps)`` of
    ``cases``, the gradient entry ``index`` of argument ``i`` (``None``: a scalar argument)
    with a central difference of ``loss`` in that entry (step ``eps``)."""
    args = [a.detach().clone().requires_grad_() for a in args]
    loss(*args).backward()
    for i, idx, eps in cases:
        def f(x, i=i):
            a = [y.detach() for y in args]
            a[i] = x
            with torch.no_grad():
                return loss(*a)

        fd = central_difference(f, args[i], () if idx is None else idx, eps)
        g = args[i].grad if idx is None else args[i].grad[idx]
        assert_close_rel(float(g), fd, rtol, atol, f"argument {i} {idx}")
