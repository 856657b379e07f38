"""Training: checkpoints (weights_only), exact resumption, model rebuilding, bad checkpoints,
the ``diffsim train`` command line, GNS training, and DDP on two CPU processes (slow)."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from diffsim import solvers as dss
from diffsim.solvers import nn as dnn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def waves(n=6, nt=12, nx=16, seed=0):
    """Travelling waves u(t, x) = a sin(k x - c t + p): a field data set with exact dynamics."""
    g = torch.Generator().manual_seed(seed)
    a, c, p = torch.rand(n, 1, 1, generator=g) + 0.5, torch.rand(n, 1, 1, generator=g), torch.rand(n, 1, 1, generator=g)
    t = torch.arange(nt, dtype=torch.float64) * 0.1
    x = torch.arange(nx, dtype=torch.float64) * (2 * math.pi / nx)
    u = a * torch.sin(x[None, None] - c * t[None, :, None] + 6 * p)
    return dss.pde.FieldData(u=u[:, :, None], t=t, coords=(x,), lengths=(2 * math.pi,), periodic=True,
                             cond=c[:, 0], cond_names=("c",), cond_scale=torch.ones(1))


def make(tmp_path, name, **cfg):
    torch.manual_seed(0)
    model = dnn.FNO(dim=1, time_window=3, modes=4, width=8, n_cond=1, dt=0.1, t_scale=1.2)
    task = dnn.FieldTask(waves(), 3, unrolling=1, valid=waves(2, seed=1), warmup=1)
    config = dnn.TrainConfig(epochs=3, batch_size=4, steps_per_epoch=3, lr=3e-3, progress=False,
                             checkpoint=str(tmp_path / name), **cfg)
    return dnn.Trainer(model, task, config)


def test_interrupted_training_resumes_exactly_where_it_stopped(tmp_path):
    straight = make(tmp_path, "a.pt")
    straight.fit()
    first = make(tmp_path, "b.pt", max_steps=4)  # stops inside epoch 1
    first.fit()
    assert (first.epoch, first.step_in_epoch, first.global_step) == (1, 1, 4)
    resumed = make(tmp_path, "b.pt")  # a fresh process would do exactly this
    assert resumed.global_step == 4
    resumed.fit()
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history[-1]["valid_accumulated"] == straight.history[-1]["valid_accumulated"]
    # a finished run does nothing more when called again
    again = make(tmp_path, "a.pt")
    assert again.fit() == straight.history and again.global_step == 9


def test_checkpoints_load_with_weights_only_and_rebuild_the_model(tmp_path):
    tr = make(tmp_path, "c.pt")
    tr.fit()
    ck = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ck["model_class"] == "FNO" and ck["epoch"] == 3 and len(ck["generators"]) == 1
    model = dnn.load_model(tmp_path / "c.pt", best=False)
    u = waves().u[:2, :3]
    cond = torch.rand(2, 1)
    assert torch.equal(model(u, cond=cond), tr.model(u, cond=cond))
    best = dnn.load_model(tmp_path / "c.pt")
    assert isinstance(best, dnn.FNO)
    m = dnn.MPPDE(time_window=3, hidden=16, layers=1)
    assert isinstance(dnn.build_model("MPPDE", m.config), dnn.MPPDE)


def test_foreign_or_corrupted_checkpoints_are_refused(tmp_path):
    make(tmp_path, "d.pt").fit()
    other = dnn.FNO(dim=1, time_window=3, modes=4, width=16, n_cond=1)
    task = dnn.FieldTask(waves(), 3)
    with pytest.raises(ValueError, match="is for FNO"):
        dnn.Trainer(other, task, dnn.TrainConfig(checkpoint=str(tmp_path / "d.pt"), progress=False))
    bad = tmp_path / "bad.pt"
    bad.write_bytes((tmp_path / "d.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        dnn.load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a dss.nn.Trainer checkpoint"):
        dnn.load_checkpoint(tmp_path / "plain.pt")


def test_bad_training_settings():
    with pytest.raises(ValueError, match="epochs"):
        dnn.TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="schedule"):
        dnn.TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="too short"):
        dnn.FieldTask(waves(nt=5), 3)


def test_pushforward_unrolls_grow_with_the_epoch():
    task = dnn.FieldTask(waves(nt=20), 3, unrolling=2)
    g = torch.Generator().manual_seed(0)
    assert {task.sample(g, 2, 0)["r"] for _ in range(20)} == {0}
    assert {task.sample(g, 2, 5)["r"] for _ in range(50)} == {0, 1, 2}
    b = task.sample(g, 64, 5)
    assert (b["start"] >= 3).all() and (b["start"] <= 20 - 3 - 3 * b["r"]).all()


def test_gns_learns_ballistic_particles():
    torch.manual_seed(0)
    T, P = 12, 20
    t = torch.arange(T, dtype=torch.float64)[:, None, None]
    x0 = torch.rand(8, 1, P, 2) * 0.5 + 0.25
    v0 = (torch.rand(8, 1, P, 2) - 0.5) * 0.01
    pos = x0 + v0 * t - 0.5 * 1e-4 * t ** 2 * torch.tensor([0.0, 1.0])
    model = dnn.GNS(dim=2, history=3, n_types=1, radius=0.1, hidden=16, message_steps=1, mlp_layers=1)
    model.set_statistics(pos)
    task = dnn.ParticleTask(pos, torch.zeros(P, dtype=torch.long), noise_std=0.0)
    tr = dnn.Trainer(model, task, dnn.TrainConfig(epochs=1, steps_per_epoch=150, batch_size=4, lr=3e-3,
                                                  progress=False))
    first = task.loss(model, task.sample(torch.Generator().manual_seed(1), 4, 0)).item()
    tr.fit()
    last = task.loss(model, task.sample(torch.Generator().manual_seed(1), 4, 0)).item()
    assert last < 0.05 * first
    pred = model.rollout(pos[0, :4].permute(1, 0, 2), torch.zeros(P, dtype=torch.long), 5)
    assert (pred - pos[0, 4:9]).abs().max() < 1e-3


def test_train_command_line_runs_and_writes_metrics(tmp_path):
    from diffsim.cli import main
    from diffsim.solvers.pde import CEData, CEFamily, generate

    fam = CEFamily("tiny", alpha=0.5, beta=(0.0, 0.2), tmax=0.4, nt=13)
    data = generate(CEData(fam, resolutions=(40, 20)), tmp_path / "tr.h5", 4, progress=False)
    test = generate(CEData(fam, resolutions=(40, 20)), tmp_path / "te.h5", 2, seed=1, progress=False)
    args = ["train", "--data", str(data), "--valid", str(test), "--test", str(test), "--model", "FNO", "--nx", "20",
            "--time-window", "3", "--warmup", "1", "--width", "8", "--modes", "4", "--epochs", "2",
            "--steps-per-epoch", "2", "--batch-size", "2", "--checkpoint", str(tmp_path / "ck.pt"),
            "--metrics", str(tmp_path / "m.json"), "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["steps"] == 4 and metrics["finite"] and metrics["baseline_accumulated"] >= 0
    assert main(args) == 0  # resumes a finished run: no further steps
    assert json.loads((tmp_path / "m.json").read_text())["steps"] == 4
    with pytest.raises(SystemExit):
        main(["train", "--data", str(data), "--model", "GNS"])


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_keeps_replicas_identical(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, math, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_nn_training import waves
        from diffsim.solvers import nn as dnn
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = dnn.FNO(dim=1, time_window=3, modes=4, width=8, n_cond=1, dt=0.1, t_scale=1.2)
        task = dnn.FieldTask(waves(), 3)
        cfg = dnn.TrainConfig(epochs=2, batch_size=2, steps_per_epoch=3, progress=False, device="cpu",
                              checkpoint={str(tmp_path / 'ddp.pt')!r})
        tr = dnn.Trainer(model, task, cfg)
        tr.fit()
        torch.save(model.state_dict(), {str(tmp_path)!r} + f"/rank{{tr.dist.rank}}.pt")
        tr.close()
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                          str(script)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ck = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert ck["world"] == 2 and len(ck["generators"]) == 2 and ck["global_step"] == 6
    assert not torch.equal(ck["generators"][0], ck["generators"][1])  # ranks draw different batches


def test_bf16_autocast_trains_with_float32_weights(tmp_path):
    torch.manual_seed(0)
    model = dnn.MPPDE(time_window=3, hidden=16, layers=1, n_cond=1, dt=0.1, t_scale=1.2, length=2 * math.pi).float()
    seen = []
    model.embed.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    task = dnn.FieldTask(waves(), 3)
    before = [p.detach().clone() for p in model.parameters()]
    tr = dnn.Trainer(model, task, dnn.TrainConfig(epochs=1, steps_per_epoch=3, batch_size=4, progress=False,
                                                  autocast="bf16"))
    tr.fit()
    assert seen and set(seen) == {torch.bfloat16}  # the forward ran in bf16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before) if p.requires_grad)
    assert math.isfinite(tr.history[-1]["train_loss"])
    with pytest.raises(ValueError, match="autocast='fp16'"):
        dnn.TrainConfig(autocast="fp16")
