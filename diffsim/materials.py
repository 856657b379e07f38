"""Materials: frozen, validated parameter sets in SI units.

A material is data only. The simulators pick the constitutive model that goes
with its type at compile time (``diffsim/mpm/constitutive.py`` for MPM), so a
scene may mix materials without integer material ids in kernels.

Each material names its differentiable parameters (``param_names``) and maps
them, with torch operations, to the internal vector the kernels read
(``internal``); gradients therefore reach ``E`` and ``nu`` (not only the Lamé
parameters) through ordinary torch autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch

#: length of the per-material internal parameter vector the kernels read
N_INTERNAL = 6


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is not allowed: it must be a finite number > 0")


def _check_nu(nu: float) -> None:
    if not (isinstance(nu, (int, float)) and -1.0 < nu < 0.5):
        raise ValueError(f"nu={nu!r} is not allowed: Poisson's ratio must lie in (-1, 0.5)")


def lame(E, nu):
    """Lamé parameters ``(mu, lam)`` from Young's modulus and Poisson's ratio (torch or float)."""
    return E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))


@dataclass(frozen=True, kw_only=True)
class Material:
    """Base of all materials. ``density`` in kg/m^3 (per unit area in 2D scenes)."""

    density: float = 1e3

    #: names of the parameters a ``SimulationProblem`` may differentiate
    param_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        _check_positive("density", self.density)

    def wave_speed(self) -> float:
        """Fastest elastic/acoustic wave speed (m/s), for the CFL bound on ``dt``."""
        raise NotImplementedError

    def values(self) -> dict[str, float]:
        """The differentiable parameters as floats."""
        return {n: float(getattr(self, n)) for n in self.param_names}

    def internal(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Map parameters (torch scalars) to the ``(N_INTERNAL,)`` vector the kernels read."""
        raise NotImplementedError

    def validate_values(self, p: dict[str, torch.Tensor]) -> None:
        """Check differentiable parameter values given at solve time (same rules as init)."""
        checked = type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)
                                   if f.init},
                                **{k: float(v.detach()) for k, v in p.items()}})
        del checked


def _pack(*values) -> torch.Tensor:
    vals = [v if torch.is_tensor(v) else torch.tensor(float(v), dtype=torch.float64)
            for v in values]
    dtype = next((v.dtype for v in vals if v.is_floating_point()), torch.float64)
    device = vals[0].device
    out = torch.stack([v.to(dtype=dtype, device=device).reshape(()) for v in vals])
    if out.numel() < N_INTERNAL:
        out = torch.cat([out, out.new_zeros(N_INTERNAL - out.numel())])
    return out


@dataclass(frozen=True, kw_only=True)
class _ElasticBase(Material):
    E: float = 1e4
    nu: float = 0.3

    param_names: ClassVar[tuple[str, ...]] = ("E", "nu")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("E", self.E)
        _check_nu(self.nu)

    def wave_speed(self) -> float:
        mu, lam = lame(self.E, self.nu)
        return math.sqrt((lam + 2 * mu) / self.density)

    def internal(self, p):
        mu, lam = lame(p["E"], p["nu"])
        return _pack(mu, lam)


@dataclass(frozen=True, kw_only=True)
class Elastic(_ElasticBase):
    """Fixed-corotated hyperelastic solid (Stomakhin et al. 2012).

    Args:
        E: Young's modulus (Pa), > 0.
        nu: Poisson's ratio, in (-1, 0.5).
        density: kg/m^3.
    """


@dataclass(frozen=True, kw_only=True)
class NeoHookean(_ElasticBase):
    """Compressible neo-Hookean solid, ``psi = mu/2 (tr(F^T F) - d) - mu log J + lam/2 log^2 J``.

    Args:
        E: Young's modulus (Pa), > 0.
        nu: Poisson's ratio, in (-1, 0.5).
        density: kg/m^3.
    """


@dataclass(frozen=True, kw_only=True)
class Plasticine(_ElasticBase):
    """Elastoplastic solid: von Mises plasticity on the log strain, corotated elasticity.

    The return mapping projects the deviatoric log (Hencky) strain back to the
    yield surface ``|dev(eps)| <= yield_stress / (2 mu)``; the stress is the
    fixed-corotated one of the projected deformation (PlasticineLab's model,
    Huang et al. 2021). Volume is preserved by plastic flow.

    Args:
        E: Young's modulus (Pa), > 0.
        nu: Poisson's ratio, in (-1, 0.5).
        yield_stress: von Mises yield stress (Pa), > 0.
        density: kg/m^3.
    """

    yield_stress: float = 50.0
    param_names: ClassVar[tuple[str, ...]] = ("E", "nu", "yield_stress")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("yield_stress", self.yield_stress)

    def internal(self, p):
        mu, lam = lame(p["E"], p["nu"])
        return _pack(mu, lam, p["yield_stress"])


@dataclass(frozen=True, kw_only=True)
class Fluid(Material):
    """Weakly compressible Newtonian fluid.

    Kirchhoff stress ``tau = J (-p I + viscosity (grad v + grad v^T))`` with the
    linear equation of state ``p = bulk_modulus (1 - J)``; ``grad v`` is the APIC
    affine matrix ``C``. Shear deformation is not remembered (``F`` is reset to
    ``J^(1/d) I`` each substep).

    Args:
        bulk_modulus: K (Pa), > 0; sets the sound speed ``sqrt(K / density)``.
        viscosity: dynamic viscosity (Pa s), >= 0.
        density: kg/m^3.
    """

    bulk_modulus: float = 1e4
    viscosity: float = 0.0
    param_names: ClassVar[tuple[str, ...]] = ("bulk_modulus", "viscosity")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("bulk_modulus", self.bulk_modulus)
        if not (math.isfinite(self.viscosity) and self.viscosity >= 0):
            raise ValueError(f"viscosity={self.viscosity!r} is not allowed: it must be >= 0")

    def wave_speed(self) -> float:
        return math.sqrt(self.bulk_modulus / self.density)

    def internal(self, p):
        return _pack(p["bulk_modulus"], p["viscosity"])


@dataclass(frozen=True, kw_only=True)
class Sand(_ElasticBase):
    """Granular material: Drucker-Prager plasticity (Klar et al. 2016), corotated elasticity.

    The return mapping acts on the log strain; cohesionless: under tension
    (``tr(eps) > 0``) the particle separates freely. The friction angle sets
    ``alpha = sqrt(2/3) 2 sin(phi) / (3 - sin(phi))``. The elastic stress is the
    fixed-corotated one of the projected deformation (Klar et al. use the
    Hencky stress; the corotated one keeps gradients exact, see
    ``diffsim/mpm/constitutive.py``).

    Args:
        E: Young's modulus (Pa), > 0.
        nu: Poisson's ratio, in (-1, 0.5).
        friction_angle: internal friction angle phi in degrees, in (0, 90).
        density: kg/m^3.
    """

    friction_angle: float = 30.0
    param_names: ClassVar[tuple[str, ...]] = ("E", "nu", "friction_angle")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 < self.friction_angle < 90.0):
            raise ValueError(f"friction_angle={self.friction_angle!r} is not allowed: "
                             "it must lie in (0, 90) degrees")

    def internal(self, p):
        mu, lam = lame(p["E"], p["nu"])
        s = torch.sin(torch.deg2rad(torch.as_tensor(p["friction_angle"])))
        alpha = math.sqrt(2.0 / 3.0) * 2 * s / (3 - s)
        return _pack(mu, lam, alpha)


@dataclass(frozen=True, kw_only=True)
class Snow(_ElasticBase):
    """Snow-like clamped plasticity (Stomakhin et al. 2013).

    Singular values of the elastic deformation are clamped to
    ``[1 - critical_compression, 1 + critical_stretch]``; the plastic volume ratio
    ``Jp`` hardens the Lamé parameters by ``exp(hardening (1 - Jp))``.

    Args:
        E: Young's modulus (Pa), > 0.
        nu: Poisson's ratio, in (-1, 0.5).
        critical_compression: theta_c in (0, 1).
        critical_stretch: theta_s > 0.
        hardening: xi >= 0.
        density: kg/m^3.
    """

    critical_compression: float = 2.5e-2
    critical_stretch: float = 7.5e-3
    hardening: float = 10.0
    param_names: ClassVar[tuple[str, ...]] = ("E", "nu")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.critical_compression < 1.0:
            raise ValueError(f"critical_compression={self.critical_compression!r} is not "
                             "allowed: it must lie in (0, 1)")
        _check_positive("critical_stretch", self.critical_stretch)
        if not (math.isfinite(self.hardening) and self.hardening >= 0):
            raise ValueError(f"hardening={self.hardening!r} is not allowed: it must be >= 0")

    def internal(self, p):
        mu, lam = lame(p["E"], p["nu"])
        return _pack(mu, lam, self.hardening, self.critical_compression, self.critical_stretch)


__all__ = ["Material", "Elastic", "NeoHookean", "Plasticine", "Fluid", "Sand", "Snow", "lame",
           "N_INTERNAL"]
