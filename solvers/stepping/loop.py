"""The integration loop: one for ODE and SDE solves, shared or per-sample steps.

Every solve runs the same cycle: propose a step, attempt it, judge its error, then keep
the books of what was accepted (saved points, events, dense output, regularizer terms,
the controller's next step) and of what was rejected (a smaller retry, or the end of
the solve when no step can succeed). What differs between solves is only how that
bookkeeping represents time:

* :class:`~solvers.stepping.shared.SharedSteps`: one step size for the whole state,
  time in Python floats (ODE and SDE solves, the adjoints' backward solves);
* :class:`~solvers.stepping.per_sample.PerSampleSteps`: every sample of a batch with
  its own time, step size and decision, all as ``(batch,)`` tensors (``per_sample=True``);

and what a step computes (:mod:`~solvers.stepping.steppers`: an ODE method, or an SDE
method with the Brownian increments).
"""

from __future__ import annotations

import abc

from .trajectory import Trajectory


class Bookkeeping(abc.ABC):
    """The state of one integration between loop iterations (abstract).

    ``judge`` returns a verdict: None ends the solve (a step that failed for good);
    otherwise ``accept`` keeps the books of the accepted part of it and ``reject`` of
    the rejected part (per-sample steps have both in one iteration; with shared steps
    one of them has nothing to do). Either returns False to end the solve (a terminal
    event, a step that would have to shrink below its minimum).
    """

    #: attempted steps so far (per-sample: batch-wide iterations)
    niters: int = 0
    max_steps: int

    @abc.abstractmethod
    def running(self) -> bool:
        """Whether there is time left to integrate."""

    @abc.abstractmethod
    def out_of_steps(self) -> None:
        """End the solve with ``MAX_STEPS``."""

    @abc.abstractmethod
    def propose(self):
        """The size of the next attempted step (its end is kept for ``attempt``)."""

    @abc.abstractmethod
    def attempt(self, h):
        """Take the proposed step; returns the stepper's step result."""

    @abc.abstractmethod
    def judge(self, step, h):
        """The step's verdict (accept / reject, its error ratio), or None to stop."""

    @abc.abstractmethod
    def accept(self, step, h, verdict) -> bool:
        """Keep what was accepted and advance; False ends the solve."""

    @abc.abstractmethod
    def reject(self, h, verdict) -> bool:
        """Shrink what was rejected; False ends the solve."""

    @abc.abstractmethod
    def finish(self) -> Trajectory:
        """The trajectory, with its end state and return code."""


def run(book: Bookkeeping) -> Trajectory:
    """Integrate until ``book`` has no time left, ``max_steps`` attempts are spent, or a
    step ends the solve; returns what ``book`` recorded."""
    while book.running():
        if book.niters >= book.max_steps:
            book.out_of_steps()
            break
        book.niters += 1
        h = book.propose()
        step = book.attempt(h)
        verdict = book.judge(step, h)
        if verdict is None:
            break
        if not book.accept(step, h, verdict):
            break
        if not book.reject(h, verdict):
            break
    return book.finish()
