"""Simulators shared by environments of the same task configuration in one process.

Kernels compile per simulator instance (seconds), and simulators are
functional, so every environment of a task (a vector of envs, a planner's
copies) uses one simulator; the last ``release`` closes it. What a task derives from its
simulator alone (a target made by a simulated reference motion) is kept beside it
(``derived``) and goes with it.
"""

from __future__ import annotations

_SIMS: dict = {}


def acquire(task):
    """The shared simulator of ``task`` (built on first use)."""
    key = task.cache_key()
    entry = _SIMS.get(key)
    if entry is None or entry[0].closed:
        entry = [task.build_sim(), 0, {}]
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


def derived(task, sim, name: str, make):
    """``make(sim)``, computed once per shared simulator of ``task`` and dropped with it;
    computed afresh each time for a simulator that is not the shared one (a task used
    without an environment)."""
    entry = _SIMS.get(task.cache_key())
    if entry is None or entry[0] is not sim:
        return make(sim)
    if name not in entry[2]:
        entry[2][name] = make(sim)
    return entry[2][name]
