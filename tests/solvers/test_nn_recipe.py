"""The pieces of the MP-PDE training recipe (Brandstetter et al. 2022): the pushforward
schedule, temporal bundling and the pushforward unroll in the loss, the loss forms, input
noise, and the accumulated-error metric against an independent port of the authors'
``test_unrolled_losses`` (experiments/train_helper.py of MP-Neural-PDE-Solvers)."""

import math

import pytest
import torch
from torch import nn

from diffsim import solvers as dss
from diffsim.solvers import nn as dnn
from diffsim.solvers.nn.base import AbstractFieldModel


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def field_data(n=5, nt=30, nx=12, seed=0, baseline=False):
    """Random smooth trajectories with a known time grid (the dynamics do not matter here)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(nt, dtype=torch.float64) * 0.1
    x = torch.arange(nx, dtype=torch.float64) * (2 * math.pi / nx)
    a = torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    u = a * torch.sin(x[None, None] - t[None, :, None] * (1 + a)) + 0.1 * torch.randn(n, nt, nx, generator=g,
                                                                                         dtype=torch.float64)
    base = u + 0.05 * torch.randn(u.shape, generator=g, dtype=torch.float64) if baseline else None
    return dss.pde.FieldData(u=u[:, :, None], t=t, coords=(x,), lengths=(2 * math.pi,), periodic=True,
                             cond=a[:, 0, :], cond_names=("a",), cond_scale=torch.ones(1, dtype=torch.float64),
                             baseline=None if base is None else base[:, :, None])


class Affine(AbstractFieldModel):
    """A known window map: next window = 0.9 * reversed(window) + 0.01 * t (differentiable in ``scale``)."""

    def __init__(self, time_window):
        super().__init__()
        self._setup(time_window=time_window, channels=1, dim=1, n_cond=1, dt=0.1, t_scale=1.0, residual=False,
                    config={})
        self.scale = nn.Parameter(torch.tensor(0.9, dtype=torch.float64))

    def _predict(self, u, t, cond, pos):
        return self.scale * u.flip(1) + 0.01 * t.view(-1, 1, 1, 1)


def test_pushforward_schedule_ramps_from_its_start_epoch():
    d = field_data(nt=40)
    paper = dnn.FieldTask(d, 4, unrolling=1)  # the paper: one-step training in epoch 0, then r in {0, 1}
    assert [paper.max_unroll(e) for e in range(4)] == [0, 1, 1, 1]
    late = dnn.FieldTask(d, 4, unrolling=3, pushforward_start=5)
    assert [late.max_unroll(e) for e in (0, 4, 5, 6, 7, 8, 50)] == [0, 0, 1, 2, 3, 3, 3]
    assert [dnn.FieldTask(d, 4, unrolling=0).max_unroll(e) for e in (0, 9)] == [0, 0]
    g = torch.Generator().manual_seed(0)
    assert {late.sample(g, 2, 4)["r"] for _ in range(30)} == {0}
    assert {late.sample(g, 2, 7)["r"] for _ in range(80)} == {0, 1, 2, 3}
    for _ in range(50):  # every drawn window, unrolls included, lies inside the trajectory
        b = late.sample(g, 16, 9)
        assert (b["start"] >= 4).all() and (b["start"] + 4 * (b["r"] + 1) <= d.nt).all()
    with pytest.raises(ValueError, match="pushforward_start"):
        dnn.FieldTask(d, 4, pushforward_start=-1)


@pytest.mark.parametrize("r", [0, 1, 2])
def test_loss_unrolls_the_model_then_scores_the_bundled_window(r):
    """Input = the tw states before s; r windows of the model's own predictions (no
    gradient); target = the tw states r windows later; time = that of the last input."""
    d = field_data(nt=30)
    tw = 4
    task = dnn.FieldTask(d, tw, unrolling=2, loss="mse")
    model = Affine(tw)
    batch = {"idx": torch.tensor([1, 3]), "start": torch.tensor([4, 9]), "r": r}
    loss = task.loss(model, batch)
    errs = []
    for i, s in zip((1, 3), (4, 9)):
        u = d.u[i:i + 1]
        inp = u[:, s - tw:s]
        for k in range(r):
            inp = 0.9 * inp.flip(1) + 0.01 * d.t[s + k * tw - 1]
        pred = 0.9 * inp.flip(1) + 0.01 * d.t[s + r * tw - 1]
        errs.append(pred - u[:, s + r * tw:s + (r + 1) * tw])
    err = torch.cat(errs)
    assert torch.allclose(loss, err.square().mean(), rtol=1e-12)
    loss.backward()  # the gradient flows through the last window only (pushforward)
    manual = 0.0
    for i, s in zip((1, 3), (4, 9)):
        u = d.u[i:i + 1]
        inp = u[:, s - tw:s]
        for k in range(r):
            inp = 0.9 * inp.flip(1) + 0.01 * d.t[s + k * tw - 1]
        e = 0.9 * inp.flip(1) + 0.01 * d.t[s + r * tw - 1] - u[:, s + r * tw:s + (r + 1) * tw]
        manual = manual + (2 * e * inp.flip(1)).sum()
    assert torch.allclose(model.scale.grad, manual / err.numel(), rtol=1e-10)


def test_l2_loss_is_the_root_of_the_batch_sum_of_squares():
    d = field_data()
    model = Affine(4)
    batch = {"idx": torch.tensor([0, 2, 4]), "start": torch.tensor([4, 8, 20]), "r": 1}
    mse = dnn.FieldTask(d, 4, loss="mse").loss(model, batch)
    l2 = dnn.FieldTask(d, 4, loss="l2").loss(model, batch)
    n = 3 * 4 * 1 * d.u.shape[-1]
    assert torch.allclose(l2, (mse * n).sqrt(), rtol=1e-12)
    with pytest.raises(ValueError, match="loss='mae'"):
        dnn.FieldTask(d, 4, loss="mae")


def test_input_noise_perturbs_inputs_only_and_is_reproducible():
    d = field_data()
    g = torch.Generator().manual_seed(3)
    noisy = dnn.FieldTask(d, 4, noise_std=0.1)
    clean = dnn.FieldTask(d, 4)
    batch = noisy.sample(g, 4, 0)
    model = Affine(4)
    a, b = noisy.loss(model, batch), noisy.loss(model, batch)
    assert torch.equal(a, b) and not torch.allclose(a, clean.loss(model, batch))
    with torch.no_grad():  # a model that ignores its input: noise on the inputs cannot change the loss
        model.scale.zero_()
    assert torch.allclose(noisy.loss(model, batch), clean.loss(model, batch), rtol=1e-14)
    with pytest.raises(ValueError, match="noise_std"):
        dnn.FieldTask(d, 4, noise_std=-1.0)


def paper_unrolled_loss(model, data, tw, nr_gt_steps=2, batch_size=2):
    """Port of ``test_unrolled_losses`` (MP-Neural-PDE-Solvers, experiments/train_helper.py):
    MSELoss(reduction="sum") / nx / batch_size per window, summed over the unrolled windows,
    mean over the batches; and the same for the numerical baseline."""
    crit = nn.MSELoss(reduction="sum")
    nx, t_res = data.u.shape[-1], data.nt
    losses, losses_base = [], []
    for lo in range(0, data.n, batch_size):
        u = data.u[lo:lo + batch_size, :, 0]
        base = data.baseline[lo:lo + batch_size, :, 0]
        cond = data.cond[lo:lo + batch_size]
        tmp, tmp_base = [], []
        step = tw * nr_gt_steps
        inp = u[:, step - tw:step]
        pred = model(inp[:, :, None], t=data.t[step - 1].expand(len(u)), cond=cond)[:, :, 0]
        tmp.append(crit(pred, u[:, step:step + tw]) / nx / batch_size)
        for step in range(tw * (nr_gt_steps + 1), t_res - tw + 1, tw):
            pred = model(pred[:, :, None], t=data.t[step - 1].expand(len(u)), cond=cond)[:, :, 0]
            tmp.append(crit(pred, u[:, step:step + tw]) / nx / batch_size)
        for step in range(tw * nr_gt_steps, t_res - tw + 1, tw):
            tmp_base.append(crit(u[:, step:step + tw], base[:, step:step + tw]) / nx / batch_size)
        losses.append(torch.stack(tmp).sum())
        losses_base.append(torch.stack(tmp_base).sum())
    return torch.stack(losses).mean(), torch.stack(losses_base).mean()


def test_accumulated_error_is_the_papers_metric():
    d = field_data(n=6, nt=22, nx=10, baseline=True)  # nt = 2 warm-up windows + 3 windows of 4 + 2 spare states
    model = Affine(4)
    with torch.no_grad():
        ref, ref_base = paper_unrolled_loss(model, d, 4)
    res = dss.pde.evaluate(model, d, 4, warmup=2, batch_size=4)
    assert math.isclose(res.accumulated, float(ref), rel_tol=1e-10)
    assert math.isclose(res.baseline_accumulated, float(ref_base), rel_tol=1e-10)
    # 200 predicted states of the benchmark: (250 - 2 * 25) // 25 = 8 windows
    assert int((res.mse_per_time > 0).sum()) == 12
