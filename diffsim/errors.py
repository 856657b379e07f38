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


class ConvergenceError(SimulationError):
    """An implicit solve (Newton's method of ``ds.FEM``, ``ds.Shell``, ``ds.Tactile``) did
    not reach its tolerance within its iteration limit.

    The state it leaves is finite: the last Newton iterate, whose energy the line search
    decreased. ``rollout(..., check=False)`` returns it instead of raising; the
    environments do that and say so in ``info`` (``diffsim.envs.DiffSimEnv.step``).
    """


class GradientError(SimulationError):
    """A reverse pass produced a non-finite gradient.

    Raised by the backward pass of a rollout (``loss.backward()``) before the
    value can reach an optimiser. The message names where it first appeared.

    Attributes:
        stage: the reverse stage (kernel) whose output first held a non-finite
            value (``"grid_update (reverse)"``, ...), or ``"loss"`` when the
            gradient arriving from the loss was already non-finite.
        substep: the substep (0-based, counted over the whole rollout) whose
            reverse produced it, or ``None``.
        fields: name -> number of non-finite entries right after that stage.
    """

    def __init__(self, message: str, *, stage: str, substep: int | None = None,
                 step: int | None = None, fields: dict | None = None, hint: str | None = None):
        self.stage, self.substep, self.fields = stage, substep, dict(fields or {})
        super().__init__(message, step=step, quantity="gradient", hint=hint)
