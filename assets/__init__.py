"""Data files shipped with diffsim (meshes, presets); installed as ``diffsim.assets``."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def asset_path(relative: str) -> Path:
    """Absolute path of a shipped asset, e.g. ``asset_path("meshes/cup.obj")``."""
    return ROOT / relative
