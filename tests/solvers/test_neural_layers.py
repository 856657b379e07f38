"""NeuralODE / NeuralSDE layers compose with torch models and train."""

import torch

from diffsim import solvers as dss


def test_neural_ode_layer_trains_and_composes():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    layer = dss.NeuralODE(net, (0.0, 1.0), dss.Tsit5(), dss.InterpolatingAdjoint(), dss.LocalRegularization(coeff=0.1),
                          rtol=1e-4, atol=1e-6, saveat=[1.0])
    head = torch.nn.Linear(2, 1)
    model_params = list(layer.parameters()) + list(head.parameters())
    assert len(list(layer.parameters())) == 4  # the net's weights are the layer's
    opt = torch.optim.Adam(model_params, lr=1e-2)
    x = torch.randn(64, 2)
    y = (x[:, :1] * x[:, 1:]).tanh()
    losses = []
    for _ in range(40):
        sol = layer(x)
        loss = (head(sol.u[-1]) - y).pow(2).mean() + sol.reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert sol.stats.nfe_backward > 0 and sol.stats.nfe_reg > 0
    assert "InterpolatingAdjoint" in repr(layer)


def test_neural_ode_time_dependent_and_callable():
    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, u, t):
            return self.lin(torch.cat([u, t.expand(u.shape[0], 1)], 1))

    layer = dss.NeuralODE(TNet(), (0.0, 1.0), time_dependent=True)
    assert layer(torch.randn(4, 2), saveat=[0.5, 1.0]).u.shape == (2, 4, 2)
    theta = torch.tensor(0.3, requires_grad=True)
    layer = dss.NeuralODE(lambda u, p, t: -p * u, (0.0, 1.0), p=theta, saveat=[1.0], rtol=1e-8, atol=1e-8)
    out = layer(torch.ones(3)).u[-1].sum()
    (g,) = torch.autograd.grad(out, theta)
    assert abs(float(g) + 3 * torch.exp(torch.tensor(-0.3))) < 1e-6


def test_neural_sde_layer():
    torch.manual_seed(0)
    drift = torch.nn.Linear(2, 2)
    diffusion = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Softplus())
    layer = dss.NeuralSDE(drift, diffusion, (0.0, 1.0), dss.EulerMaruyama(), dt=0.05)
    a = layer(torch.ones(8, 2), seed=3, saveat=[1.0])
    b = layer(torch.ones(8, 2), seed=3, saveat=[1.0])
    assert torch.equal(a.u, b.u)
    a.u.sum().backward()
    assert drift.weight.grad is not None and diffusion[0].weight.grad is not None
