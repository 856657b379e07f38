"""States that are tuples, lists, named tuples or dicts of tensors (PyTrees, as diffrax
and torchdiffeq's tuple states accept them): flattened to one tensor at the front of
``solve`` and given their structure back in the solution, so every method, adjoint and
event works on one flat tensor.

``StateLayout`` holds the structure and the leaves' shapes; with ``batch=True`` (per-sample
stepping, ``jacobian="batch"``) every leaf shares a leading batch dimension that the
flat state keeps: ``(batch, n)`` instead of ``(n,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .._checks import as_state


def is_tree(x: Any) -> bool:
    """A tuple, list or dict whose leaves (recursively) are all tensors."""
    if isinstance(x, dict):
        return bool(x) and all(isinstance(v, torch.Tensor) or is_tree(v) for v in x.values())
    if isinstance(x, (tuple, list)):
        return bool(x) and all(isinstance(v, torch.Tensor) or is_tree(v) for v in x)
    return False


def flatten(tree: Any, path: str = "") -> tuple[list[tuple[str, torch.Tensor]], Any]:
    """``(leaves with their paths, spec)``; ``spec`` rebuilds the structure."""
    if isinstance(tree, torch.Tensor):
        return [(path, tree)], None
    if isinstance(tree, dict):
        leaves, specs = [], []
        for k, v in tree.items():
            sub, spec = flatten(v, f"{path}[{k!r}]")
            leaves += sub
            specs.append(spec)
        return leaves, ("dict", type(tree), list(tree.keys()), specs)
    if isinstance(tree, (tuple, list)):
        leaves, specs = [], []
        for i, v in enumerate(tree):
            sub, spec = flatten(v, f"{path}[{i}]")
            leaves += sub
            specs.append(spec)
        return leaves, ("seq", type(tree), None, specs)
    raise TypeError(f"u{path} is a {type(tree).__name__}; a state is a tensor or a tuple/list/dict of tensors")


def _key(spec):
    """The structure without the difference between a tuple and a list (f may return
    either for a tuple state)."""
    if spec is None:
        return None
    kind, cls, keys, subs = spec
    if kind == "seq" and cls in (tuple, list):
        cls = "seq"
    return kind, cls, None if keys is None else tuple(keys), tuple(_key(s) for s in subs)


def unflatten(spec, leaves: list[torch.Tensor]) -> Any:
    it = iter(leaves)

    def build(sp):
        if sp is None:
            return next(it)
        kind, cls, keys, subs = sp
        items = [build(s) for s in subs]
        if kind == "dict":
            return cls(zip(keys, items))
        if hasattr(cls, "_fields"):  # named tuple
            return cls(*items)
        return cls(items)

    return build(spec)


def as_state_tree(name: str, value: Any) -> Any:
    """A tensor state via :func:`as_state`, or a pytree of them sharing dtype and device."""
    if not is_tree(value):
        return as_state(name, value)
    leaves, spec = flatten(value)
    checked = [as_state(f"{name}{path}", leaf) for path, leaf in leaves]
    first_path, first = leaves[0][0], checked[0]
    for (path, _), leaf in zip(leaves, checked):
        if leaf.dtype != first.dtype or leaf.device != first.device:
            raise TypeError(
                f"{name}{path} has dtype {leaf.dtype} on {leaf.device} but {name}{first_path} has "
                f"{first.dtype} on {first.device}; every leaf of a state shares one dtype and device"
            )
    return unflatten(spec, checked)


class StateLayout:
    """Flattening of one state structure (final).

    Args:
        u0: the initial state (a pytree of tensors).
        batch: keep the leading dimension (shared by all leaves) as the flat state's first.
    """

    def __init__(self, u0: Any, *, batch: bool):
        leaves, self.spec = flatten(u0)
        self.key = _key(self.spec)
        self.paths = [p for p, _ in leaves]
        self.shapes = [tuple(t.shape) for _, t in leaves]
        self.batch = batch
        if batch:
            sizes = {s[0] if s else None for s in self.shapes}
            if len(sizes) != 1 or None in sizes:
                raise ValueError(
                    "per_sample=True / jacobian='batch' needs every leaf of u0 to share a leading batch "
                    f"dimension; got shapes {dict(zip(self.paths, self.shapes))}"
                )
            self.nbatch = self.shapes[0][0]
            self.sizes = [math.prod(s[1:]) for s in self.shapes]
        else:
            self.sizes = [math.prod(s) for s in self.shapes]

    def flat(self, tree: Any, *, lead: tuple[int, ...] = (), name: str = "u") -> torch.Tensor:
        """One tensor ``(*lead, n)`` (``(*lead, batch, n)`` with ``batch``) from a tree."""
        leaves, spec = flatten(tree) if not isinstance(tree, torch.Tensor) else ([("", tree)], None)
        if _key(spec) != self.key:
            raise ValueError(f"{name} has a different structure than u0: {_describe(spec)} vs {_describe(self.spec)}")
        k = len(lead) + (1 if self.batch else 0)
        parts = []
        for (path, leaf), shape in zip(leaves, self.shapes):
            if not isinstance(leaf, torch.Tensor) or tuple(leaf.shape[len(lead):]) != shape:
                got = tuple(leaf.shape) if isinstance(leaf, torch.Tensor) else type(leaf).__name__
                raise ValueError(f"{name}{path} has shape {got} but u0{path} has shape {shape}")
            parts.append(leaf.reshape(*leaf.shape[:k], -1))
        return torch.cat(parts, dim=-1)

    def tree(self, x: torch.Tensor) -> Any:
        """The structure back from a flat tensor ``(*lead, n)`` (``(*lead, batch, n)``)."""
        lead = x.shape[:-1]
        keep = lead[:-1] if self.batch else lead
        pieces = x.split(self.sizes, dim=-1)
        leaves = [p.reshape(tuple(keep) + shape) for p, shape in zip(pieces, self.shapes)]
        return unflatten(self.spec, leaves)


def _describe(spec) -> str:
    if spec is None:
        return "tensor"
    kind, cls, keys, subs = spec
    inner = ", ".join(_describe(s) for s in subs)
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {_describe(s)}" for k, s in zip(keys, subs)) + "}"
    return f"{cls.__name__}({inner})"


class FlatField:
    """``f`` of a pytree state as a function of the flat state (final). Use
    :func:`flat_field`, which keeps an ``nn.Module`` ``f`` a module."""

    def __init__(self, f: Callable, layout: StateLayout):
        self.f, self.layout = f, layout

    def __call__(self, u, p, t):
        return self.layout.flat(self.f(self.layout.tree(u), p, t), name="f(u, p, t)")


class FlatModuleField(torch.nn.Module):
    """As :class:`FlatField` for an ``nn.Module`` ``f``: its parameters stay parameters
    of the field, so the continuous adjoints find them (final)."""

    def __init__(self, f: torch.nn.Module, layout: StateLayout):
        super().__init__()
        self.f, self.layout = f, layout

    def forward(self, u, p, t):
        return self.layout.flat(self.f(self.layout.tree(u), p, t), name="f(u, p, t)")


def flat_field(f: Callable, layout: StateLayout) -> Callable:
    return FlatModuleField(f, layout) if isinstance(f, torch.nn.Module) else FlatField(f, layout)
