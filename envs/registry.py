"""The task registry and Gymnasium registration (``diffsim/<Task>-v<version>``)."""

from __future__ import annotations

import importlib

from .task import Task

#: task name -> "module:Class" (imported on first use, so registration stays cheap)
TASKS = {
    "Pour": "diffsim.envs.tasks.pour:Pour",
    "LatteArt": "diffsim.envs.tasks.latte_art:LatteArt",
    "Scoop": "diffsim.envs.tasks.scoop:Scoop",
    "Gather": "diffsim.envs.tasks.gather:Gather",
    "Stir": "diffsim.envs.tasks.stir:Stir",
    "Pinch": "diffsim.envs.tasks.pinch:Pinch",
    "RollingPin": "diffsim.envs.tasks.rolling_pin:RollingPin",
    "Carve": "diffsim.envs.tasks.carve:Carve",
    # thin shells (ds.Shell) and soft solids (ds.FEM)
    "Lift": "diffsim.envs.tasks.lift:Lift",
    "Fold": "diffsim.envs.tasks.fold:Fold",
    "Separate": "diffsim.envs.tasks.separate:Separate",
    "Flip": "diffsim.envs.tasks.flip:Flip",
    "Squeeze": "diffsim.envs.tasks.squeeze:Squeeze",
    # tactile sensing (ds.Tactile)
    "SurfaceFollow": "diffsim.envs.tasks.tactile:SurfaceFollow",
    "Grasp": "diffsim.envs.tasks.grasp:Grasp",
    "Repose": "diffsim.envs.tasks.repose:Repose",
    "BoxOpen": "diffsim.envs.tasks.box_open:BoxOpen",
    "CableStraighten": "diffsim.envs.tasks.cable:CableStraighten",
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_task(name: str, **options) -> Task:
    return task_class(name)(**options)


def env_id(name: str) -> str:
    """The Gymnasium id of a task's current version, ``diffsim/<Name>-v<version>``."""
    return f"diffsim/{name}-v{task_class(name).version}"


def env_ids() -> list[str]:
    """Every registered Gymnasium id."""
    return [env_id(name) for name in TASKS]


def register_envs() -> None:
    """Register every task with Gymnasium (idempotent)."""
    import gymnasium as gym

    for name in TASKS:
        tid = env_id(name)
        if tid in gym.registry:
            continue
        gym.register(id=tid, entry_point="diffsim.envs.env:DiffSimEnv",
                     kwargs={"task": name}, max_episode_steps=task_class(name).defaults["horizon"])
