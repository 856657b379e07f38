"""Bad input gets a clear error that names the argument, the value and what is allowed."""

import pytest
import torch

import diffsim
from diffsim import solvers as dss


def f(u, p, t):
    return -u


def prob(**kw):
    args = dict(f=f, u0=torch.ones(2), tspan=(0.0, 1.0))
    args.update(kw)
    return dss.ODEProblem(**args)


def test_solve_is_the_one_diffsim_solve():
    assert dss.solve is diffsim.solve
    assert ("ODEProblem", "AbstractODESolver") in diffsim.dispatch.methods()
    assert ("SDEProblem", "AbstractSDESolver") in diffsim.dispatch.methods()


def test_f_returning_wrong_shape():
    with pytest.raises(ValueError, match=r"returned shape \(3,\) but u0 has shape \(2,\)"):
        dss.solve(prob(f=lambda u, p, t: torch.ones(3)), dss.Tsit5())


def test_f_returning_wrong_dtype_or_type():
    with pytest.raises(TypeError, match="dtype torch.float32 but u0 has dtype torch.float64"):
        dss.solve(prob(f=lambda u, p, t: (-u).float()), dss.Tsit5())
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        dss.solve(prob(f=lambda u, p, t: [0.0, 0.0]), dss.Tsit5())


def test_non_finite_u0():
    with pytest.raises(ValueError, match="u0 has non-finite entries"):
        prob(u0=torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="u0 has non-finite entries"):
        prob(u0=torch.tensor([float("inf")]))


def test_bad_u0_types():
    with pytest.raises(TypeError, match="real floating dtype"):
        prob(u0=torch.ones(2, dtype=torch.complex128))
    with pytest.raises(ValueError, match="empty"):
        prob(u0=torch.ones(0))
    assert prob(u0=[1, 2]).u0.dtype == torch.get_default_dtype()  # array-likes are converted


def test_zero_length_and_bad_tspan():
    assert prob(tspan=(1.0, 1.0)).tspan == (1.0, 1.0)  # allowed: the solution is u0 (torchdiffeq)
    with pytest.raises(ValueError, match="zero length"):
        dss.SDEProblem(f, f, torch.ones(2), (1.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        prob(tspan=(float("-inf"), 0.0))
    with pytest.raises(ValueError, match="infinite span needs a terminal event"):
        dss.solve(prob(tspan=(0.0, float("inf"))), dss.Tsit5())
    with pytest.raises(ValueError, match="pair"):
        prob(tspan=(0.0, 1.0, 2.0))


def test_bad_p_and_f():
    with pytest.raises(TypeError, match="p must be None, a tensor, or a tuple"):
        prob(p={"a": torch.ones(1)})
    with pytest.raises(TypeError, match=r"p\[1\] is a str"):
        prob(p=(torch.ones(1), "x"))
    with pytest.raises(TypeError, match="f must be callable"):
        prob(f=3)


def test_unknown_keyword_arguments():
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) reltol.*allowed:.*rtol"):
        dss.solve(prob(), dss.Tsit5(), reltol=1e-6)
    with pytest.raises(TypeError, match="unknown keyword"):
        dss.solve(dss.SDEProblem(f, f, torch.ones(1), (0, 1)), dss.EulerMaruyama(), dt=0.1, abstol=1)


def test_option_ranges():
    p = prob()
    with pytest.raises(ValueError, match="Euler is a fixed-step method: pass dt"):
        dss.solve(p, dss.Euler())
    with pytest.raises(ValueError, match="adaptive=False: pass dt"):
        dss.solve(p, dss.Tsit5(), adaptive=False)
    with pytest.raises(ValueError, match=r"dt must be finite and > 0, got -0.1"):
        dss.solve(p, dss.RK4(), dt=-0.1)
    with pytest.raises(ValueError, match="rtol must be finite and >= 0"):
        dss.solve(p, dss.Tsit5(), rtol=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        dss.solve(p, dss.Tsit5(), rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="max_steps must be an int >= 1"):
        dss.solve(p, dss.Tsit5(), max_steps=0)
    with pytest.raises(ValueError, match=r"saveat contains 2.0, outside tspan \[0.0, 1.0\]"):
        dss.solve(p, dss.Tsit5(), saveat=[0.5, 2.0])
    with pytest.raises(ValueError, match="saveat must be increasing"):
        dss.solve(p, dss.Tsit5(), saveat=[0.5, 0.2])
    with pytest.raises(ValueError, match="saveat is empty"):
        dss.solve(p, dss.Tsit5(), saveat=[])
    with pytest.raises(ValueError, match="does not broadcast"):
        dss.solve(p, dss.Tsit5(), atol=torch.ones(3))
    with pytest.raises(ValueError, match="factor_min"):
        dss.PIController(factor_min=2.0)


def test_algorithm_and_problem_mismatch():
    with pytest.raises(TypeError, match="solve has no method for problem=ODEProblem and algorithm=EulerMaruyama"):
        dss.solve(prob(), dss.EulerMaruyama())
    with pytest.raises(TypeError, match="sensealg must be"):
        dss.solve(prob(), dss.Tsit5(), sensealg="adjoint")


def test_regularization_misuse():
    p = prob()
    with pytest.raises(ValueError, match="kind must be one of 'error', 'stiffness'"):
        dss.GlobalRegularization(kind="size")
    with pytest.raises(ValueError, match="sampling must be one of"):
        dss.LocalRegularization(sampling="uniform")
    with pytest.raises(ValueError, match="coeff must be finite and >= 0"):
        dss.LocalRegularization(coeff=-1.0)
    with pytest.raises(ValueError, match="needs sensealg=DirectAdjoint"):
        dss.solve(p, dss.Tsit5(), regularization=dss.GlobalRegularization(), sensealg=dss.BacksolveAdjoint())
    with pytest.raises(ValueError, match="fixed-step"):
        dss.solve(p, dss.RK4(), dt=0.1, regularization=dss.LocalRegularization())
    with pytest.raises(ValueError, match="DP5 or Tsit5"):
        dss.solve(p, dss.BS3(), regularization=dss.GlobalRegularization(kind="stiffness"))
    with pytest.raises(TypeError, match="regularization must be"):
        dss.solve(p, dss.Tsit5(), regularization="error")


def test_adjoint_option_errors():
    with pytest.raises(ValueError, match="checkpoints must be"):
        dss.InterpolatingAdjoint(checkpoints=0)
    with pytest.raises(ValueError, match="nodes must be an int"):
        dss.QuadratureAdjoint(nodes=0)
    u0 = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"checkpoints \[5.0\] lie outside"):
        dss.solve(prob(u0=u0), dss.Tsit5(), sensealg=dss.InterpolatingAdjoint(checkpoints=[5.0]))
    with pytest.raises(ValueError, match="jacobian must be 'dense' or 'batch'"):
        dss.Rodas5P(jacobian="sparse")


def test_dense_output_misuse():
    sol = dss.solve(prob(), dss.Tsit5(), saveat=[1.0])
    with pytest.raises(ValueError, match="no dense output"):
        sol(0.5)
    sol = dss.solve(prob(), dss.Tsit5())
    with pytest.raises(ValueError, match="outside the solved interval"):
        sol(1.5)


def test_sde_input_errors():
    sde = dss.SDEProblem(f, lambda u, p, t: torch.ones(3), torch.ones(2), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"g\(u0, p, t0\) returned shape \(3,\)"):
        dss.solve(sde, dss.EulerMaruyama(), dt=0.1)
    ok = dss.SDEProblem(f, f, torch.ones(2), (0.0, 1.0))
    with pytest.raises(ValueError, match="pass dt"):
        dss.solve(ok, dss.Milstein())
    with pytest.raises(ValueError, match="noise has shape"):
        dss.solve(ok, dss.EulerMaruyama(), dt=0.1, noise=dss.BrownianPath(0.0, (3,)))
    with pytest.raises(TypeError, match="seed must be an int"):
        dss.BrownianPath(0.0, (2,), seed=1.5)


def test_every_sensealg_shares_one_base_and_is_refused_by_other_families():
    """ODE adjoints, ImplicitAdjoint and the simulators' CheckpointAdjoint are one kind of
    value (``AbstractSensitivity``); a solve handed another family's sensealg names what
    that sensealg differentiates and what the solve takes."""
    family = [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(), dss.QuadratureAdjoint(),
              dss.ImplicitAdjoint(), diffsim.CheckpointAdjoint(segment=4)]
    assert dss.AbstractSensitivity is diffsim.AbstractSensitivity
    assert all(isinstance(s, dss.AbstractSensitivity) for s in family)
    assert not isinstance(diffsim.CheckpointAdjoint(), dss.AbstractODESensitivity)
    assert not isinstance(dss.ImplicitAdjoint(), dss.AbstractODESensitivity)
    with pytest.raises(TypeError, match=r"CheckpointAdjoint\(segment=4\) differentiates simulator rollouts.*"
                                        r"not ODE solves; use DirectAdjoint\(\), BacksolveAdjoint"):
        dss.solve(prob(), dss.Tsit5(), sensealg=diffsim.CheckpointAdjoint(segment=4))
    with pytest.raises(TypeError, match="ImplicitAdjoint.*differentiates root, steady-state and fixed-point"):
        dss.solve(prob(), dss.Tsit5(), sensealg=dss.ImplicitAdjoint())
    root = dss.NonlinearProblem(lambda u, p: u ** 3 - 2.0, torch.ones(1, dtype=torch.float64))
    with pytest.raises(TypeError, match="differentiates simulator rollouts.*not root and fixed-point solves"):
        dss.solve(root, dss.NewtonRaphson(), sensealg=diffsim.CheckpointAdjoint())
    with pytest.raises(TypeError, match="is an ODE adjoint"):
        dss.solve(root, dss.NewtonRaphson(), sensealg=dss.BacksolveAdjoint())
