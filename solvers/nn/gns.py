"""Graph network-based simulator (GNS) for particle dynamics: encode-process-decode over
a radius graph, predicting accelerations that a semi-implicit Euler step integrates.

Node inputs: the last ``history`` velocities (normalised), clipped distances to the
domain walls, a learned particle-type embedding. Edge inputs: relative displacement
over the radius and its norm. ``message_steps`` unshared interaction-network blocks
with residuals; MLPs with LayerNorm (not on the decoder). Positions are in the
simulator's units; velocities and accelerations are per frame (``x_t - x_{t-1}``).

Reference: A. Sanchez-Gonzalez, J. Godwin, T. Pfaff, R. Ying, J. Leskovec, P. W.
Battaglia, "Learning to Simulate Complex Physics with Graph Networks", ICML 2020.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import register_model
from .graph import radius_graph, scatter_sum


def mlp(n_in: int, hidden: int, n_out: int, layers: int, norm: bool = True) -> nn.Sequential:
    mods, width = [], n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    if norm:
        mods.append(nn.LayerNorm(n_out))
    return nn.Sequential(*mods)


class InteractionBlock(nn.Module):
    """``e' = e + phi(e, v_s, v_r)``, ``v' = v + psi(v, sum_in e')``."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.edge = mlp(3 * hidden, hidden, hidden, layers)
        self.node = mlp(2 * hidden, hidden, hidden, layers)

    def forward(self, v, e, edges):
        send, recv = edges
        e = e + self.edge(torch.cat((e, v[send], v[recv]), -1))
        v = v + self.node(torch.cat((v, scatter_sum(e, recv, v.shape[0])), -1))
        return v, e


@register_model
class GNS(nn.Module):
    """Learned particle simulator.

    Args:
        dim: 2 or 3.
        history: velocities in the node input (5 in the paper).
        n_types: particle types (materials); embedded in ``type_embedding`` dims.
        radius: connectivity radius (simulator units).
        bounds: ``((lo, hi), ...)`` per axis, for the wall-distance features.
        hidden: latent size (128); mlp_layers: hidden layers per MLP (2);
        message_steps: processor blocks (10).

    Call ``model(positions, types, batch)`` with ``positions`` (N, history + 1, dim) (oldest
    first) to get normalised accelerations (N, dim); ``step`` and ``rollout`` integrate.
    Normalisation statistics are buffers set by :meth:`set_statistics`.
    """

    def __init__(self, dim: int = 2, history: int = 5, n_types: int = 3, radius: float = 0.05,
                 bounds=((0.0, 1.0), (0.0, 1.0)), hidden: int = 128, mlp_layers: int = 2,
                 message_steps: int = 10, type_embedding: int = 16):
        super().__init__()
        if dim not in (2, 3) or history < 1 or n_types < 1 or not radius > 0:
            raise ValueError(f"need dim in (2, 3), history >= 1, n_types >= 1, radius > 0; got {dim}, {history}, "
                             f"{n_types}, {radius}")
        bounds = tuple(tuple(map(float, b)) for b in bounds)
        if len(bounds) != dim:
            raise ValueError(f"bounds must give (lo, hi) for each of the {dim} axes, got {bounds}")
        self.config = dict(dim=dim, history=history, n_types=n_types, radius=radius, bounds=bounds, hidden=hidden,
                           mlp_layers=mlp_layers, message_steps=message_steps, type_embedding=type_embedding)
        self.dim, self.history, self.radius = dim, history, float(radius)
        self.register_buffer("bounds", torch.tensor(bounds).t().contiguous())  # (2, dim)
        self.type_embed = nn.Embedding(n_types, type_embedding)
        self.node_enc = mlp(history * dim + 2 * dim + type_embedding, hidden, hidden, mlp_layers)
        self.edge_enc = mlp(dim + 1, hidden, hidden, mlp_layers)
        self.blocks = nn.ModuleList(InteractionBlock(hidden, mlp_layers) for _ in range(message_steps))
        self.dec = mlp(hidden, hidden, dim, mlp_layers, norm=False)
        for name in ("vel_mean", "acc_mean"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("vel_std", "acc_std"):
            self.register_buffer(name, torch.ones(dim))

    @torch.no_grad()
    def set_statistics(self, positions: torch.Tensor, noise_std: float = 0.0) -> None:
        """Velocity / acceleration means and stds from trajectories (..., T, N, dim), with the
        training noise variance added (as the reference implementation does)."""
        x = positions.reshape(-1, *positions.shape[-3:]).to(self.vel_mean.dtype)
        v = x[:, 1:] - x[:, :-1]
        a = v[:, 1:] - v[:, :-1]
        v, a = v.reshape(-1, self.dim), a.reshape(-1, self.dim)
        self.vel_mean.copy_(v.mean(0))
        self.vel_std.copy_(torch.sqrt(v.var(0) + noise_std ** 2).clamp(min=1e-12))
        self.acc_mean.copy_(a.mean(0))
        self.acc_std.copy_(torch.sqrt(a.var(0) + noise_std ** 2).clamp(min=1e-12))

    def graph(self, x: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        return radius_graph(x, self.radius, batch)

    def forward(self, positions: torch.Tensor, types: torch.Tensor, batch: torch.Tensor | None = None,
                edge_index: torch.Tensor | None = None) -> torch.Tensor:
        if positions.dim() != 3 or positions.shape[1] != self.history + 1 or positions.shape[2] != self.dim:
            raise ValueError(f"positions must have shape (N, history + 1 = {self.history + 1}, dim = {self.dim}), "
                             f"got {tuple(positions.shape)}")
        x = positions[:, -1]
        vel = (positions[:, 1:] - positions[:, :-1] - self.vel_mean) / self.vel_std
        lo, hi = self.bounds[0].to(x.dtype), self.bounds[1].to(x.dtype)
        walls = torch.cat(((x - lo) / self.radius, (hi - x) / self.radius), -1).clamp(-1.0, 1.0)
        node = torch.cat((vel.reshape(x.shape[0], -1), walls, self.type_embed(types)), -1)
        edges = self.graph(x, batch) if edge_index is None else edge_index
        send, recv = edges
        rel = (x[send] - x[recv]) / self.radius
        e = self.edge_enc(torch.cat((rel, rel.norm(dim=-1, keepdim=True)), -1))
        v = self.node_enc(node)
        for block in self.blocks:
            v, e = block(v, e, edges)
        return self.dec(v)

    def acceleration(self, positions, types, batch=None) -> torch.Tensor:
        """Physical (per-frame^2) acceleration."""
        return self(positions, types, batch) * self.acc_std + self.acc_mean

    def step(self, positions, types, batch=None) -> torch.Tensor:
        """Next positions (N, dim) by semi-implicit Euler: ``v' = v + a``, ``x' = x + v'``."""
        a = self.acceleration(positions, types, batch)
        v = positions[:, -1] - positions[:, -2] + a
        return positions[:, -1] + v

    @torch.no_grad()
    def rollout(self, positions, types, steps: int, batch=None, clamp: bool = True) -> torch.Tensor:
        """(steps, N, dim) predicted positions after ``positions`` (N, history + 1, dim)."""
        window = positions
        out = []
        lo, hi = self.bounds[0].to(positions.dtype), self.bounds[1].to(positions.dtype)
        for _ in range(steps):
            nxt = self.step(window, types, batch)
            if clamp:
                nxt = torch.maximum(torch.minimum(nxt, hi), lo)
            out.append(nxt)
            window = torch.cat((window[:, 1:], nxt[:, None]), 1)
        return torch.stack(out)
