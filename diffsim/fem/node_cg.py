"""The node solver of a Newton step of ``ds.FEM``/``ds.Shell``: block-Jacobi preconditioned
conjugate gradients on the matrix-free Hessian.

``NodeCG(kernels)`` holds no fields of its own: it runs on the node fields of a
``DeformableKernels`` (``gvec``/``rhs`` in, ``dx`` out; ``cr``, ``cz``, ``cp``, ``cAp`` the
CG vectors, ``Hn`` the node blocks, ``Pinv`` the preconditioner, ``part*``/``red`` the
blocked reductions) and applies the Hessian through its element hooks
(``_elem_prepare``/``_elem_matvec``) and its pair part (``kernels.pairs``), so solids,
shells and tactile pads share it. Stages, called by ``engine.DeformableEngine``::

    prepare(project) -> start -> iterate* (or serial: the whole solve in one launch)
    -> descent                      (and matvec_full for the backward pass)

Every sum is a blocked sum in a fixed order, so solves are bitwise deterministic in
parallel on the CPU.
"""

import taichi as ti

from .linalg import psd


@ti.data_oriented
class NodeCG:
    """Preconditioned CG of ``H dx = b`` over the nodes of ``kern`` (a ``DeformableKernels``).

    Args:
        kern: the simulator instance's kernels (fields and element hooks).
    """

    def __init__(self, kern):
        self.kern = kern

    @ti.kernel
    def prepare(self, project: ti.template()):
        """Element Hessians (factored) and the block-Jacobi preconditioner at ``xk``."""
        k = self.kern
        k._elem_prepare(k.xk, project)
        k.pairs.prepare(k.xk, project)
        for i in range(k.N):
            Hn = 0.5 * (k.Hn[i] + k.Hn[i].transpose())
            if ti.static(project):
                Hn = psd(Hn)
            k.Hn[i] = Hn
            B = Hn + k._gather_m(i) + k.pairs.diag(i)
            P = ti.Matrix.identity(float, k.dim)
            if k.fixed[i] == 0:
                # the block of an exact (indefinite) Hessian is shifted to be SPD for
                # preconditioning (Gershgorin bound on its smallest eigenvalue)
                B = 0.5 * (B + B.transpose())
                low = B[0, 0]
                scale = 0.0
                for r in ti.static(range(k.dim)):
                    off = 0.0
                    for c in ti.static(range(k.dim)):
                        if ti.static(c != r):
                            off += ti.abs(B[r, c])
                    low = ti.min(low, B[r, r] - off)
                    scale = ti.max(scale, ti.abs(B[r, r]))
                shift = ti.max(0.0, -low) + 1e-10 * scale + 1e-300
                P = (B + shift * ti.Matrix.identity(float, k.dim)).inverse()
            k.Pinv[i] = P

    @ti.func
    def _matvec(self, src: ti.template(), dst: ti.template(), mask: ti.template()):
        k = self.kern
        k._elem_matvec(src)
        k.pairs.matvec(src)
        for i in range(k.N):
            y = k._hessian_row(i, src[i])
            if ti.static(mask):
                if k.fixed[i] != 0:
                    y = ti.Vector.zero(float, k.dim)
            dst[i] = y

    @ti.kernel
    def matvec_full(self):
        """``cAp = H cp`` on every node, fixed ones included (their rows are needed by the
        backward pass: a fixed node's position enters its neighbours' equations)."""
        k = self.kern
        self._matvec(k.cp, k.cAp, False)

    @ti.func
    def _init_node(self, i, use_gradient):
        """CG start at node ``i``: ``r = b`` (``-g`` or ``rhs``; 0 on fixed nodes), ``x = 0``,
        ``z = p = P r``; returns ``(r.z, r.r)`` of the node."""
        k = self.kern
        b = ti.select(use_gradient != 0, -k.gvec[i], k.rhs[i])
        if k.fixed[i] != 0:
            b = ti.Vector.zero(float, k.dim)
        k.cr[i] = b
        k.dx[i] = ti.Vector.zero(float, k.dim)
        z = k.Pinv[i] @ b
        k.cz[i] = z
        k.cp[i] = z
        return b.dot(z), b.dot(b)

    @ti.func
    def _apply_node(self, i):
        """``(H p)_i`` into ``cAp`` from the gathered element and pair terms (0 on fixed
        nodes); returns ``p_i . (H p)_i``."""
        k = self.kern
        y = k._hessian_row(i, k.cp[i])
        if k.fixed[i] != 0:
            y = ti.Vector.zero(float, k.dim)
        k.cAp[i] = y
        return k.cp[i].dot(y)

    @ti.func
    def _update_node(self, i, a):
        """``x += a p``, ``r -= a H p``, ``z = P r`` at node ``i``; returns ``(r.z, r.r)``."""
        k = self.kern
        k.dx[i] += a * k.cp[i]
        r = k.cr[i] - a * k.cAp[i]
        k.cr[i] = r
        z = k.Pinv[i] @ r
        k.cz[i] = z
        return r.dot(z), r.dot(r)

    @ti.kernel
    def start(self, use_gradient: ti.i32) -> ti.f64:
        """``r = b`` (``-g`` or ``rhs``), ``x = 0``, ``z = P r``, ``p = z``; returns ``|r|^2``."""
        k = self.kern
        for blk in range(k.nb):
            acc = 0.0
            acc2 = 0.0
            for i in range(blk * k.block, ti.min((blk + 1) * k.block, k.N)):
                bz, bb = self._init_node(i, use_gradient)
                acc += bz
                acc2 += bb
            k.part[blk] = acc
            k.part2[blk] = acc2
        k._sum_parts(3, 4, True)   # red[3] = r.z, red[4] = r.r
        return k.red[4]

    @ti.kernel
    def iterate(self, parity: ti.i32) -> ti.f64:
        """One preconditioned CG iteration in four parallel loops; returns ``|r|^2`` (-1 on
        negative curvature). Every block sums the (few) block partials itself, so no serial
        loop is needed; ``r.z`` ping-pongs between ``red[3]`` and ``red[15]`` (``parity``)."""
        k = self.kern
        k._elem_matvec(k.cp)
        k.pairs.matvec(k.cp)
        for blk in range(k.nb):
            acc = 0.0
            for i in range(blk * k.block, ti.min((blk + 1) * k.block, k.N)):
                acc += self._apply_node(i)
            k.part3[blk] = acc
        for blk in range(k.nb):
            pAp = 0.0
            for b in range(k.nb):
                pAp += k.part3[b]
            rz = ti.select(parity == 0, k.red[3], k.red[15])
            a = 0.0
            if pAp > 0:
                a = rz / pAp
            acc = 0.0
            acc2 = 0.0
            for i in range(blk * k.block, ti.min((blk + 1) * k.block, k.N)):
                rz_i, rr_i = self._update_node(i, a)
                acc += rz_i
                acc2 += rr_i
            k.part[blk] = acc
            k.part2[blk] = acc2
        for blk in range(k.nb):
            rz_new = 0.0
            rr = 0.0
            pAp = 0.0
            for b in range(k.nb):
                rz_new += k.part[b]
                rr += k.part2[b]
                pAp += k.part3[b]
            rz = ti.select(parity == 0, k.red[3], k.red[15])
            beta = 0.0
            if rz > 0:
                beta = rz_new / rz
            for i in range(blk * k.block, ti.min((blk + 1) * k.block, k.N)):
                k.cp[i] = k.cz[i] + beta * k.cp[i]
            if blk == 0:
                if parity == 0:
                    k.red[15] = rz_new
                else:
                    k.red[3] = rz_new
                k.red[4] = rr
                k.red[5] = pAp
        out = k.red[4]
        if k.red[5] <= 0:
            out = -1.0
        return out

    @ti.kernel
    def serial(self, use_gradient: ti.i32, rel_tol: ti.f64, max_it: ti.i32) -> ti.f64:
        """The whole preconditioned CG solve of ``start`` + ``iterate`` in one launch, on
        one thread: for the small meshes of the tasks a solve of 100-200 iterations costs
        its ~4 launches per iteration, not its arithmetic (``engine.cg`` picks it on the CPU
        up to ``SERIAL_CG_NODES`` nodes). Same iterates as the parallel kernels up to the
        order of the sums. Returns the iterations, negated when ``p^T H p <= 0`` (negative
        curvature); ``red[4]`` holds the last ``|r|^2`` (the caller checks it is finite)."""
        k = self.kern
        for _ in range(1):
            rz = 0.0
            rr = 0.0
            for i in range(k.N):
                bz, bb = self._init_node(i, use_gradient)
                rz += bz
                rr += bb
            result = 0.0
            if rr > 0:
                target = rel_tol * rel_tol * rr
                it = 0
                while it < max_it:
                    k._elem_matvec(k.cp)
                    k.pairs.matvec(k.cp)
                    pAp = 0.0
                    for i in range(k.N):
                        pAp += self._apply_node(i)
                    it += 1
                    if pAp <= 0:
                        result = -1.0 * it
                        break
                    a = rz / pAp
                    rz_new = 0.0
                    rr = 0.0
                    for i in range(k.N):
                        rz_i, rr_i = self._update_node(i, a)
                        rz_new += rz_i
                        rr += rr_i
                    beta = 0.0
                    if rz > 0:
                        beta = rz_new / rz
                    for i in range(k.N):
                        k.cp[i] = k.cz[i] + beta * k.cp[i]
                    rz = rz_new
                    result = 1.0 * it
                    if rr <= target:
                        break
            k.red[4] = rr
            k.red[10] = result
        return k.red[10]

    @ti.kernel
    def descent(self) -> ti.f64:
        """``g . dx``, ``max |dx_i|`` (``red[9]``) and ``max |P_i g_i|`` (``red[8]``): the
        block-Jacobi step, how far a node is from its equilibrium with its neighbours held
        (``P_i`` the inverse of node ``i``'s diagonal Hessian block)."""
        k = self.kern
        for blk in range(k.nb):
            acc = 0.0
            mx = 0.0
            mp = 0.0
            for i in range(blk * k.block, ti.min((blk + 1) * k.block, k.N)):
                acc += k.gvec[i].dot(k.dx[i])
                pg = k.Pinv[i] @ k.gvec[i]
                for a in ti.static(range(k.dim)):
                    mx = ti.max(mx, ti.abs(k.dx[i][a]))
                    mp = ti.max(mp, ti.abs(pg[a]))
            k.part[blk] = acc
            k.part2[blk] = mx
            k.part3[blk] = mp
        for _ in range(1):
            a = 0.0
            m = 0.0
            mp = 0.0
            for blk in range(k.nb):
                a += k.part[blk]
                m = ti.max(m, k.part2[blk])
                mp = ti.max(mp, k.part3[blk])
            k.red[10] = a
            k.red[9] = m
            k.red[8] = mp
        return k.red[10]
