"""``Smoke``: 2D incompressible Navier-Stokes with a buoyant smoke density (PDEArena-like).

    d(smoke)/dt + v . grad(smoke) = 0
    dv/dt + (v . grad) v = -grad p + nu lap v + b * smoke,   div v = 0,   in a closed box

Time stepping (operator splitting, as PhiFlow's smoke example that PDEArena's
Navier-Stokes 2D data come from): advect smoke, advect velocity and add buoyancy,
explicit viscosity, pressure projection. Forward only (no gradients): it generates
reference data for surrogates.

Usage::

    sim = Smoke(res=(128, 128), size=32.0, dt=1.5, nu=0.01, buoyancy=(0.0, 0.5))
    state = sim.reset(smoke0)                # smoke0: (nx, ny) array
    for _ in range(56):
        state = sim.step(state)
    sim.stats                                # CG iterations, residual, max |div v| ...
    sim.close()
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import runtime
from ..errors import SimulationError
from ..state import State
from .kernels import SmokeKernels

PRECONDITIONERS = ("mg", "jacobi", "none")


class Smoke:
    """A smoke-buoyancy flow on a MAC grid of ``res`` cells in a closed box of ``size``.

    Args:
        res: (nx, ny) cells (each >= 8).
        size: domain extent along x (m); ``dx = size / nx`` and the box is ``nx dx x ny dx``.
        dt: time step (s).
        nu: kinematic viscosity (m^2/s); explicit, so ``nu dt / dx^2 <= 0.25`` is required.
        buoyancy: (bx, by) buoyancy acceleration per unit smoke density (m/s^2).
        substeps: solver steps per :meth:`step` (``dt`` each).
        cg_tol: relative residual ``|r| / |b|`` at which the pressure solve stops (default
            1e-8 in float64, 1e-4 in float32, whose round-off floor is about 1e-5).
        cg_max_iters: iteration cap; not converging raises ``SimulationError``.
        preconditioner: "mg" (multigrid V-cycle, default), "jacobi" or "none".

    State tensors (``ds.State``, torch, the runtime's float type): ``smoke`` (nx, ny),
    ``vx`` (nx + 1, ny), ``vy`` (nx, ny + 1) (m/s, staggered faces).

    Raises:
        ValueError: bad arguments (naming the argument and the allowed range).
    """

    def __init__(self, res=(128, 128), size: float = 32.0, dt: float = 1.5, nu: float = 0.01,
                 buoyancy=(0.0, 0.5), substeps: int = 1, cg_tol: float | None = None, cg_max_iters: int = 500,
                 preconditioner: str = "mg"):
        res = tuple(int(r) for r in res)
        if len(res) != 2 or min(res) < 8:
            raise ValueError(f"res={res!r} must be two ints >= 8")
        for name, v in (("size", size), ("dt", dt)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r} must be a finite number > 0")
        if not (nu >= 0 and math.isfinite(nu)):
            raise ValueError(f"nu={nu!r} must be a finite number >= 0")
        dx = float(size) / res[0]
        if nu * dt / dx ** 2 > 0.25:
            raise ValueError(f"nu={nu} with dt={dt} and dx={dx:.4g} is unstable for explicit viscosity: "
                             f"need nu dt / dx^2 <= 0.25 (now {nu * dt / dx ** 2:.3g}); lower dt or nu")
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner={preconditioner!r}; allowed: {', '.join(PRECONDITIONERS)}")
        if not (isinstance(substeps, int) and substeps >= 1):
            raise ValueError(f"substeps={substeps!r} must be an int >= 1")
        self.cfg = runtime.ensure_init()
        if cg_tol is None:
            cg_tol = 1e-8 if self.cfg.precision == "f64" else 1e-4
        if not (0 < cg_tol < 1) or cg_max_iters < 1:
            raise ValueError(f"need 0 < cg_tol < 1 and cg_max_iters >= 1, got {cg_tol}, {cg_max_iters}")
        levels = 1
        while (res[0] >> levels) >= 4 and (res[1] >> levels) >= 4 and res[0] % (1 << levels) == 0 \
                and res[1] % (1 << levels) == 0:
            levels += 1
        self.res, self.size, self.dx, self.dt = res, float(size), dx, float(dt)
        self.nu, self.buoyancy, self.substeps = float(nu), tuple(map(float, buoyancy)), substeps
        self.cg_tol, self.cg_max_iters, self.preconditioner = float(cg_tol), int(cg_max_iters), preconditioner
        self.levels = levels if preconditioner == "mg" else 1
        self.k = SmokeKernels(res[0], res[1], dx, dt, nu, self.buoyancy, preconditioner, self.levels)
        self.stats = {"cg_iters": 0, "cg_residual": 0.0, "max_speed": 0.0, "steps": 0, "cg_iters_total": 0}
        self._closed = False
        runtime.register(self)

    # ------------------------------------------------------------------ states
    @property
    def dtype(self) -> torch.dtype:
        return self.cfg.torch_float

    @property
    def extent(self) -> tuple[float, float]:
        return (self.res[0] * self.dx, self.res[1] * self.dx)

    def reset(self, smoke=None, vx=None, vy=None) -> State:
        """A state from an initial smoke density (default zero) and velocities (default rest)."""
        nx, ny = self.res
        kw = {"dtype": self.dtype}
        s = torch.zeros(nx, ny, **kw) if smoke is None else torch.as_tensor(np.asarray(smoke), **kw)
        u = torch.zeros(nx + 1, ny, **kw) if vx is None else torch.as_tensor(np.asarray(vx), **kw)
        v = torch.zeros(nx, ny + 1, **kw) if vy is None else torch.as_tensor(np.asarray(vy), **kw)
        for name, t, shape in (("smoke", s, (nx, ny)), ("vx", u, (nx + 1, ny)), ("vy", v, (nx, ny + 1))):
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(t.shape)}; this grid needs {shape}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} holds non-finite values")
        return State(0.0, 0, smoke=s.clone(), vx=u.clone(), vy=v.clone())

    def _load(self, state: State) -> None:
        self._check_open()
        self.k.smoke.from_torch(state.smoke.detach().to(self.dtype).contiguous())
        self.k.vx.from_torch(state.vx.detach().to(self.dtype).contiguous())
        self.k.vy.from_torch(state.vy.detach().to(self.dtype).contiguous())

    def _store(self, time: float, step: int) -> State:
        return State(time, step, smoke=self.k.smoke.to_torch(), vx=self.k.vx.to_torch(), vy=self.k.vy.to_torch())

    # ------------------------------------------------------------------ stepping
    def step(self, state: State) -> State:
        """Advance ``substeps`` time steps."""
        self._load(state)
        for _ in range(self.substeps):
            self._advance(state.step)
        return self._store(state.time + self.dt * self.substeps, state.step + 1)

    def rollout(self, state: State, n: int, every: int = 1) -> np.ndarray:
        """Run ``n`` steps from ``state``; returns (n // every + 1, 3, nx, ny) cell-centred
        (smoke, vx, vy) frames, the first being ``state``."""
        self._load(state)
        frames = [self.centred()]
        for k in range(1, n + 1):
            for _ in range(self.substeps):
                self._advance(state.step + k)
            if k % every == 0:
                frames.append(self.centred())
        return np.stack(frames)

    def _advance(self, step: int) -> None:
        k = self.k
        k.pre_projection()
        self.solve_pressure(step)
        k.project()
        vmax = math.sqrt(max(float(k.sc[7]), 0.0))
        self.stats["max_speed"] = vmax
        self.stats["steps"] += 1
        if not math.isfinite(vmax):
            raise SimulationError("the velocity field became non-finite", step=step, quantity="v",
                                  hint=f"lower dt (now {self.dt:g} s); the semi-Lagrangian step is stable, so "
                                       "this usually means a non-finite initial state or buoyancy")

    def solve_pressure(self, step: int = 0) -> int:
        """Project the current velocity (in the fields) onto divergence-free fields; returns CG iterations."""
        k = self.k
        k.cg_init()
        bb = float(k.sc[4])
        target = (self.cg_tol ** 2) * bb
        it = 0
        rr = bb
        while rr > target and it < self.cg_max_iters:
            k.cg_iterate()
            rr = float(k.sc[3])
            it += 1
            if not math.isfinite(rr):
                raise SimulationError(
                    f"pressure CG broke down after {it} iterations (non-finite residual)", step=step, quantity="p",
                    hint=f"cg_tol={self.cg_tol:g} is below the round-off floor of {self.cfg.precision}; raise it "
                         "(float32 reaches about 1e-5) or run in float64")
        self.stats["cg_iters"] = it
        self.stats["cg_iters_total"] += it
        self.stats["cg_residual"] = math.sqrt(rr / bb) if bb > 0 else 0.0
        if rr > target:
            raise SimulationError(
                f"pressure CG did not converge: relative residual {self.stats['cg_residual']:.3g} after {it} "
                f"iterations (tolerance {self.cg_tol:g})", step=step, quantity="p",
                hint="raise cg_max_iters or cg_tol, or use preconditioner='mg'")
        return it

    def project(self, state: State) -> State:
        """The divergence-free part of ``state``'s velocity (one pressure projection)."""
        self._load(state)
        self.k.enforce_walls_and_rhs()
        self.solve_pressure(state.step)
        self.k.project()
        return self._store(state.time, state.step)

    def divergence(self, state: State | None = None) -> float:
        """max |div v| (1/s) of ``state`` (default: the fields as left by the last step)."""
        if state is not None:
            self._load(state)
        self.k.divergence_max()
        return float(self.k.sc[8])

    def centred(self) -> np.ndarray:
        """(3, nx, ny) cell-centred smoke, vx, vy of the current fields."""
        out = np.zeros((3, *self.res), dtype=np.float64 if self.cfg.precision == "f64" else np.float32)
        self.k.centred(out)
        return out

    # ------------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Smoke simulator is closed")

    def close(self) -> None:
        if not self._closed:
            self.k.destroy()
            self._closed = True
            runtime.unregister(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"Smoke(res={self.res}, dx={self.dx:g}, dt={self.dt:g}, nu={self.nu:g}, buoyancy={self.buoyancy}, "
                f"preconditioner={self.preconditioner!r}, levels={self.levels})")


def noise_field(res, size: float, rng: np.random.Generator, scale: float = 11.0, smoothness: float = 6.0) -> np.ndarray:
    """A smooth random field normalised to zero mean and unit std, shaped in Fourier
    space like PhiFlow's ``Noise(scale, smoothness)`` (power ~ (k scale)^(-smoothness))."""
    nx, ny = res
    dx = size / nx
    kx = np.fft.fftfreq(nx, d=dx)[:, None]
    ky = np.fft.fftfreq(ny, d=dx)[None, :]
    k = np.sqrt(kx ** 2 + ky ** 2) * scale
    with np.errstate(divide="ignore"):
        amp = np.where(k > 0, k ** (-smoothness / 2.0), 0.0)
    amp *= 1.0 / (1.0 + np.exp((0.1 - k) * 1e3))  # drop the lowest frequencies (as PhiFlow)
    white = rng.standard_normal((nx, ny)) + 1j * rng.standard_normal((nx, ny))
    field = np.real(np.fft.ifft2(white * amp))
    std = field.std()
    return (field - field.mean()) / (std if std > 0 else 1.0)
