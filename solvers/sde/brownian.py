"""``BrownianPath``: a Brownian motion sampled lazily, consistent under any query order."""

from __future__ import annotations

import bisect
import math

import torch


class BrownianPath:
    """A Brownian motion ``W(t)`` with ``W(t0) = 0``, one independent component per
    entry of ``shape``, sampled only where it is queried.

    A query between two known points is drawn from the Brownian bridge between them,
    beyond the known range from the Gaussian increment; every value, once drawn, is
    kept. So a rejected step that retries with a smaller ``dt`` sees the increment
    conditioned on the one it rejected (no bias from rejection, as in the RSwM
    algorithms), the regularizer's extra step and any re-solve see the same path, and
    nested grids (``dt``, ``dt/2``, ...) sample one path: what strong-convergence
    checks need. Memory grows with the number of distinct query times.

    Args:
        t0: time at which ``W = 0``.
        shape: shape of ``W`` (that of the SDE's state).
        seed: seed of the path's own ``torch.Generator``; None draws one from torch's
            global RNG (so ``torch.manual_seed`` makes solves reproducible).
        dtype, device: of the values.

    Reference: C. Rackauckas, Q. Nie, "Adaptive methods for stochastic differential
    equations via natural embeddings and rejection sampling with memory", Discrete
    Contin. Dyn. Syst. B 22(7) (2017).
    """

    def __init__(self, t0: float, shape, *, seed: int | None = None, dtype=None, device=None):
        self.shape = torch.Size(shape)
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()))
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.seed = seed
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._ts = [float(t0)]
        self._ws = [torch.zeros(self.shape, dtype=self.dtype, device=self.device)]

    def _normal(self) -> torch.Tensor:
        return torch.randn(self.shape, generator=self._gen, dtype=self.dtype, device=self.device)

    def __call__(self, t: float) -> torch.Tensor:
        """``W(t)``."""
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"Brownian path queried at non-finite t={t}")
        ts, ws = self._ts, self._ws
        k = bisect.bisect_left(ts, t)
        if k < len(ts) and ts[k] == t:
            return ws[k]
        if k == len(ts):
            w = ws[-1] + math.sqrt(t - ts[-1]) * self._normal()
        elif k == 0:
            w = ws[0] + math.sqrt(ts[0] - t) * self._normal()
        else:
            ta, tb, wa, wb = ts[k - 1], ts[k], ws[k - 1], ws[k]
            s = (t - ta) / (tb - ta)
            w = wa + s * (wb - wa) + math.sqrt((t - ta) * (tb - t) / (tb - ta)) * self._normal()
        ts.insert(k, t)
        ws.insert(k, w)
        return w

    def increment(self, ta: float, tb: float) -> torch.Tensor:
        """``W(tb) - W(ta)`` (negative time order allowed)."""
        return self(tb) - self(ta)

    def __len__(self) -> int:
        return len(self._ts)
