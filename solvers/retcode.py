"""``ReturnCode``: how a solve ended, with the fix in the message."""

from __future__ import annotations

from enum import Enum


class ReturnCode(str, Enum):
    """How a solve ended. The value of each member is a message that says how to fix it.

    ``sol.retcode`` is one of these; ``sol.successful`` is true for ``SUCCESS`` and ``TERMINATED``.
    A failed solve keeps the states saved up to the failure (``sol.t``/``sol.u`` are
    shorter than ``saveat``) and never pads them with NaN. Pass ``throw=True`` to
    ``solve`` to get a :class:`SolveError` instead. ``TERMINATED`` (a terminal event
    ended the solve) counts as successful, as Julia's ``Terminated`` does.
    """

    SUCCESS = "success"
    TERMINATED = (
        "terminated by a terminal event: the solution ends at the event (sol.event_t[-1]); "
        "save times after it were not reached"
    )
    MAX_STEPS = (
        "max_steps reached: raise max_steps, loosen rtol/atol, or use a stiff solver "
        "(Rodas5P, Rosenbrock23) if the problem is stiff"
    )
    DT_LESS_THAN_MIN = (
        "step size fell below dtmin: the problem is probably stiff (use Rodas5P or "
        "Rosenbrock23), has a singularity inside tspan, or dtmin is too large"
    )
    NON_FINITE = (
        "non-finite value (NaN/Inf) in the state or in f: check f for overflow or "
        "division by zero, use a smaller dt (fixed-step methods) or a stiff solver"
    )

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


class SolveError(RuntimeError):
    """Raised by ``solve(..., throw=True)`` when a solve does not succeed.

    Attributes:
        retcode: the :class:`ReturnCode` of the failed solve.
        t: the time (s) at which the solve stopped.
    """

    def __init__(self, retcode: ReturnCode, t: float):
        self.retcode, self.t = retcode, t
        super().__init__(f"solve stopped at t={t:.6g}: {retcode}")
