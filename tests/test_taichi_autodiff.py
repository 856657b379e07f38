"""Taichi's reverse mode in the configurations ``ds.init`` produces.

Taichi 1.7.4 with adaptively sized autodiff stacks (``ad_stack_size=0``) and
without its advanced optimisation passes (our ``optimize="compile"``) returns zero
gradients for vector reductions in float32 - ``sum``, ``dot``, ``norm``,
``norm_sqr``, ``trace``, ``max``, ``min``, ``normalized`` - while float64 is right.
Every constitutive model, contact law and FEM energy uses them, so ``ds.init``
fixes the stack size in float32. These tests pin both the defect (so that a
Taichi upgrade that fixes it is noticed) and our default.
"""

import linecache

import pytest
import torch
from precision import in_precision

import diffsim as ds

REDUCTIONS = {
    "sum": "v[p].sum()", "dot": "v[p].dot(v[p])", "norm": "v[p].norm()",
    "norm_sqr": "v[p].norm_sqr()", "max": "v[p].max()", "min": "v[p].min()",
    "normalized": "v[p].normalized()[0]", "trace": "M[p].trace()",
}


def reduction_grads(init_kwargs=None):
    """d(sum_p op(v_p))/dv for each reduction op, from Taichi's reverse mode."""
    import numpy as np
    import taichi as ti

    if init_kwargs is not None:  # a second runtime of this child process
        ds.init(**init_kwargs)
    real = ds.runtime.config().ti_float
    v = ti.Vector.field(3, real, shape=4, needs_grad=True)
    M = ti.Matrix.field(3, 3, real, shape=4, needs_grad=True)
    L = ti.field(real, shape=(), needs_grad=True)
    rng = np.random.default_rng(0)
    v.from_numpy(rng.uniform(1.0, 2.0, (4, 3)))
    M.from_numpy(rng.uniform(1.0, 2.0, (4, 3, 3)))
    out = {}
    scope = {"ti": ti, "v": v, "M": M, "L": L}
    for name, expr in REDUCTIONS.items():
        # Taichi reads a kernel's source through inspect: register it with linecache
        src = f"@ti.kernel\ndef k():\n    for p in v:\n        L[None] += {expr}\n"
        fname = f"<reduction-{name}>"
        linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
        exec(compile(src, fname, "exec"), scope)
        v.grad.fill(0)
        M.grad.fill(0)
        L.grad[None] = 1.0
        scope["k"]()
        scope["k"].grad()
        out[name] = torch.from_numpy(np.concatenate([v.grad.to_numpy().ravel(),
                                                     M.grad.to_numpy().ravel()]))
    return out


def _expected():
    v = torch.from_numpy(__import__("numpy").random.default_rng(0).uniform(1.0, 2.0, (4, 3)))
    zeros_m = torch.zeros(4 * 9, dtype=torch.float64)
    one_hot = lambda idx: torch.nn.functional.one_hot(idx, 3).double()  # noqa: E731
    n = v.norm(dim=1, keepdim=True)
    e = torch.zeros(4, 3, 3, dtype=torch.float64)
    e[:, [0, 1, 2], [0, 1, 2]] = 1.0
    g_norm0 = (torch.eye(3, dtype=torch.float64)[0] - v[:, :1] * v / n ** 2) / n
    return {"sum": torch.cat([torch.ones(12, dtype=torch.float64), zeros_m]),
            "dot": torch.cat([(2 * v).ravel(), zeros_m]),
            "norm": torch.cat([(v / n).ravel(), zeros_m]),
            "norm_sqr": torch.cat([(2 * v).ravel(), zeros_m]),
            "max": torch.cat([one_hot(v.argmax(1)).ravel(), zeros_m]),
            "min": torch.cat([one_hot(v.argmin(1)).ravel(), zeros_m]),
            "normalized": torch.cat([g_norm0.ravel(), zeros_m]),
            "trace": torch.cat([torch.zeros(12, dtype=torch.float64), e.ravel()])}


@pytest.fixture(scope="module")
def f32_default():
    return in_precision("f32", [(reduction_grads, ())])[0]


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_float32_reduction_gradients_with_ds_init_defaults(name, f32_default):
    torch.testing.assert_close(f32_default[name], _expected()[name], rtol=1e-5, atol=1e-6)


def test_float64_reduction_gradients():
    got = reduction_grads()
    for name, want in _expected().items():
        torch.testing.assert_close(got[name], want, rtol=1e-12, atol=1e-12, msg=name)


def test_taichi_defect_with_adaptive_stacks_is_still_there():
    """The configuration ``ds.init`` avoids: if this fails, Taichi fixed the defect and
    ``runtime.AD_STACK_SIZE`` may go."""
    got = in_precision("f32", [(reduction_grads, (dict(precision="f32", ad_stack_size=0),))])[0]
    assert float(got["sum"].abs().sum()) == 0.0


def test_simulators_refuse_the_broken_configuration(monkeypatch):
    import taichi as ti

    cfg = ti.lang.impl.current_cfg()
    monkeypatch.setattr(ds.runtime, "_config", ds.runtime.RuntimeConfig(
        arch=ds.runtime.config().arch, precision="f32", debug=False, deterministic=True))
    monkeypatch.setattr(cfg, "ad_stack_size", 0)
    monkeypatch.setattr(cfg, "advanced_optimization", False)
    with pytest.raises(RuntimeError, match="ad_stack_size=0"):
        ds.runtime.check_autodiff("MPM")
