"""Taichi fields and kernels shared by ``ds.FEM`` and ``ds.Shell`` (nodes, contact, solvers).

``DeformableKernels`` owns the fields of one simulator instance (its own
``ti.FieldsBuilder`` tree, freed by ``destroy``); ``SolidKernels`` and ``ShellKernels``
add the element physics through a few hooks (``_elem_*``). Node state keeps a time
axis over one checkpoint segment (``x[s, i]``, ``v[s, i]``), so every value is written
once and the backward pass can read it (Taichi's global data access rules).

Stages of an implicit (backward Euler) step ``s -> s + 1``, Newton's method on the
incremental potential ``E(x) = |x - x_n - h v_n|_M^2 / (2 h^2) + Psi(x) - M g.(x - x_n) +
damping + contact + friction`` (Martin et al. 2011; Gast et al. 2015)::

    begin_step(s) -> [gradient -> prepare_hessian(projected) -> node_hessian passes
    -> cg.start -> cg.iterate* -> line_search] * -> end_step(s)

The Hessian is never assembled: element Hessians are stored in factored form and
applied matrix-free inside preconditioned (block-Jacobi) conjugate gradients
(``node_cg.NodeCG``, ``self.cg``, which runs on these fields and hooks). The
node blocks (inertia, contact, friction) come from Taichi's reverse mode applied to
the node gradient function with unit seeds, so they are exact by construction.

Backward of an implicit step (implicit function theorem): with ``g(x*; inputs) = 0``,
the adjoint ``lam`` solves ``H lam = x_bar + v_bar / h`` (exact, unprojected Hessian);
the inputs receive ``-lam^T dg/d(inputs)`` from reverse-mode passes of the gradient
kernels seeded with ``-lam`` (``vjp_*``), plus hand-written terms for solid elasticity.

Every gather is a node-by-node sum over a fixed slot list and every reduction is a
blocked sum, so results are bitwise deterministic in parallel on the CPU. Reverse
passes that scatter (Taichi turns reads into atomic adds) run serially on the CPU
when the runtime is deterministic.
"""


import math

import numpy as np
import taichi as ti

from ..node_contact import coulomb_velocity, lagged_friction, penalty
from ..runtime import ensure_init, free_fields
from ..sdf import make_sdf
from .node_cg import NodeCG
from .selfcontact import NoPairs


@ti.data_oriented
class DeformableKernels:
    """Node fields, contact, explicit update, Newton/CG kernels; element physics via hooks.

    Args:
        model: a ``DeformableModel``.
        capacity: substep states held (``segment * substeps + 1``).
        requires_grad: allocate gradient fields of the state, drive and parameters.
    """

    #: index of the mass-damping coefficient alpha in the internal parameter vector
    ALPHA_INDEX = 2
    #: what ``after_substep`` does (the name of its reverse stage in a ``GradientError``)
    AFTER_SUBSTEP_STAGE = "after_substep"
    #: per-state quantities besides the nodes' ``x`` and ``v``, by name; each ``name`` has
    #: kernels ``load_<name>``, ``store_<name>``, ``add_<name>_grads``, ``store_<name>_grads``
    #: and a shape in ``extra_state_shapes`` (the engine moves them generically)
    EXTRA_STATE: tuple = ()

    def extra_state_shapes(self) -> tuple:
        """Shapes of the ``EXTRA_STATE`` tensors of one state (as the kernels hold them)."""
        return ()

    def __init__(self, model, capacity: int, requires_grad: bool):
        cfg = ensure_init()
        self.model = model
        self.capacity = capacity
        self.requires_grad = requires_grad
        self.deterministic = cfg.deterministic and cfg.is_cpu
        self.real = real = cfg.ti_float
        d = self.dim = model.dim
        self.N = model.n_nodes
        self.E = max(model.n_elems, 1)
        self.k = model.nodes_per_elem
        self.H = model.n_hinges
        self.n_slots = max(model.n_slots, 1)
        self.K = len(model.tools)
        self.n_bodies = max(model.n_contact_bodies, 1)
        self.G = max(len(model.groups), 1)
        self.block = 1024 if cfg.is_cpu else 64
        n_items = max(self.N, self.E, self.H, 1)
        self.nb = (n_items + self.block - 1) // self.block
        g = requires_grad
        self._fb = fb = ti.FieldsBuilder()

        def place(shape, *fields, grad=g):
            axes = {1: ti.i, 2: ti.ij, 3: ti.ijk}[len(shape)]
            fb.dense(axes, shape).place(*fields)
            if grad:
                fb.dense(axes, shape).place(*[f.grad for f in fields])

        self._place = place
        n_t = capacity
        # ---- state with a time axis
        self.x = ti.Vector.field(d, real, needs_grad=g)
        self.v = ti.Vector.field(d, real, needs_grad=g)
        place((n_t, self.N), self.x, self.v)
        # ---- drive (tool poses per substep) and its gradient-free shadow
        Kf = max(self.K, 1)
        r = model.rot_dim
        self.tool_pos = ti.Vector.field(d, real, needs_grad=g)
        self.tool_rot = ti.Matrix.field(d, d, real, needs_grad=g)
        self.tool_vel = ti.Vector.field(d, real, needs_grad=g)
        self.tool_omega = ti.Vector.field(r, real, needs_grad=g)
        place((n_t, Kf), self.tool_pos, self.tool_rot, self.tool_vel, self.tool_omega)
        self.sh_tool_pos = ti.Vector.field(d, real)
        self.sh_tool_rot = ti.Matrix.field(d, d, real)
        self.sh_tool_vel = ti.Vector.field(d, real)
        self.sh_tool_omega = ti.Vector.field(r, real)
        place((n_t, Kf), self.sh_tool_pos, self.sh_tool_rot, self.sh_tool_vel, self.sh_tool_omega, grad=False)
        # ---- parameters and shadows
        from ..materials import N_INTERNAL

        self.material = ti.Vector.field(N_INTERNAL, real, needs_grad=g)
        place((self.G,), self.material)
        self.friction = ti.field(real, needs_grad=g)
        place((self.n_bodies,), self.friction)
        self.sh_material = ti.Vector.field(N_INTERNAL, real)
        place((self.G,), self.sh_material, grad=False)
        self.sh_friction = ti.field(real)
        place((self.n_bodies,), self.sh_friction, grad=False)
        # ---- static node data
        self.mass = ti.field(real)
        self.fixed = ti.field(ti.i32)
        place((self.N,), self.mass, self.fixed, grad=False)
        self.node_ptr = ti.field(ti.i32)
        place((self.N + 1,), self.node_ptr, grad=False)
        self.node_slots = ti.field(ti.i32)
        self.slot_node = ti.field(ti.i32)
        place((self.n_slots,), self.node_slots, self.slot_node, grad=False)
        # ---- solver scratch (node-sized)
        self.xk = ti.Vector.field(d, real, needs_grad=True)   # Newton iterate
        self.gn = ti.Vector.field(d, real, needs_grad=True)   # node gradient
        place((self.N,), self.xk, self.gn, grad=True)
        self.xt = ti.Vector.field(d, real)
        self.gvec = ti.Vector.field(d, real)
        self.dx = ti.Vector.field(d, real)
        self.cr = ti.Vector.field(d, real)
        self.cz = ti.Vector.field(d, real)
        self.cp = ti.Vector.field(d, real)
        self.cAp = ti.Vector.field(d, real)
        self.rhs = ti.Vector.field(d, real)
        self.xn_sh = ti.Vector.field(d, real)
        self.vn_sh = ti.Vector.field(d, real)
        self.nE = ti.field(real)
        place((self.N,), self.xt, self.gvec, self.dx, self.cr, self.cz, self.cp, self.cAp,
              self.rhs, self.xn_sh, self.vn_sh, self.nE, grad=False)
        self.fel = ti.Vector.field(d, real, needs_grad=True)   # gathered element forces
        place((self.N,), self.fel, grad=True)
        self.Hn = ti.Matrix.field(d, d, real)
        self.Pinv = ti.Matrix.field(d, d, real)
        place((self.N,), self.Hn, self.Pinv, grad=False)
        # ---- element slots: per-element local contributions gathered by nodes
        self.contrib = ti.Vector.field(d, real, needs_grad=True)
        place((self.n_slots,), self.contrib, grad=True)
        self.contrib_m = ti.Matrix.field(d, d, real)
        place((self.n_slots,), self.contrib_m, grad=False)
        self.eE = ti.field(real)
        place((self.E,), self.eE, grad=False)
        # ---- reductions: block partial sums, results, the inertia weight
        self.part = ti.field(real)
        self.part2 = ti.field(real)
        self.part3 = ti.field(real)
        place((self.nb,), self.part, self.part2, self.part3, grad=False)
        self.red = ti.field(real)      # see RED_* below
        place((17,), self.red, grad=False)
        self.iw = ti.field(real)       # 1: dynamic step, 0: quasi-static (equilibrium)
        place((1,), self.iw, grad=False)

        #: the pair terms (self-contact; ``selfcontact.py``): none unless _build_fields sets one
        self.pairs = NoPairs(self)
        self._build_fields()
        self._tree = fb.finalize()

        # ---- compile-time constants (kernels read plain Python values)
        c = model.contact
        self.dt = model.dt
        self.gravity = tuple(model.gravity)
        self.kappa, self.width, self.offset, self.fr_eps = (
            c.stiffness, c.width, c.offset, c.friction_eps)
        self.rot_dim = r
        self.tool_sdf = [make_sdf(t.kind, t.geom, t.axis) for t in model.tools]
        self.n_coll = len(model.colliders)
        self.coll_sdf = [make_sdf(cs.kind, cs.geom, cs.axis) for cs in model.colliders]
        self.coll_center = tuple(tuple(cs.center) for cs in model.colliders)
        self.has_ground = model.ground is not None
        self.ground_h = model.ground.height if self.has_ground else 0.0
        self.ground_index = self.K + self.n_coll
        self.g_node_start = tuple(gr.node_start for gr in model.groups)
        self.g_node_end = tuple(gr.node_end for gr in model.groups)
        self.n_groups = len(model.groups)

        self.mass.from_numpy(model.mass.astype(np.float64))
        self.fixed.from_numpy(model.fixed.astype(np.int32))
        self.node_ptr.from_numpy(model.node_ptr.astype(np.int32))
        if model.n_slots:
            self.node_slots.from_numpy(model.node_slots.astype(np.int32))
            slot_node = np.zeros(model.n_slots, dtype=np.int32)
            slot_node[model.node_slots] = np.repeat(np.arange(self.N), np.diff(model.node_ptr))
            self.slot_node.from_numpy(slot_node)
        self.iw[0] = 1.0
        self._upload_static()
        #: the Newton step's linear solver (block-Jacobi PCG on these fields)
        self.cg = NodeCG(self)

    # ------------------------------------------------------------------ hooks
    def before_substep(self, s: int) -> None:
        """Called before a substep (forward or backward): shells upload self-contact pairs."""

    def after_substep(self, s: int) -> None:
        """Called after a forward substep: shells update rest angles (plasticity)."""

    def after_substep_grad(self, s: int) -> None:
        """Reverse of ``after_substep``, called first in a backward substep."""

    def _build_fields(self):
        """Subclasses place their element fields with ``self._place`` here."""

    def _upload_static(self):
        """Subclasses copy their static element data to the fields here."""

    def nonfinite_fields(self) -> dict:
        """Field name -> count of non-finite entries, over every Taichi field of this
        instance and every gradient field (``"<name>.grad"``); only those that have any."""
        import numpy as np
        from taichi.lang.field import Field

        out = {}
        for name, f in vars(self).items():
            if not isinstance(f, Field):
                continue
            for label, g in ((name, f), (name + ".grad", f.grad)):
                # a field without a placed gradient has a grad placeholder with no SNode
                if g is None or g.snode.ptr is None or g.dtype not in (ti.f32, ti.f64):
                    continue
                count = int((~np.isfinite(g.to_numpy())).sum())
                if count:
                    out[label] = count
        return out

    def destroy(self) -> None:
        if self._tree is not None:
            free_fields(self._tree)
            self._tree = None

    # ------------------------------------------------------------------ small helpers
    def _f(self, name: str, shadow: bool):
        """The field ``name`` or its gradient-free shadow (evaluated at compile time)."""
        return getattr(self, "sh_" + name if shadow else name)

    def _serial(self, ad: bool) -> bool:
        """Serialise a loop whose reverse pass scatters (deterministic CPU runs only)."""
        return bool(ad and self.deterministic)

    @ti.func
    def _gather(self, i, buf: ti.template()):
        acc = ti.Vector.zero(float, self.dim)
        for j in range(self.node_ptr[i], self.node_ptr[i + 1]):
            acc += buf[self.node_slots[j]]
        return acc

    @ti.func
    def _gathered(self, i):
        """Node ``i``'s share of the element terms last written to ``contrib`` (forces, or
        a Hessian product's element part) plus its pair terms (self-contact)."""
        return self._gather(i, self.contrib) + self.pairs.gather(i)

    @ti.func
    def _hessian_row(self, i, v):
        """``(H v)_i``: the node's own block times ``v_i`` plus the gathered element and
        pair products (``_elem_matvec`` and ``pairs.matvec`` of ``v`` ran before). Summed
        left to right, not ``Hn v + _gathered(i)``: the iterates stay bitwise those of the
        solver before ``_gathered`` existed."""
        return self.Hn[i] @ v + self._gather(i, self.contrib) + self.pairs.gather(i)

    @ti.func
    def _gather_m(self, i):
        acc = ti.Matrix.zero(float, self.dim, self.dim)
        for j in range(self.node_ptr[i], self.node_ptr[i + 1]):
            acc += self.contrib_m[self.node_slots[j]]
        return acc

    @ti.func
    def _cross_omega(self, om, r):
        out = ti.Vector.zero(float, self.dim)
        if ti.static(self.dim == 2):
            out = om[0] * ti.Vector([-r[1], r[0]])
        else:
            out = om.cross(r)
        return out

    @ti.func
    def _node_alpha(self, i, shadow: ti.template()):
        # whole-vector loads: with advanced_optimization=False, Taichi 1.7 miscompiles the
        # reverse of a component load from a vector field (it adds into the wrong entry)
        mat = ti.static(self._f("material", shadow))
        a = 0.0
        for gi in ti.static(range(self.n_groups)):
            if self.g_node_start[gi] <= i and i < self.g_node_end[gi]:
                prm = mat[gi]
                a = prm[self.ALPHA_INDEX]
        return a

    # ------------------------------------------------------------------ node physics
    @ti.func
    def _contact_implicit(self, x, xn, m, sdf: ti.template(), p1, R1, p0, R0, vel, om, mu, iw):
        q = R1.transpose() @ (x - p1)
        phi, gq = sdf(q)
        rho, P = penalty(self.offset - phi, self.width)
        grad = -m * self.kappa * rho * (R1 @ gq)
        E = m * self.kappa * P
        qn = R0.transpose() @ (xn - p0)
        phin, gqn = sdf(qn)
        rhon, _P = penalty(self.offset - phin, self.width)
        if rhon > 0 and iw > 0:
            nn = R0 @ gqn
            nn = nn / ti.sqrt(nn.dot(nn) + 1e-30)
            v_o = vel + self._cross_omega(om, xn - p0)
            gf, Ef = lagged_friction(x, xn, nn, m * self.kappa * rhon, v_o, mu, self.dt,
                                     self.fr_eps)
            grad += iw * gf
            E += iw * Ef
        return grad, E

    @ti.func
    def _node_terms(self, i, x, s, shadow: ti.template()):
        """Gradient and energy of node ``i``'s terms of the incremental potential at ``x``."""
        d = ti.static(self.dim)
        m = self.mass[i]
        xn = ti.Vector.zero(float, d)
        vn = ti.Vector.zero(float, d)
        if ti.static(shadow):
            xn = self.xn_sh[i]
            vn = self.vn_sh[i]
        else:
            xn = self.x[s, i]
            vn = self.v[s, i]
        tp = ti.static(self._f("tool_pos", shadow))
        tr = ti.static(self._f("tool_rot", shadow))
        tv = ti.static(self._f("tool_vel", shadow))
        to = ti.static(self._f("tool_omega", shadow))
        fr = ti.static(self._f("friction", shadow))
        iw = self.iw[0]
        h = ti.static(self.dt)
        grav = ti.Vector(self.gravity)
        y = x - xn - h * vn
        grad = iw * m / (h * h) * y - m * grav
        # gravity's potential about the step's start (a constant shift): every term of the
        # incremental potential is then small, so float32 resolves its changes (about the
        # origin, -m g.x of a body 1 m up dwarfs them: Armijo could not tell a decrease)
        E = iw * 0.5 * m / (h * h) * y.dot(y) - m * grav.dot(x - xn)
        alpha = self._node_alpha(i, shadow)
        grad += iw * alpha * m / h * (x - xn)
        E += iw * 0.5 * alpha * m / h * (x - xn).dot(x - xn)
        for k in ti.static(range(self.K)):
            gk, Ek = self._contact_implicit(x, xn, m, self.tool_sdf[k], tp[s + 1, k],
                                            tr[s + 1, k], tp[s, k], tr[s, k], tv[s, k],
                                            to[s, k], fr[k], iw)
            grad += gk
            E += Ek
        eye = ti.Matrix.identity(float, d)
        zero = ti.Vector.zero(float, d)
        for c in ti.static(range(self.n_coll)):
            ctr = ti.Vector(self.coll_center[c])
            gc, Ec = self._contact_implicit(x, xn, m, self.coll_sdf[c], ctr, eye, ctr, eye, zero,
                                            ti.Vector.zero(float, self.rot_dim),
                                            fr[self.K + c], iw)
            grad += gc
            E += Ec
        if ti.static(self.has_ground):
            rho, P = penalty(self.offset - (x[1] - self.ground_h), self.width)
            up = ti.Vector.unit(d, 1, float)
            grad -= m * self.kappa * rho * up
            E += m * self.kappa * P
            rhon, _P = penalty(self.offset - (xn[1] - self.ground_h), self.width)
            if rhon > 0 and iw > 0:
                gf, Ef = lagged_friction(x, xn, up, m * self.kappa * rhon, zero,
                                         fr[self.ground_index], h, self.fr_eps)
                grad += iw * gf
                E += iw * Ef
        ge, Ee = self._extra_node_terms(i, x, xn, m, s, shadow)
        return grad + ge, E + Ee

    @ti.func
    def _extra_node_terms(self, i, x, xn, m, s, shadow: ti.template()):
        """Hook: further node terms of the incremental potential (``ds.Tactile``'s pad
        contact); gradient and energy at ``x``, ``xn`` the node's start position."""
        return ti.Vector.zero(float, self.dim), 0.0

    @ti.func
    def _explicit_node(self, s, i):
        """Symplectic Euler update of node ``i`` (free nodes only)."""
        d = ti.static(self.dim)
        m = self.mass[i]
        x = self.x[s, i]
        v = self.v[s, i]
        dt = ti.static(self.dt)
        f = self.fel[i] + m * ti.Vector(self.gravity)
        f -= self._node_alpha(i, False) * m * v
        kr = ti.static(self.kappa)
        for k in ti.static(range(self.K)):
            R = self.tool_rot[s, k]
            p = self.tool_pos[s, k]
            phi, gq = self.tool_sdf[k](R.transpose() @ (x - p))
            rho, _P = penalty(self.offset - phi, self.width)
            f += m * kr * rho * (R @ gq)
        for c in ti.static(range(self.n_coll)):
            phi, gq = self.coll_sdf[c](x - ti.Vector(self.coll_center[c]))
            rho, _P = penalty(self.offset - phi, self.width)
            f += m * kr * rho * gq
        if ti.static(self.has_ground):
            rho, _P = penalty(self.offset - (x[1] - self.ground_h), self.width)
            f += m * kr * rho * ti.Vector.unit(d, 1, float)
        vs = v + dt / m * f
        # friction: Coulomb projections, obstacle by obstacle
        for k in ti.static(range(self.K)):
            R = self.tool_rot[s, k]
            p = self.tool_pos[s, k]
            phi, gq = self.tool_sdf[k](R.transpose() @ (x - p))
            rho, _P = penalty(self.offset - phi, self.width)
            if rho > 0:
                n = R @ gq
                n = n / ti.sqrt(n.dot(n) + 1e-30)
                v_o = self.tool_vel[s, k] + self._cross_omega(self.tool_omega[s, k], x - p)
                vs = coulomb_velocity(vs, v_o, n, self.friction[k] * dt * kr * rho, self.fr_eps)
        for c in ti.static(range(self.n_coll)):
            phi, gq = self.coll_sdf[c](x - ti.Vector(self.coll_center[c]))
            rho, _P = penalty(self.offset - phi, self.width)
            if rho > 0:
                n = gq / ti.sqrt(gq.dot(gq) + 1e-30)
                vs = coulomb_velocity(vs, ti.Vector.zero(float, d), n,
                                      self.friction[self.K + c] * dt * kr * rho, self.fr_eps)
        if ti.static(self.has_ground):
            rho, _P = penalty(self.offset - (x[1] - self.ground_h), self.width)
            if rho > 0:
                vs = coulomb_velocity(vs, ti.Vector.zero(float, d), ti.Vector.unit(d, 1, float),
                                      self.friction[self.ground_index] * dt * kr * rho,
                                      self.fr_eps)
        return vs

    # ------------------------------------------------------------------ explicit step
    # element forces (solids: explicit_elastic, by hand; shells: explicit_elems, autodiff)
    # into ``contrib`` -> gather_forces -> explicit_nodes. The gather is differentiated by
    # hand (scatter_force_grads): Taichi's reverse mode does not handle the nodes' loops
    # over their variable-length slot lists.
    @ti.kernel
    def gather_forces(self):
        for i in range(self.N):
            self.fel[i] = self._gathered(i)

    @ti.kernel
    def scatter_force_grads(self):
        for j in range(self.n_slots):
            self.contrib.grad[j] = self.fel.grad[self.slot_node[j]]
        self.pairs.scatter_grads()

    @ti.kernel
    def explicit_nodes(self, s: ti.i32, ad: ti.template()):
        """Symplectic Euler update of every node from the gathered element forces ``fel``."""
        ti.loop_config(serialize=ti.static(self._serial(ad)))
        for i in range(self.N):
            if self.fixed[i] != 0:
                self.v[s + 1, i] = ti.Vector.zero(float, self.dim)
                self.x[s + 1, i] = self.x[s, i]
            else:
                vs = self._explicit_node(s, i)
                self.v[s + 1, i] = vs
                self.x[s + 1, i] = self.x[s, i] + self.dt * vs

    # ------------------------------------------------------------------ implicit step
    @ti.func
    def _fixed_pos(self, s1, i, x_prev):
        """Position of fixed node ``i`` at slot ``s1`` (pinned: where it was; subclasses
        drive it, e.g. tactile pads follow their finger)."""
        return x_prev

    @ti.kernel
    def begin_step(self, s: ti.i32, predict: ti.i32):
        """Shadows of the start state; the Newton iterate starts at ``x_n + h v_n`` (or x_n)."""
        for i in range(self.N):
            xn = self.x[s, i]
            vn = self.v[s, i]
            self.xn_sh[i] = xn
            self.vn_sh[i] = vn
            if self.fixed[i] != 0:
                self.xk[i] = self._fixed_pos(s + 1, i, xn)
            elif predict != 0:
                self.xk[i] = xn + self.dt * vn
            else:
                self.xk[i] = xn
        self._elem_lag(s)

    @ti.kernel
    def set_iterate_from_slot(self, s: ti.i32):
        for i in range(self.N):
            self.xk[i] = self.x[s, i]

    @ti.kernel
    def end_step(self, s: ti.i32):
        for i in range(self.N):
            if self.fixed[i] != 0:
                xf = self._fixed_pos(s + 1, i, self.x[s, i])
                self.x[s + 1, i] = xf
                self.v[s + 1, i] = (xf - self.x[s, i]) / self.dt  # zero for pinned nodes
            else:
                self.x[s + 1, i] = self.xk[i]
                self.v[s + 1, i] = (self.xk[i] - self.x[s, i]) / self.dt

    @ti.func
    def _sum_parts(self, slot: ti.template(), slot2: ti.template(), two: ti.template()):
        for _ in range(1):
            a = 0.0
            b = 0.0
            for blk in range(self.nb):
                a += self.part[blk]
                if ti.static(two):
                    b += self.part2[blk]
            self.red[slot] = a
            if ti.static(two):
                self.red[slot2] = b

    @ti.func
    def _forces_at(self, src: ti.template()):
        """The element and pair forces at positions ``src`` into their slots (``contrib``,
        the pairs' own), for ``_node_forces`` to gather."""
        self._elem_grad(src)
        self.pairs.grad(src)

    @ti.func
    def _node_forces(self, i, xi, s):
        """Node ``i``'s gradient at position ``xi``, in two parts: its own terms (inertia,
        contact, friction) and the gathered element and pair forces of the positions
        ``_forces_at`` last saw (``gradient`` and ``slope`` use the same)."""
        gn, _E = self._node_terms(i, xi, s, True)
        return gn, self._gathered(i)

    @ti.kernel
    def gradient(self, s: ti.i32) -> ti.f64:
        """``gvec = dE/dx`` at ``xk`` (zero on fixed nodes); returns ``max |g_i| / m_i``
        (m/s^2). ``red[6]``: the largest coordinate ``max |xk_i|`` (m), the scale of the
        positions' rounding; ``red[7]``: ``sqrt(sum_i (|node terms_i| + |element
        forces_i|)^2)`` (N), the forces whose work on that rounding is the energy's."""
        self._forces_at(self.xk)
        for blk in range(self.nb):
            acc = 0.0
            xmax = 0.0
            f2 = 0.0
            for i in range(blk * self.block, ti.min((blk + 1) * self.block, self.N)):
                gi = ti.Vector.zero(float, self.dim)
                if self.fixed[i] == 0:
                    gn, ge = self._node_forces(i, self.xk[i], s)
                    gi = gn + ge
                    acc = ti.max(acc, ti.sqrt(gi.dot(gi)) / self.mass[i])
                    fa = ti.sqrt(gn.dot(gn)) + ti.sqrt(ge.dot(ge))
                    f2 += fa * fa
                for a in ti.static(range(self.dim)):
                    xmax = ti.max(xmax, ti.abs(self.xk[i][a]))
                self.gvec[i] = gi
            self.part[blk] = acc
            self.part2[blk] = xmax
            self.part3[blk] = f2
        for _ in range(1):
            a = 0.0
            xm = 0.0
            f2 = 0.0
            for blk in range(self.nb):
                a = ti.max(a, self.part[blk])
                xm = ti.max(xm, self.part2[blk])
                f2 += self.part3[blk]
            self.red[0] = a
            self.red[6] = xm
            self.red[7] = ti.sqrt(f2)
        return self.red[0]

    @ti.kernel
    def energy(self, s: ti.i32, alpha: ti.f64) -> ti.f64:
        """Incremental potential at ``xk + alpha dx`` (the trial point is left in ``xt``)."""
        for i in range(self.N):
            self.xt[i] = self.xk[i] + alpha * self.dx[i]
        self._elem_energy(self.xt)
        for blk in range(self.nb):
            acc = 0.0
            mag = 0.0
            for i in range(blk * self.block, ti.min((blk + 1) * self.block, self.N)):
                if self.fixed[i] == 0:
                    _g, E = self._node_terms(i, self.xt[i], s, True)
                    acc += E
                    mag += ti.abs(E)
            for e in range(blk * self.block, ti.min((blk + 1) * self.block, self.E)):
                acc += self.eE[e]
                mag += ti.abs(self.eE[e])
            if ti.static(self.H > 0):
                for e in range(blk * self.block, ti.min((blk + 1) * self.block, self.H)):
                    acc += self.eH[e]
                    mag += ti.abs(self.eH[e])
            self.part[blk] = acc
            self.part2[blk] = mag
        self.pairs.energy(self.xt)
        self._sum_parts(1, 14, True)   # red[14]: sum of |terms|, the round-off scale
        return self.red[1] + self.red[2]

    @ti.kernel
    def slope(self, s: ti.i32, alpha: ti.f64) -> ti.f64:
        """``g(xk + alpha dx) . dx``: the incremental potential's derivative along the
        Newton direction at the trial point (left in ``xt``; ``red[16]``). Forces are
        resolved to ``eps`` of their own size where energy differences of a small step
        are not (their terms are ``1/eps`` times larger), so this decides a line search
        that the energies cannot (``DeformableEngine.newton``)."""
        for i in range(self.N):
            self.xt[i] = self.xk[i] + alpha * self.dx[i]
        self._forces_at(self.xt)
        for blk in range(self.nb):
            acc = 0.0
            for i in range(blk * self.block, ti.min((blk + 1) * self.block, self.N)):
                if self.fixed[i] == 0:
                    gn, ge = self._node_forces(i, self.xt[i], s)
                    acc += (gn + ge).dot(self.dx[i])
            self.part[blk] = acc
        self._sum_parts(16, 16, False)
        return self.red[16]

    @ti.kernel
    def accept_trial(self):
        for i in range(self.N):
            self.xk[i] = self.xt[i]

    @ti.kernel
    def node_grad_shadow(self, s: ti.i32):
        """Node gradient at ``xk`` from the shadows: its reverse pass gives Hessian columns."""
        for i in range(self.N):
            g, _E = self._node_terms(i, self.xk[i], s, True)
            self.gn[i] = g

    @ti.kernel
    def node_pass_io(self, collect: ti.i32, seed: ti.i32):
        """Store column ``collect`` of the node Hessian blocks (if >= 0); seed column ``seed``."""
        for i in range(self.N):
            col = self.xk.grad[i]
            Hn = self.Hn[i]
            seed_v = ti.Vector.zero(float, self.dim)
            for c in ti.static(range(self.dim)):
                if collect == c:
                    for a in ti.static(range(self.dim)):
                        Hn[a, c] = col[a]
                if seed == c:
                    seed_v[c] = 1.0
            self.Hn[i] = Hn
            self.xk.grad[i] = ti.Vector.zero(float, self.dim)
            self.gn.grad[i] = seed_v

    # ------------------------------------------------------------------ backward helpers
    @ti.kernel
    def implicit_rhs(self, s: ti.i32):
        """Adjoint right-hand side ``x_bar + v_bar / h`` of step ``s -> s + 1``; the direct
        terms of ``v = (x - x_n) / h`` and of fixed nodes (``x = x_n``) go to ``x_bar[s]``."""
        for i in range(self.N):
            gx = self.x.grad[s + 1, i]
            gv = self.v.grad[s + 1, i]
            if self.fixed[i] != 0:
                self.rhs[i] = ti.Vector.zero(float, self.dim)
                self.x.grad[s, i] += gx
            else:
                self.rhs[i] = gx + gv / self.dt
                self.x.grad[s, i] -= gv / self.dt

    @ti.kernel
    def seed_vjp(self, s: ti.i32):
        """After ``H lam = rhs`` (``lam`` in ``dx``): seed ``-lam`` on the node gradient; a
        fixed node's own position gets ``-(H lam)_i`` (``cAp`` after ``matvec_full``)."""
        for j in range(self.n_slots):
            self.contrib.grad[j] = -self.dx[self.slot_node[j]]
        for i in range(self.N):
            self.gn.grad[i] = -self.dx[i]
            if self.fixed[i] != 0:
                self.gn.grad[i] = ti.Vector.zero(float, self.dim)
                self.x.grad[s, i] -= self.cAp[i]
            self.xk.grad[i] = ti.Vector.zero(float, self.dim)

    @ti.kernel
    def copy_lambda_to_p(self):
        for i in range(self.N):
            self.cp[i] = self.dx[i]

    @ti.kernel
    def vjp_nodes(self, s: ti.i32):
        """Node terms of the gradient at ``xk`` from the real (grad) fields; only its reverse,
        seeded with ``-lam``, is used."""
        ti.loop_config(serialize=self.deterministic)
        for i in range(self.N):
            if self.fixed[i] == 0:
                g, _E = self._node_terms(i, self.xk[i], s, False)
                self.gn[i] = g

    # ------------------------------------------------------------------ checks
    @ti.kernel
    def check(self, s: ti.i32) -> ti.f64:
        """Number of nodes with non-finite position or velocity at slot ``s``; ``red[11]`` = max |v|."""
        self.red[11] = 0.0
        self.red[13] = 0.0
        for i in range(self.N):
            xv = self.x[s, i]
            vv = self.v[s, i]
            b = 0
            for a in ti.static(range(self.dim)):
                # ti.math.isnan, not v != v: under Taichi's fast math LLVM folds v != v
                # to False and a NaN passed unnoticed
                if ti.math.isnan(xv[a]) or ti.math.isnan(vv[a]) or ti.abs(vv[a]) > 1e30 or ti.abs(
                        xv[a]) > 1e30:
                    b = 1
            if b:
                ti.atomic_add(self.red[13], 1.0)
            else:
                ti.atomic_max(self.red[11], ti.sqrt(vv.dot(vv)))
        return self.red[13]

    # ------------------------------------------------------------------ transfer
    @ti.kernel
    def load_nodes(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(self.dim)):
                self.x[s, i][a] = x[i, a]
                self.v[s, i][a] = v[i, a]

    @ti.kernel
    def store_nodes(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(self.dim)):
                x[i, a] = self.x[s, i][a]
                v[i, a] = self.v[s, i][a]

    @ti.kernel
    def add_node_grads(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray()):
        # whole-vector updates: Taichi 1.7 miscompiles component-wise atomics on vector
        # fields (``f[i][a] += ...``) with advanced_optimization=False
        for i in range(self.N):
            self.x.grad[s, i] += ti.Vector([x[i, a] for a in ti.static(range(self.dim))])
            self.v.grad[s, i] += ti.Vector([v[i, a] for a in ti.static(range(self.dim))])

    @ti.kernel
    def store_node_grads(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(self.dim)):
                x[i, a] = self.x.grad[s, i][a]
                v[i, a] = self.v.grad[s, i][a]

    @ti.kernel
    def store_lambda(self, lam: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(self.dim)):
                lam[i, a] = self.dx[i][a]

    @ti.kernel
    def load_lambda(self, lam: ti.types.ndarray()):
        for i in range(self.N):
            self.dx[i] = ti.Vector([lam[i, a] for a in ti.static(range(self.dim))])

    @ti.kernel
    def store_iterate(self, x: ti.types.ndarray()):
        for i in range(self.N):
            for a in ti.static(range(self.dim)):
                x[i, a] = self.xk[i][a]

    @ti.kernel
    def load_tools(self, n: ti.i32, pos: ti.types.ndarray(), rot: ti.types.ndarray(),
                   vel: ti.types.ndarray(), omega: ti.types.ndarray()):
        for s, k in ti.ndrange(n, self.K):
            for i in ti.static(range(self.dim)):
                self.tool_pos[s, k][i] = pos[s, k, i]
                self.sh_tool_pos[s, k][i] = pos[s, k, i]
                self.tool_vel[s, k][i] = vel[s, k, i]
                self.sh_tool_vel[s, k][i] = vel[s, k, i]
                for j in ti.static(range(self.dim)):
                    self.tool_rot[s, k][i, j] = rot[s, k, i, j]
                    self.sh_tool_rot[s, k][i, j] = rot[s, k, i, j]
            for i in ti.static(range(self.rot_dim)):
                self.tool_omega[s, k][i] = omega[s, k, i]
                self.sh_tool_omega[s, k][i] = omega[s, k, i]

    @ti.kernel
    def store_tool_grads(self, n: ti.i32, pos: ti.types.ndarray(), rot: ti.types.ndarray(),
                         vel: ti.types.ndarray(), omega: ti.types.ndarray()):
        for s, k in ti.ndrange(n, self.K):
            for i in ti.static(range(self.dim)):
                pos[s, k, i] = self.tool_pos.grad[s, k][i]
                vel[s, k, i] = self.tool_vel.grad[s, k][i]
                for j in ti.static(range(self.dim)):
                    rot[s, k, i, j] = self.tool_rot.grad[s, k][i, j]
            for i in ti.static(range(self.rot_dim)):
                omega[s, k, i] = self.tool_omega.grad[s, k][i]

    @ti.kernel
    def load_params(self, material: ti.types.ndarray(), friction: ti.types.ndarray()):
        for gi in range(self.n_groups):
            for j in ti.static(range(self.material.n)):
                self.material[gi][j] = material[gi, j]
                self.sh_material[gi][j] = material[gi, j]
        for b in range(self.n_bodies):
            self.friction[b] = friction[b]
            self.sh_friction[b] = friction[b]

    @ti.kernel
    def zero_state_grads(self, n: ti.i32):
        for s, i in ti.ndrange(n, self.N):
            self.x.grad[s, i] = ti.Vector.zero(float, self.dim)
            self.v.grad[s, i] = ti.Vector.zero(float, self.dim)
        for s, k in ti.ndrange(n, self.K):
            self.tool_pos.grad[s, k] = ti.Vector.zero(float, self.dim)
            self.tool_rot.grad[s, k] = ti.Matrix.zero(float, self.dim, self.dim)
            self.tool_vel.grad[s, k] = ti.Vector.zero(float, self.dim)
            self.tool_omega.grad[s, k] = ti.Vector.zero(float, self.rot_dim)
        self._zero_extra_state_grads(n)

    @ti.func
    def _zero_extra_state_grads(self, n: ti.template()):
        pass


def block_count(n: int, block: int) -> int:
    return max(1, math.ceil(n / block))
