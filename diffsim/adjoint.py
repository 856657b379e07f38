"""Gradients through simulator rollouts: checkpointed reverse mode, bridged to torch.

``CheckpointAdjoint(segment=K)`` runs a rollout of T control steps in segments
of K steps. The simulator's fields hold the substep states of one segment
(time axis ``K * substeps + 1``). Forward: the state at each segment start is
copied to torch (the checkpoint). Backward, segment by segment in reverse: load
the checkpoint, recompute the segment forward (skipped for the last segment,
which is still resident), then run the reverse kernels substep by substep.
Memory therefore grows with ``T / K`` checkpoints plus one segment of substeps,
not with ``T``; the price is about one extra forward pass.

The bridge is ``_Rollout``, a ``torch.autograd.Function``: its forward runs
Taichi, its backward seeds the ``.grad`` fields and runs the reverse kernels.
It is generic over the simulator: a simulator describes one rollout as a
``RolloutPlan`` whose ``engine_for`` hands out a ``SegmentEngine`` (the Taichi
primitives of one segment), and ``CheckpointAdjoint.run`` runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch

from .sensitivity import AbstractSensitivity, check_sensealg


@dataclass(frozen=True)
class CheckpointAdjoint(AbstractSensitivity):
    """Reverse mode with segment checkpoints: the ``sensealg`` of simulator rollouts
    (``ds.solve(ds.SimulationProblem(...), sensealg=...)`` and ``sim.rollout(...,
    sensealg=...)``).

    Args:
        segment: control steps per checkpoint segment (>= 1). Memory is about
            ``T / segment`` states plus ``segment * substeps`` substep states;
            ``segment = T`` stores everything and recomputes nothing.
    """

    segment: int = 32

    differentiates: ClassVar[str] = "simulator rollouts (ds.SimulationProblem, sim.rollout)"

    def __post_init__(self):
        if not (isinstance(self.segment, int) and self.segment >= 1):
            raise ValueError(f"segment={self.segment!r} is not allowed: it must be an int >= 1")

    def run(self, job: Rollout) -> tuple[torch.Tensor, ...]:
        """Run ``job`` in segments of ``self.segment`` steps; returns the stacked saved
        states (one tensor per state array, leading axis ``len(plan.saveat)``),
        differentiable in the start state, the drive and the parameters."""
        plan = dataclasses.replace(job.plan, segment=self.segment)
        return _Rollout.apply(plan, *job.state0, *job.drive, *job.params)


def checkpointing(default: int, segment: int | None, sensealg) -> CheckpointAdjoint:
    """The sensitivity of a rollout from ``rollout``'s arguments: a ``sensealg`` (a
    ``CheckpointAdjoint``), or the shorthand ``segment=K`` (the same as
    ``sensealg=CheckpointAdjoint(segment=K)``); with neither,
    ``CheckpointAdjoint(segment=default)`` (the simulator's ``default_segment(T)``).

    Raises:
        TypeError: ``sensealg`` is not a ``CheckpointAdjoint``.
        ValueError: both are given, or ``segment`` is not an int >= 1.
    """
    if sensealg is None:
        return CheckpointAdjoint(segment=default if segment is None else int(segment))
    if segment is not None:
        raise ValueError(f"rollout got segment={segment!r} and sensealg={sensealg!r}: pass one of them "
                         "(segment=K is short for sensealg=ds.CheckpointAdjoint(segment=K))")
    check_sensealg(sensealg, CheckpointAdjoint, "simulator rollouts", "ds.CheckpointAdjoint(segment=K)")
    return sensealg


def save_steps(saveat, n_steps: int) -> list[int]:
    """The control-step indices a rollout of ``n_steps`` steps returns: ``saveat`` as ints
    (default ``[n_steps]``), each in ``[0, n_steps]``.

    Raises:
        ValueError: an empty ``saveat`` or a step outside ``[0, n_steps]``.
    """
    steps = [n_steps] if saveat is None else [int(s) for s in saveat]
    if not steps or any(not 0 <= s <= n_steps for s in steps):
        raise ValueError(f"saveat={saveat!r} is not allowed: steps must lie in [0, {n_steps}]")
    return steps


def stepwise_rollout(step, state, n_steps: int, saveat, segment: int) -> list:
    """States at ``saveat`` of ``state -> step(t, state)`` for ``t = 0 .. n_steps - 1``, for
    rollouts that go one control step at a time through torch (the tactile pads with free
    bodies or a coupled MPM/FEM object: each step mixes Taichi solves and torch code).

    With gradients, segments of ``segment`` steps run under ``torch.utils.checkpoint``
    (non-reentrant): a segment keeps only its start state and the saved states it
    returns, not the autograd graph's tensors of its steps, and the backward pass
    recomputes the segment's steps first. Memory then grows with ``T / segment`` instead
    of ``T``, at the cost of a second forward pass of each segment (as
    ``CheckpointAdjoint`` does for the other simulators). On the CPU in deterministic mode
    the recomputed steps equal the forward's bitwise, so the gradient does not depend on
    ``segment``; with GPU atomics they equal it to rounding.

    Args:
        step: ``(t, state) -> state``, one control step (``t`` counts from 0).
        state: the start state.
        n_steps: T.
        saveat: step indices in ``[0, T]`` whose states are returned (None: ``[T]``;
            checked by :func:`save_steps`).
        segment: control steps per checkpoint segment (>= 1).
    """
    saveat = save_steps(saveat, n_steps)
    want = sorted(set(int(s) for s in saveat))
    states = {0: state} if 0 in want else {}
    checkpointed = torch.is_grad_enabled() and segment < n_steps

    def run(start, end, cur):
        kept = []
        for t in range(start, end):
            cur = step(t, cur)
            if t + 1 in want and t + 1 < end:
                kept.append(cur)
        return cur, kept

    cur = state
    for start in range(0, n_steps, segment):
        end = min(start + segment, n_steps)
        if checkpointed:
            from torch.utils.checkpoint import checkpoint

            cur, kept = checkpoint(run, start, end, cur, use_reentrant=False)
        else:
            cur, kept = run(start, end, cur)
        inside = [s for s in want if start + 1 <= s < end]
        states.update(zip(inside, kept))
        if end in want:
            states[end] = cur
    return [states[s] for s in saveat]


class SegmentEngine(Protocol):
    """Primitives a simulator's engine offers to the segment loops below.

    Slots index the time axis of one segment (``0 .. segment * substeps``).
    State tensors are the simulator's per-body state in a fixed order; drive
    tensors are per-substep inputs (tool poses, ...) with a leading axis of
    ``T * substeps + 1``; parameter tensors are internal parameter arrays.
    """

    substeps: int
    resident_run: object

    def set_params(self, params) -> None: ...
    def load_state(self, slot: int, state) -> None: ...
    def store_state(self, slot: int) -> list: ...
    def copy_slot(self, src: int, dst: int) -> None: ...
    def load_drive(self, drive) -> None: ...
    def substep(self, s: int) -> None: ...
    def backward_substep(self, s: int) -> None: ...
    def check_step(self, slot: int, step: int) -> None: ...
    def zero_state_grads(self, n_slots: int) -> None: ...
    def zero_param_grads(self) -> None: ...
    def add_state_grads(self, slot: int, grads) -> None: ...
    def store_state_grads(self, slot: int) -> list: ...
    def store_drive_grads(self, n: int) -> list: ...
    def store_param_grads(self) -> list: ...


@runtime_checkable
class StagedSegmentEngine(Protocol):
    """What a ``SegmentEngine`` may offer besides: a reverse substep split into named
    stages, so that a non-finite gradient is traced to the stage (and the fields) where
    it first appeared (``ds.MPM``'s engine does; others report the substep only)."""

    def backward_stages(self, s: int) -> list:
        """``[(name, run), ...]``: the reverse stages of substep ``s`` in the order they run."""
        ...

    def nonfinite_fields(self) -> dict:
        """Gradient fields holding NaN/Inf now: name -> number of entries."""
        ...


def _segments(n_steps: int, segment: int):
    return [(start, min(segment, n_steps - start)) for start in range(0, n_steps, segment)]


def _drive_slice(drive, start: int, k: int, substeps: int):
    lo = start * substeps
    return [d[lo:lo + k * substeps + 1] for d in drive]


def run_forward(engine, plan, state0, drive, params, keep_checkpoints: bool):
    """Forward rollout; returns (stacked saved states, checkpoints or None)."""
    S = engine.substeps
    save_index = {step: i for i, step in enumerate(plan.saveat)}
    outputs = [s.new_empty((len(plan.saveat), *s.shape)) for s in state0]
    if 0 in save_index:
        for out, s in zip(outputs, state0):
            out[save_index[0]] = s
    engine.set_params(params)
    checkpoints = [] if keep_checkpoints else None
    prev_k = None
    for start, k in _segments(plan.n_steps, plan.segment):
        if prev_k is None:
            engine.load_state(0, state0)
        else:
            engine.copy_slot(prev_k * S, 0)
        if keep_checkpoints:
            checkpoints.append(state0 if prev_k is None else engine.store_state(0))
        engine.load_drive(_drive_slice(drive, start, k, S))
        for j in range(k):
            for s in range(j * S, (j + 1) * S):
                engine.substep(s)
            if plan.check:
                engine.check_step((j + 1) * S, plan.step0 + start + j + 1)
            idx = save_index.get(start + j + 1)
            if idx is not None:
                for out, val in zip(outputs, engine.store_state((j + 1) * S)):
                    out[idx] = val
        prev_k = k
    engine.resident_run = object()
    return outputs, checkpoints


def _finite(tensors) -> bool:
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


def run_backward(engine, plan, checkpoints, drive, params, grad_outputs, last_resident: bool):
    """Reverse pass; returns (grads of state0, grads of drive, grads of params).

    Raises:
        GradientError: a gradient became non-finite. Checked once per segment (a few
            reductions over the state); on failure the segment is replayed to name
            the substep and the reverse stage where it first appeared.
    """
    S = engine.substeps
    save_index = {step: i for i, step in enumerate(plan.saveat)}
    segments = _segments(plan.n_steps, plan.segment)
    _check_incoming(plan, grad_outputs)
    engine.set_params(params)
    engine.zero_param_grads()
    g_drive = [torch.zeros_like(d) for d in drive]
    carry = None
    for seg_i in range(len(segments) - 1, -1, -1):
        start, k = segments[seg_i]
        engine.load_drive(_drive_slice(drive, start, k, S))
        if not (last_resident and seg_i == len(segments) - 1):
            engine.load_state(0, checkpoints[seg_i])
            for s in range(k * S):
                engine.substep(s)
        carry_in = carry
        _backward_segment(engine, plan, save_index, start, k, carry_in, grad_outputs,
                          engine.backward_substep)
        carry = engine.store_state_grads(0)
        seg_drive = engine.store_drive_grads(k * S + 1)
        if not (_finite(carry) and _finite(seg_drive) and _finite(engine.store_param_grads())):
            _locate_nonfinite(engine, plan, save_index, checkpoints[seg_i], drive, params,
                              start, k, carry_in, grad_outputs)
        lo = start * S
        for acc, g in zip(g_drive, seg_drive):
            acc[lo:lo + k * S + 1] += g
    engine.resident_run = None
    if 0 in save_index:
        carry = [c + g[save_index[0]] if g is not None else c
                 for c, g in zip(carry, grad_outputs)]
    return carry, g_drive, engine.store_param_grads()


def _backward_segment(engine, plan, save_index, start, k, carry_in, grad_outputs, substep,
                      stop: int = -1):
    """Seed and run the reverse substeps of one segment (slots ``k S - 1`` down to
    ``stop + 1``); ``substep(s)`` runs the reverse of substep ``s``."""
    S = engine.substeps
    engine.zero_state_grads(k * S + 1)
    if carry_in is not None:
        engine.add_state_grads(k * S, carry_in)
    for j in range(k - 1, -1, -1):
        idx = save_index.get(start + j + 1)
        if idx is not None:
            engine.add_state_grads((j + 1) * S, [g[idx] if g is not None else None
                                                 for g in grad_outputs])
        for s in range((j + 1) * S - 1, j * S - 1, -1):
            if s <= stop:
                return
            substep(s)


def _check_incoming(plan, grad_outputs) -> None:
    from .errors import GradientError

    for g in grad_outputs:
        if g is None or bool(torch.isfinite(g).all()):
            continue
        rows = (~torch.isfinite(g.reshape(g.shape[0], -1))).any(1).nonzero().flatten().tolist()
        steps = [plan.step0 + plan.saveat[i] for i in rows]
        raise GradientError(
            f"the gradient arriving from the loss is non-finite at the saved state(s) of "
            f"step(s) {steps}: the loss's own backward produced it, not the simulator",
            stage="loss", step=steps[0],
            hint="look for sqrt/norm/log/division at zero in the loss (e.g. use "
                 "sqrt(x + eps) or torch.linalg.vector_norm on a nonzero vector)")


def _locate_nonfinite(engine, plan, save_index, checkpoint, drive, params, start, k,
                      carry_in, grad_outputs):
    """Replay one segment's reverse pass substep by substep, then stage by stage, and
    raise ``GradientError`` naming where a non-finite gradient first appeared."""
    from .errors import GradientError

    S = engine.substeps

    def replay(stop=-1, on_substep=None):
        engine.set_params(params)
        engine.zero_param_grads()
        engine.load_drive(_drive_slice(drive, start, k, S))
        engine.load_state(0, checkpoint)
        for s in range(k * S):
            engine.substep(s)

        def run(s):
            engine.backward_substep(s)
            if on_substep is not None:
                on_substep(s)

        _backward_segment(engine, plan, save_index, start, k, carry_in, grad_outputs, run,
                          stop=stop)

    class Found(Exception):
        pass

    def check(s):
        if not (_finite(engine.store_state_grads(s)) and _finite(engine.store_param_grads())
                and _finite(engine.store_drive_grads(k * S + 1))):
            raise Found(s)

    try:
        replay(on_substep=check)
        bad_s = None  # not reproduced substep by substep (the segment check saw it)
    except Found as e:
        bad_s = e.args[0]
    stage, fields = "backward_substep", {}
    if bad_s is not None and isinstance(engine, StagedSegmentEngine):
        replay(stop=bad_s)  # the reverse of every later substep, which was finite
        for name, run in engine.backward_stages(bad_s):
            run()
            fields = engine.nonfinite_fields()
            if fields:
                stage = name
                break
    engine.resident_run = None
    g_sub = None if bad_s is None else start * S + bad_s
    where = "" if bad_s is None else (
        f" in the reverse of substep {g_sub} (control step {plan.step0 + g_sub // S}, "
        f"substep {g_sub % S} of {S})")
    detail = f"; non-finite entries: {fields}" if fields else ""
    raise GradientError(
        f"a non-finite gradient first appeared in stage {stage!r}{where}{detail}",
        stage=stage, substep=g_sub, step=None if bad_s is None else plan.step0 + g_sub // S,
        fields=fields,
        hint="float32 gradients overflow where a quantity divides by a value near zero; "
             "retry with ds.init(precision='f64') to check, and report the stage")


class _Rollout(torch.autograd.Function):
    """Inputs: (plan, *state0, *drive, *params); outputs: stacked saved states."""

    @staticmethod
    def forward(ctx, plan, *inputs):
        n_s, n_d = plan.n_state, plan.n_drive
        state0 = inputs[:n_s]
        drive = inputs[n_s:n_s + n_d]
        params = inputs[n_s + n_d:]
        needs_grad = any(ctx.needs_input_grad[1:])
        if needs_grad:
            engine = plan.engine_for(plan.segment, True)
            run_plan = plan
        else:
            # Without gradients no substep needs to stay resident: ask for the smallest
            # engine (one control step of slots) and use whatever capacity it has.
            engine = plan.engine_for(1, False)
            run_plan = dataclasses.replace(plan, segment=max(1, min(plan.segment,
                                                                    engine.segment)))
        outputs, checkpoints = run_forward(engine, run_plan, state0, drive, params,
                                           keep_checkpoints=needs_grad)
        ctx.plan, ctx.engine = plan, engine
        # the checkpoints go through save_for_backward, like drive and params, so that
        # torch frees them after the backward pass, or keeps them for another one with
        # retain_graph=True (and names the error of a second backward without it)
        checkpoints = checkpoints or []
        ctx.checkpoint_sizes = [len(c) for c in checkpoints]
        ctx.save_for_backward(*drive, *params, *(t for c in checkpoints for t in c))
        ctx.run_id = engine.resident_run
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grad_outputs):
        plan = ctx.plan
        saved = ctx.saved_tensors
        n = len(saved) - sum(ctx.checkpoint_sizes)
        drive, params, flat = saved[:plan.n_drive], saved[plan.n_drive:n], saved[n:]
        checkpoints, i = [], 0
        for k in ctx.checkpoint_sizes:
            checkpoints.append(list(flat[i:i + k]))
            i += k
        # Ask for the engine again: a rollout run between this forward and its backward
        # may have replaced (and closed) the forward's engine, e.g. a longer segment.
        engine = plan.engine_for(plan.segment, True)
        resident = engine is ctx.engine and engine.resident_run == ctx.run_id
        g_state0, g_drive, g_params = run_backward(
            engine, plan, checkpoints, drive, params, grad_outputs,
            last_resident=resident)
        return (None, *g_state0, *g_drive, *g_params)


@dataclass
class RolloutPlan:
    """What one rollout does: horizon, which steps to save, the engine to run it on.

    A simulator builds it without ``segment``: that is the sensitivity's choice, set by
    ``CheckpointAdjoint.run``."""

    engine_for: object  # callable (segment, requires_grad) -> SegmentEngine
    n_steps: int
    saveat: tuple
    n_state: int
    n_drive: int
    check: bool = True
    step0: int = 0  # step count of the start state (for error messages)
    segment: int | None = None  # steps per checkpoint segment (CheckpointAdjoint.run sets it)


@dataclass(frozen=True)
class Rollout:
    """The job of a ``CheckpointAdjoint``: a plan and its input tensors (state arrays in
    the engine's order, per-substep drive arrays, internal parameter arrays)."""

    plan: RolloutPlan
    state0: tuple
    drive: tuple
    params: tuple

