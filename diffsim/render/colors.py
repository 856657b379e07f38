"""Colours and materials of the renderer: the palette of bodies and the roles' defaults."""

from __future__ import annotations

import numpy as np

#: body colours, in the order of the simulator's bodies (``sim.groups``, then free objects)
PALETTE = ("#3f88d8", "#e8a33c", "#5cb85c", "#d9534f", "#9b7fd1", "#8c6d4f", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
TOOL_COLOR = "#6b7079"
COLLIDER_COLOR = "#cdbfae"
#: tactile pads (a pale, slightly blue gel) and their printed markers
PAD_COLOR = "#c9d6df"
MARKER_COLOR = "#1d1f24"
#: hinge pins of hinged free objects
HINGE_COLOR = "#3d4148"
#: the underside of a shell is its colour times this (so folds and overhangs read)
BACK_SHADE = 0.62
#: Blinn-Phong highlight weights by role (0 = matte)
SPECULAR = {"tool": 0.35, "collider": 0.08, "solid": 0.15, "shell": 0.1, "pad": 0.35,
            "free": 0.25, "hinge": 0.35}


def rgb(name: str, value) -> np.ndarray:
    """One colour (a matplotlib colour name/hex, or 3 numbers in [0, 1]) as (3,) floats.

    Raises:
        ValueError: naming ``name`` when ``value`` is not a colour.
    """
    from matplotlib.colors import to_rgb

    msg = (f"{name}={value!r} is not a colour: use a name ('tab:blue'), a hex string or 3 "
           "numbers in [0, 1]")
    try:
        if isinstance(value, str):
            return np.asarray(to_rgb(value), float)
        arr = np.asarray(value, float)
    except (ValueError, TypeError):
        raise ValueError(msg) from None
    if arr.shape != (3,) or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(msg)
    return arr


__all__ = ["PALETTE", "TOOL_COLOR", "COLLIDER_COLOR", "PAD_COLOR", "MARKER_COLOR",
           "HINGE_COLOR", "BACK_SHADE", "SPECULAR", "rgb"]
