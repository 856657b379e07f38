"""WENO5 finite volumes for the MP-PDE combined equation: convergence orders, fluxes,
conservation, the benchmark families and bad input."""

import math

import numpy as np
import pytest
import torch

from diffsim import solvers as dss
from diffsim.solvers.pde import CombinedEquation, Forcing, godunov_burgers, rusanov_burgers

L = 2 * math.pi


def cell_avg_sine(nx, shift=1.5):
    h = L / nx
    xc = torch.arange(nx) * h
    return shift + torch.sin(xc) * math.sin(h / 2) / (h / 2), xc, h


def slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


@pytest.mark.parametrize("weights", ["js", "z"])
def test_weno5_convection_is_fifth_order_on_smooth_data(weights):
    errs, hs = [], []
    for nx in (16, 32, 64, 128):
        u, xc, h = cell_avg_sine(nx)
        f = CombinedEquation(nx, L, alpha=0.5, weights=weights)

        def F(x):
            return 0.5 * (1.5 + torch.sin(x)) ** 2

        exact = -(F(xc + h / 2) - F(xc - h / 2)) / h
        errs.append(float((f(u) - exact).abs().max()))
        hs.append(h)
    assert slope(hs, errs) == pytest.approx(5.0, abs=0.3)


@pytest.mark.parametrize("term", ["beta", "gamma"])
def test_diffusion_and_dispersion_fluxes_are_fourth_order(term):
    errs, hs = [], []
    for nx in (16, 32, 64, 128):
        u, xc, h = cell_avg_sine(nx)
        f = CombinedEquation(nx, L, alpha=0.0, **{term: 1.0})
        # flux -u_x (beta) or +u_xx (gamma) of u = 1.5 + sin x
        F = (lambda x: -torch.cos(x)) if term == "beta" else (lambda x: -torch.sin(x))
        exact = -(F(xc + h / 2) - F(xc - h / 2)) / h
        errs.append(float((f(u) - exact).abs().max()))
        hs.append(h)
    assert slope(hs, errs) == pytest.approx(4.0, abs=0.3)


def burgers_exact_cell_averages(nx, t):
    """Cell averages of the smooth inviscid Burgers solution from u0 = sin x (u = u0(x - u t)),
    by Newton on the characteristics and 8-point Gauss-Legendre quadrature per cell."""
    g, w = np.polynomial.legendre.leggauss(8)
    h = L / nx
    x = (np.arange(nx)[:, None] + 0.5 * g[None]) * h
    xi = x.copy()
    for _ in range(50):
        xi -= (xi + t * np.sin(xi) - x) / (1 + t * np.cos(xi))
    return torch.as_tensor((np.sin(xi) * w).sum(1) / 2)


def test_method_of_lines_solve_converges_at_fifth_order_before_the_shock():
    """Inviscid Burgers from sin x to t = 0.3 (the shock forms at t = 1) with Tsit5 at tight
    tolerances: the error against the exact cell averages falls at WENO5's fifth order."""
    errs, hs = [], []
    for nx in (32, 64, 128):
        u0 = burgers_exact_cell_averages(nx, 0.0)
        prob = dss.ODEProblem(CombinedEquation(nx, L, alpha=0.5, weights="z"), u0, (0.0, 0.3))
        u1 = dss.solve(prob, dss.Tsit5(), rtol=1e-12, atol=1e-13, saveat=[0.3]).u[-1]
        errs.append(float((u1 - burgers_exact_cell_averages(nx, 0.3)).abs().max()))
        hs.append(L / nx)
    assert slope(hs, errs) == pytest.approx(5.0, abs=0.5)


def test_godunov_flux_picks_the_riemann_solution():
    a = torch.tensor([1.0, -1.0, -1.0, 2.0, 1.0])
    b = torch.tensor([2.0, -2.0, 1.0, -1.0, -2.0])
    # right-moving, left-moving, transonic rarefaction (sonic point: flux 0), shocks
    expect = torch.tensor([0.5, 2.0, 0.0, 2.0, 2.0])
    assert torch.allclose(godunov_burgers(a, b), expect)
    same = torch.linspace(-2, 2, 9)
    assert torch.allclose(godunov_burgers(same, same), 0.5 * same ** 2)
    assert torch.allclose(rusanov_burgers(same, same), 0.5 * same ** 2)


@pytest.mark.parametrize("flux", ["godunov", "rusanov"])
def test_unforced_scheme_conserves_the_integral(flux):
    torch.manual_seed(0)
    u = torch.randn(3, 50)
    f = CombinedEquation(50, 16.0, alpha=torch.tensor([0.5, 1.0, 2.0]), beta=torch.tensor([0.0, 0.1, 0.3]),
                         gamma=torch.tensor([0.0, 0.5, 1.0]), flux=flux)
    assert f(u).sum(-1).abs().max() < 1e-12


def test_forcing_is_averaged_over_cells_exactly():
    A, w_, phi, l = (torch.tensor([[0.3, -0.2]]), torch.tensor([[0.1, -0.3]]), torch.tensor([[0.5, 2.0]]),
                     torch.tensor([[1, 3]]))
    forcing = Forcing(A, w_, phi, l, 16.0)
    nx, t = 8, 0.7
    h = 16.0 / nx
    g, w = np.polynomial.legendre.leggauss(16)
    x = torch.as_tensor((np.arange(nx)[:, None] + 0.5 * g[None]) * h)  # cells centred at i h
    point = (A[0, :, None, None] * torch.sin(w_[0, :, None, None] * t + 2 * math.pi * l[0, :, None, None] * x / 16.0
                                             + phi[0, :, None, None])).sum(0)
    quad = (point * torch.as_tensor(w)).sum(1) / 2
    assert torch.allclose(forcing.cell_average(t, nx)[0], quad, atol=1e-12)


def test_families_match_the_paper_and_sample_reproducibly():
    assert dss.pde.E1.alpha == (0.5, 0.5) and dss.pde.E1.beta == (0.0, 0.0) and dss.pde.E1.tmax == 4.0
    assert dss.pde.E2.beta == (0.0, 0.2) and dss.pde.E2.varying == ("beta",)
    assert dss.pde.E3.varying == ("alpha", "beta", "gamma") and dss.pde.E3.alpha == (0.0, 3.0)
    assert dss.pde.E1.nt == 250 and dss.pde.E1.L == 16.0 and dss.pde.E1.J == 5
    a = dss.pde.E3.sample_index(7, 3)
    b = dss.pde.E3.sample_index(7, 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    big = dss.pde.E3.sample(np.random.default_rng(0), 4000)
    assert set(np.unique(big["l"])) == {1, 2, 3}
    assert big["A"].min() >= -0.5 and big["A"].max() <= 0.5 and np.abs(big["omega"]).max() <= 0.4
    assert big["gamma"].min() >= 0 and big["gamma"].max() <= 1.0


def test_a_family_solves_through_dss_solve_in_a_batch():
    fam = dss.pde.CEFamily("tiny", alpha=0.5, beta=(0.0, 0.2), tmax=0.5, nt=6)
    params = fam.sample(np.random.default_rng(1), 3)
    u, sol = fam.solve(params, 40, rtol=1e-5, atol=1e-7)
    assert u.shape == (3, 6, 40) and sol.successful
    assert torch.allclose(u[:, 0], fam.initial_condition(params, 40))


def test_bad_input_is_reported_with_the_allowed_range():
    with pytest.raises(ValueError, match="nx >= 6"):
        CombinedEquation(4)
    with pytest.raises(ValueError, match="flux"):
        CombinedEquation(16, flux="upwind")
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        CombinedEquation(16, alpha=-1.0)
    with pytest.raises(ValueError, match="unknown PDE family"):
        dss.pde.family("E9")
    with pytest.raises(ValueError, match="lo <= hi"):
        dss.pde.CEFamily("bad", beta=(0.3, 0.1))
