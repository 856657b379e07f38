"""diffsim.envs: Gymnasium manipulation tasks over the diffsim simulators.

``register_envs`` is the ``gymnasium.envs`` entry point; importing this package
registers every task as ``diffsim/<Task>-v<N>``.
"""

__all__ = ["register_envs"]


def register_envs() -> None:
    """Register every diffsim task with Gymnasium (idempotent)."""
