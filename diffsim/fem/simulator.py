"""``ds.FEM``: differentiable finite elements for soft solids (tets in 3D, triangles in 2D).

Usage::

    scene = ds.Scene(dim=3)
    scene.add_soft_body(ds.Box(lo=(0, 0.1, 0), hi=(0.4, 0.14, 0.04)),
                        ds.StableNeoHookean(E=1e5, nu=0.3), resolution=0.01,
                        fixed=lambda x: x[:, 0] < 1e-6)
    sim = ds.FEM(scene, dt=1e-2, integrator="implicit")
    state = sim.step(sim.reset(), torch.zeros(sim.action_dim))
    rest = sim.equilibrium()                       # quasi-static solve
"""

from __future__ import annotations

import math

import numpy as np

from ..materials import Material, lame
from .base import DeformableSimulator
from .constitutive import model_for
from .engine import SolverOptions
from .model import ContactSpec, DeformableModel, GroupSpec, node_csr
from .solid_kernels import SolidKernels


class FEM(DeformableSimulator):
    """Linear finite elements (Lagrangian, lumped mass) for hyperelastic solids.

    Materials: ``ds.LinearElastic``, ``ds.Elastic`` (fixed corotated),
    ``ds.StableNeoHookean`` (Smith et al. 2018), ``ds.NeoHookean``; Rayleigh damping per
    body (``scene.add_soft_body(..., damping=(alpha, beta))``). Contact: penalty with
    smoothed Coulomb friction against tools, colliders and the ground (``contact.py``);
    bodies do not collide with each other.

    Args:
        scene: a ``ds.Scene`` with soft bodies (``scene.add_soft_body``).
        dt: substep (s).
        substeps: substeps per control step.
        integrator: ``"implicit"`` (backward Euler by Newton's method; unconditionally
            stable, gradients by the adjoint of each step) or ``"explicit"`` (symplectic
            Euler; ``dt`` must respect the element CFL bound ``h / c``).
        contact_stiffness: kappa (1/s^2), penalty acceleration per metre of penetration.
        contact_width: penalty onset length (m); default a tenth of the mean edge.
        friction_eps: friction smoothing velocity (m/s).
        newton_tol: Newton stops when a step moves no node more than ``newton_tol`` times
            the scene's body size.
        cg_tol: relative residual of the Newton systems' CG solves.
        max_newton, max_cg: iteration limits.
        adjoint_tol: relative residual of the adjoint CG solves (backward pass).

    Raises:
        ValueError: bad arguments, no soft body, ``dt`` above the explicit stability
            bound (with the bound in the message).
    """

    kernels_cls = SolidKernels

    def __init__(self, scene, dt: float = 1e-2, substeps: int = 1, integrator: str = "implicit",
                 contact_stiffness: float = 1e5, contact_width: float | None = None,
                 friction_eps: float = 1e-3, newton_tol: float = 1e-6, cg_tol: float = 1e-5,
                 max_newton: int = 30, max_cg: int = 2000, adjoint_tol: float = 1e-10):
        self._common_args(scene, dt, substeps, integrator, contact_stiffness, friction_eps,
                          newton_tol, cg_tol, max_newton, max_cg, adjoint_tol)
        if not scene.soft_bodies:
            raise ValueError("scene has no soft body: call scene.add_soft_body(...) first")
        d = self.dim
        pts, cells, mass, vel, fixed, groups = [], [], [], [], [], []
        n_off = e_off = 0
        for b in scene.soft_bodies:
            model_cls = model_for(b.material)
            P, C = b.points, b.cells
            Ds = np.stack([P[C[:, a]] - P[C[:, 0]] for a in range(1, d + 1)], axis=-1)
            vol = np.abs(np.linalg.det(Ds)) / math.factorial(d)
            m = np.zeros(len(P))
            np.add.at(m, C.ravel(), np.repeat(b.material.density * vol / (d + 1), d + 1))
            groups.append(GroupSpec(b.name, b.material, model_cls, e_off, e_off + len(C),
                                    b.alpha, b.beta, n_off, n_off + len(P)))
            pts.append(P)
            cells.append(C + n_off)
            mass.append(m)
            vel.append(np.broadcast_to(np.asarray(b.velocity), P.shape))
            fixed.append(b.fixed)
            n_off += len(P)
            e_off += len(C)
        x0 = np.concatenate(pts)
        elem = np.concatenate(cells)
        Ds = np.stack([x0[elem[:, a]] - x0[elem[:, 0]] for a in range(1, d + 1)], axis=-1)
        rest = np.abs(np.linalg.det(Ds)) / math.factorial(d)
        edges = np.concatenate([np.linalg.norm(x0[elem[:, a]] - x0[elem[:, b]], axis=1)
                                for a in range(d + 1) for b in range(a + 1, d + 1)])
        self.h_mean, self.h_min = float(edges.mean()), float(
            (rest * math.factorial(d)).min() ** (1.0 / d))
        width = 0.1 * self.h_mean if contact_width is None else contact_width
        if not (width > 0 and math.isfinite(width)):
            raise ValueError(f"contact_width={contact_width!r} is not allowed: it must be > 0 (m)")
        if integrator == "explicit":
            c = max(b.material.wave_speed() for b in scene.soft_bodies)
            bound = self.h_min / c
            if dt > bound:
                raise ValueError(
                    f"dt={dt:g} s is above the stability bound of the explicit integrator: dt <= "
                    f"h / c = {self.h_min:.4g} / {c:.4g} = {bound:.3g} s (h the smallest element "
                    "size, c the fastest wave speed); lower dt, coarsen the mesh, or use "
                    "integrator='implicit'")
            from .shell import _check_damping_bound

            _check_damping_bound(dt, self.h_min, scene.soft_bodies)
            if dt > 1.0 / math.sqrt(contact_stiffness):
                raise ValueError(f"dt={dt:g} s is above the explicit contact bound 1/sqrt("
                                 f"contact_stiffness) = {1 / math.sqrt(contact_stiffness):.3g} s")
        tools, colliders = self._obstacles(scene, width)
        ptr, slots = node_csr(len(x0), elem.ravel())
        model = DeformableModel(
            kind="solid", dim=d, dt=self.dt, substeps=self.substeps, integrator=integrator,
            gravity=scene.gravity, x0=x0, v0=np.concatenate(vel).copy(),
            mass=np.concatenate(mass), fixed=np.concatenate(fixed), elem=elem,
            Dm_inv=np.linalg.inv(Ds), rest=rest, groups=tuple(groups), tools=tools,
            colliders=colliders, ground=scene.ground,
            contact=ContactSpec(float(contact_stiffness), float(width), 0.0,
                                float(friction_eps)),
            node_ptr=ptr, node_slots=slots)
        L = float(np.linalg.norm(np.ptp(x0, axis=0)))
        self.groups = {g.name: slice(g.node_start, g.node_end) for g in groups}
        self._finish(model, SolverOptions(newton_tol, max_newton, cg_tol, max_cg, adjoint_tol, L))

    @property
    def n_elements(self) -> int:
        return self.model.n_elems

    @property
    def elements(self) -> np.ndarray:
        """(E, dim + 1) node indices of the elements."""
        return self.model.elem

    def internal_params(self, params: dict | None = None):
        """``(material (G, 6), friction (B,))``: per body ``(a, b, alpha, beta, mu, lam)``
        (``a, b`` the model's moduli, see ``constitutive.py``) and obstacle friction."""
        import torch

        params = self._scalar_params(params)
        rows = []
        for g in self.model.groups:
            mat: Material = g.material
            vals = {p: self._pick(params, g, p, getattr(mat, p)) for p in mat.param_names}
            try:
                mat.validate_values(vals)
            except ValueError as e:
                raise ValueError(f"params for body {g.name!r}: {e}") from None
            mu, lam = lame(vals["E"], vals["nu"])
            a, b = g.model.lame_to_ab(mu, lam)
            alpha, beta = self._damping_values(params, g)
            rows.append(torch.stack([torch.as_tensor(v, dtype=self.dtype).reshape(())
                                     for v in (a, b, alpha, beta, mu, lam)]))
        return torch.stack(rows).to(self.device), self._friction_values(params)

    def __repr__(self) -> str:
        return (f"FEM(dim={self.dim}, nodes={self.n_nodes}, elements={self.n_elements}, "
                f"integrator={self.integrator!r}, dt={self.dt:g}, substeps={self.substeps}, "
                f"tools={len(self.model.tools)})")
