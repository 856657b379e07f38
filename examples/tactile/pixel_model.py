"""Calibrate a learned tactile image model, then use its images as a differentiable loss.

A real GelSight's optics differ from the default photometric model (``ds.Lights``).
DiffTactile calibrates a small per-pixel MLP from surface normals to colour on real
images instead; ``ds.TactilePixelModel`` is that MLP and ``ds.fit_pixel_model`` the
calibration. No real sensor images ship with diffsim, so this example stands them in
with a *different* photometric model ("recorded": other light colours, a higher
elevation, a stronger highlight) and:

1. presses a ball at several places, pairs each reading's ``features`` with the
   "recorded" image, fits the pixel model, and reports its error on a held-out press
   next to the error of the uncalibrated default ``Lights``;
2. saves the model (``config`` + ``state_dict``) and reloads it;
3. recovers an unknown press speed from a learned image alone: Adam on the ball's
   descent speed, the loss being the difference of learned images, with gradients
   through the pixel model, the readout and the rollout (``ds.CheckpointAdjoint``).

    python examples/tactile/pixel_model.py --out diffsim-out/tactile_pixel_model
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import diffsim as ds

RECORDED = ds.Lights(colors=((0.9, 0.45, 0.15), (0.25, 0.8, 0.35), (0.25, 0.3, 0.9)),
                     elevation_deg=45.0, ambient=0.1, albedo=0.55, specular=0.25,
                     shininess=4.0, marker_darkness=0.6)
PLACES = [(0.0, 0.0), (0.0015, 0.0005), (-0.001, 0.0015), (0.0005, -0.0015), (0.0012, -0.001),
          (-0.0015, -0.0002)]
HELD_OUT = (-0.0012, -0.0008)


def build(image=(32, 28), arch=None):
    ds.init(arch=arch, precision="f64")
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_tool(ds.Sphere(center=(0.0, 0.0, 0.003 + 0.004 - 2e-4), radius=0.004),
                   friction=0.4, name="ball")
    sensor = ds.TactileSensor(pad=pad, material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(3, 3), camera=ds.TactileCamera(resolution=image,
                                                                      fov_deg=32))
    return ds.Tactile(scene, sensors=[sensor], dt=1e-2, newton_tol=1e-10, cg_tol=1e-10)


def press(sim, speed, steps=3):
    """Controls: the ball descends at ``speed`` (m/s, a tensor or float) for ``steps``."""
    U = torch.zeros(steps, sim.action_dim, dtype=torch.float64)
    return U.index_put((torch.arange(steps), torch.full((steps,), 8)),
                       -torch.as_tensor(speed, dtype=torch.float64).expand(steps))


def pressed_features(sim, place, speed=0.025, saveat=(2, 3)):
    st0 = sim.reset()
    p = st0.tool_pos.clone()
    p[1, :2] += torch.tensor(place, dtype=torch.float64)
    with torch.no_grad():
        states = sim.rollout(st0.replace(tool_pos=p), press(sim, speed), saveat=list(saveat))
    return [sim.read(s).features for s in states]


def masked_mae(a, b, mask):
    return float((a - b).abs()[mask].mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--places", type=int, default=len(PLACES), help="training presses (<= 6)")
    ap.add_argument("--fit-iters", type=int, default=400, help="Adam steps of the fit")
    ap.add_argument("--iters", type=int, default=20, help="Adam steps of the speed recovery")
    ap.add_argument("--image", type=int, nargs=2, default=(32, 28), help="width height (px)")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--out", default="diffsim-out/tactile_pixel_model")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = build(tuple(args.image), args.arch)

    # 1. calibrate on "recorded" images (features from the simulator, RGB from the sensor)
    train = [f for place in PLACES[:args.places] for f in pressed_features(sim, place)]
    recorded = [RECORDED.shade(f) for f in train]
    torch.manual_seed(0)
    model, history = ds.fit_pixel_model(train, recorded, ds.TactilePixelModel(hidden=(64, 64)),
                                        iters=args.fit_iters, lr=2e-2)
    held = pressed_features(sim, HELD_OUT)
    default = sim.sensors[0].lights
    report = []
    with torch.no_grad():
        for f in held:
            target = RECORDED.shade(f)
            report.append({"learned": masked_mae(model(f), target, f.mask),
                           "default_lights": masked_mae(default.shade(f), target, f.mask)})
    for k, r in enumerate(report):
        print(f"held-out press {k}: mean abs error, learned {r['learned']:.4f}, uncalibrated "
              f"default Lights {r['default_lights']:.4f} (RGB in [0, 1])")

    # 2. save and reload
    torch.save({"config": model.config, "state": model.state_dict()}, out / "pixel_model.pt")
    ckpt = torch.load(out / "pixel_model.pt")
    model = ds.TactilePixelModel(**ckpt["config"])
    model.load_state_dict(ckpt["state"])
    model = model.double().requires_grad_(False)

    # 3. recover a press speed from a learned image (gradients through the pixel model)
    st0 = sim.reset()

    def learned_image(speed):
        sol = ds.solve(ds.SimulationProblem(sim, controls=press(sim, speed), state0=st0),
                       sensealg=ds.CheckpointAdjoint(segment=3), saveat=[3])
        f = sim.read(sol.u[-1]).features
        return model(f), f.mask

    true_speed = 0.025
    with torch.no_grad():
        target, mask = learned_image(true_speed)
    speed = torch.tensor(0.015, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([speed], lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(args.iters, 1), eta_min=1e-4)
    trace = []
    for it in range(args.iters):
        opt.zero_grad()
        img, _m = learned_image(speed)
        loss = ((img - target) ** 2)[mask].mean()
        loss.backward()
        opt.step()
        sched.step()
        trace.append({"loss": loss.item(), "speed": speed.item()})
        print(f"iter {it:3d} loss {loss.item():.3e} speed {speed.item():.5f} m/s")
    print(f"press speed: recovered {speed.item():.5f} m/s, true {true_speed} (start 0.015)")
    summary = {"fit_loss": [float(history[0]), float(history[-1])], "held_out": report,
               "speed": {"true": true_speed, "start": 0.015, "recovered": speed.item()},
               "trace": trace, "image": list(args.image), "train_images": len(train)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        f = held[-1]
        with torch.no_grad():
            panels = [RECORDED.shade(f), model(f, background=0.05), default.shade(f)]
        fig, ax = plt.subplots(1, 3, figsize=(9, 3))
        for a, im, title in zip(ax, panels, ["recorded (stand-in)", "learned", "default Lights"]):
            a.imshow(np.clip(im.numpy(), 0, 1))
            a.set_title(title)
            a.axis("off")
        fig.tight_layout()
        fig.savefig(out / "held_out.png", dpi=100)
        plt.close(fig)
    except ImportError:
        pass
    sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
