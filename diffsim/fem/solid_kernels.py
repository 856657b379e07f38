"""Element physics of ``ds.FEM``: linear simplices (triangles in 2D, tets in 3D).

Per element ``e`` with rest shape matrix ``Dm`` and rest volume ``V``: ``F = Ds Dm^-1``,
first Piola-Kirchhoff stress ``P = a A(F) + b B(F)`` (``constitutive.py``), nodal
gradient ``V P Dm^-T`` (node 0 takes minus the sum), written to the element's slots
and gathered by the nodes.

Elasticity is differentiated by hand, not by Taichi's autodiff (the corotated and
neo-Hookean Hessians go through an SVD, whose autodiff is unstable): the adjoint of
``F -> P`` is the exact Hessian ``dP/dF`` (symmetric), applied in the SVD's rotated
frame; the moduli receive ``<A, P_bar>`` and ``<B, P_bar>``. Rayleigh stiffness
damping is polynomial in the positions and velocities and goes through autodiff.
"""


import taichi as ti

from .constitutive import apply_hessian, damping_stress, pairs, svd_rv
from .kernels import DeformableKernels


@ti.data_oriented
class SolidKernels(DeformableKernels):
    ALPHA_INDEX = 2  # internal vector: (a, b, alpha, beta, mu, lam)

    def _build_fields(self):
        d, k, real = self.dim, self.k, self.real
        place = self._place
        self.elem = ti.Vector.field(k, ti.i32)
        self.Dm_inv = ti.Matrix.field(d, d, real)
        self.vol = ti.field(real)
        self.eFn = ti.Matrix.field(d, d, real)
        self.eU = ti.Matrix.field(d, d, real)
        self.eV = ti.Matrix.field(d, d, real)
        self.eHs = ti.Matrix.field(d, d, real)
        npair = len(pairs(d))
        self.els = ti.Vector.field(npair, real)
        self.ela = ti.Vector.field(npair, real)
        self.eparam = ti.Vector.field(2, real)
        place((self.E,), self.elem, self.Dm_inv, self.vol, self.eFn, self.eU, self.eV, self.eHs,
              self.els, self.ela, self.eparam, grad=False)
        self.contrib_el = ti.Vector.field(d, real, needs_grad=True)
        self.contrib_adj = ti.Vector.field(d, real)
        place((self.n_slots,), self.contrib_el, grad=True)
        place((self.n_slots,), self.contrib_adj, grad=False)

    def _upload_static(self):
        m = self.model
        self.elem.from_numpy(m.elem.astype("int32"))
        self.Dm_inv.from_numpy(m.Dm_inv)
        self.vol.from_numpy(m.rest)
        self.g_start = tuple(gr.start for gr in m.groups)
        self.g_end = tuple(gr.end for gr in m.groups)
        self.g_model = tuple(gr.model for gr in m.groups)
        self.g_svd = tuple(gr.model.needs_svd for gr in m.groups)

    # ------------------------------------------------------------------ geometry
    @ti.func
    def _Ds(self, e, src: ti.template()):
        n = self.elem[e]
        x0 = src[n[0]]
        Ds = ti.Matrix.zero(float, self.dim, self.dim)
        for a in ti.static(range(1, self.dim + 1)):
            col = src[n[a]] - x0
            for r in ti.static(range(self.dim)):
                Ds[r, a - 1] = col[r]
        return Ds

    @ti.func
    def _Ds_slot(self, e, f: ti.template(), s):
        n = self.elem[e]
        x0 = f[s, n[0]]
        Ds = ti.Matrix.zero(float, self.dim, self.dim)
        for a in ti.static(range(1, self.dim + 1)):
            col = f[s, n[a]] - x0
            for r in ti.static(range(self.dim)):
                Ds[r, a - 1] = col[r]
        return Ds

    @ti.func
    def _write(self, e, M, buf: ti.template()):
        """Slots of element ``e``: node ``a >= 1`` gets column ``a - 1`` of ``M``, node 0 minus
        their sum."""
        base = e * self.k
        tot = ti.Vector.zero(float, self.dim)
        for a in ti.static(range(1, self.dim + 1)):
            col = ti.Vector([M[r, a - 1] for r in ti.static(range(self.dim))])
            buf[base + a] = col
            tot += col
        buf[base] = -tot

    @ti.func
    def _svd(self, F, gi: ti.template()):
        eye = ti.Matrix.identity(float, self.dim)
        U, sig, V = eye, ti.Vector.one(float, self.dim), eye
        if ti.static(self.g_svd[gi]):
            U, sig, V = svd_rv(F)
        return U, sig, V

    @ti.func
    def _damp_apply(self, e, gi: ti.template(), dF, shadow: ti.template()):
        """Rayleigh stiffness damping Hessian ``D/h`` (lagged ``F_n``) applied to ``dF``."""
        mat = ti.static(self._f("material", shadow))
        prm = mat[gi]
        return damping_stress(self.eFn[e], dF / self.dt, prm[3], prm[4], prm[5]) * self.iw[0]

    # ------------------------------------------------------------------ implicit hooks
    @ti.func
    def _elem_lag(self, s: ti.template()):
        for e in range(self.E):
            self.eFn[e] = self._Ds_slot(e, self.x, s) @ self.Dm_inv[e]

    @ti.func
    def _elem_grad(self, src: ti.template()):
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds(e, src) @ Dmi
                U, sig, V = self._svd(F, gi)
                A, B = self.g_model[gi].parts(F, U, sig, V)
                prm = self.sh_material[gi]
                P = prm[0] * A + prm[1] * B
                P += self._damp_apply(e, gi, F - self.eFn[e], True)
                self._write(e, self.vol[e] * P @ Dmi.transpose(), self.contrib)

    @ti.func
    def _elem_energy(self, src: ti.template()):
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                F = self._Ds(e, src) @ self.Dm_inv[e]
                U, sig, V = self._svd(F, gi)
                prm = self.sh_material[gi]
                psi = self.g_model[gi].energy(F, U, sig, V, prm[0], prm[1])
                Fn = self.eFn[e]
                M = Fn.transpose() @ (F - Fn) / self.dt
                Ed = 0.5 * (M + M.transpose())
                damp = 0.5 * self.dt * prm[3] * (2 * prm[4] * (Ed * Ed).sum()
                                                 + prm[5] * Ed.trace() ** 2)
                self.eE[e] = self.vol[e] * (psi + self.iw[0] * damp)

    @ti.func
    def _elem_prepare(self, src: ti.template(), project: ti.template()):
        d = ti.static(self.dim)
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds(e, src) @ Dmi
                U, sig, V = self._svd(F, gi)
                prm = self.sh_material[gi]
                Hs, ls, la = self.g_model[gi].hessian(sig, prm[0], prm[1], project)
                self.eU[e] = U
                self.eV[e] = V
                self.eHs[e] = Hs
                self.els[e] = ls
                self.ela[e] = la
                # diagonal blocks: node a moves by delta e_c => dF = e_c (x) beta_a
                vol = self.vol[e]
                for a in ti.static(range(d + 1)):
                    beta = ti.Vector.zero(float, d)
                    if ti.static(a == 0):
                        for r in ti.static(range(d)):
                            for j in ti.static(range(d)):
                                beta[j] -= Dmi[r, j]
                    else:
                        for j in ti.static(range(d)):
                            beta[j] = Dmi[a - 1, j]
                    blk = ti.Matrix.zero(float, d, d)
                    for c in ti.static(range(d)):
                        dF = ti.Matrix.zero(float, d, d)
                        for j in ti.static(range(d)):
                            dF[c, j] = beta[j]
                        dP = apply_hessian(U, V, Hs, ls, la, dF) + self._damp_apply(e, gi, dF,
                                                                                     True)
                        col = vol * dP @ beta
                        for r in ti.static(range(d)):
                            blk[r, c] = col[r]
                    self.contrib_m[e * self.k + a] = blk

    @ti.func
    def _elem_matvec(self, src: ti.template()):
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                dF = self._Ds(e, src) @ Dmi
                dP = apply_hessian(self.eU[e], self.eV[e], self.eHs[e], self.els[e], self.ela[e],
                                   dF) + self._damp_apply(e, gi, dF, True)
                self._write(e, self.vol[e] * dP @ Dmi.transpose(), self.contrib)

    @ti.func
    def _elem_grad_vjp(self, s: ti.template()):
        """Autodiff part of the element gradient at ``xk``: Rayleigh damping with ``F_n`` from
        ``x[s]`` (elasticity is differentiated by hand in ``elastic_param_vjp``)."""
        for gi in ti.static(range(self.n_groups)):
            ti.loop_config(serialize=self.deterministic)
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds(e, self.xk) @ Dmi
                Fn = self._Ds_slot(e, self.x, s) @ Dmi
                prm = self.material[gi]
                P = damping_stress(Fn, (F - Fn) / self.dt, prm[3], prm[4], prm[5]) * self.iw[0]
                self._write(e, self.vol[e] * P @ Dmi.transpose(), self.contrib)

    # ------------------------------------------------------------------ explicit hooks
    @ti.kernel
    def explicit_elastic(self, s: ti.i32):
        """Elastic nodal forces of slot ``s`` into ``contrib_el`` (hand-differentiated)."""
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds_slot(e, self.x, s) @ Dmi
                U, sig, V = self._svd(F, gi)
                A, B = self.g_model[gi].parts(F, U, sig, V)
                prm = self.material[gi]
                P = prm[0] * A + prm[1] * B
                self._write(e, -self.vol[e] * P @ Dmi.transpose(), self.contrib_el)

    @ti.func
    def _elastic_gather(self, i):
        return self._gather(i, self.contrib_el)

    @ti.func
    def _scatter_extra_force_grads(self):
        for j in range(self.n_slots):
            self.contrib_el.grad[j] = self.fel.grad[self.slot_node[j]]

    @ti.func
    def _elem_forces_explicit(self, s: ti.template(), ad: ti.template()):
        for gi in ti.static(range(self.n_groups)):
            ti.loop_config(serialize=ti.static(self._serial(ad)))
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds_slot(e, self.x, s) @ Dmi
                Fdot = self._Ds_slot(e, self.v, s) @ Dmi
                prm = self.material[gi]
                P = damping_stress(F, Fdot, prm[3], prm[4], prm[5])
                self._write(e, -self.vol[e] * P @ Dmi.transpose(), self.contrib)

    @ti.kernel
    def elastic_adjoint(self, s: ti.i32):
        """Reverse of ``explicit_elastic(s)``: ``contrib_el.grad`` -> ``x.grad[s]``, moduli."""
        d = ti.static(self.dim)
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds_slot(e, self.x, s) @ Dmi
                U, sig, V = self._svd(F, gi)
                prm = self.material[gi]
                base = e * self.k
                W = ti.Matrix.zero(float, d, d)
                w0 = self.contrib_el.grad[base]
                for a in ti.static(range(1, d + 1)):
                    wa = self.contrib_el.grad[base + a] - w0
                    for r in ti.static(range(d)):
                        W[r, a - 1] = wa[r]
                Pbar = -self.vol[e] * W @ Dmi
                A, B = self.g_model[gi].parts(F, U, sig, V)
                self.eparam[e] = ti.Vector([(A * Pbar).sum(), (B * Pbar).sum()])
                Hs, ls, la = self.g_model[gi].hessian(sig, prm[0], prm[1], False)
                Fbar = apply_hessian(U, V, Hs, ls, la, Pbar)
                self._write(e, Fbar @ Dmi.transpose(), self.contrib_adj)
        for i in range(self.N):
            self.x.grad[s, i] += self._gather(i, self.contrib_adj)
        self._reduce_eparam()

    @ti.kernel
    def elastic_param_vjp(self):
        """``-lam^T d g_el / d(a, b)`` at ``xk`` with ``lam`` in ``dx`` (implicit backward)."""
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds(e, self.xk) @ Dmi
                U, sig, V = self._svd(F, gi)
                A, B = self.g_model[gi].parts(F, U, sig, V)
                G = self._Ds(e, self.dx) @ Dmi
                v = -self.vol[e]
                self.eparam[e] = ti.Vector([v * (A * G).sum(), v * (B * G).sum()])
        self._reduce_eparam()

    @ti.func
    def _reduce_eparam(self):
        for gi in ti.static(range(self.n_groups)):
            for _ in range(1):
                acc = ti.Vector.zero(float, 2)
                for e in range(self.g_start[gi], self.g_end[gi]):
                    acc += self.eparam[e]
                upd = ti.Vector.zero(float, self.material.n)
                upd[0] = acc[0]
                upd[1] = acc[1]
                self.material.grad[gi] += upd

    @ti.kernel
    def elastic_energy(self, s: ti.i32) -> ti.f64:
        """Total strain energy (J) of slot ``s`` (for diagnostics and tests)."""
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                F = self._Ds_slot(e, self.x, s) @ self.Dm_inv[e]
                U, sig, V = self._svd(F, gi)
                prm = self.material[gi]
                self.eE[e] = self.vol[e] * self.g_model[gi].energy(F, U, sig, V, prm[0], prm[1])
        for _ in range(1):
            acc = 0.0
            for e in range(self.E):
                acc += self.eE[e]
            self.red[12] = acc
        return self.red[12]
