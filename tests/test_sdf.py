"""The shared Taichi SDF library (``diffsim/sdf.py``) that MPM, FEM, Shell and the tactile
pads all use: distances equal the numpy shapes' (``diffsim/shapes.py``), the returned
gradient is the derivative of the returned distance (Taichi's reverse mode of ``phi``
and central differences of the numpy distance agree with it), it is a unit vector
outside, and float32 gives the same values with finite gradients at the centre, on edges
and on faces (where a plain norm's derivative is NaN)."""

import numpy as np
import pytest
import torch
from precision import in_precision

import diffsim as ds
from diffsim.tools import shape_geometry

SHAPES = {
    "sphere2": ds.Sphere(center=(0.0, 0.0), radius=0.05),
    "sphere3": ds.Sphere(center=(0.0, 0.0, 0.0), radius=0.05),
    "box2": ds.Box(lo=(-0.03, -0.05), hi=(0.03, 0.05)),
    "box3": ds.Box(lo=(-0.03, -0.05, -0.02), hi=(0.03, 0.05, 0.02)),
    "capsule3": ds.Capsule(center=(0.0, 0.0, 0.0), radius=0.02, length=0.08, axis=1),
    "cylinder3": ds.Cylinder(center=(0.0, 0.0, 0.0), radius=0.03, height=0.06, axis=2),
}


def points(name: str, n: int = 256) -> np.ndarray:
    """Random points around the shape, plus the places where a norm has no derivative:
    the centre, and (boxes, cylinders) points on faces, edges and corners."""
    shape = SHAPES[name]
    rng = np.random.default_rng(7)
    q = rng.uniform(-0.09, 0.09, (n, shape.dim))
    special = [np.zeros(shape.dim)]
    if name.startswith("box"):
        h = np.asarray(shape.half_size)
        special += [h, -h, h * np.r_[1.0, np.zeros(shape.dim - 1)], h + 0.01]
    if name.startswith("cylinder"):
        special += [np.array([0.03, 0.0, 0.03]), np.array([0.0, 0.0, 0.03]), np.array([0.03, 0.0, 0.0])]
    return np.vstack([q] + special)


def evaluate(name: str) -> dict:
    """``phi``, the returned ``grad`` and Taichi's reverse-mode ``d phi / d q`` at ``points``."""
    import taichi as ti

    from diffsim.sdf import make_sdf

    kind, geom, axis = shape_geometry(SHAPES[name])
    f = make_sdf(kind, geom, axis)
    q_np = points(name)
    n, dim = q_np.shape
    real = ds.runtime.config().ti_float
    q = ti.Vector.field(dim, real, shape=n, needs_grad=True)
    g = ti.Vector.field(dim, real, shape=n)
    phi = ti.field(real, shape=n, needs_grad=True)

    @ti.kernel
    def run():
        for i in range(n):
            d, grad = f(q[i])
            phi[i] = d
            g[i] = grad

    q.from_numpy(q_np)
    run()
    phi.grad.fill(1.0)
    run.grad()
    return {"phi": torch.from_numpy(phi.to_numpy()), "grad": torch.from_numpy(g.to_numpy()),
            "autodiff": torch.from_numpy(q.grad.to_numpy())}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_distance_and_normal_match_the_numpy_shapes(name):
    out = evaluate(name)
    q = points(name)
    shape = SHAPES[name]
    np.testing.assert_allclose(out["phi"].numpy(), shape.sdf_local(q), atol=1e-8)
    assert torch.isfinite(out["autodiff"]).all() and torch.isfinite(out["grad"]).all()
    # where the SDF is smooth (away from the centre, the medial surfaces inside, edges and
    # corners) the normal is its derivative: central differences of the numpy distance and
    # Taichi's reverse mode of phi agree with it
    h = 1e-6
    fd = np.stack([(shape.sdf_local(q + h * e) - shape.sdf_local(q - h * e)) / (2 * h)
                   for e in np.eye(shape.dim)], 1)
    smooth = np.abs(np.linalg.norm(fd, axis=1) - 1) < 1e-6
    smooth &= np.all([np.abs((shape.sdf_local(q + 1e-4 * e) + shape.sdf_local(q - 1e-4 * e)
                              - 2 * shape.sdf_local(q)) / 1e-4) < 1e-2 for e in np.eye(shape.dim)], 0)
    assert smooth.sum() > 200, f"{name}: too few smooth points ({smooth.sum()})"
    np.testing.assert_allclose(out["grad"].numpy()[smooth], fd[smooth], atol=1e-5)
    np.testing.assert_allclose(out["autodiff"].numpy()[smooth], out["grad"].numpy()[smooth], atol=1e-9)
    outside = out["phi"].numpy() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(out["grad"].numpy()[outside], axis=1), 1.0, atol=1e-9)


def test_float32_values_and_gradients_are_finite_and_agree():
    names = sorted(SHAPES)
    got = in_precision("f32", [(evaluate, (n,)) for n in names])
    for name, g32 in zip(names, got):
        g64 = evaluate(name)
        for key in g64:
            assert torch.isfinite(g32[key]).all(), f"{name} {key}: non-finite in float32"
            torch.testing.assert_close(g32[key], g64[key].double(), atol=2e-6, rtol=1e-5,
                                       msg=f"{name} {key}: float32 differs from float64")
