"""Taichi side of pads touching an MPM object: a level-set object kind for ``TactileKernels``.

The MPM object is seen by the pads through two grids built in torch from the particles at
the start of each coupled step (``mpm_coupling.py``) and loaded as *parameters* of the
one-step pad rollout, so Taichi's reverse passes give their gradients like those of the
contact parameters:

* ``lsg`` (grid): the level set ``phi_I = (rho_iso - rho_I) / g_ref`` of the particles'
  density ``rho_I`` (quadratic B-splines), negative inside;
* ``lsv`` (grid, 3): the momentum density ``P_I = sum_p m_p v_p N(x_I - x_p) / dx^3``.

At a point ``q`` both are interpolated with quadratic B-splines (C1: the pad's Newton
Hessian blocks, from Taichi's autodiff of the SDF gradient, stay bounded); the object's
velocity there is ``v(q) = P(q) / max(rho(q), rho_min)``. A pad node ``x`` (start-of-step
position ``xn``) meets the object as a rigid object moving with ``v_o = v(xn)`` during
the step: ``phi(x - h v_o)``, friction and damping relative to ``v_o``; otherwise the same
contact model (``TactileKernels._obj_contact``) and per-object parameters ``(k_n, k_d,
mu)`` as the rigid objects.

``fm`` (time axis, N): the force of the MPM object on every pad node at the solution of
each step; it is the state ``f_mpm`` whose opposite goes back to the particles.
"""

import dataclasses

import taichi as ti
import torch

from ..node_contact import lagged_friction, penalty
from .kernels import TactileEngine, TactileKernels, _no_contact


@ti.func
def _bspline2(fx):
    """Quadratic B-spline weights and their derivatives (per cell) along each axis."""
    a = 1.5 - fx
    b = fx - 1.0
    c = fx - 0.5
    w = [0.5 * a * a, 0.75 - b * b, 0.5 * c * c]
    dw = [-a, -2.0 * b, c]
    return w, dw


@ti.data_oriented
class MPMTactileKernels(TactileKernels):
    """``TactileKernels`` where object ``grid.obj`` is the MPM object's level set.

    Args (besides ``TactileKernels``'): ``grid``, the ``LevelSetGrid`` of the simulator.
    """

    AFTER_SUBSTEP_STAGE = "mpm_forces, contact_forces, node_wrench, sum_wrench"

    def __init__(self, model, capacity: int, requires_grad: bool, tactile=None, grid=None):
        self.ls = grid
        self.jm = grid.obj
        objs = list(tactile.objects)
        # the base class builds an analytic SDF per object; the MPM object's is replaced
        objs[self.jm] = dataclasses.replace(objs[self.jm], kind="sphere", geom=(1.0,), axis=0)
        spec = dataclasses.replace(tactile, objects=tuple(objs))
        super().__init__(model, capacity, requires_grad, tactile=spec)
        self.obj_sdf[self.jm] = _no_contact
        ls = self.ls
        self.ls_origin = tuple(float(o) for o in ls.origin)
        self.ls_inv_dx = 1.0 / float(ls.dx)
        self.ls_hi = tuple(int(n) - 3 for n in ls.shape)
        self.ls_rho_iso, self.ls_g_ref, self.ls_rho_min = (float(ls.rho_iso), float(ls.g_ref),
                                                           float(ls.rho_min))
        self.ls_sdf = self._make_sdf(self.lsg)
        self.ls_sdf_sh = self._make_sdf(self.sh_lsg)

    def _build_fields(self):
        super()._build_fields()
        real, place, g = self.real, self._place, self.requires_grad
        shape = tuple(self.ls.shape)
        self.lsg = ti.field(real, needs_grad=g)            # level set (m)
        self.lsv = ti.Vector.field(3, real, needs_grad=g)  # momentum density (kg/m^2/s)
        place(shape, self.lsg, self.lsv)
        self.sh_lsg = ti.field(real)
        self.sh_lsv = ti.Vector.field(3, real)
        place(shape, self.sh_lsg, self.sh_lsv, grad=False)
        self.fm = ti.Vector.field(3, real, needs_grad=g)   # force of the MPM object on nodes
        place((self.capacity, self.N), self.fm)

    # ------------------------------------------------------------------ level set
    def _make_sdf(self, G):
        origin = tuple(float(o) for o in self.ls.origin)
        inv_dx = 1.0 / float(self.ls.dx)
        hi = tuple(int(n) - 3 for n in self.ls.shape)
        far = float(self.ls.far)

        @ti.func
        def sdf(q):
            u = (q - ti.Vector(origin)) * inv_dx
            base = ti.floor(u - 0.5).cast(ti.i32)
            phi = far
            grad = ti.Vector.zero(float, 3)
            if (base[0] >= 0 and base[1] >= 0 and base[2] >= 0 and base[0] <= hi[0]
                    and base[1] <= hi[1] and base[2] <= hi[2]):
                fx = u - base.cast(float)
                w, dw = _bspline2(fx)
                phi = 0.0
                for i, j, k in ti.static(ti.ndrange(3, 3, 3)):
                    gv = G[base + ti.Vector([i, j, k])]
                    phi += w[i][0] * w[j][1] * w[k][2] * gv
                    grad += ti.Vector([dw[i][0] * w[j][1] * w[k][2],
                                       w[i][0] * dw[j][1] * w[k][2],
                                       w[i][0] * w[j][1] * dw[k][2]]) * (inv_dx * gv)
            return phi, grad
        return sdf

    @ti.func
    def _ls_velocity(self, q, shadow: ti.template()):
        """Velocity of the object at ``q``: interpolated momentum over density."""
        G = ti.static(self._f("lsg", shadow))
        V = ti.static(self._f("lsv", shadow))
        hi = ti.static(self.ls_hi)
        u = (q - ti.Vector(self.ls_origin)) * self.ls_inv_dx
        base = ti.floor(u - 0.5).cast(ti.i32)
        vel = ti.Vector.zero(float, 3)
        if (base[0] >= 0 and base[1] >= 0 and base[2] >= 0 and base[0] <= hi[0]
                and base[1] <= hi[1] and base[2] <= hi[2]):
            fx = u - base.cast(float)
            w, _dw = _bspline2(fx)
            phi = 0.0
            mom = ti.Vector.zero(float, 3)
            for i, j, k in ti.static(ti.ndrange(3, 3, 3)):
                I = base + ti.Vector([i, j, k])
                wk = w[i][0] * w[j][1] * w[k][2]
                phi += wk * G[I]
                mom += wk * V[I]
            rho = self.ls_rho_iso - self.ls_g_ref * phi
            vel = mom / ti.max(rho, self.ls_rho_min)
        return vel

    @ti.func
    def _ls_contact(self, x, xn, A, sdf: ti.template(), shift, vel, prm, iw):
        """``TactileKernels._obj_contact`` for the level set, which is not a unit-gradient
        distance: the normal force is ``A k_n rho(p) |grad phi|`` (``|grad phi|`` about 1 on
        an undisturbed surface, larger where particles bunch up against a pad), so the
        lagged friction takes the normal force of the step start with its ``|grad phi|``."""
        phi, gq = sdf(x - shift)
        rho, P = penalty(-phi, self.cwidth)
        kn = prm[0]
        grad = -A * kn * rho * gq
        E = A * kn * P
        phin, gqn = sdf(xn)
        rhon, _P = penalty(-phin, self.cwidth)
        if rhon > 0 and iw > 0:
            h = ti.static(self.dt)
            gn = ti.sqrt(gqn.dot(gqn) + 1e-30)
            nn = gqn / gn
            gf, Ef = lagged_friction(x, xn, nn, A * kn * rhon * gn, vel, prm[2], h,
                                     self.fr_eps)
            un = nn.dot((x - xn) / h - vel)
            w = ti.min(rhon / self.cwidth, 1.0)
            grad += iw * (gf + prm[1] * A * w * un * nn)
            E += iw * (Ef + 0.5 * prm[1] * A * w * h * un * un)
        return grad, E

    @ti.func
    def _object_terms(self, j: ti.template(), x, xn, A, s, shadow: ti.template()):
        grad = ti.Vector.zero(float, 3)
        E = 0.0
        if ti.static(j == self.jm):
            prm = ti.static(self._f("cprm", shadow))[j]
            vo = self._ls_velocity(xn, shadow)
            h = ti.static(self.dt)
            g, e = self._ls_contact(x, xn, A, ti.static(self.ls_sdf_sh if shadow else
                                                        self.ls_sdf), h * vo, vo, prm,
                                    self.iw[0])
            grad += g
            E += e
        else:
            g, e = TactileKernels._object_terms(self, j, x, xn, A, s, shadow)
            grad += g
            E += e
        return grad, E

    # ------------------------------------------------------------------ reaction state
    @ti.kernel
    def mpm_forces(self, s: ti.i32, ad: ti.template()):
        """``fm[s + 1]``: the force of the MPM object on every node at the solution of step ``s``."""
        ti.loop_config(serialize=ti.static(self._serial(ad)))
        for i in range(self.N):
            f = ti.Vector.zero(float, 3)
            A = self.carea[i]
            if self.fixed[i] == 0 and A > 0:
                g, _E = self._object_terms(self.jm, self.x[s + 1, i], self.x[s, i], A, s, False)
                f = -g
            self.fm[s + 1, i] = f

    def after_substep(self, s: int) -> None:
        super().after_substep(s)
        self.mpm_forces(s, False)

    def after_substep_grad(self, s: int) -> None:
        self.mpm_forces.grad(s, True)
        super().after_substep_grad(s)

    @ti.func
    def _zero_extra_state_grads(self, n: ti.template()):
        TactileKernels._zero_extra_state_grads(self, n)
        for s, i in ti.ndrange(n, self.N):
            self.fm.grad[s, i] = ti.Vector.zero(float, 3)

    # ------------------------------------------------------------------ transfer
    @ti.kernel
    def load_grids(self, phi: ti.types.ndarray(), mom: ti.types.ndarray()):
        for I in ti.grouped(self.lsg):
            self.lsg[I] = phi[I]
            self.sh_lsg[I] = phi[I]
            v = ti.Vector([mom[I, 0], mom[I, 1], mom[I, 2]])
            self.lsv[I] = v
            self.sh_lsv[I] = v

    @ti.kernel
    def store_grid_grads(self, phi: ti.types.ndarray(), mom: ti.types.ndarray()):
        for I in ti.grouped(self.lsg):
            phi[I] = self.lsg.grad[I]
            for a in ti.static(range(3)):
                mom[I, a] = self.lsv.grad[I][a]


class MPMTactileEngine(TactileEngine):
    """``TactileEngine`` with the state ``(x, v, f, wrench, f_mpm)`` and parameters
    ``(material, friction, contact, phi grid, momentum grid)``."""

    def state_like(self) -> list:
        out = super().state_like()
        out.append(torch.empty((self.model.n_nodes, 3), dtype=self.dtype, device=self.device))
        return out

    def set_params(self, params) -> None:
        super().set_params(params[:3])
        self.k.load_grids(self._c(params[3]), self._c(params[4]))

    def load_state(self, slot: int, state) -> None:
        super().load_state(slot, state[:4])
        self.k.load_node_vec(self.k.fm, slot, self._c(state[4]))

    def store_state(self, slot: int) -> list:
        out = super().store_state(slot)
        self.k.store_node_vec(self.k.fm, slot, out[4])
        return out

    def add_state_grads(self, slot: int, grads) -> None:
        super().add_state_grads(slot, grads[:4])
        if grads[4] is not None:
            self.k.add_node_vec_grads(self.k.fm, slot, self._c(grads[4]))

    def store_state_grads(self, slot: int) -> list:
        out = super().store_state_grads(slot)[:4]
        f = torch.empty((self.model.n_nodes, 3), dtype=self.dtype, device=self.device)
        self.k.store_node_vec_grads(self.k.fm, slot, f)
        return out + [f]

    def zero_param_grads(self) -> None:
        super().zero_param_grads()
        self.k.lsg.grad.fill(0)
        self.k.lsv.grad.fill(0)

    def store_param_grads(self) -> list:
        shape = tuple(self.k.ls.shape)
        phi = torch.empty(shape, dtype=self.dtype, device=self.device)
        mom = torch.empty((*shape, 3), dtype=self.dtype, device=self.device)
        self.k.store_grid_grads(phi, mom)
        return super().store_param_grads() + [phi, mom]

