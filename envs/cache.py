"""Simulators shared by environments of the same task configuration in one process.

Kernels compile per simulator instance (seconds), and simulators are
functional, so every environment of a task (a vector of envs, a planner's
copies) uses one simulator; the last ``release`` closes it.
"""

from __future__ import annotations

_SIMS: dict = {}


def acquire(task):
    """The shared simulator of ``task`` (built on first use)."""
    key = task.cache_key()
    entry = _SIMS.get(key)
    if entry is None or entry[0].closed:
        entry = [task.build_sim(), 0]
        _SIMS[key] = entry
    entry[1] += 1
    return entry[0]


def release(task) -> None:
    """Drop one user of ``task``'s simulator; close it when none is left."""
    key = task.cache_key()
    entry = _SIMS.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        entry[0].close()
        del _SIMS[key]
