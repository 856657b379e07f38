"""``ButcherTableau``: the coefficients of an explicit Runge–Kutta pair, plus its
continuous extension, and their per-(dtype, device) tensor copies."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit Runge–Kutta method ``u1 = u0 + dt * sum_i b_i k_i``.

    Args:
        c: (s,) stage times as fractions of the step, ``c[0] == 0``.
        a: (s, s) strictly lower-triangular stage coefficients.
        b: (s,) solution weights.
        b_err: (s,) or None; the error estimate is ``dt * sum_i b_err_i k_i``
            (solution minus embedded solution). None for fixed-step methods.
        dense: (s, d) or None; continuous extension ``u(t0 + theta*dt) = u0 + dt *
            sum_i k_i sum_j dense[i, j] * theta**(j+1)``. With FSAL, row ``s-1`` weighs
            ``f(t1, u1)``.
        fsal: the last stage is evaluated at ``(t1, u1)`` ("first same as last"), so
            it is the next step's first stage; ``b`` must then equal ``a[s-1]``.
    """

    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    b_err: np.ndarray | None
    dense: np.ndarray | None
    fsal: bool = False

    def __post_init__(self):
        s = len(self.c)
        assert self.a.shape == (s, s) and np.allclose(np.triu(self.a), 0.0)
        assert self.b.shape == (s,) and self.c[0] == 0.0
        assert np.allclose(self.a.sum(axis=1), self.c, atol=1e-12), "row sums of a must equal c"
        assert abs(self.b.sum() - 1.0) < 1e-12
        if self.fsal:
            assert np.allclose(self.a[-1], self.b, atol=1e-14) and self.c[-1] == 1.0
        if self.b_err is not None:
            assert self.b_err.shape == (s,) and abs(self.b_err.sum()) < 1e-12
        if self.dense is not None:
            assert self.dense.shape[0] == s
            # The continuous extension must hit the step's end point at theta = 1.
            assert np.allclose(self.dense.sum(axis=1), self.b, atol=1e-12)

    @property
    def stages(self) -> int:
        return len(self.c)


class TableauTensors:
    """Tensors of a tableau in one dtype/device, built once per solve and cached."""

    __slots__ = ("a_rows", "b", "b_err", "dense_t", "c")

    def __init__(self, tab: ButcherTableau, dtype: torch.dtype, device: torch.device):
        def t(x):
            return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)

        self.c = [float(ci) for ci in tab.c]
        # Row i holds the weights of stages 0..i-1; a matrix-vector product with the
        # stage buffer forms each stage input in one call.
        self.a_rows = [None] + [t(tab.a[i, :i]) for i in range(1, tab.stages)]
        self.b = t(tab.b)
        self.b_err = None if tab.b_err is None else t(tab.b_err)
        self.dense_t = None if tab.dense is None else t(tab.dense.T)  # (d, s)


_CACHE: dict[tuple[int, torch.dtype, torch.device], TableauTensors] = {}


def tableau_tensors(tab: ButcherTableau, dtype: torch.dtype, device: torch.device) -> TableauTensors:
    key = (id(tab), dtype, torch.device(device))
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = TableauTensors(tab, dtype, device)
    return hit


def poly_to_monomial(polys: list[np.poly1d], degree: int) -> np.ndarray:
    """Coefficients of ``theta**1 .. theta**degree`` of polynomials with no constant term."""
    out = np.zeros((len(polys), degree))
    for i, poly in enumerate(polys):
        coeffs = poly.coeffs[::-1]  # ascending powers
        assert abs(coeffs[0]) < 1e-12, "continuous-extension weights vanish at theta = 0"
        out[i, : len(coeffs) - 1] = coeffs[1:]
    return out
