"""``solve(problem, algorithm, **kwargs)``: one verb, dispatched on two types.

Julia's multiple dispatch in a few lines: a method is registered for a pair
(problem type, algorithm type) and ``solve`` picks the most specific registered
pair by walking both method resolution orders (problem first). New problem or
algorithm types register themselves with :func:`register`; ``solve`` itself never
changes. ``diffsim.solve`` and ``diffsim.solvers.solve`` are this same function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_METHODS: dict[tuple[type, type], Callable[..., Any]] = {}
_DEFAULTS: dict[type, Callable[[Any], Any]] = {}


def register(problem_type: type, algorithm_type: type = object):
    """Decorator: register ``fn(problem, algorithm, **kwargs)`` for a type pair.

    ``algorithm_type=object`` matches any algorithm (and ``None`` after the
    problem's default algorithm has been filled in by :func:`register_default`).
    """

    def deco(fn):
        _METHODS[(problem_type, algorithm_type)] = fn
        return fn

    return deco


def register_default(problem_type: type):
    """Decorator: ``fn(problem) -> algorithm`` used when ``solve`` gets no algorithm."""

    def deco(fn):
        _DEFAULTS[problem_type] = fn
        return fn

    return deco


def _lookup(problem: Any, algorithm: Any) -> Callable[..., Any] | None:
    for p_type in type(problem).__mro__:
        for a_type in type(algorithm).__mro__:
            fn = _METHODS.get((p_type, a_type))
            if fn is not None:
                return fn
    return None


def solve(problem: Any, algorithm: Any = None, /, **kwargs: Any) -> Any:
    """Solve ``problem`` with ``algorithm``; see the problem type's docs for kwargs.

    Args:
        problem: a problem value (``ODEProblem``, ``SDEProblem``,
            ``SimulationProblem``, ``ControlProblem``, ...).
        algorithm: how to solve it (``Tsit5()``, ``Adam(lr=...)``, ...). ``None``
            picks the problem type's default algorithm where it has one.
        **kwargs: options of the registered method (``sensealg``, ``saveat``, ...).

    Raises:
        TypeError: no method is registered for the pair of types.
    """
    if algorithm is None:
        for p_type in type(problem).__mro__:
            if p_type in _DEFAULTS:
                algorithm = _DEFAULTS[p_type](problem)
                break
    fn = _lookup(problem, algorithm)
    if fn is None:
        known = sorted(f"({p.__name__}, {a.__name__})" for p, a in _METHODS)
        raise TypeError(
            f"solve has no method for problem={type(problem).__name__} and "
            f"algorithm={type(algorithm).__name__}; registered pairs: {', '.join(known) or 'none'}"
        )
    return fn(problem, algorithm, **kwargs)


def methods() -> list[tuple[str, str]]:
    """The registered (problem type, algorithm type) names, for discovery."""
    return sorted((p.__name__, a.__name__) for p, a in _METHODS)
