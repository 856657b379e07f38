"""Element physics of ``ds.Shell``: membrane triangles and bending hinges (``shell_physics.py``).

Slots: triangle ``e`` writes slots ``3 e + a``, hinge ``h`` writes ``3 T + 4 h + a``. The
shell energies are polynomial/trigonometric in the positions (no SVD), so their reverse
passes come from Taichi's autodiff: ``explicit_elems`` (explicit steps) and ``vjp_elems``
(adjoint of implicit steps, seeded with ``-lam`` per slot). Rest angles are state
(``rest_angle[s, h]``): plasticity updates them after every step.
"""


import taichi as ti

from .kernels import DeformableKernels
from .selfcontact import VertexRepulsion
from .shell_physics import (
    HINGE_FACTOR,
    bend_angle,
    dihedral,
    membrane_damping,
    membrane_energy,
    membrane_stress,
    membrane_tangent,
)


@ti.data_oriented
class ShellKernels(DeformableKernels):
    ALPHA_INDEX = 3  # internal vector: (mu t, lam t, D, alpha, beta, 0)
    AFTER_SUBSTEP_STAGE = "plastic_update (hinge rest angles)"
    #: the hinges' rest dihedral angles change with plasticity: part of the state
    EXTRA_STATE = ("rest_angle",)

    def extra_state_shapes(self) -> tuple:
        return ((max(self.H, 1),),)   # a shell without hinges holds one unused angle

    def _build_fields(self):
        real, place, g = self.real, self._place, self.requires_grad
        T, H = self.E, max(self.H, 1)
        self.faces = ti.Vector.field(3, ti.i32)
        self.tDmi = ti.Matrix.field(2, 2, real)
        self.tarea = ti.field(real)
        self.tF = ti.Matrix.field(3, 2, real)
        self.tFn = ti.Matrix.field(3, 2, real)
        self.tS = ti.Matrix.field(2, 2, real)
        self.tCi = ti.Matrix.field(2, 2, real)
        self.tc1 = ti.field(real)
        place((T,), self.faces, self.tDmi, self.tarea, self.tF, self.tFn, self.tS, self.tCi,
              self.tc1, grad=False)
        self.hinges = ti.Vector.field(4, ti.i32)
        self.hw = ti.field(real)
        self.hyield = ti.field(real)
        self.hrest_sh = ti.field(real)
        self.hcoef = ti.field(real)
        self.eH = ti.field(real)
        place((H,), self.hinges, self.hw, self.hyield, self.hrest_sh, self.hcoef, self.eH,
              grad=False)
        self.hg = ti.Vector.field(3, real)
        self.hgn = ti.Vector.field(3, real)
        place((H, 4), self.hg, self.hgn, grad=False)
        self.hH = ti.Matrix.field(3, 3, real)
        place((H, 4, 4), self.hH, grad=False)
        self.xe = ti.Vector.field(3, real, needs_grad=True)
        self.ge = ti.Vector.field(3, real, needs_grad=True)
        place((H, 4), self.xe, self.ge, grad=True)
        self.rest_angle = ti.field(real, needs_grad=g)
        place((self.capacity, H), self.rest_angle)
        self.hinge_mode = ti.field(ti.i32)   # 0: Gauss-Newton hinge Hessian, 1: exact blocks
        place((1,), self.hinge_mode, grad=False)
        # self-contact: vertex repulsion over candidate pairs rebuilt before every substep
        if self.model.self_contact > 0:
            self.pairs = VertexRepulsion(self, self.model.self_contact,
                                         self.model.self_contact_capacity, self.model.elem)

    def _upload_static(self):
        m = self.model
        self.faces.from_numpy(m.elem.astype("int32"))
        self.tDmi.from_numpy(m.Dm_inv)
        self.tarea.from_numpy(m.rest)
        if self.H:
            self.hinges.from_numpy(m.hinges.astype("int32"))
            self.hw.from_numpy(m.hinge_weight)
            self.hyield.from_numpy(m.hinge_yield)
        self.g_start = tuple(gr.start for gr in m.groups)
        self.g_end = tuple(gr.end for gr in m.groups)
        self.h_start = tuple(gr.hinge_start for gr in m.groups)
        self.h_end = tuple(gr.hinge_end for gr in m.groups)
        self.g_neo = tuple(gr.model == "neohookean" for gr in m.groups)
        self.plastic = bool(self.H and (m.hinge_yield > 0).any())
        self.hslot0 = 3 * m.n_elems
        self.hinge_mode[0] = 0

    # ------------------------------------------------------------------ engine entry points
    def element_forces(self, s: int, ad: bool) -> None:
        self.explicit_elems(s, ad)

    def element_forces_adjoint(self, s: int) -> None:
        self.explicit_elems.grad(s, True)

    def element_vjp(self, s: int) -> None:
        self.vjp_elems.grad(s)

    def exact_hessian(self, s: int) -> None:
        """Exact hinge Hessian blocks at ``xk`` by 12 reverse passes (used by adjoint solves)."""
        if not self.H:
            return
        self.hinge_gather_local()
        self.hinge_pass_io(-1, -1, 0, 0)
        order = [(b, c) for b in range(4) for c in range(3)]
        for n, (b, c) in enumerate(order):
            self.hinge_local_grad.grad()
            nb, nc = order[n + 1] if n + 1 < len(order) else (-1, -1)
            self.hinge_pass_io(b, c, nb, nc)
        self.hinge_mode[0] = 1

    def end_exact(self) -> None:
        self.hinge_mode[0] = 0

    def after_substep(self, s: int) -> None:
        if self.H:
            self.plastic_update(s)

    def before_substep(self, s: int) -> None:
        self.pairs.before_substep(s)

    def after_substep_grad(self, s: int) -> None:
        if self.H:
            self.plastic_update.grad(s)

    # ------------------------------------------------------------------ geometry
    @ti.func
    def _tri_F(self, e, src: ti.template()):
        n = self.faces[e]
        x0 = src[n[0]]
        Ds = ti.Matrix.zero(float, 3, 2)
        for a in ti.static(range(2)):
            col = src[n[a + 1]] - x0
            for r in ti.static(range(3)):
                Ds[r, a] = col[r]
        return Ds @ self.tDmi[e]

    @ti.func
    def _tri_F_slot(self, e, f: ti.template(), s):
        n = self.faces[e]
        x0 = f[s, n[0]]
        Ds = ti.Matrix.zero(float, 3, 2)
        for a in ti.static(range(2)):
            col = f[s, n[a + 1]] - x0
            for r in ti.static(range(3)):
                Ds[r, a] = col[r]
        return Ds @ self.tDmi[e]

    @ti.func
    def _tri_write(self, e, M, sign, buf: ti.template()):
        """Slots of triangle ``e`` from ``M = A P Dm^-T`` (3 x 2): ``sign`` x gradient."""
        base = e * 3
        c1 = ti.Vector([M[0, 0], M[1, 0], M[2, 0]])
        c2 = ti.Vector([M[0, 1], M[1, 1], M[2, 1]])
        buf[base + 1] = sign * c1
        buf[base + 2] = sign * c2
        buf[base] = -sign * (c1 + c2)

    @ti.func
    def _beta(self, e, a: ti.template()):
        Dmi = self.tDmi[e]
        beta = ti.Vector.zero(float, 2)
        if ti.static(a == 0):
            beta = -ti.Vector([Dmi[0, 0] + Dmi[1, 0], Dmi[0, 1] + Dmi[1, 1]])
        else:
            beta = ti.Vector([Dmi[a - 1, 0], Dmi[a - 1, 1]])
        return beta

    @ti.func
    def _hinge_x(self, h, src: ti.template()):
        n = self.hinges[h]
        return src[n[0]], src[n[1]], src[n[2]], src[n[3]]

    @ti.func
    def _hinge_x_slot(self, h, f: ti.template(), s):
        n = self.hinges[h]
        return f[s, n[0]], f[s, n[1]], f[s, n[2]], f[s, n[3]]

    @ti.func
    def _hinge_write(self, h, g0, g1, g2, g3, buf: ti.template()):
        base = self.hslot0 + 4 * h
        buf[base] = g0
        buf[base + 1] = g1
        buf[base + 2] = g2
        buf[base + 3] = g3

    # ------------------------------------------------------------------ implicit hooks
    @ti.func
    def _elem_lag(self, s: ti.template()):
        for e in range(self.E):
            self.tFn[e] = self._tri_F_slot(e, self.x, s)
        for h in range(self.H):
            q0, q1, q2, q3 = self._hinge_x_slot(h, self.x, s)
            _t, g0, g1, g2, g3 = dihedral(q0, q1, q2, q3)
            self.hgn[h, 0] = g0
            self.hgn[h, 1] = g1
            self.hgn[h, 2] = g2
            self.hgn[h, 3] = g3
            self.hrest_sh[h] = self.rest_angle[s, h]

    @ti.func
    def _hinge_lag_dot(self, h, src: ti.template()):
        """``grad theta_n . (x - x_n)`` over the hinge's nodes (lagged bending damping)."""
        n = self.hinges[h]
        acc = 0.0
        for a in ti.static(range(4)):
            acc += self.hgn[h, a].dot(src[n[a]] - self.xn_sh[n[a]])
        return acc

    @ti.func
    def _elem_grad(self, src: ti.template()):
        iw = self.iw[0]
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                prm = self.sh_material[gi]
                F = self._tri_F(e, src)
                S, _Ci, _c1 = membrane_stress(F, prm[0], prm[1], self.g_neo[gi])
                Fn = self.tFn[e]
                P = F @ S + iw * membrane_damping(Fn, (F - Fn) / self.dt, prm[4], prm[0], prm[1])
                self._tri_write(e, self.tarea[e] * P @ self.tDmi[e].transpose(), 1.0,
                                self.contrib)
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.sh_material[gi]
                kw = HINGE_FACTOR * prm[2] * self.hw[h]
                q0, q1, q2, q3 = self._hinge_x(h, src)
                theta, g0, g1, g2, g3 = dihedral(q0, q1, q2, q3)
                c = 2 * kw * bend_angle(theta, self.hrest_sh[h])
                cd = iw * 2 * prm[4] * kw / self.dt * self._hinge_lag_dot(h, src)
                self._hinge_write(h, c * g0 + cd * self.hgn[h, 0], c * g1 + cd * self.hgn[h, 1],
                                  c * g2 + cd * self.hgn[h, 2], c * g3 + cd * self.hgn[h, 3],
                                  self.contrib)

    @ti.func
    def _elem_energy(self, src: ti.template()):
        iw = self.iw[0]
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                prm = self.sh_material[gi]
                F = self._tri_F(e, src)
                psi = membrane_energy(F, prm[0], prm[1], self.g_neo[gi])
                Fn = self.tFn[e]
                M = Fn.transpose() @ (F - Fn) / self.dt
                Ed = 0.5 * (M + M.transpose())
                damp = 0.5 * self.dt * prm[4] * (2 * prm[0] * (Ed * Ed).sum()
                                                 + prm[1] * Ed.trace() ** 2)
                self.eE[e] = self.tarea[e] * (psi + iw * damp)
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.sh_material[gi]
                kw = HINGE_FACTOR * prm[2] * self.hw[h]
                q0, q1, q2, q3 = self._hinge_x(h, src)
                theta, _g0, _g1, _g2, _g3 = dihedral(q0, q1, q2, q3)
                lag = self._hinge_lag_dot(h, src)
                self.eH[h] = kw * bend_angle(theta, self.hrest_sh[h]) ** 2 + iw * prm[4] * kw / self.dt * (
                    lag * lag)

    @ti.func
    def _elem_prepare(self, src: ti.template(), project: ti.template()):
        iw = self.iw[0]
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                prm = self.sh_material[gi]
                F = self._tri_F(e, src)
                S, Ci, c1 = membrane_stress(F, prm[0], prm[1], self.g_neo[gi])
                if ti.static(project):
                    S = _psd2(S)
                    c1 = ti.max(c1, 0.0)
                self.tF[e] = F
                self.tS[e] = S
                self.tCi[e] = Ci
                self.tc1[e] = c1
                Fn = self.tFn[e]
                cd = iw * prm[4] / self.dt
                A = self.tarea[e]
                for a in ti.static(range(3)):
                    # node a moving by delta: dF = delta beta^T gives (closed form of
                    # membrane_tangent) (beta.S.beta) delta + F (c1 s Ci + (c1 + lam) b b^T) F^T delta
                    beta = self._beta(e, a)
                    b = Ci @ beta
                    sb = beta.dot(b)
                    inner = c1 * sb * Ci + (c1 + prm[1]) * b.outer_product(b)
                    blk = beta.dot(S @ beta) * ti.Matrix.identity(float, 3) + F @ inner @ F.transpose()
                    Fb = Fn @ beta
                    blk += cd * (prm[0] * beta.dot(beta) * Fn @ Fn.transpose()
                                 + (prm[0] + prm[1]) * Fb.outer_product(Fb))
                    self.contrib_m[e * 3 + a] = A * blk
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.sh_material[gi]
                kw = HINGE_FACTOR * prm[2] * self.hw[h]
                q0, q1, q2, q3 = self._hinge_x(h, src)
                _t, g0, g1, g2, g3 = dihedral(q0, q1, q2, q3)
                self.hg[h, 0] = g0
                self.hg[h, 1] = g1
                self.hg[h, 2] = g2
                self.hg[h, 3] = g3
                self.hcoef[h] = 2 * kw
                cd = iw * 2 * prm[4] * kw / self.dt
                exact = self.hinge_mode[0]
                for a in ti.static(range(4)):
                    ga = self.hg[h, a]
                    gn = self.hgn[h, a]
                    blk = 2 * kw * ga.outer_product(ga)
                    if exact == 1:
                        blk = self.hH[h, a, a]
                    self.contrib_m[self.hslot0 + 4 * h + a] = blk + cd * gn.outer_product(gn)

    @ti.func
    def _elem_matvec(self, src: ti.template()):
        iw = self.iw[0]
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                prm = self.sh_material[gi]
                dF = self._tri_F(e, src)
                dP = membrane_tangent(self.tF[e], self.tS[e], self.tCi[e], self.tc1[e], prm[1], dF)
                dP += iw * membrane_damping(self.tFn[e], dF / self.dt, prm[4], prm[0], prm[1])
                self._tri_write(e, self.tarea[e] * dP @ self.tDmi[e].transpose(), 1.0,
                                self.contrib)
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.sh_material[gi]
                n = self.hinges[h]
                gp = 0.0
                gnp = 0.0
                for a in ti.static(range(4)):
                    gp += self.hg[h, a].dot(src[n[a]])
                    gnp += self.hgn[h, a].dot(src[n[a]])
                cd = iw * 2 * prm[4] * HINGE_FACTOR * prm[2] * self.hw[h] / self.dt * gnp
                exact = self.hinge_mode[0]
                for a in ti.static(range(4)):
                    y = self.hcoef[h] * gp * self.hg[h, a]
                    if exact == 1:
                        y = ti.Vector.zero(float, 3)
                        for b in ti.static(range(4)):
                            y += self.hH[h, a, b] @ src[n[b]]
                    self.contrib[self.hslot0 + 4 * h + a] = y + cd * self.hgn[h, a]

    @ti.func
    def _elem_grad_vjp(self, s: ti.template()):
        """Element gradient at ``xk`` from the real fields (lag from ``x[s]``); autodiff only
        (so no statement outside the loops)."""
        for gi in ti.static(range(self.n_groups)):
            ti.loop_config(serialize=self.deterministic)
            for e in range(self.g_start[gi], self.g_end[gi]):
                iw = self.iw[0]
                prm = self.material[gi]
                F = self._tri_F(e, self.xk)
                Fn = self._tri_F_slot(e, self.x, s)
                S, _Ci, _c1 = membrane_stress(F, prm[0], prm[1], self.g_neo[gi])
                P = F @ S + iw * membrane_damping(Fn, (F - Fn) / self.dt, prm[4], prm[0], prm[1])
                self._tri_write(e, self.tarea[e] * P @ self.tDmi[e].transpose(), 1.0,
                                self.contrib)
            ti.loop_config(serialize=self.deterministic)
            for h in range(self.h_start[gi], self.h_end[gi]):
                iw = self.iw[0]
                prm = self.material[gi]
                kw = HINGE_FACTOR * prm[2] * self.hw[h]
                q0, q1, q2, q3 = self._hinge_x(h, self.xk)
                theta, g0, g1, g2, g3 = dihedral(q0, q1, q2, q3)
                x0, x1, x2, x3 = self._hinge_x_slot(h, self.x, s)
                _tn, n0, n1, n2, n3 = dihedral(x0, x1, x2, x3)
                y0, y1, y2, y3 = self._hinge_x(h, self.xk)
                lag = n0.dot(y0 - x0) + n1.dot(y1 - x1) + n2.dot(y2 - x2) + n3.dot(y3 - x3)
                c = 2 * kw * bend_angle(theta, self.rest_angle[s, h])
                cd = iw * 2 * prm[4] * kw / self.dt * lag
                self._hinge_write(h, c * g0 + cd * n0, c * g1 + cd * n1, c * g2 + cd * n2,
                                  c * g3 + cd * n3, self.contrib)

    @ti.kernel
    def vjp_elems(self, s: ti.i32):
        """Only its reverse (seeded with ``-lam`` per slot) is used."""
        self._elem_grad_vjp(s)

    # ------------------------------------------------------------------ explicit step
    @ti.kernel
    def explicit_elems(self, s: ti.i32, ad: ti.template()):
        """Membrane, bending and damping forces of slot ``s`` into ``contrib`` (autodiff)."""
        for gi in ti.static(range(self.n_groups)):
            ti.loop_config(serialize=ti.static(self._serial(ad)))
            for e in range(self.g_start[gi], self.g_end[gi]):
                prm = self.material[gi]
                F = self._tri_F_slot(e, self.x, s)
                Fdot = self._tri_F_slot(e, self.v, s)
                S, _Ci, _c1 = membrane_stress(F, prm[0], prm[1], self.g_neo[gi])
                P = F @ S + membrane_damping(F, Fdot, prm[4], prm[0], prm[1])
                self._tri_write(e, self.tarea[e] * P @ self.tDmi[e].transpose(), -1.0,
                                self.contrib)
            ti.loop_config(serialize=ti.static(self._serial(ad)))
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.material[gi]
                kw = HINGE_FACTOR * prm[2] * self.hw[h]
                q0, q1, q2, q3 = self._hinge_x_slot(h, self.x, s)
                theta, g0, g1, g2, g3 = dihedral(q0, q1, q2, q3)
                v0, v1, v2, v3 = self._hinge_x_slot(h, self.v, s)
                rate = g0.dot(v0) + g1.dot(v1) + g2.dot(v2) + g3.dot(v3)
                c = -2 * kw * (bend_angle(theta, self.rest_angle[s, h]) + prm[4] * rate)
                self._hinge_write(h, c * g0, c * g1, c * g2, c * g3, self.contrib)
        self.pairs.forces_explicit(s, ad)

    # ------------------------------------------------------------------ exact hinge Hessian
    @ti.kernel
    def hinge_gather_local(self):
        for h in range(self.H):
            n = self.hinges[h]
            for a in ti.static(range(4)):
                self.xe[h, a] = self.xk[n[a]]

    @ti.kernel
    def hinge_local_grad(self):
        """Bending gradient of each hinge from its local copy ``xe``; reverse passes give the
        exact Hessian columns."""
        for gi in ti.static(range(self.n_groups)):
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.sh_material[gi]
                kw = HINGE_FACTOR * prm[2] * self.hw[h]
                theta, g0, g1, g2, g3 = dihedral(self.xe[h, 0], self.xe[h, 1], self.xe[h, 2],
                                                 self.xe[h, 3])
                c = 2 * kw * bend_angle(theta, self.hrest_sh[h])
                self.ge[h, 0] = c * g0
                self.ge[h, 1] = c * g1
                self.ge[h, 2] = c * g2
                self.ge[h, 3] = c * g3

    @ti.kernel
    def hinge_pass_io(self, cb: ti.i32, cc: ti.i32, sb: ti.i32, sc: ti.i32):
        """Store column ``cc`` of blocks ``(., cb)`` from ``xe.grad``; seed ``ge.grad[., sb][sc]``."""
        for h in range(self.H):
            for a in ti.static(range(4)):
                col = self.xe.grad[h, a]
                for b in ti.static(range(4)):
                    if cb == b:
                        M = self.hH[h, a, b]
                        for c in ti.static(range(3)):
                            if cc == c:
                                for r in ti.static(range(3)):
                                    M[r, c] = col[r]
                        self.hH[h, a, b] = M
                self.xe.grad[h, a] = ti.Vector.zero(float, 3)
                seed = ti.Vector.zero(float, 3)
                if sb == a:
                    for c in ti.static(range(3)):
                        if sc == c:
                            seed[c] = 1.0
                self.ge.grad[h, a] = seed

    # ------------------------------------------------------------------ plasticity
    @ti.kernel
    def plastic_update(self, s: ti.i32):
        """Rest angles of slot ``s + 1``: follow the hinge past its yield angle (perfect
        plasticity), else keep."""
        ti.loop_config(serialize=self.deterministic)
        for h in range(self.H):
            r = self.rest_angle[s, h]
            out = r
            y = self.hyield[h]
            if ti.static(self.plastic):
                if y > 0:
                    q0, q1, q2, q3 = self._hinge_x_slot(h, self.x, s + 1)
                    theta, _g0, _g1, _g2, _g3 = dihedral(q0, q1, q2, q3)
                    dth = bend_angle(theta, r)
                    if dth > y:
                        out = r + dth - y
                    elif dth < -y:
                        out = r + dth + y
            self.rest_angle[s + 1, h] = out

    # ------------------------------------------------------------------ diagnostics, transfer
    @ti.kernel
    def elastic_energy(self, s: ti.i32) -> ti.f64:
        """Membrane plus bending energy (J) of slot ``s``."""
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                prm = self.material[gi]
                psi = membrane_energy(self._tri_F_slot(e, self.x, s), prm[0], prm[1],
                                      self.g_neo[gi])
                self.eE[e] = self.tarea[e] * psi
            for h in range(self.h_start[gi], self.h_end[gi]):
                prm = self.material[gi]
                q0, q1, q2, q3 = self._hinge_x_slot(h, self.x, s)
                theta, _g0, _g1, _g2, _g3 = dihedral(q0, q1, q2, q3)
                self.eH[h] = HINGE_FACTOR * prm[2] * self.hw[h] * (
                    bend_angle(theta, self.rest_angle[s, h])) ** 2
        for _ in range(1):
            acc = 0.0
            for e in range(self.E):
                acc += self.eE[e]
            for h in range(self.H):
                acc += self.eH[h]
            self.red[12] = acc
        return self.red[12]

    @ti.kernel
    def load_rest_angle(self, s: ti.i32, r: ti.types.ndarray()):
        for h in range(self.H):
            self.rest_angle[s, h] = r[h]

    @ti.kernel
    def store_rest_angle(self, s: ti.i32, r: ti.types.ndarray()):
        for h in range(self.H):
            r[h] = self.rest_angle[s, h]

    @ti.kernel
    def add_rest_angle_grads(self, s: ti.i32, r: ti.types.ndarray()):
        for h in range(self.H):
            self.rest_angle.grad[s, h] += r[h]

    @ti.kernel
    def store_rest_angle_grads(self, s: ti.i32, r: ti.types.ndarray()):
        for h in range(self.H):
            r[h] = self.rest_angle.grad[s, h]

    @ti.func
    def _zero_extra_state_grads(self, n: ti.template()):
        for s, h in ti.ndrange(n, self.H):
            self.rest_angle.grad[s, h] = 0.0


@ti.func
def _psd2(S):
    """Positive part of a symmetric 2 x 2 matrix (closed form, robust at equal eigenvalues)."""
    a, b, c = S[0, 0], 0.5 * (S[0, 1] + S[1, 0]), S[1, 1]
    m = 0.5 * (a + c)
    r = ti.sqrt(0.25 * (a - c) ** 2 + b * b)
    l1 = m + r
    l2 = m - r
    out = ti.Matrix.zero(float, 2, 2)
    if l2 >= 0:
        out = ti.Matrix([[a, b], [b, c]])
    elif l1 > 0:
        # rank one: l1 v v^T with v the eigenvector of l1
        vx, vy = b, l1 - a
        if ti.abs(a - l1) < ti.abs(c - l1):
            vx, vy = l1 - c, b
        n2 = vx * vx + vy * vy
        if n2 > 0:
            out = l1 / n2 * ti.Matrix([[vx * vx, vx * vy], [vx * vy, vy * vy]])
        else:
            out = ti.Matrix([[ti.max(a, 0.0), 0.0], [0.0, ti.max(c, 0.0)]])
    return out
