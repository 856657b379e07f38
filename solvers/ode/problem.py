"""``ODEProblem``: the initial value problem to solve (a value)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from .._checks import as_tspan, check_params
from .pytree import as_state_tree


@dataclasses.dataclass(frozen=True, eq=False)
class ODEProblem:
    """The initial value problem ``du/dt = f(u, p, t)``, ``u(t0) = u0`` on ``tspan``.

    Args:
        f: the right-hand side ``f(u, p, t) -> du/dt``. ``u`` has the shape of ``u0``
            (any shape; a leading batch dimension is just part of the shape), ``t`` is
            a 0-d tensor of ``u0``'s dtype and device (shape ``(batch,)`` with
            ``per_sample=True``), and the result must have ``u``'s shape and dtype.
            If ``f`` is a ``torch.nn.Module`` its parameters get gradients under every
            ``sensealg``; tensors a plain closure captures get gradients only under
            ``DirectAdjoint``, so pass those in ``p``.
        u0: initial state, a real floating tensor of any shape, or a tuple / list / dict
            (nested) of such tensors sharing one dtype and device (a PyTree state, as in
            diffrax; ``f`` then takes and returns that structure). Its dtype and device
            decide those of the solve. Non-tensors (numbers, nested lists of numbers)
            are converted to one tensor.
        tspan: ``(t0, t1)`` in seconds; ``t1 < t0`` integrates backwards in time;
            ``t1 == t0`` is allowed (the solution is ``u0``, as in torchdiffeq);
            ``t1 = +-inf`` needs a terminal ``event`` to end the solve. Entries that are
            tensors requiring grad receive gradients (``dL/dt0``, and ``dL/dt1`` through
            a point saved at ``t1``); ``tspan`` keeps them, :attr:`span` is the floats.
        p: parameters handed to ``f``: None, a tensor, or a tuple of tensors (numbers
            allowed as constants). Tensors in ``p`` that require grad receive gradients.

    Raises:
        TypeError: ``f`` not callable, ``u0`` not real floating, ``p`` of another type.
        ValueError: non-finite ``u0`` or non-finite ``tspan`` ends.
    """

    f: Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]
    u0: Any
    tspan: tuple[float, float]
    p: Any = None

    def __post_init__(self):
        if not callable(self.f):
            raise TypeError(f"f must be callable as f(u, p, t), got {type(self.f).__name__}")
        object.__setattr__(self, "u0", as_state_tree("u0", self.u0))
        raw = self.tspan
        span = as_tspan(raw, allow_empty=True, allow_infinite_end=True)
        if isinstance(raw, torch.Tensor) and raw.requires_grad:
            raw = tuple(raw.reshape(-1).unbind()) if raw.numel() == 2 else raw
        if isinstance(raw, (tuple, list)) and len(raw) == 2:
            # Keep tensors that require grad (time gradients); everything else as floats.
            span = tuple(x.reshape(()) if isinstance(x, torch.Tensor) and x.numel() == 1 and x.requires_grad
                         else v for x, v in zip(raw, span))
        object.__setattr__(self, "tspan", span)
        object.__setattr__(self, "p", check_params(self.p))

    @property
    def span(self) -> tuple[float, float]:
        """``tspan`` as two floats."""
        return tuple(float(x.detach()) if isinstance(x, torch.Tensor) else float(x) for x in self.tspan)

    def remake(self, **changes: Any) -> ODEProblem:
        """A copy with some fields replaced (``u0=``, ``tspan=``, ``p=``, ``f=``)."""
        return dataclasses.replace(self, **changes)
