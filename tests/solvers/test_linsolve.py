"""Our torch GMRES / CG against scipy.sparse.linalg's on the same systems: same solution,
same iteration counts (same algorithms, same stopping rule ||r|| <= rtol ||b||)."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from diffsim.solvers.implicit import cg, gmres
from diffsim.solvers.implicit.linsolve import cg_definite


def system(n, seed, shift=8.0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) + shift * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return A, b


@pytest.mark.parametrize("restart", [20, 60])
def test_gmres_matches_scipy(restart):
    A, b = system(60, 0)
    ours = gmres(lambda v: A @ v, b, rtol=1e-12, restart=restart)
    count = [0]
    x, info = sla.gmres(A.numpy(), b.numpy(), rtol=1e-12, restart=restart, maxiter=1000, callback_type="pr_norm",
                        callback=lambda r: count.__setitem__(0, count[0] + 1))
    assert ours.converged and info == 0
    assert np.allclose(ours.x.numpy(), x, atol=1e-10)
    assert torch.allclose(ours.x, torch.linalg.solve(A, b), atol=1e-10)
    assert ours.iterations == count[0]
    assert ours.residual <= 1e-12 * float(torch.linalg.vector_norm(b))


def test_cg_matches_scipy_and_detects_indefinite():
    A, b = system(50, 1, shift=0.0)
    S = A @ A.T + 0.5 * torch.eye(50, dtype=torch.float64)
    ours = cg(lambda v: S @ v, b, rtol=1e-10)
    count = [0]
    x, info = sla.cg(S.numpy(), b.numpy(), rtol=1e-10, maxiter=2000,
                     callback=lambda xk: count.__setitem__(0, count[0] + 1))
    assert ours.converged and info == 0
    assert np.allclose(ours.x.numpy(), x, atol=1e-7)
    assert abs(ours.iterations - count[0]) <= 1
    # an indefinite matrix is reported, not silently "solved"
    bad = cg(lambda v: S @ v - 30.0 * v, b)
    assert bad.breakdown == "indefinite" and not bad.converged
    # a negative definite one is solved by cg_definite
    neg = cg_definite(lambda v: -(S @ v), b, rtol=1e-10)
    assert neg.converged and torch.allclose(neg.x, -torch.linalg.solve(S, b), atol=1e-7)


def test_shapes_and_float32():
    A, b = system(12, 2)
    Ab = A.float()
    B = b.float().reshape(3, 4)
    res = gmres(lambda V: (Ab @ V.reshape(-1)).reshape(3, 4), B, rtol=1e-5)
    assert res.converged and res.x.shape == (3, 4) and res.x.dtype == torch.float32
    assert torch.allclose(res.x.reshape(-1).double(), torch.linalg.solve(A, b), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="square"):
        gmres(lambda v: v[:3], b)
    with pytest.raises(ValueError, match="restart"):
        gmres(lambda v: v, b, restart=0)
    stalled = gmres(lambda v: A @ v, b, rtol=1e-14, maxiter=3)
    assert not stalled.converged and stalled.iterations == 3
