"""Dormand–Prince 8(5,3) ("DOP853")."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .base import AbstractAdaptiveSolver, AbstractExplicitRK, StepResult, stage_storage, time_at
from .tableau import ButcherTableau, tableau_tensors

# Coefficients of Hairer's DOP853 (Hairer, Nørsett & Wanner, Solving ODEs I, Sec. II.10;
# http://www.unige.ch/~hairer/software.html). Stages 0-11 form the eighth-order step,
# stage 12 is f(t1, u1) (first same as last), stages 13-15 feed the dense output.
_C = np.array([0.0, 0.05260015195876773, 0.0789002279381516, 0.1183503419072274, 0.2816496580927726, 0.3333333333333333, 0.25, 0.3076923076923077, 0.6512820512820513, 0.6, 0.8571428571428571, 1.0, 1.0, 0.1, 0.2, 0.7777777777777778])

_A_ROWS = {
    1: {0: 0.05260015195876773},
    2: {0: 0.0197250569845379, 1: 0.0591751709536137},
    3: {0: 0.02958758547680685, 2: 0.08876275643042054},
    4: {0: 0.2413651341592667, 2: -0.8845494793282861, 3: 0.924834003261792},
    5: {0: 0.037037037037037035, 3: 0.17082860872947386, 4: 0.12546768756682242},
    6: {0: 0.037109375, 3: 0.17025221101954405, 4: 0.06021653898045596, 5: -0.017578125},
    7: {0: 0.03709200011850479, 3: 0.17038392571223998, 4: 0.10726203044637328, 5: -0.015319437748624402, 6: 0.008273789163814023},
    8: {0: 0.6241109587160757, 3: -3.3608926294469414, 4: -0.868219346841726, 5: 27.59209969944671, 6: 20.154067550477894, 7: -43.48988418106996},
    9: {0: 0.47766253643826434, 3: -2.4881146199716677, 4: -0.590290826836843, 5: 21.230051448181193, 6: 15.279233632882423, 7: -33.28821096898486, 8: -0.020331201708508627},
    10: {0: -0.9371424300859873, 3: 5.186372428844064, 4: 1.0914373489967295, 5: -8.149787010746927, 6: -18.52006565999696, 7: 22.739487099350505, 8: 2.4936055526796523, 9: -3.0467644718982196},
    11: {0: 2.273310147516538, 3: -10.53449546673725, 4: -2.0008720582248625, 5: -17.9589318631188, 6: 27.94888452941996, 7: -2.8589982771350235, 8: -8.87285693353063, 9: 12.360567175794303, 10: 0.6433927460157636},
    12: {0: 0.054293734116568765, 5: 4.450312892752409, 6: 1.8915178993145003, 7: -5.801203960010585, 8: 0.3111643669578199, 9: -0.1521609496625161, 10: 0.20136540080403034, 11: 0.04471061572777259},
    13: {0: 0.056167502283047954, 6: 0.25350021021662483, 7: -0.2462390374708025, 8: -0.12419142326381637, 9: 0.15329179827876568, 10: 0.00820105229563469, 11: 0.007567897660545699, 12: -0.008298},
    14: {0: 0.03183464816350214, 5: 0.028300909672366776, 6: 0.053541988307438566, 7: -0.05492374857139099, 10: -0.00010834732869724932, 11: 0.0003825710908356584, 12: -0.00034046500868740456, 13: 0.1413124436746325},
    15: {0: -0.42889630158379194, 5: -4.697621415361164, 6: 7.683421196062599, 7: 4.06898981839711, 8: 0.3567271874552811, 12: -0.0013990241651590145, 13: 2.9475147891527724, 14: -9.15095847217987},
}
_A = np.zeros((16, 16))
for _i, _row in _A_ROWS.items():
    for _j, _v in _row.items():
        _A[_i, _j] = _v

# Fifth- and third-order error estimators (weights of stages 0-12).
_E5 = np.zeros(13)
for _j, _v in {0: 0.01312004499419488, 5: -1.2251564463762044, 6: -0.4957589496572502, 7: 1.6643771824549864, 8: -0.35032884874997366, 9: 0.3341791187130175, 10: 0.08192320648511571, 11: -0.022355307863886294}.items():
    _E5[_j] = _v
_E3 = np.zeros(13)
_E3[:12] = _A[12, :12]
for _j, _v in {0: -0.2440944881889764, 8: -0.7338466882816118, 11: -0.022058823529411766}.items():
    _E3[_j] += _v

# Dense-output coefficients of the seventh-order continuous extension.
_D_ROWS = {
    0: {0: -8.428938276109013, 5: 0.5667149535193777, 6: -3.0689499459498917, 7: 2.38466765651207, 8: 2.117034582445028, 9: -0.871391583777973, 10: 2.2404374302607883, 11: 0.6315787787694688, 12: -0.08899033645133331, 13: 18.148505520854727, 14: -9.194632392478356, 15: -4.436036387594894},
    1: {0: 10.427508642579134, 5: 242.28349177525817, 6: 165.20045171727028, 7: -374.5467547226902, 8: -22.113666853125306, 9: 7.733432668472264, 10: -30.674084731089398, 11: -9.332130526430229, 12: 15.697238121770845, 13: -31.139403219565178, 14: -9.35292435884448, 15: 35.81684148639408},
    2: {0: 19.985053242002433, 5: -387.0373087493518, 6: -189.17813819516758, 7: 527.8081592054236, 8: -11.57390253995963, 9: 6.8812326946963, 10: -1.0006050966910838, 11: 0.7777137798053443, 12: -2.778205752353508, 13: -60.19669523126412, 14: 84.32040550667716, 15: 11.99229113618279},
    3: {0: -25.69393346270375, 5: -154.18974869023643, 6: -231.5293791760455, 7: 357.6391179106141, 8: 93.40532418362432, 9: -37.45832313645163, 10: 104.0996495089623, 11: 29.8402934266605, 12: -43.53345659001114, 13: 96.32455395918828, 14: -39.17726167561544, 15: -149.72683625798564},
}
_D = np.zeros((4, 16))
for _i, _row in _D_ROWS.items():
    for _j, _v in _row.items():
        _D[_i, _j] = _v

# The nested form of the interpolant, u(x) - u0 = x(F0 + (1-x)(F1 + x(F2 + (1-x)(F3 +
# x(F4 + (1-x)(F5 + x F6)))))), expanded into monomials x^1..x^7 once at import:
# _NESTED[i] holds the monomial coefficients multiplying F_i.
_x = np.poly1d([1.0, 0.0])
_om = np.poly1d([-1.0, 1.0])
_NESTED_POLYS = [_x, _x * _om, _x**2 * _om, _x**2 * _om**2, _x**3 * _om**2, _x**3 * _om**3, _x**4 * _om**3]
_NESTED = np.zeros((7, 7))
for _i, _poly in enumerate(_NESTED_POLYS):
    _c = _poly.coeffs[::-1]
    _NESTED[_i, : len(_c) - 1] = _c[1:]
# F = dt * _F_OF_K @ K: F0 = du, F1 = dt f0 - du, F2 = 2 du - dt (f1 + f0), F3.. = dt D K.
_B = _A[12, :12]
_F_OF_K = np.zeros((7, 16))
_F_OF_K[0, :12] = _B
_F_OF_K[1, :12] = -_B
_F_OF_K[1, 0] += 1.0
_F_OF_K[2, :12] = 2 * _B
_F_OF_K[2, 0] -= 1.0
_F_OF_K[2, 12] -= 1.0
_F_OF_K[3:] = _D
_DENSE = _F_OF_K.T @ _NESTED  # (16 stages, 7 powers)

_TABLEAU = ButcherTableau(
    c=_C[:13],
    a=_A[:13, :13],
    b=np.concatenate([_B, [0.0]]),
    b_err=_E5,  # used only for bookkeeping; the step combines E5 and E3 (below)
    dense=None,
    fsal=True,
)


class _DP8Tensors:
    __slots__ = ("e3", "extra_rows", "extra_c", "dense_t")

    def __init__(self, dtype, device):
        t = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)  # noqa: E731
        self.e3 = t(_E3)
        self.extra_rows = [t(_A[i, :i]) for i in (13, 14, 15)]
        self.extra_c = [float(_C[i]) for i in (13, 14, 15)]
        self.dense_t = t(_DENSE.T)  # (7, 16)


_DP8_CACHE: dict = {}


class _DP8Workspace:
    __slots__ = ("tt", "stages", "stage_state", "extra", "probe")

    def __init__(self, tt, stages, extra):
        self.tt, self.stages, self.extra = tt, stages, extra
        self.stage_state = None
        self.probe = False


@dataclasses.dataclass(frozen=True)
class DP8(AbstractExplicitRK, AbstractAdaptiveSolver):
    """Dormand–Prince 8(5,3), Hairer's ``DOP853`` (scipy's ``DOP853``): eighth order,
    12 new evaluations per step, error estimate blending fifth- and third-order
    estimators, seventh-order dense output (3 extra evaluations, only on steps whose
    interior is sampled). The method for tight tolerances (rtol <= 1e-8).

    Reference: E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential
    Equations I*, 2nd ed., Springer (1993), Sec. II.10; P. J. Prince, J. R. Dormand,
    "High order embedded Runge–Kutta formulae", J. Comput. Appl. Math. 7 (1981).
    """

    tableau = _TABLEAU

    def order(self) -> int:
        return 8

    def error_order(self) -> int:
        return 7

    def dense_order(self) -> int:
        return 7

    def workspace(self, u0, *, grad):
        key = (u0.dtype, u0.device)
        extra = _DP8_CACHE.get(key)
        if extra is None:
            extra = _DP8_CACHE[key] = _DP8Tensors(u0.dtype, u0.device)
        return _DP8Workspace(tableau_tensors(_TABLEAU, u0.dtype, u0.device), stage_storage(16, u0, grad), extra)

    def step(self, rhs, t, u, dt, f0, ws):
        res = super().step(rhs, t, u, dt, f0, ws)
        # Hairer's blended estimate, elementwise: err5 * |err5| / hypot(|err5|, 0.1 |err3|)
        # behaves like the fifth-order estimate but is damped where the third-order one
        # is large compared with it.
        e5 = res.err  # dt * (E5 . K)
        e3 = ws.stages.comb(ws.extra.e3, 13) * dt
        a5 = e5.abs()
        denom = torch.hypot(a5, 0.1 * e3.abs())
        res.err = torch.where(denom > 0, e5 * a5 / torch.where(denom > 0, denom, 1.0), e5)
        return StepResult(res.u1, res.err, res.f1)

    def dense_coeffs(self, rhs, t, u, dt, step, ws):
        st, ex = ws.stages, ws.extra
        for row, c, i in zip(ex.extra_rows, ex.extra_c, (13, 14, 15)):
            ui = st.stage_input(u, row, i, dt)
            st.set(i, rhs(time_at(t, c, dt), ui))
        return st.matmul(ex.dense_t, 16) * dt
