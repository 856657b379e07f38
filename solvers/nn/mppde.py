"""Message passing neural PDE solver (MP-PDE) with temporal bundling.

Encoder -> ``layers`` message-passing layers -> 1D-CNN decoder over the hidden vector,
as in the paper (Swish activations, mean aggregation, instance normalisation per
graph, messages built from node features, ``u_i - u_j``, ``x_i - x_j`` and the
equation variables ``(t, cond)``):

    m_ij = phi(h_i, h_j, u_i - u_j, x_i - x_j, v_i),   h_i <- h_i + psi(h_i, mean_j m_ij, v_i)
    u_next[k] = u[-1] + (k + 1) dt * CNN(h)[k]

Pure torch: the graph is a (2, E) edge index (``grid_graph_1d`` for regular periodic
grids, ``radius_graph`` for point clouds); every sample of a batch has the same number
of nodes.

Reference: J. Brandstetter, D. E. Worrall, M. Welling, "Message Passing Neural PDE
Solvers", ICLR 2022.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import AbstractFieldModel, register_model
from .graph import grid_graph_1d, scatter_mean


class Swish(nn.Module):
    """``x * sigmoid(beta x)`` (beta = 1: SiLU)."""

    def forward(self, x):
        return nn.functional.silu(x)


class MPLayer(nn.Module):
    """One message-passing layer (equations 8-9 of the paper) with instance norm.

    The first linear map of the message network acts on ``[h_i, h_j, u_i - u_j, x_i - x_j,
    v_i]``; it is split into per-node products (``W_i h_i + W_u u_i + W_v v_i`` and
    ``W_j h_j - W_u u_j``) gathered onto the edges, which is the same function with
    about 6x fewer operations than concatenating per edge.
    """

    def __init__(self, hidden: int, time_window: int, n_vars: int, pos_dim: int):
        super().__init__()
        self.hidden, self.tw, self.pos_dim = hidden, time_window, pos_dim
        self.message_in = nn.Linear(2 * hidden + time_window + pos_dim + n_vars, hidden)
        self.message_out = nn.Linear(hidden, hidden)
        self.update = nn.Sequential(nn.Linear(2 * hidden + n_vars, hidden), Swish(),
                                    nn.Linear(hidden, hidden), Swish())

    def _split(self, h, u, v):
        """Per-node parts of the first message layer: receiver part ``a``, sender part ``b``,
        and the weight of the relative position."""
        H, T, P = self.hidden, self.tw, self.pos_dim
        W = self.message_in.weight
        w_i, w_j, w_u, w_x, w_v = W[:, :H], W[:, H:2 * H], W[:, 2 * H:2 * H + T], \
            W[:, 2 * H + T:2 * H + T + P], W[:, 2 * H + T + P:]
        pu = u @ w_u.t()
        a = torch.addmm(self.message_in.bias, h, w_i.t()) + pu + v @ w_v.t()
        b = h @ w_j.t() - pu
        return a, b, w_x

    def forward(self, h, u, dx, v, edges, B):
        """Messages along ``edges`` (2, E) with relative positions ``dx`` (E, pos_dim)."""
        send, recv = edges
        a, b, w_x = self._split(h, u, v)
        m = nn.functional.silu(a[recv] + b[send] + dx @ w_x.t())
        m = nn.functional.silu(self.message_out(m))
        agg = scatter_mean(m, recv, h.shape[0])
        return self._update(h, agg, v, B)

    def forward_grid(self, h, u, v, B, offsets, dx):
        """The same layer on a periodic regular 1D grid: node ``i`` receives from ``i + o``
        for each offset ``o`` (relative positions ``dx`` (K, pos_dim), one per offset), so
        gathers are rolls and the mean over neighbours is a mean over the offset axis."""
        a, b, w_x = self._split(h, u, v)
        n, H = h.shape[0] // B, h.shape[1]
        bb = b.view(B, n, H)
        senders = torch.stack([torch.roll(bb, -o, 1) for o in offsets])  # (K, B, n, H): b[i + o]
        m = nn.functional.silu(a.view(1, B, n, H) + senders + (dx @ w_x.t()).view(-1, 1, 1, H))
        m = nn.functional.silu(self.message_out(m))
        return self._update(h, m.mean(0).view(B * n, H), v, B)

    def _update(self, h, agg, v, B):
        h = h + self.update(torch.cat((h, agg, v), -1))
        # instance norm per graph: statistics over the nodes of each sample
        hb = h.view(B, -1, h.shape[-1])
        mean = hb.mean(1, keepdim=True)
        var = hb.var(1, unbiased=False, keepdim=True)
        return ((hb - mean) / torch.sqrt(var + 1e-5)).view_as(h)


def _decoder(hidden: int, time_window: int) -> nn.Module:
    """The paper's 1D CNN from the hidden vector to ``time_window`` outputs (its sizes for
    hidden 128 / tw 25: kernel 16 stride 3, then kernel 14); a linear map when the hidden
    vector is shorter than the window."""
    if hidden < time_window:
        return nn.Sequential(nn.Flatten(), nn.Linear(hidden, time_window), nn.Unflatten(1, (1, time_window)))
    k1 = min(16, hidden - time_window + 1)
    stride = max(1, (hidden - k1) // (time_window + 9))
    length = (hidden - k1) // stride + 1
    k2 = length - time_window + 1
    return nn.Sequential(nn.Conv1d(1, 8, k1, stride=stride), Swish(), nn.Conv1d(8, 1, k2))


@register_model
class MPPDE(AbstractFieldModel):
    """MP-PDE surrogate on 1D grids (or same-size point clouds): (B, tw, 1, n) -> (B, tw, 1, n).

    Args:
        time_window: states in and out (25 in the paper).
        hidden: hidden features (128).
        layers: message-passing layers (6).
        neighbors: grid neighbours on each side (3; the radius graph ``r = neighbors dx``).
        n_cond: equation coefficients given as variables (E2: beta; E3: alpha, beta, gamma).
        dt: spacing of the states (s); t_scale: time normaliser (s, the horizon).
        length: domain length (positions are divided by it).
        periodic: wrap the grid graph and the relative positions.
        use_position: feed ``x / length`` to the encoder as the paper does (breaks exact
            translation equivariance).
        channels: field channels (1).
    """

    accepts_positions = True

    def __init__(self, time_window: int = 25, hidden: int = 128, layers: int = 6, neighbors: int = 3,
                 n_cond: int = 0, dt: float = 1.0, t_scale: float = 1.0, length: float = 1.0,
                 periodic: bool = True, use_position: bool = True, channels: int = 1):
        super().__init__()
        config = dict(time_window=time_window, hidden=hidden, layers=layers, neighbors=neighbors,
                      n_cond=n_cond, dt=dt, t_scale=t_scale, length=length, periodic=periodic,
                      use_position=use_position, channels=channels)
        self._setup(time_window=time_window, channels=channels, dim=1, n_cond=n_cond, dt=dt, t_scale=t_scale,
                    residual=True, config=config)
        self.hidden, self.neighbors = hidden, neighbors
        self.length, self.periodic, self.use_position = float(length), bool(periodic), bool(use_position)
        n_vars = 1 + n_cond
        tw_c = time_window * channels
        self.embed = nn.Sequential(nn.Linear(tw_c + (1 if use_position else 0) + n_vars, hidden), Swish(),
                                   nn.Linear(hidden, hidden), Swish())
        self.layers = nn.ModuleList(MPLayer(hidden, tw_c, n_vars, 1) for _ in range(layers))
        self.decoder = nn.ModuleList(_decoder(hidden, time_window) for _ in range(channels))
        self._graph_cache: dict = {}

    def _edges(self, n: int, B: int, device) -> torch.Tensor:
        key = (n, B, str(device))
        if key not in self._graph_cache:
            with torch.inference_mode(False):  # a normal tensor: usable in training after an inference call
                self._graph_cache = {key: grid_graph_1d(n, self.neighbors, B, periodic=self.periodic,
                                                           device=device)}
        return self._graph_cache[key]

    def _predict(self, u, t, cond, pos, edge_index=None):
        B, tw, C, n = u.shape
        nodes_u = u.permute(0, 3, 1, 2).reshape(B * n, tw * C)
        if pos is None:
            x = torch.arange(n, dtype=u.dtype, device=u.device) * (self.length / n)
            x = x.expand(B, n)
        else:
            x = pos.reshape(B, n)
        x = x.reshape(B * n, 1)
        v = torch.cat((t[:, None], cond), 1).repeat_interleave(n, 0)
        feats = [nodes_u, x / self.length, v] if self.use_position else [nodes_u, v]
        h = self.embed(torch.cat(feats, -1))
        if pos is None and edge_index is None and self.periodic:
            # regular periodic grid: neighbours by rolls (same function as the edge path, tested)
            offsets = [o for o in range(-self.neighbors, self.neighbors + 1) if o]
            if 2 * self.neighbors >= n:
                raise ValueError(f"neighbors={self.neighbors} must be < nx/2 on a periodic grid of {n} nodes")
            dxo = -torch.tensor(offsets, dtype=u.dtype, device=u.device)[:, None] / n  # (x_i - x_{i+o}) / L
            for layer in self.layers:
                h = layer.forward_grid(h, nodes_u, v, B, offsets, dxo)
            out = torch.stack([dec(h[:, None]).squeeze(1) for dec in self.decoder], 1)
            return out.view(B, n, C, tw).permute(0, 3, 2, 1)
        edges = self._edges(n, B, u.device) if edge_index is None else edge_index
        send, recv = edges
        dx = x[recv] - x[send]
        if self.periodic:
            dx = dx - self.length * torch.round(dx / self.length)
        dx = dx / self.length
        for layer in self.layers:
            h = layer(h, nodes_u, dx, v, edges, B)
        out = torch.stack([dec(h[:, None]).squeeze(1) for dec in self.decoder], 1)  # (B n, C, tw)
        return out.view(B, n, C, tw).permute(0, 3, 2, 1)
