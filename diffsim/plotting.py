"""Matplotlib views of 2D MPM rollouts: a state as a picture, rollouts as an animation.

For 3D scenes and fast image output use ``diffsim.render`` (Taichi renderer);
this module is the light-weight 2D view used by the demo and the notebooks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tools import angle_to_matrix


def _part_outline(kind, geom, axis, pos: np.ndarray, angle: float) -> np.ndarray:
    """Closed outline (M, 2) of a 2D tool part at a pose."""
    if kind == "sphere":
        t = np.linspace(0, 2 * np.pi, 40)
        local = geom[0] * np.stack([np.cos(t), np.sin(t)], -1)
    elif kind == "box":
        hx, hy = geom
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy], [-hx, -hy]])
    else:  # capsule: a rounded segment along its axis
        r, hl = geom
        t = np.linspace(-np.pi / 2, np.pi / 2, 20)
        right = np.stack([hl + r * np.cos(t), r * np.sin(t)], -1)
        left = np.stack([-hl - r * np.cos(t), -r * np.sin(t)], -1)
        local = np.concatenate([right, left, right[:1]])
        if axis == 1:
            local = local[:, ::-1]
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return local @ R.T + pos


def _tool_outlines(tool, pos: np.ndarray, angle: float) -> list:
    """Outlines of a tool's parts (one for simple tools)."""
    if tool.kind != "compound":
        return [_part_outline(tool.kind, tool.geom, tool.axis, pos, angle)]
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return [_part_outline(k, g, a, pos + R @ np.asarray(o), angle) for k, g, a, o in tool.geom]


def draw_state(ax, sim, state, target=None, title: str | None = None, colors=None):
    """Draw particles (coloured by body), tools and an optional target on ``ax``."""
    import matplotlib.pyplot as plt

    if sim.dim != 2:
        raise ValueError("draw_state draws 2D scenes; use diffsim.render for 3D")
    ax.clear()
    lo, hi = sim.scene.bounds[:, 0], sim.scene.bounds[:, 1]
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    x = state.x.detach().cpu().numpy()
    palette = colors or plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, sl) in enumerate(sim.groups.items()):
        ax.scatter(x[sl, 0], x[sl, 1], s=4, color=palette[i % len(palette)], label=name,
                   linewidths=0)
    pos = state.tool_pos.detach().cpu().numpy()
    rot = state.tool_rot.detach().cpu().numpy()
    for k, tool in enumerate(sim.model.tools):
        for outline in _tool_outlines(tool, pos[k], float(rot[k, 0])):
            ax.fill(outline[:, 0], outline[:, 1], color="0.35", alpha=0.9)
    if target is not None:
        t = np.asarray(target, dtype=float)
        ax.plot(t[0], t[1], marker="*", markersize=14, color="crimson", zorder=5)
    wall = sim.model.bound * sim.dx
    ax.axhspan(lo[1], lo[1] + wall, color="0.85", zorder=0)
    if title:
        ax.set_title(title, fontsize=10)


def animate_rollouts(sim, rollouts: dict, path: str | Path, target=None, fps: int = 20) -> Path:
    """Save side-by-side animations of rollouts (``{label: [State, ...]}``) as GIF or MP4.

    All rollouts must have the same number of frames. Returns the written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib import animation

    labels = list(rollouts)
    n = len(next(iter(rollouts.values())))
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.4), squeeze=False)
    axes = axes[0]

    def frame(i):
        for ax, lab in zip(axes, labels):
            st = rollouts[lab][i]
            draw_state(ax, sim, st, target=target, title=f"{lab}  t={st.time:.2f} s")
        return list(axes)

    anim = animation.FuncAnimation(fig, frame, frames=n, blit=False)
    path = Path(path)
    writer = animation.PillowWriter(fps=fps) if path.suffix == ".gif" else animation.FFMpegWriter(
        fps=fps)
    anim.save(path, writer=writer)
    plt.close(fig)
    return path


__all__ = ["draw_state", "animate_rollouts", "angle_to_matrix"]
