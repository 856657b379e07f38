"""Rodas5P: a fifth-order stiffly accurate Rosenbrock–Wanner method."""

from __future__ import annotations

import dataclasses

import torch

from .base import StepResult, time_at
from .rosenbrock import AbstractRosenbrock

# W-transformed form (Hairer & Wanner, Solving ODEs II, Sec. IV.7): with
# W = I/(dt*gamma) - J, stage i solves
#   W U_i = f(t + alpha_i dt, u + sum_j A_ij U_j) + sum_j (C_ij/dt) U_j + dt*gamma_i*ft,
# and u1 = u + sum_i M_i U_i. Coefficients from Steinebach (2023), Table 2.
_A = (
    (3.0,),
    (2.849394379747939, 0.45842242204463923),
    (-6.954028509809101, 2.489845061869568, -10.358996098473584),
    (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
    (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946),
    (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946, 1.0),
    (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946, 1.0, 1.0),
)
_C = (
    (-14.155112264123755,),
    (-17.97296035885952, -2.859693295451294),
    (147.12150275711716, -1.41221402718213, 71.68940251302358),
    (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
    (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471),
    (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
     -28.087943162872662),
    (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
     -54.66780262877968, -9.48861652309627),
)
_ALPHA = (0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664, 1.0, 1.0, 1.0)
_GAMMA_T = (0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734,
            2.325825639765069, 0.0, 0.0, 0.0)
_GAMMA = 0.21193756319429014
# u1 = stage-8 input + U_8, and the embedded solution is the stage-8 input: the error
# estimate is U_8 itself (stiffly accurate pair).
_M = _A[6] + (1.0,)
# Continuous extension of order 4 (Steinebach 2023; the H rows of OrdinaryDiffEq's
# Rodas5PTableau): K_r = sum_j H_rj U_j and
#   u(theta) = (1 - theta) u + theta (u1 + (1 - theta) (K_1 + theta (K_2 + theta K_3))).
_H = (
    (25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204, 0.524948541321073,
     1.1241088310450404, 0.4272876194431874, -0.17202221070155493),
    (-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796, 20.176138334709044,
     15.98066361424651, -6.789040303419874, -6.710236069923372),
    (11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643, -52.072871366152654,
     -59.78993625266729, -0.15582684282751913, 4.883087185713722),
)


@dataclasses.dataclass(frozen=True)
class Rodas5P(AbstractRosenbrock):
    """Rodas5P: fifth-order, stiffly accurate, L-stable Rosenbrock–Wanner method with
    an embedded fourth-order solution; 8 stages (8 evaluations of f), one Jacobian and
    one LU per step. Dense output: the method's own fourth-order continuous extension
    from the stages (no extra evaluation). The method for stiff problems at moderate to
    tight tolerances (Robertson, Van der Pol with large mu).

    Args:
        jacobian: "dense" or "batch", see :class:`AbstractRosenbrock`.

    Reference: G. Steinebach, "Construction of Rosenbrock–Wanner method Rodas5P and
    numerical benchmarks within the Julia Differential Equations package", BIT Numer.
    Math. 63:27 (2023).
    """

    jacobian: str = "dense"

    def __post_init__(self):
        self._check()

    def order(self) -> int:
        return 5

    def error_order(self) -> int:
        return 4

    def dense_order(self) -> int:
        return 4

    def step(self, rhs, t, u, dt, f0, ws):
        per_sample = isinstance(dt, torch.Tensor)
        F0, lu, ft = self.factor(rhs, t, u, dt, _GAMMA, ws, per_sample=per_sample)
        inv_dt = 1.0 / dt
        U = []
        for i in range(8):
            if i == 0:
                r = F0 + (dt * _GAMMA_T[0]) * ft
            else:
                ui = u
                for a, Uj in zip(_A[i - 1], U):
                    ui = ui + a * Uj
                r = rhs(time_at(t, _ALPHA[i], dt), ui)
                for c, Uj in zip(_C[i - 1], U):
                    r = r + (c * inv_dt) * Uj
                if _GAMMA_T[i] != 0.0:
                    r = r + (dt * _GAMMA_T[i]) * ft
            U.append(self.solve(lu, r))
        u1 = u
        for m, Ui in zip(_M, U):
            u1 = u1 + m * Ui
        ws.stage_state = U
        return StepResult(u1, U[-1], None)

    def dense_coeffs(self, rhs, t, u, dt, step, ws):
        U = ws.stage_state
        K = []
        for row in _H:
            k = row[0] * U[0]
            for h, Ui in zip(row[1:], U[1:]):
                k = k + h * Ui
            K.append(k)
        # (1-th) u + th u1 + th (1-th)(K1 + th K2 + th^2 K3) in monomial form.
        return torch.stack([step.u1 - u + K[0], K[1] - K[0], K[2] - K[1], -K[2]])
