"""Strain energies of ``ds.FEM``/``ds.Shell`` without cancellation (``constitutive.py``).

The Newton line search compares energies; written literally (``|F|^2 - d - 2 log J``),
a float32 energy of a body strained by 1e-3 has a relative rounding error of 5e-3, and
the line search of the pads of ``ds.Tactile`` stalled on it. The rewritten energies must
equal the literal formulas (float64, every model, large, inverted and clamped
deformations) and be accurate in float32 (a child process, against float64).
"""

import numpy as np
import pytest
import taichi as ti
import torch
from precision import in_precision

import diffsim as ds
from diffsim.fem.constitutive import (
    CorotatedModel,
    LinearModel,
    NeoHookeanFEMModel,
    StableNeoHookeanModel,
    svd_rv,
)
from diffsim.fem.shell_physics import membrane_energy

MODELS = {"linear": LinearModel, "corotated": CorotatedModel, "snh": StableNeoHookeanModel,
          "nh": NeoHookeanFEMModel}
A, B = 3.6e4, 1.4e5     # moduli (Pa): the tactile gel's mu, lam


def energies(kind: str, Fs: np.ndarray) -> torch.Tensor:
    """Energy densities of the deformation gradients ``Fs`` (n, r, c) by the kernels'
    functions, in the runtime's precision (returned as float64)."""
    ds.runtime.ensure_init()
    real = ti.lang.impl.get_runtime().default_fp
    np_real = np.float32 if real == ti.f32 else np.float64
    n, r, c = Fs.shape
    F_in = np.ascontiguousarray(Fs, dtype=np_real)
    out = np.zeros(n, dtype=np_real)

    @ti.kernel
    def run(F: ti.types.ndarray(), out: ti.types.ndarray()):
        for i in range(n):
            M = ti.Matrix([[F[i, p, q] for q in ti.static(range(c))]
                           for p in ti.static(range(r))])
            psi = 0.0
            if ti.static(kind in ("stvk", "nh-membrane")):
                psi = membrane_energy(M, A, B, kind == "nh-membrane")
            else:
                U, sig, V = svd_rv(M)
                psi = MODELS[kind].energy(M, U, sig, V, A, B)
            out[i] = psi

    run(F_in, out)
    return torch.as_tensor(out.astype(np.float64))


def literal(kind: str, F: np.ndarray) -> float:
    """The textbook formula (float64)."""
    d = F.shape[1]
    if kind in ("stvk", "nh-membrane"):
        C = F.T @ F
        if kind == "stvk":
            E = 0.5 * (C - np.eye(2))
            return A * (E * E).sum() + 0.5 * B * np.trace(E) ** 2
        logJ = 0.5 * np.log(max(np.linalg.det(C), 1e-12))
        return 0.5 * A * (np.trace(C) - 2 - 2 * logJ) + 0.5 * B * logJ ** 2
    J = np.linalg.det(F)
    if kind == "linear":
        eps = 0.5 * (F + F.T) - np.eye(d)
        return A * (eps * eps).sum() + 0.5 * B * np.trace(eps) ** 2
    if kind == "corotated":
        U, s, Vt = np.linalg.svd(F)
        if np.linalg.det(U @ Vt) < 0:
            s[-1] = -s[-1]
        return A * ((s - 1) ** 2).sum() + 0.5 * B * (J - 1) ** 2
    if kind == "snh":
        return A * (0.5 * ((F * F).sum() - d) - (J - 1)) + 0.5 * B * (J - 1) ** 2
    logJ = np.log(max(J, 1e-6))
    return A * (0.5 * ((F * F).sum() - d) - logJ) + 0.5 * B * logJ ** 2


def _rotation(rng, d):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.linalg.det(Q))


def samples(kind: str, strain: float, seed: int = 0, n: int = 64) -> np.ndarray:
    """``R (I + strain S)`` (R a random rotation, S a random matrix), as the kind needs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if kind in ("stvk", "nh-membrane"):
            F = np.eye(3, 2) + strain * rng.standard_normal((3, 2))
            out.append(_rotation(rng, 3) @ F)
        else:
            out.append(_rotation(rng, 3) @ (np.eye(3) + strain * rng.standard_normal((3, 3))))
    return np.stack(out)


KINDS = ["linear", "corotated", "snh", "nh", "stvk", "nh-membrane"]


@pytest.mark.parametrize("kind", KINDS)
def test_energies_equal_the_literal_formulas_in_float64(kind):
    cases = [samples(kind, s, seed=1, n=16) for s in (1e-3, 0.3)]
    if kind in ("corotated", "snh", "nh"):
        # inverted (a reflection), and for "nh" below the J clamp: nearly collapsed
        inv = np.diag([1.0, 1.0, -0.5])[None] @ samples(kind, 0.1, seed=2, n=8)
        flat = np.diag([1.0, 1.0, 1e-8])[None] @ samples(kind, 0.0, seed=3, n=4)
        cases += [inv, flat]
    F = np.concatenate(cases)
    got = energies(kind, F)
    want = torch.tensor([literal(kind, f) for f in F], dtype=torch.float64)
    scale = A * (F.reshape(len(F), -1) ** 2).sum(1) * 1e-12   # the literal's rounding
    assert torch.all((got - want).abs() <= 1e-9 * want.abs() + torch.as_tensor(scale)), (
        (got - want).abs().max())


def _f32_energies(strain: float) -> dict:
    return {kind: energies(kind, samples(kind, strain)) for kind in KINDS}


def test_energies_are_accurate_in_float32():
    """Median relative error against float64 at strains of 1e-2 to 1e-4 under random
    rotations: below ``10 eps / strain`` (eps = 1.2e-7), the first-order effect of
    rounding ``F`` itself (measured: 2e-5, 2e-4, 1.6e-3 for the solid models, 10x less for
    the membranes). The literal formulas lose about ``A eps / psi``: 5e-3 at 1e-3 and
    0.5 at 1e-4 (numpy, float32)."""
    strains = (1e-2, 1e-3, 1e-4)
    got = in_precision("f32", [(_f32_energies, (s,)) for s in strains])
    bad = []
    for strain, res in zip(strains, got):
        for kind in KINDS:
            want = energies(kind, samples(kind, strain))
            rel = float(((res[kind] - want).abs() / want.abs()).median())
            if not rel < 10 * 1.2e-7 / strain:
                bad.append(f"{kind} at strain {strain}: median relative error {rel:.2g}")
    assert not bad, bad
