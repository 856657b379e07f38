"""The forward pass shared by every sensitivity algorithm: integrate, then gather the
saved points (user points and the regularizer's point) into one tensor."""

from __future__ import annotations

import torch

from .job import SolveJob
from .shared import integrate
from .trajectory import EVENT, REG, USER, Trajectory


class Forward:
    """Result of a forward pass.

    Attributes:
        ts: all saved times in integration order; ``tags[i]`` says whose point it is.
        values: ``(len(ts), *shape)`` states at ``ts``.
        traj: the raw :class:`~solvers.stepping.trajectory.Trajectory`.
        dense: dense output of the whole solve, or None.
        reg_dt: size of the forward step that produced the regularizer's point.
    """

    def __init__(self, ts, values, tags, traj, dense, reg_dt):
        self.ts, self.values, self.tags = ts, values, tags
        self.traj, self.dense, self.reg_dt = traj, dense, reg_dt

    def user_index(self) -> list[int]:
        return [i for i, tag in enumerate(self.tags) if tag == USER]

    def event_index(self) -> list[int]:
        """Positions of the event crossings in ``ts`` (their events: ``traj.event_ids``)."""
        return [i for i, tag in enumerate(self.tags) if tag == EVENT]

    def reg_index(self) -> int | None:
        for i, tag in enumerate(self.tags):
            if tag == REG:
                return i
        return None


def run_forward(job: SolveJob, *, dense: bool, grad: bool, checkpoint_times=None) -> Forward:
    """Integrate the problem of ``job`` and collect its saved points."""
    if job.per_sample:
        from .per_sample import integrate_per_sample

        traj = integrate_per_sample(job, dense=dense, grad=grad)
    else:
        traj = integrate(
            job.alg, job.rhs, job.t0, job.t1, job.u0, job.opts,
            f0=job.f0, saveat=job.save_list(), save_steps=job.saveat is None, dense=dense, grad=grad,
            reg=job.global_reg_kind(), checkpoint_times=checkpoint_times, sample_step=job.reservoir,
            events=job.events, tstops=job.tstops,
        )
    return collect(job, traj)


def collect(job: SolveJob, traj: Trajectory) -> Forward:
    ts, us, tags, hs = list(traj.ts), list(traj.us), list(traj.tags), list(traj.save_h)
    if traj.sampled is not None:
        # The biased sampler's point (a step start) joins the saved points in time order.
        t_s, u_s, h_s = traj.sampled
        k = 0
        if isinstance(t_s, torch.Tensor):
            k = len(ts)  # per-sample times (DirectAdjoint only): order is irrelevant
        while k < len(ts) and job.direction * (ts[k] - t_s) <= 0.0:
            k += 1
        ts.insert(k, t_s)
        us.insert(k, u_s)
        tags.insert(k, REG)
        hs.insert(k, h_s)
    reg_dt = None
    for tag, h in zip(tags, hs):
        if tag == REG:
            reg_dt = h
    if us:
        values = torch.stack(us)
    else:
        values = job.u0.new_empty((0, *job.u0.shape))
    return Forward(ts, values, tags, traj, traj.dense, reg_dt)
