"""Jacobians of the right-hand side by torch autograd, for the stiff solvers."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _rows(out: torch.Tensor, inputs: tuple, grad_outputs: torch.Tensor, create_graph: bool):
    """Vector-Jacobian products for a batch of cotangents; vmap'd, with a loop fallback
    for functions whose ops have no batching rule."""
    try:
        return torch.autograd.grad(
            out, inputs, grad_outputs, is_grads_batched=True, allow_unused=True,
            create_graph=create_graph, retain_graph=True,
        )
    except (RuntimeError, NotImplementedError):
        per_row = [
            torch.autograd.grad(out, inputs, g, allow_unused=True, create_graph=create_graph, retain_graph=True)
            for g in grad_outputs
        ]
        return tuple(
            None if per_row[0][k] is None else torch.stack([r[k] for r in per_row]) for k in range(len(inputs))
        )


def jacobian(
    g: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    t: float | torch.Tensor,
    u: torch.Tensor,
    *,
    batch: bool,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``g(u, t)``, its Jacobian in ``u`` and its derivative in ``t``.

    Args:
        g: the right-hand side as ``g(u, t_tensor)``.
        t: a float (shared stepping) or a ``(batch,)`` tensor (per-sample stepping).
        u: state, any shape; with ``batch=True`` the leading dimension indexes samples
            that do not interact, so the Jacobian is block diagonal and only the blocks
            are formed.
        create_graph: keep the graph so the Jacobian itself can be differentiated (the
            direct adjoint through a stiff solver needs it).

    Returns:
        ``(f, J, ft)``: ``f = g(u, t)``; ``J`` of shape ``(N, N)`` with ``N = u.numel()``,
        or ``(B, M, M)`` with ``batch=True`` (``M`` = entries per sample); ``ft`` shaped
        like ``u``.
    """
    dtype, device = u.dtype, u.device
    with torch.enable_grad():
        x = u if (create_graph and u.requires_grad) else u.detach().requires_grad_(True)
        per_sample_t = isinstance(t, torch.Tensor)
        tt = (t.detach().clone() if per_sample_t else torch.full((), float(t), dtype=dtype, device=device))
        tt.requires_grad_(True)
        if x.grad_fn is not None:
            # autograd.grad skips the nodes whose topological number is below every
            # input's; a fresh leaf t would make it walk u's whole recorded history on
            # every step (quadratic cost under DirectAdjoint). Tie t to u with a zero term.
            tt = tt + 0.0 * x.reshape(-1)[:1].sum()
        out = g(x, tt)
        if out.shape != u.shape:
            raise ValueError(f"f returned shape {tuple(out.shape)} for a state of shape {tuple(u.shape)}")
        if not out.requires_grad:  # g depends on neither u nor t: zero Jacobian
            J = (torch.zeros(out.numel(), out.numel(), dtype=dtype, device=device) if not batch
                 else torch.zeros(out.shape[0], out[0].numel(), out[0].numel(), dtype=dtype, device=device))
            return out, J, torch.zeros_like(out)
        if not batch:
            n = out.numel()
            eye = torch.eye(n, dtype=dtype, device=device).view(n, *out.shape)
            gu, gt = _rows(out, (x, tt), eye, create_graph)
            J = gu.reshape(n, n) if gu is not None else torch.zeros(n, n, dtype=dtype, device=device)
            ft = gt.reshape(out.shape) if gt is not None else torch.zeros_like(out)
            return (out if create_graph else out.detach()), J, ft
        B = out.shape[0]
        m = out[0].numel()
        # Cotangent j picks entry j of every sample at once: row j of each block.
        eye = torch.eye(m, dtype=dtype, device=device)
        cot = eye[:, None, :].expand(m, B, m).reshape(m, *out.shape)
        gu, gt = _rows(out, (x, tt), cot, create_graph)
        J = (gu.reshape(m, B, m).transpose(0, 1) if gu is not None
             else torch.zeros(B, m, m, dtype=dtype, device=device))
        if gt is None:
            ft = torch.zeros_like(out)
        elif per_sample_t:
            ft = gt.reshape(m, B).T.reshape(out.shape)
        else:
            # A shared scalar t: reverse mode sums over samples, so take the per-sample
            # time derivative by forward mode instead.
            ft = _time_derivative_forward(g, x, tt, out, create_graph)
        if not create_graph:
            return out.detach(), J.contiguous(), ft.detach()
        return out, J, ft


def _time_derivative_forward(g, x, tt, out, create_graph):
    import torch.autograd.forward_ad as fwAD

    try:
        with fwAD.dual_level():
            dual_t = fwAD.make_dual(tt.detach() if not create_graph else tt, torch.ones_like(tt))
            tangent = fwAD.unpack_dual(g(x if create_graph else x.detach(), dual_t)).tangent
        if tangent is None:
            return torch.zeros_like(out)
        return tangent
    except (RuntimeError, NotImplementedError):
        # Forward-mode AD is missing for some op: central difference, step ~ eps^(1/3).
        h = float(torch.finfo(out.dtype).eps) ** (1 / 3) * max(1.0, abs(float(tt)))
        with torch.no_grad():
            return (g(x.detach(), tt.detach() + h) - g(x.detach(), tt.detach() - h)) / (2 * h)
