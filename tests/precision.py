"""The float32 tier: run test cases in a fresh process in another Taichi precision.

Taichi fixes its float type when it initialises, and the test session runs in
float64 (exact finite differences). A float32 counterpart of a gradient test runs
the same case in a spawned child process initialised in float32, on the same arch
and determinism, and compares its gradients with the float64 ones of this process.

Why the bounds of ``assert_grads_close`` (cosine >= 0.999, relative error <= 1e-2):
a float32 rollout of ~100 substeps accumulates rounding of about
sqrt(100) * 6e-8 * (condition of the step) per value; the MPM, FEM and shell cases
of the suite agree with float64 to 1e-5 - 1e-3 relative, so 1e-2 leaves room for
other CPUs (FMA contraction and vector width change the rounding) while a wrong or
overflowing gradient (NaN, a sign flip, a lost contact term) fails it. Tests that
need other bounds say why.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import torch

ARCH = os.environ.get("DIFFSIM_TEST_ARCH", "cpu")
# DIFFSIM_TEST_DETERMINISTIC=0 runs the parallel (atomic) scatter loops on the CPU too
DETERMINISTIC = os.environ.get("DIFFSIM_TEST_DETERMINISTIC",
                               "1" if ARCH == "cpu" else "0") == "1"


def _as_f64(out):
    if torch.is_tensor(out):
        return out.detach().to("cpu", torch.float64)
    if isinstance(out, dict):
        return {k: _as_f64(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_as_f64(v) for v in out)
    return out


def _child(precision: str, calls):
    import diffsim as ds

    os.environ.setdefault("MPLBACKEND", "Agg")
    ds.init(arch=ARCH, precision=precision, deterministic=DETERMINISTIC)
    return [_as_f64(fn(*args)) for fn, args in calls]


def start_in_precision(precision: str, calls: list):
    """``in_precision`` that returns at once: a ``concurrent.futures.Future`` of the
    results, computed in the child while this process does other work (the float64
    references: on two cores the child's kernel compilation overlaps this process's)."""
    ex = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = ex.submit(_child, precision, list(calls))
    ex.shutdown(wait=False)
    return future


def compare_in_precisions(cases: dict, precision: str = "f32") -> dict:
    """``case -> (result in precision, result here)`` for ``cases`` (``name -> (fn,
    args)``): the child computes all cases while this process computes them too."""
    pending = start_in_precision(precision, list(cases.values()))
    here = {name: fn(*args) for name, (fn, args) in cases.items()}
    return {name: (got, here[name]) for name, got in zip(cases, pending.result())}


def in_precision(precision: str, calls: list):
    """Results of ``fn(*args)`` for each ``(fn, args)`` of ``calls``, computed in one
    fresh process initialised in ``precision``; tensors come back as float64 on the CPU.
    ``fn`` must be a module-level function (it is pickled by name)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        return ex.submit(_child, precision, list(calls)).result()


def agreement(got: dict, want: dict) -> dict:
    """``name -> (cosine, relative error)`` of each float32 gradient of ``got`` against the
    float64 one of ``want`` (norms over the whole tensor; NaN where not finite)."""
    out = {}
    for name in want:
        a = got[name].flatten().double()
        b = want[name].flatten().double()
        nb = float(b.norm())
        rel = float((a - b).norm()) / nb if nb > 0 else float("inf")
        cos = float(a @ b) / max(float(a.norm()) * nb, 1e-300)
        out[name] = (cos, rel)
    return out


def assert_grads_close(got: dict, want: dict, cos_min: float = 0.999, rel_max: float = 1e-2,
                       what: str = ""):
    """Each gradient of ``got`` (float32 run) is finite, nonzero and close to ``want``
    (float64 run of the same case): cosine similarity >= ``cos_min`` and
    ``|got - want| / |want| <= rel_max`` (norms over the whole tensor)."""
    assert set(got) == set(want), f"{what}: gradients {sorted(got)} vs {sorted(want)}"
    for name, (cos, rel) in agreement(got, want).items():
        a = got[name]
        assert torch.isfinite(a).all(), f"{what} {name}: float32 gradient is not finite: {a}"
        assert float(want[name].double().norm()) > 0, (
            f"{what} {name}: the float64 gradient is zero (the case tests nothing)")
        assert cos >= cos_min and rel <= rel_max, (
            f"{what} {name}: float32 vs float64 gradient cosine {cos:.6f} (>= {cos_min}), "
            f"relative error {rel:.3g} (<= {rel_max})")
