"""PyTree states (tuples, lists, named tuples, dicts of tensors), as torchdiffeq's tuple
states (tests/api_tests.py::TestCollectionState, ported in test_peer_suite_port.py) and
diffrax's pytrees: the same answer and gradients as the hand-flattened problem, for
every method family and sensealg."""

import collections

import pytest
import torch

from diffsim import solvers as dss

SENSEALGS = [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(),
             dss.InterpolatingAdjoint(checkpoints=2), dss.QuadratureAdjoint()]
State = collections.namedtuple("State", "pos vel")


def A():
    return torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])


def f_tree(u, p, t):
    return {"x": u["x"] @ A() * p, "v": State(-u["v"].pos * torch.cos(t), u["v"].vel * 0.5)}


def f_flat(u, p, t):
    return torch.cat([u[:2] @ A() * p, -u[2:4] * torch.cos(t), u[4:] * 0.5])


def tree_loss(u):
    return (u["x"] ** 2).sum() + u["v"].pos.sum() + u["v"].vel.pow(3).sum()


def flat_loss(u):
    return (u[..., :2] ** 2).sum() + u[..., 2:4].sum() + u[..., 4:].pow(3).sum()


@pytest.mark.parametrize("alg", [dss.RK4(), dss.Tsit5(), dss.Rodas5P()], ids=repr)
@pytest.mark.parametrize("sensealg", SENSEALGS, ids=repr)
def test_tree_state_equals_flat_state(sensealg, alg):
    kw = dict(dt=0.05, adaptive=False) if isinstance(alg, dss.RK4) else dict(rtol=1e-9, atol=1e-9)
    x = torch.tensor([1.0, 0.5], requires_grad=True)
    pos = torch.tensor([1.0, 2.0], requires_grad=True)
    vel = torch.tensor([[0.3]], requires_grad=True)
    p = torch.tensor(0.9, requires_grad=True)
    u0 = {"x": x, "v": State(pos, vel)}
    sol = dss.solve(dss.ODEProblem(f_tree, u0, (0.0, 1.0), p=p), alg, saveat=[0.5, 1.0], sensealg=sensealg, **kw)
    assert set(sol.u) == {"x", "v"} and isinstance(sol.u["v"], State)
    assert sol.u["x"].shape == (2, 2) and sol.u["v"].vel.shape == (2, 1, 1)
    g = torch.autograd.grad(tree_loss(sol.u), (x, pos, vel, p))

    flat0 = torch.cat([x, pos, vel.reshape(-1)]).detach().requires_grad_(True)
    p2 = p.detach().requires_grad_(True)
    ref = dss.solve(dss.ODEProblem(f_flat, flat0, (0.0, 1.0), p=p2), alg, saveat=[0.5, 1.0], sensealg=sensealg,
                    **kw)
    g_ref = torch.autograd.grad(flat_loss(ref.u), (flat0, p2))
    assert torch.allclose(sol.u["x"], ref.u[:, :2], atol=1e-12)
    got = torch.cat([g[0], g[1], g[2].reshape(-1)])
    # The same arithmetic in another layout: equal to round-off.
    assert torch.allclose(got, g_ref[0], atol=1e-11) and abs(float(g[3] - g_ref[1])) < 1e-11


def test_tuple_list_and_dense_output():
    """torchdiffeq's tuple_f returns a tuple for a tuple state; a list is accepted too, and
    sol(t) has the state's structure."""
    prob = dss.ODEProblem(lambda u, p, t: [-u[0], 2 * u[1]], (torch.tensor(1.0), torch.ones(3)), (0.0, 1.0))
    sol = dss.solve(prob, dss.DP5(), rtol=1e-10, atol=1e-10)
    mid = sol(0.5)
    assert isinstance(mid, tuple) and mid[1].shape == (3,)
    assert abs(float(mid[0]) - torch.exp(torch.tensor(-0.5))) < 1e-9
    assert torch.allclose(sol.u[1][-1], torch.full((3,), torch.exp(torch.tensor(2.0)).item()), rtol=1e-9)


@pytest.mark.parametrize("sensealg", SENSEALGS[:3], ids=repr)
def test_module_field_with_tree_state_and_per_sample(sensealg):
    """An nn.Module f on a tuple state keeps its parameters visible to the continuous
    adjoints; per-sample stepping keeps the leaves' shared batch dimension."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, u, p, t):
            z = torch.tanh(self.net(torch.cat(u, -1)))
            return z[:, :2], z[:, 2:]

    u0 = (torch.randn(4, 2), torch.randn(4, 1))
    grads = []
    for per_sample in (False, True):
        sol = dss.solve(dss.ODEProblem(Field(), u0, (0.0, 1.0)), dss.Tsit5(), saveat=[1.0], sensealg=sensealg,
                        per_sample=per_sample, rtol=1e-10, atol=1e-10)
        assert sol.u[0].shape == (1, 4, 2) and sol.u[1].shape == (1, 4, 1)
        grads.append(torch.autograd.grad(sol.u[0].sum() + sol.u[1].pow(2).sum(), net.weight)[0])
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


def test_norm_sees_the_structure():
    """A callable norm receives the scaled error in the state's structure (torchdiffeq
    tests/norm_tests.py::TestNorms::test_norm checks the tuple it gets)."""
    seen = []

    def norm(q):
        seen.append(type(q))
        assert isinstance(q, dict) and q["a"].shape == () and q["b"].shape == (2, 2)
        return q["a"].abs()

    u0 = {"a": torch.tensor(1.0), "b": torch.tensor([[0.5, 0.5], [0.1, 0.1]])}
    sol = dss.solve(dss.ODEProblem(lambda u, p, t: u, u0, (0.0, 1.0)), dss.Tsit5(), norm=norm)
    assert sol.successful and seen and all(s is dict for s in seen)


def test_pytree_bad_input():
    with pytest.raises(TypeError, match=r"u0\[1\] has dtype torch.float32 .* u0\[0\] has torch.float64"):
        dss.ODEProblem(lambda u, p, t: u, (torch.ones(2), torch.ones(2, dtype=torch.float32)), (0.0, 1.0))
    prob = dss.ODEProblem(lambda u, p, t: (u[0],), (torch.ones(2), torch.ones(1)), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"f\(u, p, t\) has a different structure than u0"):
        dss.solve(prob, dss.Tsit5())
    prob = dss.ODEProblem(lambda u, p, t: {"a": u["a"], "b": u["b"][:1]}, {"a": torch.ones(2), "b": torch.ones(2)},
                          (0.0, 1.0))
    with pytest.raises(ValueError, match=r"f\(u, p, t\)\['b'\] has shape \(1,\) but u0\['b'\] has shape \(2,\)"):
        dss.solve(prob, dss.Tsit5())
    prob = dss.ODEProblem(lambda u, p, t: u, (torch.ones(3, 2), torch.ones(2, 1)), (0.0, 1.0))
    with pytest.raises(ValueError, match="share a leading batch dimension"):
        dss.solve(prob, dss.Tsit5(), per_sample=True)
    with pytest.raises(ValueError, match="tensor rtol/atol"):
        dss.solve(prob, dss.Tsit5(), rtol=torch.full((3, 2), 1e-3))
    assert dss.ODEProblem(lambda u, p, t: u, [1.0, 2.0], (0.0, 1.0)).u0.shape == (2,)  # numbers: one tensor
