"""Which tensors a right-hand side really depends on: the check that keeps the
continuous adjoints from silently dropping gradients of tensors ``f`` closes over."""

from __future__ import annotations

import torch


def foreign_leaves(out: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors requiring grad that ``out``'s graph reaches without passing through one
    of ``params`` (leaf tensors, or non-leaf tensors of ``p`` as whole nodes).

    Walks ``out.grad_fn`` once; the graph of one evaluation of ``f`` is small.
    """
    if out.grad_fn is None:
        return []
    leaf_ids = {id(t) for t in params if t.is_leaf}
    stop_nodes = {t.grad_fn for t in params if not t.is_leaf}
    found, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in stop_nodes:
            continue
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf
        if variable is not None:
            if id(variable) not in leaf_ids:
                found.append(variable)
            continue
        stack.extend(nxt for nxt, _ in node.next_functions)
    return found


def check_closure(f, out: torch.Tensor, params: list[torch.Tensor], sensealg_name: str) -> None:
    """Raise when ``out = f(u0.detach(), p, t0)`` depends on tensors that require grad but
    that the continuous adjoint does not know about (torchdiffeq raises in this case
    too: a ``lambda`` calling an ``nn.Module`` would get no parameter gradients)."""
    leaves = foreign_leaves(out, params)
    if not leaves:
        return
    shapes = ", ".join(str(tuple(t.shape)) for t in leaves[:6]) + (", ..." if len(leaves) > 6 else "")
    kind = "an nn.Module" if isinstance(f, torch.nn.Module) else type(f).__name__
    raise ValueError(
        f"f ({kind}) uses {len(leaves)} tensor(s) that require grad but are neither in p nor "
        f"parameters of f (shapes {shapes}), e.g. a lambda that calls an nn.Module or a closure "
        f"over a tensor; {sensealg_name} would give them no gradient. Pass the module itself as "
        "f (its forward taking (u, p, t)), put the tensors in p, or use sensealg=DirectAdjoint()"
    )
