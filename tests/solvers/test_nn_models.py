"""Neural PDE models: shapes, equivariances, graphs, a tiny overfit, neural PDE layers."""

import math

import pytest
import torch

from diffsim import solvers as dss
from diffsim.solvers import nn as dnn


@pytest.fixture(autouse=True)
def one_thread():
    """Small models: a single torch thread avoids oversubscribing a busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_field_models_map_a_window_to_the_next_window():
    u1 = torch.randn(3, 5, 1, 32)
    for m in (dnn.FNO(dim=1, time_window=5, modes=8, width=16, n_cond=2),
              dnn.UNet(dim=1, time_window=5, hidden=8, levels=2, n_cond=2),
              dnn.MPPDE(time_window=5, hidden=32, layers=2, n_cond=2, length=16.0)):
        out = m(u1, t=torch.rand(3), cond=torch.rand(3, 2))
        assert out.shape == u1.shape and torch.isfinite(out).all()
        with pytest.raises(ValueError, match="n_cond=2"):
            m(u1, t=torch.rand(3))
        with pytest.raises(ValueError, match="time_window=5"):
            m(torch.randn(3, 4, 1, 32), t=torch.rand(3), cond=torch.rand(3, 2))
    u2 = torch.randn(2, 4, 3, 16, 24)
    for m in (dnn.FNO(dim=2, time_window=4, channels=3, modes=(6, 5), width=8, padding=4),
              dnn.UNet(dim=2, time_window=4, channels=3, hidden=8, levels=2, periodic=False)):
        assert m(u2).shape == u2.shape


def test_residual_models_start_from_persistence():
    """The MP-PDE decoder form u[-1] + k dt d_k: with a zero network output the
    prediction repeats the last state."""
    m = dnn.FNO(dim=1, time_window=4, modes=4, width=8, dt=0.1)
    torch.nn.init.zeros_(m.project[-1].weight)
    torch.nn.init.zeros_(m.project[-1].bias)
    u = torch.randn(2, 4, 1, 16)
    assert torch.allclose(m(u), u[:, -1:].expand_as(u))


def test_fno_is_translation_equivariant_on_periodic_grids():
    torch.manual_seed(0)
    m = dnn.FNO(dim=1, time_window=3, modes=6, width=12)
    u = torch.randn(2, 3, 1, 24)
    out = m(u)
    for s in (1, 5, 11):
        assert torch.allclose(m(torch.roll(u, s, -1)), torch.roll(out, s, -1), atol=1e-10)
    m2 = dnn.FNO(dim=2, time_window=2, channels=2, modes=4, width=8)
    v = torch.randn(1, 2, 2, 12, 10)
    assert torch.allclose(m2(torch.roll(v, (3, 4), (-2, -1))), torch.roll(m2(v), (3, 4), (-2, -1)), atol=1e-10)


def test_mppde_is_equivariant_to_translations_without_absolute_positions():
    torch.manual_seed(0)
    m = dnn.MPPDE(time_window=4, hidden=32, layers=3, length=16.0, use_position=False)
    u = torch.randn(2, 4, 1, 20)
    out = m(u, t=torch.zeros(2))
    assert torch.allclose(m(torch.roll(u, 7, -1), t=torch.zeros(2)), torch.roll(out, 7, -1), atol=1e-10)


@pytest.mark.parametrize("n, neighbors", [(20, 3), (7, 3), (9, 1)])
def test_mppde_grid_path_equals_the_edge_path(n, neighbors):
    """On a periodic regular grid MPPDE gathers neighbours by rolls; the result (and its
    gradient) equals message passing over the explicit grid graph."""
    torch.manual_seed(0)
    m = dnn.MPPDE(time_window=5, hidden=16, layers=2, n_cond=2, length=16.0, neighbors=neighbors).double()
    u = torch.randn(3, 5, 1, n)
    t, c = torch.rand(3), torch.rand(3, 2)
    grid = m._predict(u, t, c, None)
    edge = m._predict(u, t, c, None, edge_index=dnn.grid_graph_1d(n, neighbors, 3))
    assert torch.allclose(grid, edge, atol=1e-13)
    g1 = torch.autograd.grad(grid.square().sum(), m.layers[0].message_in.weight)[0]
    g2 = torch.autograd.grad(edge.square().sum(), m.layers[0].message_in.weight)[0]
    assert torch.allclose(g1, g2, atol=1e-12)
    with pytest.raises(ValueError, match="neighbors=4"):
        dnn.MPPDE(time_window=5, hidden=8, layers=1, neighbors=4)(torch.randn(1, 5, 1, 8))


def test_gns_is_permutation_equivariant():
    torch.manual_seed(0)
    m = dnn.GNS(dim=2, history=3, n_types=3, radius=0.15, hidden=16, message_steps=2)
    pos = torch.rand(60, 4, 2) * 0.02 + torch.rand(60, 1, 2) * 0.9 + 0.05
    types = torch.randint(0, 3, (60,))
    perm = torch.randperm(60)
    a = m(pos, types)
    b = m(pos[perm], types[perm])
    assert torch.allclose(a[perm], b, atol=1e-10)
    assert m.rollout(pos, types, 3).shape == (3, 60, 2)


@pytest.mark.parametrize("box", [None, (1.0, 1.0)])
def test_radius_graph_matches_brute_force(box):
    torch.manual_seed(1)
    pos = torch.rand(300, 2)
    batch = torch.randint(0, 2, (300,))
    e = dnn.radius_graph(pos, 0.1, batch, box=box)
    d = pos[:, None] - pos[None]
    if box is not None:
        d = d - torch.tensor(box) * torch.round(d / torch.tensor(box))
    adj = (d.pow(2).sum(-1) < 0.01) & (batch[:, None] == batch[None])
    adj.fill_diagonal_(False)
    want = {(int(s), int(r)) for r, s in torch.nonzero(adj).tolist()}
    assert set(map(tuple, e.t().tolist())) == want


def test_grid_graph_is_the_radius_graph_of_a_periodic_grid():
    e = dnn.grid_graph_1d(10, 2, batch=2)
    x = (torch.arange(10.0) * 0.1).repeat(2)[:, None]
    b = torch.arange(2).repeat_interleave(10)
    r = dnn.radius_graph(x, 0.25, b, box=(1.0,))
    assert set(map(tuple, e.t().tolist())) == set(map(tuple, r.t().tolist()))


def test_a_tiny_fno_overfits_one_batch():
    torch.manual_seed(0)
    x = torch.linspace(0, 2 * math.pi, 33)[:-1]
    u = torch.stack([torch.sin(x + p) for p in torch.linspace(0, 1, 8)])  # (8, 32) waves
    inp = torch.stack([u.roll(k, -1) for k in range(2)], 1)[:, :, None]
    target = torch.stack([u.roll(k, -1) for k in range(2, 4)], 1)[:, :, None]
    m = dnn.FNO(dim=1, time_window=2, modes=8, width=16, residual=False)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss = torch.nn.functional.mse_loss(m(inp), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * first


def test_spectral_conv_handles_fewer_points_than_modes():
    sc = dnn.SpectralConv(2, 3, (16,))
    assert sc(torch.randn(1, 2, 10)).shape == (1, 3, 10)


@pytest.mark.parametrize("n, modes", [(32, 8), (33, 8), (10, 6), (9, 16), (100, 16)])
def test_dft_matrices_are_the_truncated_rfft_and_irfft(n, modes):
    """The 1D FNO path replaces rfft/irfft by matrix products: the same numbers in float64,
    including the mean and Nyquist modes whose imaginary parts irfft drops."""
    from diffsim.solvers.nn.fno import dft_matrices

    m = min(modes, n // 2 + 1)
    fwd, inv = dft_matrices(n, m, torch.float64, "cpu")
    x = torch.randn(n, 5, dtype=torch.float64)
    xf = torch.fft.rfft(x, dim=0, norm="ortho")[:m]
    assert torch.allclose(fwd @ x, torch.cat((xf.real, xf.imag)), atol=1e-13)
    y = torch.complex(torch.randn(m, 5, dtype=torch.float64), torch.randn(m, 5, dtype=torch.float64))
    full = torch.zeros(n // 2 + 1, 5, dtype=torch.complex128)
    full[:m] = y
    assert torch.allclose(inv @ torch.cat((y.real, y.imag)), torch.fft.irfft(full, n=n, dim=0, norm="ortho"),
                          atol=1e-13)


def test_spectral_conv_1d_matrix_path_equals_the_fft_path():
    torch.manual_seed(0)
    for n, modes in ((40, 12), (10, 16)):
        sc = dnn.SpectralConv(3, 4, (modes,)).double()
        x = torch.randn(2, 3, n, dtype=torch.float64)
        ref = sc(x)
        assert torch.allclose(sc.forward_1d(x.permute(2, 0, 1)).permute(1, 2, 0), ref, atol=1e-13)
        # gradients reach the weights through both paths alike
        g1, = torch.autograd.grad(ref.square().sum(), sc.weight)
        g2, = torch.autograd.grad(sc.forward_1d(x.permute(2, 0, 1)).square().sum(), sc.weight)
        assert torch.allclose(g1, g2, atol=1e-12)
    with torch.inference_mode():  # matrices cached under inference mode stay usable for training
        sc.forward_1d(torch.randn(7, 1, 3, dtype=torch.float64))
    sc.forward_1d(torch.randn(7, 1, 3, dtype=torch.float64)).sum().backward()


# ------------------------------------------------------------------ neural PDE layers
def burgers_layer(nx=24, sensealg=None, regularization=None, physics=True):
    flux = dnn.StencilFlux(stencil=4, hidden=8)
    torch.nn.init.normal_(flux.net[-1].weight, std=0.05)
    phys = dss.pde.CombinedEquation(nx, 16.0, alpha=0.5) if physics else None
    rhs = dnn.FiniteVolume1D(nx, 16.0, flux=flux, physics=phys)
    return dnn.NeuralPDE(rhs, (0.0, 0.5), sensealg=sensealg, regularization=regularization, rtol=1e-7,
                         atol=1e-9)


def test_learned_flux_keeps_the_scheme_conservative_and_equivariant():
    torch.manual_seed(0)
    layer = burgers_layer()
    u = torch.randn(2, 24)
    du = layer.rhs.rate(u, 0.0, None, None)
    assert du.sum(-1).abs().max() < 1e-12
    assert torch.allclose(layer.rhs.rate(u.roll(5, -1), 0.0, None, None), du.roll(5, -1), atol=1e-12)


def test_neural_pde_gradients_agree_across_sensitivity_algorithms():
    torch.manual_seed(0)
    u0 = torch.sin(torch.arange(24) * 2 * math.pi / 24)[None].repeat(2, 1) * torch.tensor([[1.0], [0.5]])
    grads = {}
    for name, alg in (("direct", dss.DirectAdjoint()), ("interp", dss.InterpolatingAdjoint()),
                      ("quad", dss.QuadratureAdjoint()), ("backsolve", dss.BacksolveAdjoint())):
        torch.manual_seed(1)
        layer = burgers_layer(sensealg=alg)
        sol = layer(u0, saveat=[0.25, 0.5])
        sol.u.pow(2).sum().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in layer.parameters()])
    for name in ("interp", "quad", "backsolve"):
        rel = (grads[name] - grads["direct"]).norm() / grads["direct"].norm()
        assert rel < 1e-4, name


def test_neural_pde_gradient_matches_central_differences():
    torch.manual_seed(0)
    layer = burgers_layer(nx=16, physics=False)
    layer.solve_kwargs.update(rtol=1e-10, atol=1e-12)
    u0 = torch.sin(torch.arange(16) * 2 * math.pi / 16)[None]
    w = layer.rhs.flux.net[0].weight

    def loss():
        return layer(u0, saveat=[0.5]).u[-1].pow(2).sum()

    loss().backward()
    analytic = w.grad[3, 0, 1].item()
    eps = 1e-5
    with torch.no_grad():
        w[3, 0, 1] += eps
        up = loss().item()
        w[3, 0, 1] -= 2 * eps
        down = loss().item()
        w[3, 0, 1] += eps
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-10)


def test_local_regularization_reaches_the_learned_flux():
    torch.manual_seed(0)
    layer = burgers_layer(regularization=dss.LocalRegularization(coeff=1.0))
    u0 = torch.sin(torch.arange(24) * 2 * math.pi / 24)[None]
    sol = layer(u0, saveat=[0.5], generator=torch.Generator().manual_seed(0))
    assert sol.reg > 0 and sol.stats.nfe_reg > 0
    sol.reg.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_general_covariance_warp_is_a_monotone_periodic_map():
    aug = dnn.GeneralCovariance(strength=0.5, modes=3)
    d = aug.draw(torch.Generator().manual_seed(0), 16)
    x = torch.linspace(0, 16.0, 401, dtype=torch.float64)
    xi = aug.warp(x, d["a"], d["theta"], 16.0)
    assert (xi.diff(dim=-1) > 0).all()
    assert torch.allclose(xi[:, -1] - xi[:, 0], torch.full((16,), 16.0, dtype=torch.float64))
    ident = dnn.GeneralCovariance(strength=0.0).draw(torch.Generator(), 2)
    data = dss.pde.FieldData(u=torch.randn(2, 5, 1, 20), t=torch.arange(5.0), coords=(torch.arange(20.0),),
                             lengths=(16.0,), periodic=True, cond=torch.zeros(2, 0))
    span = torch.randn(2, 5, 1, 20)
    same, pos = dnn.GeneralCovariance(strength=0.0).apply(span, ident, data)
    assert torch.allclose(same, span, atol=1e-6)
    with pytest.raises(ValueError, match="strength"):
        dnn.GeneralCovariance(strength=1.0)
