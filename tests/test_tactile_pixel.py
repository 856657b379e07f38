"""ds.TactilePixelModel: the learned per-pixel image model (DiffTactile's optical MLP).

One tiny sensor (50 nodes, a 24 x 20 image) serves every test: its photometric images of a
ball pressed at three places are the training set, a fourth place is held out; the learned
image's gradient w.r.t. the controls is checked against central differences (float64).
"""

import copy
import dataclasses

import numpy as np
import pytest
import torch

import diffsim as ds
from diffsim.tactile.reading import PixelFeatures, SensorOptics

F64 = torch.float64
PLACES = [(0.0, 0.0), (0.0015, 0.0005), (-0.001, 0.0015),   # training
          (-0.0012, -0.0008)]                              # held out


@pytest.fixture(scope="module")
def sim():
    ds.init(arch="cpu", precision="f64")
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_tool(ds.Sphere(center=(0.0, 0.0, 0.003 + 0.004 - 2e-4), radius=0.004),
                   friction=0.4, name="ball")
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(3, 3), camera=ds.TactileCamera(resolution=(24, 20), fov_deg=32),
                              pressure_res=(4, 4), damping=(0.0, 0.001))
    s = ds.Tactile(scene, sensors=[sensor], dt=1e-2, newton_tol=1e-12, cg_tol=1e-12,
                   contact_damping=50.0)
    s._engine_for(2, True)     # one engine (segment 2, with gradients) serves every test
    yield s
    s.close()


def press(sim, T=3):
    U = torch.zeros(T, sim.action_dim, dtype=F64)
    U[:, 8] = -0.025           # the ball descends 0.25 mm per step
    return U


@pytest.fixture(scope="module")
def readings(sim):
    """Photometric readings of the ball pressed 0.5 and 0.75 mm at each of PLACES."""
    st0 = sim.reset()
    out = []
    with torch.no_grad():
        for dx, dy in PLACES:
            p = st0.tool_pos.clone()
            p[1, 0] += dx
            p[1, 1] += dy
            states = sim.rollout(st0.replace(tool_pos=p), press(sim), saveat=[2, 3], segment=2)
            out.append([sim.read(s) for s in states])
    return out


@pytest.fixture(scope="module")
def trained(readings):
    train = [r for rr in readings[:-1] for r in rr]
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # a tiny MLP: more threads only wait on each other here
    try:
        model, history = ds.fit_pixel_model([r.features for r in train],
                                            [r.image for r in train],
                                            ds.TactilePixelModel(hidden=(32, 32)), iters=300,
                                            lr=2e-2)
    finally:
        torch.set_num_threads(threads)
    return model, history


def test_features_at_rest_and_photometric_image(sim, readings):
    rest = sim.read(sim.reset())
    f = rest.features
    H, W = 20, 24
    assert f.shape == (H, W) and f.normal.shape == (H, W, 3) and f.depth.shape == (H, W)
    assert f.view.shape == (H, W, 3) and f.markers.shape == (H, W) and f.uv.shape == (H, W, 2)
    m = f.mask
    assert m.dtype == torch.bool and 0.6 * H * W < int(m.sum()) < H * W
    # flat pad at rest: normals face the camera, no indentation (gravity sag < 0.1 um)
    assert torch.allclose(f.normal[m], torch.tensor([0.0, 0.0, -1.0], dtype=F64), atol=1e-4)
    assert float(f.depth[m].abs().max()) < 1e-7
    assert float(f.uv.min()) > -1 and float(f.uv.max()) < 1
    # the image is Lights.shade of the features, exactly
    assert torch.equal(rest.image, sim.sensors[0].lights.shade(f))
    # pressed (the ball starts 0.2 mm into the gel, then descends 0.75 mm): the
    # indentation peaks below the ball's travel, normals tilt
    r = readings[0][1]
    assert 5e-4 < float(r.features.depth.max()) < 9.5e-4
    assert float(r.features.normal[..., 2].max()) > -0.99
    assert sim.read(sim.reset(), image=False).features is None


def test_fit_reproduces_photometric_images_on_a_held_out_press(sim, readings, trained):
    model, history = trained
    assert history.shape == (300,) and history[-1] < 0.1 * history[0]
    rest = sim.read(sim.reset()).image
    held_out = readings[-1]
    with torch.no_grad():
        for r in held_out:
            m = r.features.mask
            pred = model(r.features)
            assert pred.shape == r.image.shape and pred.dtype == F64
            err = (pred - r.image).abs()[m]
            assert float(err.mean()) < 0.01, float(err.mean())
            # the mean error is small also because most pixels see no contact; where contact
            # changed the image (by > 0.02), the model must be far closer than the rest image
            c = (r.image - rest).abs().amax(-1) > 0.02
            assert int(c.sum()) >= 15
            base = float((rest - r.image).abs()[c].mean())
            assert float((pred - r.image).abs()[c].mean()) < 0.25 * base


def test_sensor_pixel_model_hook_and_save_load(sim, readings, trained, tmp_path):
    model, _ = trained
    sensor = dataclasses.replace(sim.sensors[0], pixel_model=model)
    optics = SensorOptics(sensor, 0, sim.groups["sensor0"], F64, sim.device)
    state = sim.reset()
    r = optics.read(state.x, state.f, state.tool_pos, state.tool_rot)
    m = r.features.mask[..., None]
    with torch.no_grad():
        want = torch.where(m, model(r.features), torch.full_like(r.image, 0.05))
        assert torch.equal(r.image.detach(), want)
    # save and load: config + state_dict
    torch.save({"config": model.config, "state": model.state_dict()}, tmp_path / "pix.pt")
    ckpt = torch.load(tmp_path / "pix.pt")
    loaded = ds.TactilePixelModel(**ckpt["config"])
    loaded.load_state_dict(ckpt["state"])
    f = readings[-1][1].features
    with torch.no_grad():
        assert torch.equal(loaded(f), model(f))


def test_learned_image_gradient_fd(sim, trained):
    """d(scalar of the learned image)/d(controls) through the pixel model, the readout and a
    3-step rollout, against central differences (float64 model)."""
    model = copy.deepcopy(trained[0]).double()
    st0 = sim.reset()
    g = torch.Generator().manual_seed(1)
    w = torch.rand(20, 24, 3, generator=g, dtype=F64)

    def loss(U):
        sol = ds.solve(ds.SimulationProblem(sim, controls=U, state0=st0),
                       sensealg=ds.CheckpointAdjoint(segment=2), saveat=[3])
        f = sim.read(sol.u[-1]).features
        return (w * model(f))[f.mask].sum()

    U = press(sim)
    U[:, 6] = 0.02                                   # the ball also slides along +x
    U.requires_grad_()
    loss(U).backward()
    for idx in ((1, 8), (2, 6)):
        vals = []
        for sgn in (1, -1):
            Ud = U.detach().clone()
            Ud[idx] += sgn * 1e-4
            with torch.no_grad():
                vals.append(float(loss(Ud)))
        fd = (vals[0] - vals[1]) / 2e-4
        gr = float(U.grad[idx])
        assert abs(gr) > 1e-3, gr
        assert abs(gr - fd) <= 2e-5 * abs(fd), (idx, gr, fd)


# ---------------------------------------------------------------------------- bad input
def test_bad_input(readings):
    with pytest.raises(ValueError, match=r"hidden=\(\) is not allowed"):
        ds.TactilePixelModel(hidden=())
    with pytest.raises(ValueError, match="depth_scale=0 is not allowed: it must be a number > 0"):
        ds.TactilePixelModel(depth_scale=0)
    with pytest.raises(ValueError, match="frequencies=-1 is not allowed"):
        ds.TactilePixelModel(frequencies=-1)
    with pytest.raises(TypeError, match="pixel_model must be None or a torch.nn.Module"):
        ds.TactileSensor(pixel_model="mlp")
    r = readings[0][0]
    f, im = r.features, r.image
    with pytest.raises(ValueError, match="got 2 features and 1 images"):
        ds.fit_pixel_model([f, f], [im])
    with pytest.raises(ValueError, match=r"images\[0\] has shape \(20, 24, 2\): expected \(20, 24, 3\)"):
        ds.fit_pixel_model(f, im[..., :2])
    with pytest.raises(ValueError, match=r"images\[0\] has values outside \[0, 1\]"):
        ds.fit_pixel_model(f, im * 255)
    with pytest.raises(ValueError, match="loss='huber' is not allowed"):
        ds.fit_pixel_model(f, im, loss="huber")
    with pytest.raises(TypeError, match="features must be PixelFeatures"):
        ds.TactilePixelModel()(im)
    # uint8 images are read as 0-255; random pixel batches; a tqdm bar
    model, hist = ds.fit_pixel_model(f, (im.numpy() * 255).astype(np.uint8), iters=2,
                                     batch_size=16, loss="l2", progress=True)
    assert hist.shape == (2,) and np.all(np.isfinite(hist)) and isinstance(f, PixelFeatures)
