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
        self.eparam = ti.Vector.field(5, real)
        place((self.E,), self.elem, self.Dm_inv, self.vol, self.eFn, self.eU, self.eV, self.eHs,
              self.els, self.ela, self.eparam, grad=False)
        self.contrib_adj = ti.Vector.field(d, real)
        self.contrib_adj2 = ti.Vector.field(d, real)
        place((self.n_slots,), self.contrib_adj, self.contrib_adj2, grad=False)

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
                # diagonal blocks: node a moving by delta gives dF = delta beta_a^T
                Fn = self.eFn[e]
                cd = self.vol[e] * self.iw[0] * prm[3] / self.dt
                for a in ti.static(range(d + 1)):
                    beta = ti.Vector.zero(float, d)
                    if ti.static(a == 0):
                        for r in ti.static(range(d)):
                            for j in ti.static(range(d)):
                                beta[j] -= Dmi[r, j]
                    else:
                        for j in ti.static(range(d)):
                            beta[j] = Dmi[a - 1, j]
                    Fb = Fn @ beta
                    blk = self.vol[e] * _diag_block(U, V.transpose() @ beta, Hs, ls, la)
                    blk += cd * (prm[4] * beta.dot(beta) * Fn @ Fn.transpose()
                                 + (prm[4] + prm[5]) * Fb.outer_product(Fb))
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

    # ------------------------------------------------------------------ engine entry points
    def element_forces(self, s: int, ad: bool) -> None:
        self.explicit_elastic(s)

    def element_forces_adjoint(self, s: int) -> None:
        self.elastic_adjoint(s)

    def element_vjp(self, s: int) -> None:
        self.solid_vjp(s)

    # ------------------------------------------------------------------ explicit step
    @ti.kernel
    def explicit_elastic(self, s: ti.i32):
        """Elastic and damping nodal forces of slot ``s`` into ``contrib`` (differentiated by
        hand in ``elastic_adjoint``)."""
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds_slot(e, self.x, s) @ Dmi
                Fdot = self._Ds_slot(e, self.v, s) @ Dmi
                U, sig, V = self._svd(F, gi)
                A, B = self.g_model[gi].parts(F, U, sig, V)
                prm = self.material[gi]
                P = prm[0] * A + prm[1] * B + damping_stress(F, Fdot, prm[3], prm[4], prm[5])
                self._write(e, -self.vol[e] * P @ Dmi.transpose(), self.contrib)

    @ti.func
    def _damping_adjoint(self, F, Fdot, Pbar, prm):
        """Reverse of ``damping_stress(F, Fdot, beta, mu, lam)``: ``(F_bar, Fdot_bar, (beta_bar,
        mu_bar, lam_bar))`` for the adjoint ``Pbar`` of the stress."""
        d = ti.static(self.dim)
        beta, mu, lam = prm[3], prm[4], prm[5]
        eye = ti.Matrix.identity(float, d)
        Mf = F.transpose() @ Fdot
        Ed = 0.5 * (Mf + Mf.transpose())
        M = F.transpose() @ Pbar
        sM = 0.5 * (M + M.transpose())
        T = 2 * mu * sM + lam * M.trace() * eye
        Sd = beta * (2 * mu * Ed + lam * Ed.trace() * eye)
        Fbar = Pbar @ Sd + beta * Fdot @ T
        Fdbar = beta * F @ T
        pb = ti.Vector([(M * (2 * mu * Ed + lam * Ed.trace() * eye)).sum(),
                        2 * beta * (sM * Ed).sum(), beta * M.trace() * Ed.trace()])
        return Fbar, Fdbar, pb

    @ti.kernel
    def elastic_adjoint(self, s: ti.i32):
        """Reverse of ``explicit_elastic(s)``: ``contrib.grad`` -> ``x.grad[s]``, ``v.grad[s]``,
        moduli and damping parameters."""
        d = ti.static(self.dim)
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds_slot(e, self.x, s) @ Dmi
                Fdot = self._Ds_slot(e, self.v, s) @ Dmi
                U, sig, V = self._svd(F, gi)
                prm = self.material[gi]
                base = e * self.k
                W = ti.Matrix.zero(float, d, d)
                w0 = self.contrib.grad[base]
                for a in ti.static(range(1, d + 1)):
                    wa = self.contrib.grad[base + a] - w0
                    for r in ti.static(range(d)):
                        W[r, a - 1] = wa[r]
                Pbar = -self.vol[e] * W @ Dmi
                A, B = self.g_model[gi].parts(F, U, sig, V)
                Hs, ls, la = self.g_model[gi].hessian(sig, prm[0], prm[1], False)
                Fbar, Fdbar, pb = self._damping_adjoint(F, Fdot, Pbar, prm)
                Fbar += apply_hessian(U, V, Hs, ls, la, Pbar)
                self.eparam[e] = ti.Vector([(A * Pbar).sum(), (B * Pbar).sum(), pb[0], pb[1],
                                            pb[2]])
                self._write(e, Fbar @ Dmi.transpose(), self.contrib_adj)
                self._write(e, Fdbar @ Dmi.transpose(), self.contrib_adj2)
        for i in range(self.N):
            self.x.grad[s, i] += self._gather(i, self.contrib_adj)
            self.v.grad[s, i] += self._gather(i, self.contrib_adj2)
        self._reduce_eparam()

    # ------------------------------------------------------------------ implicit backward
    @ti.kernel
    def solid_vjp(self, s: ti.i32):
        """``-lam^T dg/d(inputs)`` of the solid elements at ``xk`` (``lam`` in ``dx``): the
        moduli, the damping parameters and, through the lagged ``F_n``, ``x.grad[s]``."""
        for gi in ti.static(range(self.n_groups)):
            for e in range(self.g_start[gi], self.g_end[gi]):
                Dmi = self.Dm_inv[e]
                F = self._Ds(e, self.xk) @ Dmi
                Fn = self._Ds_slot(e, self.x, s) @ Dmi
                U, sig, V = self._svd(F, gi)
                A, B = self.g_model[gi].parts(F, U, sig, V)
                prm = self.material[gi]
                iw = self.iw[0]
                Pbar = -self.vol[e] * self._Ds(e, self.dx) @ Dmi
                Fdot = (F - Fn) / self.dt
                Fbar, Fdbar, pb = self._damping_adjoint(Fn, Fdot, iw * Pbar, prm)
                Fn_bar = Fbar - Fdbar / self.dt
                self.eparam[e] = ti.Vector([(A * Pbar).sum(), (B * Pbar).sum(), pb[0], pb[1],
                                            pb[2]])
                self._write(e, Fn_bar @ Dmi.transpose(), self.contrib_adj)
        for i in range(self.N):
            self.x.grad[s, i] += self._gather(i, self.contrib_adj)
        self._reduce_eparam()

    @ti.func
    def _reduce_eparam(self):
        for gi in ti.static(range(self.n_groups)):
            for _ in range(1):
                acc = ti.Vector.zero(float, 5)
                for e in range(self.g_start[gi], self.g_end[gi]):
                    acc += self.eparam[e]
                # whole-vector update (see kernels.add_node_grads)
                upd = ti.Vector.zero(float, self.material.n)
                upd[0] = acc[0]
                upd[1] = acc[1]
                upd[3] = acc[2]
                upd[4] = acc[3]
                upd[5] = acc[4]
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


@ti.func
def _diag_block(U, w, Hs, ls, la):
    """``d(dP beta)/d delta`` for ``dF = delta beta^T`` in the rotated-frame representation
    (``w = V^T beta``): ``U B U^T``."""
    d = ti.static(w.n)
    B = ti.Matrix.zero(float, d, d)
    for i, k in ti.static(ti.ndrange(d, d)):
        B[i, k] = Hs[i, k] * w[i] * w[k]
    for p in ti.static(range(len(pairs(d)))):
        i, j = ti.static(pairs(d)[p][0], pairs(d)[p][1])
        c1 = 0.5 * (la[p] + ls[p])
        c2 = 0.5 * (ls[p] - la[p]) * w[i] * w[j]
        B[i, i] += c1 * w[j] * w[j]
        B[j, j] += c1 * w[i] * w[i]
        B[i, j] += c2
        B[j, i] += c2
    return U @ B @ U.transpose()
