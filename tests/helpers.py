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


def hat_basis_adam(env, U0: torch.Tensor, iters: int, lr: float, knots: int) -> list:
    """Losses of ``dss.Adam`` on the weights ``W`` of ``knots`` hat functions per action
    added to the plan ``U0`` (``dss.ActionBasis(offset=U0)``: ``U = clip(U0 + B W, -1, 1)``,
    ``W = 0`` first; ``env.unwrapped.rollout_loss``), at each iterate: before each of the
    ``iters`` steps and after the last one (``iters + 1`` values)."""
    from diffsim import solvers as dss

    T, A = U0.shape
    prob = dss.ControlProblem(env.unwrapped.rollout_loss, u0=torch.zeros(knots, A, dtype=U0.dtype),
                              bounds=(-1.0, 1.0), basis=dss.ActionBasis(T, knots, offset=U0))
    res = dss.solve(prob, dss.Adam(lr=lr), maxiters=iters + 1)
    assert res.successful, res.message
    return list(res.history.mean)


def small_pad_sensor(**kw):
    """A 10 x 10 x 3 mm flat pad (2.5 mm cells), 3 x 3 markers, a 12 x 10 camera."""
    import diffsim as ds

    return ds.TactileSensor(pad=ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025),
                            material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                            markers=(3, 3), camera=ds.TactileCamera(resolution=(12, 10)),
                            pressure_res=(4, 4), **kw)
