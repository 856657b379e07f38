"""``ControlReturnCode``: how a trajectory optimization ended, with the fix in the message."""

from __future__ import annotations

from enum import Enum


class ControlReturnCode(str, Enum):
    """How ``solve(ControlProblem, ...)`` ended; each value says what to do about it.

    ``res.successful`` is true for ``SUCCESS`` and ``TERMINATED``. A failed run still
    returns the best finite point it saw in ``res.u`` (``res.loss`` is ``inf`` when it
    saw none) and never hands back NaN controls. Pass ``throw=True`` to ``solve`` to get
    a :class:`ControlError` instead.
    """

    SUCCESS = "success: the budget (maxiters / maxevals) was spent or the loss reached target"
    TERMINATED = "terminated: the callback returned True"
    NON_FINITE = (
        "non-finite loss or gradient (NaN/Inf): res.u is the best finite point seen. Lower lr, "
        "set grad_clip, tighten the bounds, or check loss_fn for overflow / division by zero; "
        "samplers (CEM, MPPI) skip non-finite candidates and stop only when a whole population "
        "is non-finite (catch= turns a simulator's exception into a non-finite loss)"
    )

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


class ControlError(RuntimeError):
    """Raised by ``solve(ControlProblem, ..., throw=True)`` when a run does not succeed.

    Attributes:
        retcode: the :class:`ControlReturnCode` of the failed run.
        iteration: the (1-based) iteration at which it stopped.
        result: the :class:`ControlResult` that would have been returned.
    """

    def __init__(self, retcode: ControlReturnCode, iteration: int, message: str, result=None):
        self.retcode, self.iteration, self.result = retcode, iteration, result
        super().__init__(f"trajectory optimization stopped at iteration {iteration} ({message}): {retcode}")
