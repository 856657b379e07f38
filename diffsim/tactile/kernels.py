"""Taichi side of ``ds.Tactile``: ``ds.FEM``'s solid kernels plus pads on fingers and pad contact.

Two additions to ``SolidKernels``/``DeformableEngine`` (everything else - Newton, PCG,
the implicit adjoint, element physics - is ``ds.FEM``'s):

* **Driven nodes.** The back-face nodes of a pad are pinned to their finger, a kinematic
  tool: ``x_i(s) = p_k(s) + R_k(s) X_i`` (``X_i`` in the finger frame). Through the
  ``_fixed_pos`` hook, ``begin_step`` puts them at the finger's pose of the step's end and
  ``end_step`` stores them with the finger's
  velocity, and the adjoint sends what ``ds.FEM`` gives a pinned node's position (its
  direct gradient and ``-(H lam)_i``) to the finger's pose instead.
* **Pad contact** (``_extra_node_terms``): every surface node ``i`` of a pad carries the
  lumped area ``A_i`` of its boundary triangles and meets each object (a kinematic tool, a
  static collider or the ground) through the object's signed distance ``phi`` and
  penetration ``p = -phi``:

  - normal pressure ``k_n rho(p)`` (Pa; the C1 penalty of ``node_contact.py`` with onset
    ``width``), force ``A_i k_n rho(p) grad(phi)``: an area-weighted penalty, so the
    pressure does not depend on the mesh;
  - normal damping ``-k_d A_i w (n . u) n`` (``k_d`` in Pa s/m, ``u`` the velocity relative
    to the object, ``w = min(rho_n / width, 1)`` a ramp in the contact of the step start);
  - smoothed Coulomb friction, lagged as in ``ds.FEM`` (normal force and tangent plane of
    the step start; sliding below ``friction_eps`` m/s is viscous).

  All three are potentials of the incremental problem (symmetric Hessian; the node
  blocks come from Taichi's reverse mode as in ``ds.FEM``); ``k_n``, ``k_d`` and ``mu`` are
  per-object parameters in a field, so their gradients come from the same reverse passes.

* **Contact force state** ``f`` (N, 3): after each step ``contact_forces`` evaluates the
  force each object exerts on each node at the step's solution (exactly the forces of
  the solved step); its reverse pass runs first in the backward substep. ``wrench``
  (objects, 6): ``node_wrench``/``sum_wrench`` add up the opposite forces per object and
  their torques about the object's centre (what moves free objects, ``rigid.py``). Readings
  (``reading.py``) are torch functions of ``x`` and ``f``.
"""


import numpy as np
import taichi as ti
import torch

from ..fem.engine import DeformableEngine
from ..fem.solid_kernels import SolidKernels
from ..node_contact import lagged_friction, penalty
from ..sdf import make_sdf


@ti.func
def _no_contact(q):
    return 1e3, ti.Vector.zero(float, 3)


@ti.func
def _ground_sdf(q):
    return q[1], ti.Vector([0.0, 1.0, 0.0])


@ti.data_oriented
class TactileKernels(SolidKernels):
    """``SolidKernels`` with driven pad nodes, pad contact and the contact-force state.

    Args (besides ``SolidKernels``'): ``tactile``, the ``TactileSpec`` of the simulator.
    """

    AFTER_SUBSTEP_STAGE = "contact_forces, node_wrench, sum_wrench"

    def __init__(self, model, capacity: int, requires_grad: bool, tactile=None):
        self.tac = tactile
        super().__init__(model, capacity, requires_grad)
        # fingers and objects are tools of the FEM model; FEM's own (mass-scaled) tool
        # contact is switched off: pads meet objects through _extra_node_terms only
        self.tool_sdf = [_no_contact for _ in model.tools]
        spec = tactile
        self.n_obj = len(spec.objects)
        for j, f in self.mesh_sdf.items():
            spec.objects[j].geom.fill(f)
        self.obj_sdf = [self._object_sdf(j, o) for j, o in enumerate(spec.objects)]
        self.obj_tool = tuple(o.tool for o in spec.objects)          # tool index or -1
        self.obj_center = tuple(tuple(o.center) for o in spec.objects)
        self.cwidth = float(spec.width)
        self.driven.from_numpy(spec.driven.astype(np.int32))
        self.dX.from_numpy(spec.local.astype(np.float64))
        self.carea.from_numpy(spec.area.astype(np.float64))

    def _build_fields(self):
        super()._build_fields()
        real, place, g = self.real, self._place, self.requires_grad
        spec = self.tac
        self.driven = ti.field(ti.i32)        # finger (tool) index of a pinned node, -1 free
        self.dX = ti.Vector.field(3, real)    # its position in the finger frame
        self.carea = ti.field(real)           # lumped contact area (m^2), 0 off the surface
        place((self.N,), self.driven, self.dX, self.carea, grad=False)
        n_obj = max(len(spec.objects), 1)
        self.cprm = ti.Vector.field(3, real, needs_grad=g)   # (k_n, k_d, mu) per object
        place((n_obj,), self.cprm)
        self.sh_cprm = ti.Vector.field(3, real)
        place((n_obj,), self.sh_cprm, grad=False)
        self.fc = ti.Vector.field(3, real, needs_grad=g)     # contact force on nodes (N)
        place((self.capacity, self.N), self.fc)
        self.n_wr = n_obj
        self.wr = ti.Vector.field(6, real, needs_grad=g)     # reaction on objects (N, N m)
        place((self.capacity, n_obj), self.wr)
        self.wn = ti.Vector.field(6, real, needs_grad=g)     # per-node share of wr
        place((self.N, n_obj), self.wn)
        # baked grid SDFs of mesh objects (gridsdf.py): spline coefficients, no gradient
        self.mesh_sdf = {}
        for j, o in enumerate(spec.objects):
            if o.kind == "mesh":
                self.mesh_sdf[j] = o.geom.field(real)
                place(o.geom.shape, self.mesh_sdf[j], grad=False)

    def _object_sdf(self, j: int, o):
        """``@ti.func q -> (phi, grad phi)`` of object ``j`` in its own frame."""
        if o.kind == "ground":
            return _ground_sdf
        if o.kind == "mesh":
            return o.geom.func(self.mesh_sdf[j])
        return make_sdf(o.kind, o.geom, o.axis)

    # ------------------------------------------------------------------ contact
    @ti.func
    def _obj_contact(self, x, xn, A, sdf: ti.template(), p1, R1, p0, R0, vel, om, prm, iw):
        q = R1.transpose() @ (x - p1)
        phi, gq = sdf(q)
        rho, P = penalty(-phi, self.cwidth)
        kn = prm[0]
        grad = -A * kn * rho * (R1 @ gq)
        E = A * kn * P
        phin, gqn = sdf(R0.transpose() @ (xn - p0))
        rhon, _P = penalty(-phin, self.cwidth)
        if rhon > 0 and iw > 0:
            h = ti.static(self.dt)
            nn = R0 @ gqn
            nn = nn / ti.sqrt(nn.dot(nn) + 1e-30)
            v_o = vel + om.cross(xn - p0)
            gf, Ef = lagged_friction(x, xn, nn, A * kn * rhon, v_o, prm[2], h, self.fr_eps)
            un = nn.dot((x - xn) / h - v_o)
            w = ti.min(rhon / self.cwidth, 1.0)
            grad += iw * (gf + prm[1] * A * w * un * nn)
            E += iw * (Ef + 0.5 * prm[1] * A * w * h * un * un)
        return grad, E

    @ti.func
    def _object_terms(self, j: ti.template(), x, xn, A, s, shadow: ti.template()):
        """Gradient and potential of the contact of a node (area ``A``) with object ``j``."""
        prm = ti.static(self._f("cprm", shadow))[j]
        iw = self.iw[0]
        grad = ti.Vector.zero(float, 3)
        E = 0.0
        if ti.static(self.obj_tool[j] >= 0):
            k = ti.static(self.obj_tool[j])
            tp = ti.static(self._f("tool_pos", shadow))
            tr = ti.static(self._f("tool_rot", shadow))
            tv = ti.static(self._f("tool_vel", shadow))
            to = ti.static(self._f("tool_omega", shadow))
            g, e = self._obj_contact(x, xn, A, self.obj_sdf[j], tp[s + 1, k], tr[s + 1, k],
                                     tp[s, k], tr[s, k], tv[s, k], to[s, k], prm, iw)
            grad += g
            E += e
        else:
            c = ti.Vector(self.obj_center[j])
            eye = ti.Matrix.identity(float, 3)
            zero = ti.Vector.zero(float, 3)
            g, e = self._obj_contact(x, xn, A, self.obj_sdf[j], c, eye, c, eye, zero, zero,
                                     prm, iw)
            grad += g
            E += e
        return grad, E

    @ti.func
    def _extra_node_terms(self, i, x, xn, m, s, shadow: ti.template()):
        grad = ti.Vector.zero(float, 3)
        E = 0.0
        A = self.carea[i]
        if A > 0:
            for j in ti.static(range(self.n_obj)):
                g, e = self._object_terms(j, x, xn, A, s, shadow)
                grad += g
                E += e
        return grad, E

    @ti.kernel
    def clear_wrench(self, s: ti.i32):
        for j in range(self.n_wr):
            self.wr[s, j] = ti.Vector.zero(float, 6)

    @ti.kernel
    def contact_forces(self, s: ti.i32, ad: ti.template()):
        """``fc[s + 1]``: the force of the objects on every node at the solution of step ``s``."""
        ti.loop_config(serialize=ti.static(self._serial(ad)))
        for i in range(self.N):
            f = ti.Vector.zero(float, 3)
            if self.fixed[i] == 0:
                g, _E = self._extra_node_terms(i, self.x[s + 1, i], self.x[s, i], 0.0, s, False)
                f = -g
            self.fc[s + 1, i] = f

    @ti.kernel
    def node_wrench(self, s: ti.i32):
        """``wn[i, j]``: force and torque (about the object's pose origin) of node ``i`` on
        object ``j`` at the solution of step ``s``; ``sum_wrench`` adds them up."""
        for i in range(self.N):
            A = self.carea[i]
            for j in ti.static(range(self.n_obj)):
                w = ti.Vector.zero(float, 6)
                if A > 0:
                    x = self.x[s + 1, i]
                    g, _E = self._object_terms(j, x, self.x[s, i], A, s, False)
                    if ti.static(self.obj_tool[j] >= 0):
                        tau = (x - self.tool_pos[s + 1, ti.static(self.obj_tool[j])]).cross(g)
                        w = ti.Vector([g[0], g[1], g[2], tau[0], tau[1], tau[2]])
                    else:
                        tau = (x - ti.Vector(self.obj_center[j])).cross(g)
                        w = ti.Vector([g[0], g[1], g[2], tau[0], tau[1], tau[2]])
                self.wn[i, j] = w

    @ti.kernel
    def sum_wrench(self, s: ti.i32):
        """``wr[s + 1, j]``: the pads' total force and torque on object ``j``."""
        for i in range(self.N):
            for j in ti.static(range(self.n_obj)):
                self.wr[s + 1, j] += self.wn[i, j]

    def after_substep(self, s: int) -> None:
        self.contact_forces(s, False)
        if self.n_obj:
            self.clear_wrench(s + 1)
            self.node_wrench(s)
            self.sum_wrench(s)

    def after_substep_grad(self, s: int) -> None:
        if self.n_obj:
            self.sum_wrench.grad(s)
            self.node_wrench.grad(s)
        self.contact_forces.grad(s, True)

    # ------------------------------------------------------------------ driven nodes
    @ti.func
    def _driven_pos(self, s1, i):
        k = self.driven[i]
        return self.sh_tool_pos[s1, k] + self.sh_tool_rot[s1, k] @ self.dX[i]

    @ti.func
    def _pose_grad(self, s1, i, g):
        k = self.driven[i]
        self.tool_pos.grad[s1, k] += g
        self.tool_rot.grad[s1, k] += g.outer_product(self.dX[i])

    @ti.func
    def _fixed_pos(self, s1, i, x_prev):
        return self._driven_pos(s1, i)  # every fixed pad node is driven by its finger

    @ti.kernel
    def implicit_rhs(self, s: ti.i32):
        ti.loop_config(serialize=self.deterministic)
        for i in range(self.N):
            gx = self.x.grad[s + 1, i]
            gv = self.v.grad[s + 1, i]
            self.x.grad[s, i] -= gv / self.dt
            if self.fixed[i] != 0:
                self.rhs[i] = ti.Vector.zero(float, 3)
                self._pose_grad(s + 1, i, gx + gv / self.dt)
            else:
                self.rhs[i] = gx + gv / self.dt

    @ti.kernel
    def seed_vjp(self, s: ti.i32):
        for j in range(self.n_slots):
            self.contrib.grad[j] = -self.dx[self.slot_node[j]]
        ti.loop_config(serialize=self.deterministic)
        for i in range(self.N):
            self.gn.grad[i] = -self.dx[i]
            if self.fixed[i] != 0:
                self.gn.grad[i] = ti.Vector.zero(float, 3)
                self._pose_grad(s + 1, i, -self.cAp[i])
            self.xk.grad[i] = ti.Vector.zero(float, 3)

    # ------------------------------------------------------------------ state transfer
    # (slots, N) vector fields of the state (``fc``; ``fm`` of MPM objects) <-> (N, 3) arrays
    @ti.kernel
    def load_node_vec(self, F: ti.template(), s: ti.i32, f: ti.types.ndarray()):
        for i in range(self.N):
            F[s, i] = ti.Vector([f[i, 0], f[i, 1], f[i, 2]])

    @ti.kernel
    def store_node_vec(self, F: ti.template(), s: ti.i32, f: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(3)):
                f[i, a] = F[s, i][a]

    @ti.kernel
    def add_node_vec_grads(self, F: ti.template(), s: ti.i32, f: ti.types.ndarray()):
        for i in range(self.N):
            F.grad[s, i] += ti.Vector([f[i, 0], f[i, 1], f[i, 2]])

    @ti.kernel
    def store_node_vec_grads(self, F: ti.template(), s: ti.i32, f: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(3)):
                f[i, a] = F.grad[s, i][a]

    @ti.kernel
    def load_cprm(self, c: ti.types.ndarray()):
        for j in range(self.n_obj):
            v = ti.Vector([c[j, 0], c[j, 1], c[j, 2]])
            self.cprm[j] = v
            self.sh_cprm[j] = v

    @ti.kernel
    def load_wr(self, s: ti.i32, w: ti.types.ndarray()):
        for j in range(self.n_wr):
            self.wr[s, j] = ti.Vector([w[j, a] for a in ti.static(range(6))])

    @ti.kernel
    def store_wr(self, s: ti.i32, w: ti.types.ndarray()):
        for j in range(self.n_wr):
            for a in ti.static(range(6)):
                w[j, a] = self.wr[s, j][a]

    @ti.kernel
    def add_wr_grads(self, s: ti.i32, w: ti.types.ndarray()):
        for j in range(self.n_wr):
            self.wr.grad[s, j] += ti.Vector([w[j, a] for a in ti.static(range(6))])

    @ti.kernel
    def store_wr_grads(self, s: ti.i32, w: ti.types.ndarray()):
        for j in range(self.n_wr):
            for a in ti.static(range(6)):
                w[j, a] = self.wr.grad[s, j][a]

    @ti.func
    def _zero_extra_state_grads(self, n: ti.template()):
        for s, i in ti.ndrange(n, self.N):
            self.fc.grad[s, i] = ti.Vector.zero(float, 3)
        for s, j in ti.ndrange(n, self.n_wr):
            self.wr.grad[s, j] = ti.Vector.zero(float, 6)


class TactileEngine(DeformableEngine):
    """``DeformableEngine`` with the state ``(x, v, f, wrench)`` and parameters
    ``(material, friction, contact)`` (``contact`` (n_obj, 3): ``k_n, k_d, mu``;
    ``wrench`` (n_obj, 6): force and torque of the pads on each object)."""

    def state_like(self) -> list:
        out = super().state_like()
        out.append(torch.empty((self.model.n_nodes, 3), dtype=self.dtype, device=self.device))
        out.append(torch.zeros((self.k.n_obj, 6), dtype=self.dtype, device=self.device))
        return out

    def _wr_io(self, fn, slot: int, w: torch.Tensor) -> None:
        # the field has max(n_obj, 1) rows; the state has n_obj
        if self.k.n_obj:
            fn(slot, w)

    def set_params(self, params) -> None:
        material, friction, contact = params
        super().set_params((material, friction))
        if self.k.n_obj:
            self.k.load_cprm(self._c(contact))

    def load_state(self, slot: int, state) -> None:
        super().load_state(slot, state[:2])
        self.k.load_node_vec(self.k.fc, slot, self._c(state[2]))
        self._wr_io(self.k.load_wr, slot, self._c(state[3]))

    def store_state(self, slot: int) -> list:
        out = self.state_like()
        self.k.store_nodes(slot, out[0], out[1])
        self.k.store_node_vec(self.k.fc, slot, out[2])
        self._wr_io(self.k.store_wr, slot, out[3])
        return out

    def add_state_grads(self, slot: int, grads) -> None:
        super().add_state_grads(slot, grads[:2])
        if grads[2] is not None:
            self.k.add_node_vec_grads(self.k.fc, slot, self._c(grads[2]))
        if grads[3] is not None:
            self._wr_io(self.k.add_wr_grads, slot, self._c(grads[3]))

    def store_state_grads(self, slot: int) -> list:
        out = super().store_state_grads(slot)[:2]
        f = torch.empty((self.model.n_nodes, 3), dtype=self.dtype, device=self.device)
        self.k.store_node_vec_grads(self.k.fc, slot, f)
        w = torch.zeros((self.k.n_obj, 6), dtype=self.dtype, device=self.device)
        self._wr_io(self.k.store_wr_grads, slot, w)
        return out + [f, w]

    def zero_param_grads(self) -> None:
        super().zero_param_grads()
        self.k.cprm.grad.fill(0)

    def store_param_grads(self) -> list:
        out = super().store_param_grads()
        c = self.k.cprm.grad.to_torch(device=self.device).to(self.dtype)
        return out + [c[: max(self.k.n_obj, 1)]]
