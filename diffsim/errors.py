"""Exceptions raised by diffsim."""


class SimulationError(RuntimeError):
    """A simulation produced a non-finite value or blew up.

    Attributes:
        step: control step (0-based) at which the problem was detected.
        quantity: name of the offending quantity (``"x"``, ``"v"``, ...).
        hint: what usually fixes it (for example the CFL bound on ``dt``).
    """

    def __init__(self, message: str, *, step: int | None = None, quantity: str | None = None,
                 hint: str | None = None):
        self.step, self.quantity, self.hint = step, quantity, hint
        parts = [message]
        if step is not None:
            parts.append(f"(at step {step})")
        if hint:
            parts.append(f"Hint: {hint}")
        super().__init__(" ".join(parts))
