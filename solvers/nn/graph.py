"""Graph utilities in pure torch: radius graphs (cell lists), regular grid graphs and
scatter reductions. No torch_geometric / torch_cluster dependency.

Edges are ``(2, E)`` long tensors ``[senders, receivers]``: a message flows from
``edge_index[0]`` to ``edge_index[1]``.
"""

from __future__ import annotations

import itertools

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """``out[i] = sum_{e: index[e] = i} src[e]`` along the first axis (``n`` rows)."""
    out = src.new_zeros((n,) + src.shape[1:])
    return out.index_add_(0, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``src`` rows per target; rows without an edge get zero."""
    total = scatter_sum(src, index, n)
    count = torch.bincount(index, minlength=n).clamp(min=1).to(src.dtype)
    return total / count.view((-1,) + (1,) * (src.dim() - 1))


def radius_graph(pos: torch.Tensor, r: float, batch: torch.Tensor | None = None, *, loop: bool = False,
                 box: torch.Tensor | None = None) -> torch.Tensor:
    """All pairs closer than ``r``, found with a cell list (O(N) for bounded density).

    Args:
        pos: (N, d) positions.
        r: radius (> 0); pairs with ``|x_i - x_j| < r`` are connected (both directions).
        batch: (N,) graph id per point; points of different graphs are never connected.
        loop: include self-loops.
        box: (d,) periodic box lengths, or None for open space (minimum-image distances).

    Returns:
        (2, E) edge index ``[senders, receivers]``, sorted by receiver.
    """
    if pos.dim() != 2:
        raise ValueError(f"pos must have shape (N, d), got {tuple(pos.shape)}")
    if not r > 0:
        raise ValueError(f"r={r!r} must be > 0")
    n, d = pos.shape
    dev = pos.device
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=dev)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=dev)
    p = pos.detach()
    if box is not None:
        box = torch.as_tensor(box, dtype=p.dtype, device=dev)
        p = torch.remainder(p, box)
        ncell = torch.clamp(torch.floor(box / r), min=1).long()
        size = box / ncell
        lo = torch.zeros(d, dtype=p.dtype, device=dev)
    else:
        lo = p.min(0).values
        size = torch.full((d,), float(r), dtype=p.dtype, device=dev)
        ncell = torch.floor((p.max(0).values - lo) / size).long() + 1
    cell = torch.floor((p - lo) / size).long()
    cell = torch.minimum(cell, ncell - 1)
    strides = torch.ones(d + 1, dtype=torch.long, device=dev)
    for k in range(d - 1, -1, -1):
        strides[k] = strides[k + 1] * ncell[k]
    # key = batch * prod(ncell) + linear cell index
    key = batch * strides[0] + (cell * strides[1:]).sum(1)
    order = torch.argsort(key)
    skey = key[order]
    senders, receivers = [], []
    offsets = itertools.product((-1, 0, 1), repeat=d)
    seen = set()
    for off in offsets:
        o = torch.tensor(off, dtype=torch.long, device=dev)
        nb = cell + o
        if box is not None:
            nb = torch.remainder(nb, ncell)
            # with fewer than 3 cells along an axis, different offsets reach the same cell
            sig = tuple(int(v) for v in torch.remainder(o, ncell).tolist())
            if sig in seen:
                continue
            seen.add(sig)
            valid = torch.ones(n, dtype=torch.bool, device=dev)
        else:
            valid = ((nb >= 0) & (nb < ncell)).all(1)
        nkey = batch * strides[0] + (nb * strides[1:]).sum(1)
        start = torch.searchsorted(skey, nkey)
        end = torch.searchsorted(skey, nkey, right=True)
        cnt = torch.where(valid, end - start, torch.zeros_like(start))
        total = int(cnt.sum())
        if total == 0:
            continue
        recv = torch.repeat_interleave(torch.arange(n, device=dev), cnt)
        first = torch.repeat_interleave(start, cnt)
        base = torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
        send = order[first + torch.arange(total, device=dev) - base]
        senders.append(send)
        receivers.append(recv)
    send = torch.cat(senders)
    recv = torch.cat(receivers)
    diff = p[send] - p[recv]
    if box is not None:
        diff = diff - box * torch.round(diff / box)
    keep = (diff * diff).sum(1) < r * r
    if not loop:
        keep &= send != recv
    send, recv = send[keep], recv[keep]
    o = torch.argsort(recv * n + send)
    return torch.stack((send[o], recv[o]))


def grid_graph_1d(nx: int, neighbors: int, batch: int = 1, *, periodic: bool = True,
                  device=None) -> torch.Tensor:
    """Edges of ``batch`` copies of a 1D grid of ``nx`` nodes, each node receiving from the
    ``neighbors`` nodes on either side (the radius graph with ``r = neighbors * dx``).

    Node ``i`` of copy ``b`` is ``b * nx + i``.
    """
    if neighbors < 1 or (periodic and 2 * neighbors >= nx):
        raise ValueError(f"neighbors={neighbors} must be >= 1 and < nx/2 on a periodic grid of {nx} nodes")
    i = torch.arange(nx, device=device)
    offs = torch.tensor([o for o in range(-neighbors, neighbors + 1) if o], device=device)
    recv = i.repeat_interleave(offs.numel())
    send = (i[:, None] + offs[None, :]).reshape(-1)
    if periodic:
        send = torch.remainder(send, nx)
    else:
        ok = (send >= 0) & (send < nx)
        send, recv = send[ok], recv[ok]
    shift = (torch.arange(batch, device=device) * nx)[:, None]
    return torch.stack(((send[None] + shift).reshape(-1), (recv[None] + shift).reshape(-1)))
