"""``ds.Shell``: differentiable thin shells (cloth, paper, rubber sheets, thin metal).

Usage::

    scene = ds.Scene(dim=3)
    scene.add_shell(ds.Rectangle(center=(0.5, 0.3, 0.5), size=(0.3, 0.3)),
                    ds.ShellMaterial(E=1e6, nu=0.3, thickness=5e-4, density=300.0),
                    resolution=0.02)
    scene.add_ground(height=0.0, friction=0.5)
    sim = ds.Shell(scene, dt=1e-2)
    state = sim.step(sim.reset(), torch.zeros(sim.action_dim))
"""

from __future__ import annotations

import math

import numpy as np

from .base import DeformableSimulator
from .engine import SolverOptions
from .model import ContactSpec, DeformableModel, GroupSpec, node_csr
from .shell_kernels import ShellKernels


def _rest_frames(X: np.ndarray, F: np.ndarray):
    """Per face: inverse rest shape matrix (2 x 2, in the face's own frame) and area."""
    e1 = X[F[:, 1]] - X[F[:, 0]]
    e2 = X[F[:, 2]] - X[F[:, 0]]
    n = np.cross(e1, e2)
    area = 0.5 * np.linalg.norm(n, axis=1)
    l1 = np.linalg.norm(e1, axis=1)
    t1 = e1 / l1[:, None]
    t2 = np.cross(n / np.linalg.norm(n, axis=1)[:, None], t1)
    Dm = np.zeros((len(F), 2, 2))
    Dm[:, 0, 0] = l1
    Dm[:, 0, 1] = (e2 * t1).sum(1)
    Dm[:, 1, 1] = (e2 * t2).sum(1)
    return np.linalg.inv(Dm), area


def _dihedral(X, H):
    x0, x1, x2, x3 = (X[H[:, i]] for i in range(4))
    e = x1 - x0
    nA = np.cross(e, x2 - x0)
    nB = np.cross(x0 - x1, x3 - x1)
    a = nA / np.linalg.norm(nA, axis=1)[:, None]
    b = nB / np.linalg.norm(nB, axis=1)[:, None]
    s = (np.cross(a, b) * e).sum(1) / np.linalg.norm(e, axis=1)
    return np.arctan2(s, (a * b).sum(1))


def _check_damping_bound(dt, h_min, bodies):
    """Explicit stiffness-proportional damping is stable for ``dt <= h^2 / (4 beta c^2)``."""
    for b in bodies:
        if b.beta > 0:
            c = b.material.wave_speed()
            bound = h_min ** 2 / (4 * b.beta * c ** 2)
            if dt > bound:
                raise ValueError(
                    f"dt={dt:g} s is above the explicit stability bound of body {b.name!r}'s "
                    f"stiffness damping: dt <= h^2 / (4 beta c^2) = {bound:.3g} s (beta={b.beta:g}"
                    " s); lower dt or beta, or use integrator='implicit'")


class Shell(DeformableSimulator):
    """Discrete thin shells: membrane triangles plus bending hinges, implicit or explicit.

    Membrane: St. Venant-Kirchhoff or neo-Hookean in plane stress; bending: discrete hinges
    (Grinspun et al. 2003) with optional rest-angle plasticity (``ShellMaterial(
    bending_plasticity=...)``); Rayleigh damping per shell. Contact: penalty with smoothed
    Coulomb friction against tools, colliders and the ground, the contact surface offset
    by half the thickness. Self-contact (``self_contact=r``): approximate, see below.

    Args:
        scene: a 3D ``ds.Scene`` with shells (``scene.add_shell``).
        dt, substeps, integrator, contact_stiffness, contact_width, friction_eps,
        newton_tol, cg_tol, max_newton, max_cg, adjoint_tol: as for ``ds.FEM``
            (default integrator ``"implicit"``: bending makes explicit steps tiny).
        self_contact: radius r (m) of vertex-vertex repulsion between and within shells
            (``None``: off). Approximate (``selfcontact.py``): keeps stacked or folded
            sheets about ``r`` apart; use ``r`` near the edge length.
        self_contact_capacity: most candidate pairs (default 16 per vertex).

    State: ``x``, ``v`` (N, 3), ``rest_angle`` (H,) the hinges' rest dihedral angles (rad,
    evolving under plasticity), ``tool_pos``, ``tool_rot``.

    Raises:
        ValueError: bad arguments or no shell in the scene.
    """

    kernels_cls = ShellKernels
    STATE_NAMES = ("x", "v", "rest_angle")

    def __init__(self, scene, dt: float = 1e-2, substeps: int = 1, integrator: str = "implicit",
                 contact_stiffness: float = 1e5, contact_width: float | None = None,
                 friction_eps: float = 1e-3, newton_tol: float = 1e-6, cg_tol: float = 1e-5,
                 max_newton: int = 30, max_cg: int = 2000, adjoint_tol: float = 1e-10,
                 self_contact: float | None = None, self_contact_capacity: int | None = None):
        if self_contact is not None and not (isinstance(self_contact, (int, float))
                                             and math.isfinite(self_contact) and self_contact > 0):
            raise ValueError(f"self_contact={self_contact!r} is not allowed: expected a radius "
                             "> 0 (m) or None")
        self._common_args(scene, dt, substeps, integrator, contact_stiffness, friction_eps,
                          newton_tol, cg_tol, max_newton, max_cg, adjoint_tol)
        if not scene.shells:
            raise ValueError("scene has no shell: call scene.add_shell(...) first")
        pts, faces, hinges, mass, vel, fixed, groups = [], [], [], [], [], [], []
        weights, yields, rest_angles, Dm_invs, areas = [], [], [], [], []
        n_off = f_off = h_off = 0
        for b in scene.shells:
            X, F, H = b.vertices, b.faces, b.hinges
            Dmi, area = _rest_frames(X, F)
            m = np.zeros(len(X))
            np.add.at(m, F.ravel(), np.repeat(b.material.areal_density * area / 3, 3))
            face_area = {}
            for fi, (i, j, k) in enumerate(F.tolist()):
                for u, v in ((i, j), (j, k), (k, i)):
                    face_area[(u, v)] = area[fi]
            Ae = np.asarray([face_area[(u, v)] + face_area[(v, u)] for u, v, _, _ in H.tolist()])
            le = np.linalg.norm(X[H[:, 1]] - X[H[:, 0]], axis=1) if len(H) else np.zeros(0)
            weights.append(3 * le ** 2 / Ae if len(H) else np.zeros(0))
            kappa_y = b.material.bending_plasticity
            yields.append(np.zeros(len(H)) if kappa_y is None else kappa_y * Ae / le)
            rest_angles.append(_dihedral(X, H) if len(H) else np.zeros(0))
            model = "neohookean" if b.material.membrane == "neohookean" else "stvk"
            groups.append(GroupSpec(b.name, b.material, model, f_off, f_off + len(F), b.alpha,
                                    b.beta, n_off, n_off + len(X), h_off, h_off + len(H)))
            pts.append(X)
            faces.append(F + n_off)
            hinges.append(H + n_off)
            mass.append(m)
            vel.append(np.broadcast_to(np.asarray(b.velocity), X.shape))
            fixed.append(b.fixed)
            Dm_invs.append(Dmi)
            areas.append(area)
            n_off += len(X)
            f_off += len(F)
            h_off += len(H)
        x0 = np.concatenate(pts)
        elem = np.concatenate(faces)
        hin = np.concatenate(hinges).reshape(-1, 4)
        edges = np.concatenate([np.linalg.norm(x0[elem[:, a]] - x0[elem[:, (a + 1) % 3]], axis=1)
                                for a in range(3)])
        self.h_mean = float(edges.mean())
        width = 0.1 * self.h_mean if contact_width is None else contact_width
        if not (width > 0 and math.isfinite(width)):
            raise ValueError(f"contact_width={contact_width!r} is not allowed: it must be > 0 (m)")
        if integrator == "explicit":
            c = max(b.material.wave_speed() for b in scene.shells)
            h_min = float(edges.min())
            bound = 0.5 * h_min / c
            if dt > bound:
                raise ValueError(
                    f"dt={dt:g} s is above the stability bound of the explicit integrator: dt <= "
                    f"h / (2 c) = {h_min:.4g} / (2 * {c:.4g}) = {bound:.3g} s (h the shortest "
                    "edge, c the membrane wave speed); lower dt or use integrator='implicit'")
            _check_damping_bound(dt, h_min, scene.shells)
        tools, colliders = self._obstacles(scene, width)
        slot_nodes = np.concatenate([elem.ravel(), hin.ravel()])
        ptr, slots = node_csr(len(x0), slot_nodes)
        offset = 0.5 * max(b.material.thickness for b in scene.shells)
        model = DeformableModel(
            kind="shell", dim=3, dt=self.dt, substeps=self.substeps, integrator=integrator,
            gravity=scene.gravity, x0=x0, v0=np.concatenate(vel).copy(),
            mass=np.concatenate(mass), fixed=np.concatenate(fixed), elem=elem,
            Dm_inv=np.concatenate(Dm_invs), rest=np.concatenate(areas), groups=tuple(groups),
            tools=tools, colliders=colliders, ground=scene.ground,
            contact=ContactSpec(float(contact_stiffness), float(width), offset,
                                float(friction_eps)),
            node_ptr=ptr, node_slots=slots, hinges=hin,
            hinge_weight=np.concatenate(weights), hinge_yield=np.concatenate(yields),
            rest_angle0=np.concatenate(rest_angles),
            self_contact=float(self_contact or 0.0),
            self_contact_capacity=int(self_contact_capacity or 16 * len(x0)))
        L = float(np.linalg.norm(np.ptp(x0, axis=0)))
        self.groups = {g.name: slice(g.node_start, g.node_end) for g in groups}
        self.hinge_groups = {g.name: slice(g.hinge_start, g.hinge_end) for g in groups}
        self._finish(model, SolverOptions(newton_tol, max_newton, cg_tol, max_cg, adjoint_tol, L))

    # ------------------------------------------------------------------ properties
    @property
    def n_faces(self) -> int:
        return self.model.n_elems

    @property
    def n_hinges(self) -> int:
        return self.model.n_hinges

    @property
    def faces(self) -> np.ndarray:
        """(T, 3) vertex indices of the triangles."""
        return self.model.elem

    @property
    def hinges(self) -> np.ndarray:
        """(H, 4) hinges ``(a, b, c, d)``: edge ``a-b``, wings ``c`` and ``d``."""
        return self.model.hinges

    @property
    def state_spec(self) -> dict[str, tuple]:
        spec = super().state_spec
        spec["rest_angle"] = (self.n_hinges,)
        return spec

    def _engine_state(self, state):
        out = super()._engine_state(state)
        if self.n_hinges == 0:   # the kernels hold one unused angle (see ShellKernels)
            out[2] = out[2].new_zeros(1)
        return out

    def _state_tensors(self, tensors, start):
        out = super()._state_tensors(tensors, start)
        if self.n_hinges == 0:
            out["rest_angle"] = start.rest_angle
        return out

    def _extra_state(self) -> dict:
        import torch

        return {"rest_angle": torch.as_tensor(self.model.rest_angle0, dtype=self.dtype,
                                              device=self.device).clone()}

    # ------------------------------------------------------------------ parameters
    def internal_params(self, params: dict | None = None):
        """``(material (G, 6), friction (B,))``: per shell ``(mu t, lam t, D, alpha, beta, 0)``
        (plane-stress Lame moduli times the thickness, plate stiffness ``D``)."""
        import torch

        params = self._scalar_params(params)
        rows = []
        for g in self.model.groups:
            mat = g.material
            vals = {p: self._pick(params, g, p, getattr(mat, p)) for p in ("E", "nu")}
            D = params.get(f"{g.name}.bending_stiffness", params.get("bending_stiffness"))
            if D is None and mat.bending_stiffness is not None:
                D = torch.tensor(float(mat.bending_stiffness), dtype=self.dtype)
            try:
                mat.validate_values({**vals, **({} if D is None else {"bending_stiffness": D})})
            except ValueError as e:
                raise ValueError(f"params for shell {g.name!r}: {e}") from None
            if D is not None:
                vals["bending_stiffness"] = D
            internal = mat.internal(vals)
            alpha, beta = self._damping_values(params, g)
            rows.append(torch.stack([internal[0], internal[1], internal[2],
                                     alpha.to(internal.dtype), beta.to(internal.dtype),
                                     internal.new_zeros(())]))
        return torch.stack(rows).to(self.device, self.dtype), self._friction_values(params)

    def __repr__(self) -> str:
        return (f"Shell(vertices={self.n_nodes}, faces={self.n_faces}, hinges={self.n_hinges}, "
                f"integrator={self.integrator!r}, dt={self.dt:g}, substeps={self.substeps}, "
                f"tools={len(self.model.tools)})")
