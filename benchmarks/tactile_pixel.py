"""Tactile image models: the learned ``ds.TactilePixelModel`` against the photometric
``ds.Lights`` (the peer), same features, same run.

A 20 x 20 x 4 mm flat pad (2 mm cells) with a spherical dent (radius 6 mm, 0.5 mm deep)
pressed into its contact surface, seen by the default camera at ``--image`` resolutions.
No simulation: the readout (``SensorOptics``) runs on the dented node positions, so this
measures the image path only (torch, float64 features):

* ``features``: computing a reading's ``PixelFeatures`` (normals, indentation, markers);
* ``lights``: ``Lights.shade(features)``;
* ``mlp32 / mlp64``: ``TactilePixelModel(hidden=(w, w))`` (float32 weights);
* each forward alone and forward + backward (gradient w.r.t. the node positions);
* ``fit``: ``fit_pixel_model`` throughput, pixels x Adam steps per second.

Usage: ``python benchmarks/tactile_pixel.py [--image 64 48 320 240] [--repeat 20]
[--threads N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

import diffsim as ds
from diffsim.tactile.reading import SensorOptics

F64 = torch.float64


def dented(image):
    pad = ds.TactilePad.flat((0.02, 0.02, 0.004), 0.002)
    sensor = ds.TactileSensor(pad=pad, markers=(7, 7),
                              camera=ds.TactileCamera(resolution=tuple(image), fov_deg=70))
    optics = SensorOptics(sensor, 0, slice(0, len(pad.points)), F64, "cpu")
    X = torch.as_tensor(pad.points, dtype=F64).clone()
    R, depth = 0.006, 0.0005
    c = torch.tensor([0.001, -0.0005, pad.thickness + R - depth], dtype=F64)
    r2 = ((X[:, :2] - c[:2]) ** 2).sum(-1)
    inside = (r2 < R * R) & (X[:, 2] > c[2] - torch.sqrt(torch.clamp(R * R - r2, min=0)))
    X[inside, 2] = c[2] - torch.sqrt(R * R - r2[inside])
    pose = (torch.zeros(1, 3, dtype=F64), torch.tensor([[1.0, 0, 0, 0]], dtype=F64))
    return sensor, optics, X, pose


def best_of(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(image, repeat):
    sensor, optics, X, (p, _q) = dented(image)
    models = {"mlp32": ds.TactilePixelModel(hidden=(32, 32)),
              "mlp64": ds.TactilePixelModel(hidden=(64, 64))}
    for m in models.values():
        m.requires_grad_(False)

    def feats(x):
        Xl = x - p[0]
        uv = sensor.camera.project((optics.m_bary[..., None] * Xl[optics.m_vert]).sum(1))
        return optics.features(Xl, uv)

    out = {"image": list(image), "pad_pixels": int(optics.mask.sum())}
    with torch.no_grad():
        f = feats(X)
        out["features_ms"] = 1e3 * best_of(lambda: feats(X), repeat)
        out["lights_ms"] = 1e3 * best_of(lambda: sensor.lights.shade(f), repeat)
        for k, m in models.items():
            out[f"{k}_ms"] = 1e3 * best_of(lambda m=m: m(f), repeat)

    def fwd_bwd(shade):
        x = X.clone().requires_grad_()
        shade(feats(x)).sum().backward()

    out["features+lights_fwd_bwd_ms"] = 1e3 * best_of(lambda: fwd_bwd(sensor.lights.shade),
                                                      repeat)
    for k, m in models.items():
        out[f"features+{k}_fwd_bwd_ms"] = 1e3 * best_of(lambda m=m: fwd_bwd(m), repeat)
    with torch.no_grad():
        target = sensor.lights.shade(f)
    iters = 50
    ds.fit_pixel_model(f, target, iters=1)     # the first Adam step imports and sets up (~1 s)
    t = time.perf_counter()
    ds.fit_pixel_model(f, target, ds.TactilePixelModel(hidden=(64, 64)), iters=iters)
    out["fit_mlp64_pixel_steps_per_s"] = out["pad_pixels"] * iters / (time.perf_counter() - t)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=int, nargs="+", default=[64, 48, 320, 240],
                    help="width height [width height ...]")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if len(args.image) % 2:
        ap.error("--image takes pairs: width height")
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    print(f"machine: {machine}")
    results = []
    for w, h in zip(args.image[::2], args.image[1::2]):
        r = run((w, h), args.repeat)
        results.append(r)
        print(f"image {w} x {h} ({r['pad_pixels']} pixels see the pad), best of {args.repeat}:")
        print(f"  features {r['features_ms']:.2f} ms; shade: lights (peer) {r['lights_ms']:.2f} "
              f"ms, mlp32 {r['mlp32_ms']:.2f} ms, mlp64 {r['mlp64_ms']:.2f} ms")
        print(f"  features + shade, forward + backward: lights "
              f"{r['features+lights_fwd_bwd_ms']:.2f} ms, mlp32 "
              f"{r['features+mlp32_fwd_bwd_ms']:.2f} ms, mlp64 "
              f"{r['features+mlp64_fwd_bwd_ms']:.2f} ms")
        print(f"  mlp64 / lights (shade only): {r['mlp64_ms'] / r['lights_ms']:.2f}x; "
              f"fit_pixel_model: {r['fit_mlp64_pixel_steps_per_s']:.3g} pixel-steps/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
