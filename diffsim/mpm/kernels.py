"""MLS-MPM kernels (Hu et al. 2018, APIC transfers, quadratic B-splines) with a time axis.

``MPMKernels`` owns the Taichi fields of one simulator instance (allocated in
its own ``ti.FieldsBuilder`` tree, freed by ``destroy``) and the kernels named
after the algorithm stages of one substep ``s -> s + 1``::

    trial_F(s) -> svd() -> p2g(s) -> grid_update(s) -> g2p(s)

Particle state keeps a time axis over the substeps of one checkpoint segment
(``x[s, p]``), so each value is written once and reverse-mode autodiff obeys
Taichi's global data access rules. The grid and the SVD scratch have no time
axis: ``backward_substep`` recomputes them before running the reverse kernels
(DiffTaichi's scheme), which keeps memory at one grid.

The SVD has a hand-written backward (``svd.py``) instead of autodiff.
"""


import taichi as ti

from ..runtime import ensure_init, free_fields
from ..sdf import make_sdf
from ..tools import ToolSpec
from .contact import coulomb_project, wall_project
from .model import MPMModel
from .svd import svd2x2, svd_backward

#: nodes per axis of a grid block; grid work covers the blocks particle stencils touch
BLOCK = 4


def tool_parts(tool: ToolSpec) -> list:
    """``(sdf_func, offset)`` per part of a tool, offsets in the tool frame."""
    if tool.kind == "compound":
        return [(make_sdf(k, g, a), tuple(o)) for k, g, a, o in tool.geom]
    return [(make_sdf(tool.kind, tool.geom, tool.axis), (0.0,) * len(tool.position))]


@ti.data_oriented
class MPMKernels:
    """Fields and kernels for one ``MPMModel``.

    Args:
        model: the static model.
        capacity: number of substep states held (``segment_steps * substeps + 1``).
        requires_grad: allocate gradient fields (for ``backward_substep``).
    """

    def __init__(self, model: MPMModel, capacity: int, requires_grad: bool):
        cfg = ensure_init()
        self.model = model
        self.capacity = capacity
        self.requires_grad = requires_grad
        self.deterministic = cfg.deterministic and cfg.is_cpu
        self.svd_eps = 1e-12 if cfg.precision == "f64" else 1e-6
        d = self.dim = model.dim
        self.n_p = max(model.n_particles, 1)
        self.n_tools = len(model.tools)
        self.grid_shape = tuple(model.grid_shape)
        real = cfg.ti_float
        g = requires_grad
        fb = ti.FieldsBuilder()

        self.nbytes = 0  # field memory (for the runtime's kernel pool)
        itemsize = 8 if cfg.precision == "f64" else 4

        def place(shape, *fields):
            axes = ti.ij if len(shape) == 2 else (ti.i if len(shape) == 1 else ti.ijk)
            fb.dense(axes, shape).place(*fields)
            if g:
                fb.dense(axes, shape).place(*[f.grad for f in fields])
            n = 1
            for k in shape:
                n *= k
            per = sum(f.n * f.m if isinstance(f, ti.Matrix) else
                      (f.n if hasattr(f, "n") else 1) for f in fields)
            self.nbytes += n * per * itemsize * (2 if g else 1)

        n_t = capacity
        self.x = ti.Vector.field(d, real, needs_grad=g)
        self.v = ti.Vector.field(d, real, needs_grad=g)
        self.C = ti.Matrix.field(d, d, real, needs_grad=g)
        self.F = ti.Matrix.field(d, d, real, needs_grad=g)
        self.Jp = ti.field(real, needs_grad=g)
        place((n_t, self.n_p), self.x, self.v, self.C, self.F, self.Jp)

        self.grid_v = ti.Vector.field(d, real, needs_grad=g)
        self.grid_m = ti.field(real, needs_grad=g)
        self.grid_v_out = ti.Vector.field(d, real, needs_grad=g)
        place(self.grid_shape, self.grid_v, self.grid_m, self.grid_v_out)

        # Active blocks: grid work runs over the BLOCK^d-node blocks that particle
        # stencils touch, listed in block_list[:n_active] (see _mark_and_list_blocks).
        self.block_shape = tuple(-(-n // BLOCK) for n in self.grid_shape)
        n_blocks = 1
        for n in self.block_shape:
            n_blocks *= n
        self.n_blocks = n_blocks
        self.block_active = ti.field(ti.i32)
        fb.dense(ti.ij if d == 2 else ti.ijk, self.block_shape).place(self.block_active)
        self.block_list = ti.Vector.field(d, ti.i32)
        fb.dense(ti.i, n_blocks).place(self.block_list)
        self.n_active = ti.field(ti.i32)
        fb.place(self.n_active)

        self.F_trial = ti.Matrix.field(d, d, real, needs_grad=g)
        self.U = ti.Matrix.field(d, d, real, needs_grad=g)
        self.V = ti.Matrix.field(d, d, real, needs_grad=g)
        self.sig = ti.Vector.field(d, real, needs_grad=g)
        n_svd = self.n_p if model.needs_svd else 1
        place((n_svd,), self.F_trial, self.U, self.V, self.sig)
        self.affine = ti.Matrix.field(d, d, real, needs_grad=g)  # p2g's affine matrix (scratch)
        place((self.n_p,), self.affine)

        n_groups = max(len(model.groups), 1)
        from ..materials import N_INTERNAL

        self.material = ti.Vector.field(N_INTERNAL, real, needs_grad=g)
        place((n_groups,), self.material)

        n_tools = max(self.n_tools, 1)
        self.tool_pos = ti.Vector.field(d, real, needs_grad=g)
        self.tool_rot = ti.Matrix.field(d, d, real, needs_grad=g)
        self.tool_vel = ti.Vector.field(d, real, needs_grad=g)
        self.tool_omega = ti.Vector.field(model.rot_dim, real, needs_grad=g)
        place((n_t, n_tools), self.tool_pos, self.tool_rot, self.tool_vel, self.tool_omega)
        self.tool_friction = ti.field(real, needs_grad=g)
        place((n_tools,), self.tool_friction)

        has_coll = model.colliders is not None
        coll_shape = self.grid_shape if has_coll else (1,) * d
        self.coll_sdf = ti.field(real)
        self.coll_normal = ti.Vector.field(d, real)
        self.coll_friction = ti.field(real)
        fb.dense(ti.ij if d == 2 else ti.ijk, coll_shape).place(
            self.coll_sdf, self.coll_normal, self.coll_friction)

        self.stats = ti.field(real)  # [max |v|^2, non-finite count, escaped count]
        fb.dense(ti.i, 3).place(self.stats)
        self._tree = fb.finalize()

        # compile-time constants (kernels read plain Python values, never the model object)
        self.dt, self.dx, self.inv_dx = model.dt, model.dx, model.inv_dx
        self.origin, self.gravity = tuple(model.origin), tuple(model.gravity)
        self.n_particles = model.n_particles
        self.n_groups = len(model.groups)
        self.g_start = tuple(gr.start for gr in model.groups)
        self.g_end = tuple(gr.end for gr in model.groups)
        self.g_mass = tuple(gr.p_mass for gr in model.groups)
        self.g_stress = tuple(-model.dt * gr.p_vol * 4 * model.inv_dx ** 2 for gr in model.groups)
        self.g_model = tuple(gr.model for gr in model.groups)
        self.g_svd = tuple(gr.model.needs_svd for gr in model.groups)
        self.needs_svd = model.needs_svd
        svd_groups = [gr for gr in model.groups if gr.model.needs_svd]
        if any(not gr.model.needs_svd for gr in model.groups[:len(svd_groups)]):
            raise ValueError("MPM groups needing an SVD must come first")
        self.svd_end = svd_groups[-1].end if svd_groups else 0
        self.has_colliders = model.colliders is not None
        self.collider_width = model.colliders.contact_width if self.has_colliders else 0.0
        self.tool_width = tuple(t.contact_width for t in model.tools)
        self.skin = model.contact_skin
        self.tool_reach = tuple(8 * t.contact_width + 2 * model.dx + self.skin
                                for t in model.tools)
        self.bound, self.walls, self.wall_friction = model.bound, model.walls, model.wall_friction
        self.rot_dim = model.rot_dim
        self.inv_m_ref = 1.0 / min(self.g_mass) if self.g_mass else 1.0

        if has_coll:
            c = model.colliders
            self.coll_sdf.from_numpy(c.sdf)
            self.coll_normal.from_numpy(c.normal)
            self.coll_friction.from_numpy(c.friction)
        # one signed distance per tool part: a compound tool (a cup, a spoon) is
        # projected part by part, so each node sees well-defined normals in the
        # corners where parts meet (a single min-distance normal points sideways
        # there and lets material seep through)
        self._tool_parts = [tool_parts(t) for t in model.tools]
        self._grid_dirty = True

    # ------------------------------------------------------------------ lifecycle
    def destroy(self) -> None:
        """Free the fields (the kernels of this instance are unusable afterwards)."""
        if self._tree is not None:
            free_fields(self._tree)
            self._tree = None

    # ------------------------------------------------------------------ helpers
    @ti.func
    def _stencil(self, xw):
        """Base node, fractional offset (grid units) and quadratic B-spline weights."""
        xp = (xw - ti.Vector(self.origin)) * self.inv_dx
        base = ti.cast(ti.floor(xp - 0.5), ti.i32)
        for i in ti.static(range(self.dim)):
            # keeps memory safe for escaped particles; the step check reports them
            base[i] = ti.min(ti.max(base[i], 0), self.grid_shape[i] - 3)
        fx = xp - ti.cast(base, float)
        w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
        return base, fx, w

    # ------------------------------------------------------------------ stages
    # Stages are @ti.func loops; kernels below fuse them so that one substep is
    # one or two kernel launches (each launch costs tens of microseconds on CPU).
    @ti.func
    def _block_node(self, i, j):
        """Grid index of the ``j``-th node of listed block ``i``, and whether it exists
        (blocks at the far edges overhang a grid that is not a multiple of BLOCK)."""
        d = ti.static(self.dim)
        I = self.block_list[i] * BLOCK
        inside = True
        r = j
        for a in ti.static(range(d)):
            I[d - 1 - a] += r % BLOCK
            r //= BLOCK
        for a in ti.static(range(d)):
            if I[a] >= self.grid_shape[a]:
                inside = False
        return I, inside

    @ti.func
    def _clear_listed(self, grads: ti.template()):
        """Zero the accumulators (and, with ``grads``, the gradients) of the listed blocks.

        Invariant: nodes outside the listed blocks hold zero mass, momentum and
        gradients, so clearing the listed blocks clears the grid."""
        d = ti.static(self.dim)
        for i, j in ti.ndrange(self.n_active[None], BLOCK ** d):
            I, inside = self._block_node(i, j)
            if inside:
                self.grid_v[I] = ti.Vector.zero(float, d)
                self.grid_m[I] = 0.0
                if ti.static(grads):
                    self.grid_v.grad[I] = ti.Vector.zero(float, d)
                    self.grid_m.grad[I] = 0.0
                    self.grid_v_out.grad[I] = ti.Vector.zero(float, d)

    @ti.func
    def _mark_and_list_blocks(self, s):
        """List the blocks the stencils of the particles at substep ``s`` touch.

        A stencil (3 nodes per axis from ``base``) spans at most two blocks per axis.
        The list is built serially in block order, so loops over it (and the sums of
        the tool gradients over nodes) run in a fixed order."""
        d = ti.static(self.dim)
        for p in range(self.n_particles):
            base, fx, w = self._stencil(self.x[s, p])
            lo = base // BLOCK
            hi = (base + 2) // BLOCK
            for c in ti.static(ti.grouped(ti.ndrange(*([2] * d)))):
                B = lo
                for a in ti.static(range(d)):
                    if c[a] == 1:
                        B[a] = hi[a]
                self.block_active[B] = 1
        ti.loop_config(serialize=True)
        for _ in range(1):
            n = 0
            for B in ti.grouped(ti.ndrange(*self.block_shape)):
                if self.block_active[B]:
                    self.block_list[n] = B
                    n += 1
                    self.block_active[B] = 0
            self.n_active[None] = n

    @ti.func
    def _trial_F_svd(self, s: ti.template()):
        for p in range(self.svd_end):
            eye = ti.Matrix.identity(float, self.dim)
            F = (eye + self.dt * self.C[s, p]) @ self.F[s, p]
            self.F_trial[p] = F
            if ti.static(self.dim == 2):
                U, sig, V = svd2x2(F)
                self.U[p] = U
                self.V[p] = V
                self.sig[p] = sig
            else:
                U, S, V = ti.svd(F)
                self.U[p] = U
                self.V[p] = V
                for i in ti.static(range(self.dim)):
                    self.sig[p][i] = S[i, i]

    @ti.func
    def _clear_svd_grad(self):
        for p in self.F_trial:
            self.F_trial.grad[p] = ti.Matrix.zero(float, self.dim, self.dim)
            self.U.grad[p] = ti.Matrix.zero(float, self.dim, self.dim)
            self.V.grad[p] = ti.Matrix.zero(float, self.dim, self.dim)
            self.sig.grad[p] = ti.Vector.zero(float, self.dim)

    @ti.func
    def _constitutive(self, s, p, gi: ti.template()):
        """Plasticity and stress of particle ``p`` (group ``gi``) at substep ``s``.

        Writes ``F[s + 1, p]`` and ``Jp[s + 1, p]``; returns the APIC affine matrix
        ``-dt vol 4/dx^2 tau + m C`` that p2g scatters.
        """
        d = ti.static(self.dim)
        C = self.C[s, p]
        eye = ti.Matrix.identity(float, d)
        F = eye
        U = eye
        V = eye
        sig = ti.Vector.one(float, d)
        if ti.static(self.g_svd[gi]):
            F = self.F_trial[p]
            U = self.U[p]
            V = self.V[p]
            sig = self.sig[p]
        else:
            F = (eye + self.dt * C) @ self.F[s, p]
        F_e, Jp, tau = self.g_model[gi].update(F, U, sig, V, self.Jp[s, p], self.material[gi], C)
        self.F[s + 1, p] = F_e
        self.Jp[s + 1, p] = Jp
        return self.g_stress[gi] * tau + self.g_mass[gi] * C

    @ti.func
    def _p2g(self, s: ti.template(), keep_affine: ti.template()):
        d = ti.static(self.dim)
        for gi in ti.static(range(self.n_groups)):
            ti.loop_config(serialize=self.deterministic)
            for p in range(self.g_start[gi], self.g_end[gi]):
                base, fx, w = self._stencil(self.x[s, p])
                affine = self._constitutive(s, p, gi)
                if ti.static(keep_affine):  # for scatter_adjoint in the backward pass
                    self.affine[p] = affine
                mv = self.g_mass[gi] * self.v[s, p]
                for offset in ti.static(ti.grouped(ti.ndrange(*([3] * d)))):
                    dpos = (ti.cast(offset, float) - fx) * self.dx
                    weight = 1.0
                    for i in ti.static(range(d)):
                        weight *= w[offset[i]][i]
                    self.grid_v[base + offset] += weight * (mv + affine @ dpos)
                    self.grid_m[base + offset] += weight * self.g_mass[gi]

    @ti.func
    def _grid_update(self, s: ti.template(), reset_accumulators: ti.template()):
        d = ti.static(self.dim)
        # tool gradients are sums over grid nodes: serial in deterministic mode
        ti.loop_config(serialize=self.deterministic and self.n_tools > 0)
        for i, j in ti.ndrange(self.n_active[None], BLOCK ** d):
            I, inside = self._block_node(i, j)
            mass = 0.0
            if inside:
                mass = self.grid_m[I]
            v = ti.Vector.zero(float, d)
            if mass > 0:
                # v = p / m overflows the float32 reverse pass at nodes of vanishing mass
                # (Taichi's d(p/m)/dm = -p/m^2 exceeds 3e38 below ~1e-19 kg). Divide by
                # the mass in particle-mass units, smoothly kept above 1e-15, whose square
                # float32 still represents: sqrt(m^2 + 1e-30) equals m to rounding for any
                # node a particle weights by more than 1e-14, and the map stays smooth.
                m_r = mass * self.inv_m_ref
                mass_r = ti.sqrt(m_r * m_r + 1e-30)
                v = (self.grid_v[I] * self.inv_m_ref) / mass_r + self.dt * ti.Vector(self.gravity)
                if ti.static(self.has_colliders):
                    if self.coll_sdf[I] < 0:
                        v = ti.Vector.zero(float, d)  # inside a static collider
                    else:
                        v = coulomb_project(v, ti.Vector.zero(float, d), self.coll_normal[I],
                                            self.coll_sdf[I], self.coll_friction[I],
                                            self.collider_width, self.skin)
                xg = ti.Vector(self.origin) + ti.cast(I, float) * self.dx
                for k in ti.static(range(self.n_tools)):
                    v = self._tool_contact(v, xg, s, k)
                v = wall_project(v, I, self.grid_shape, self.bound, self.walls,
                                 self.wall_friction)
                if ti.static(reset_accumulators):
                    # forward-only: leave the accumulators zeroed for the next p2g,
                    # which saves a clearing pass over the grid
                    self.grid_v[I] = ti.Vector.zero(float, d)
                    self.grid_m[I] = 0.0
            if inside:
                self.grid_v_out[I] = v

    @ti.func
    def _tool_contact(self, v, xg, s, k: ti.template()):
        d = ti.static(self.dim)
        R = self.tool_rot[s, k]
        r = xg - self.tool_pos[s, k]
        q = R.transpose() @ r
        v_tool = self.tool_vel[s, k]
        om = self.tool_omega[s, k]
        if ti.static(d == 2):
            v_tool += om[0] * ti.Vector([-r[1], r[0]])
        else:
            v_tool += om.cross(r)
        out = v
        for j in ti.static(range(len(self._tool_parts[k]))):
            sdfn = ti.static(self._tool_parts[k][j][0])
            phi, n_local = sdfn(q - ti.Vector(self._tool_parts[k][j][1]))
            if phi < self.tool_reach[k]:
                out = coulomb_project(out, v_tool, R @ n_local, phi, self.tool_friction[k],
                                      self.tool_width[k], self.skin)
        return out

    @ti.func
    def _g2p(self, s: ti.template()):
        d = ti.static(self.dim)
        for p in range(self.n_particles):
            base, fx, w = self._stencil(self.x[s, p])
            new_v = ti.Vector.zero(float, d)
            new_C = ti.Matrix.zero(float, d, d)
            for offset in ti.static(ti.grouped(ti.ndrange(*([3] * d)))):
                dpos = ti.cast(offset, float) - fx
                weight = 1.0
                for i in ti.static(range(d)):
                    weight *= w[offset[i]][i]
                g_v = self.grid_v_out[base + offset]
                new_v += weight * g_v
                new_C += (4 * self.inv_dx * weight) * g_v.outer_product(dpos)
            self.v[s + 1, p] = new_v
            self.C[s + 1, p] = new_C
            self.x[s + 1, p] = self.x[s, p] + self.dt * new_v

    # ------------------------------------------------------------------ kernels
    @ti.kernel
    def clear_grid(self):
        """Zero the listed blocks' accumulators and gradients (see ``_clear_listed``)."""
        self._clear_listed(self.requires_grad)

    @ti.kernel
    def substep_forward(self, s: ti.i32):
        """Forward substep ``s -> s + 1``; expects zeroed grid accumulators, leaves them zeroed."""
        if ti.static(self.needs_svd):
            self._trial_F_svd(s)
        self._mark_and_list_blocks(s)
        self._p2g(s, False)
        self._grid_update(s, True)
        self._g2p(s)

    @ti.kernel
    def recompute_grid(self, s: ti.i32):
        """Backward: rebuild the grid (and SVDs) of substep ``s``; zero the scratch gradients."""
        self._clear_listed(True)
        if ti.static(self.needs_svd):
            self._clear_svd_grad()
            self._trial_F_svd(s)
        self._mark_and_list_blocks(s)
        self._p2g(s, True)
        self._grid_update(s, False)

    @ti.kernel
    def grid(self, s: ti.i32):
        """grid_update alone; only its reverse (``grid.grad``) is used."""
        self._grid_update(s, False)

    @ti.kernel
    def stress(self, s: ti.i32):
        """The per-particle half of p2g (plasticity, stress, affine matrix).

        Only its reverse is used: Taichi differentiates the constitutive models
        particle by particle, while the scatter half has a hand-written adjoint
        (``scatter_adjoint``). Differentiating p2g as a whole took minutes to
        compile in 3D (27 unrolled stencil nodes around every model).
        """
        for gi in ti.static(range(self.n_groups)):
            # the material-parameter gradient is a sum over particles
            ti.loop_config(serialize=self.deterministic)
            for p in range(self.g_start[gi], self.g_end[gi]):
                self.affine[p] = self._constitutive(s, p, gi)

    @ti.kernel
    def scatter_adjoint(self, s: ti.i32):
        """Reverse of p2g's scatter: grid gradients to x, v (at s) and the affine matrix."""
        d = ti.static(self.dim)
        for gi in ti.static(range(self.n_groups)):
            for p in range(self.g_start[gi], self.g_end[gi]):
                base, fx, w = self._stencil(self.x[s, p])
                dw = [fx - 1.5, -2.0 * (fx - 1.0), fx - 0.5]
                m = self.g_mass[gi]
                A = self.affine[p]
                mv = m * self.v[s, p]
                g_mv = ti.Vector.zero(float, d)
                g_A = ti.Matrix.zero(float, d, d)
                g_fx = ti.Vector.zero(float, d)
                for offset in ti.static(ti.grouped(ti.ndrange(*([3] * d)))):
                    dpos = (ti.cast(offset, float) - fx) * self.dx
                    weight = 1.0
                    for i in ti.static(range(d)):
                        weight *= w[offset[i]][i]
                    Gv = self.grid_v.grad[base + offset]
                    Gm = self.grid_m.grad[base + offset]
                    g_mv += weight * Gv
                    g_A += weight * Gv.outer_product(dpos)
                    g_fx -= (weight * self.dx) * (A.transpose() @ Gv)
                    g_weight = Gv.dot(mv + A @ dpos) + Gm * m
                    for i in ti.static(range(d)):
                        dweight = dw[offset[i]][i]
                        for j in ti.static(range(d)):
                            if ti.static(j != i):
                                dweight *= w[offset[j]][j]
                        g_fx[i] += g_weight * dweight
                self.affine.grad[p] = g_A
                self.v.grad[s, p] += m * g_mv
                self.x.grad[s, p] += g_fx * self.inv_dx

    @ti.kernel
    def g2p_adjoint(self, s: ti.i32):
        """Hand-written reverse of g2p (about 2x faster than Taichi's generated one).

        Seeds ``grid_v_out.grad`` from the gradients of ``x, v, C`` at ``s + 1``
        and adds the position gradient (through the B-spline weights) to ``x.grad[s]``.
        """
        d = ti.static(self.dim)
        ti.loop_config(serialize=self.deterministic)
        for p in range(self.n_particles):
            base, fx, w = self._stencil(self.x[s, p])
            dw = [fx - 1.5, -2.0 * (fx - 1.0), fx - 0.5]
            g_x = self.x.grad[s + 1, p]
            g_v = self.v.grad[s + 1, p] + self.dt * g_x
            g_C = self.C.grad[s + 1, p] * (4 * self.inv_dx)
            g_fx = ti.Vector.zero(float, d)
            for offset in ti.static(ti.grouped(ti.ndrange(*([3] * d)))):
                dpos = ti.cast(offset, float) - fx
                weight = 1.0
                for i in ti.static(range(d)):
                    weight *= w[offset[i]][i]
                g_v_node = self.grid_v_out[base + offset]
                gC_dpos = g_C @ dpos
                self.grid_v_out.grad[base + offset] += weight * (g_v + gC_dpos)
                g_weight = g_v.dot(g_v_node) + g_v_node.dot(gC_dpos)
                g_fx -= weight * (g_C.transpose() @ g_v_node)
                for i in ti.static(range(d)):
                    dweight = dw[offset[i]][i]
                    for j in ti.static(range(d)):
                        if ti.static(j != i):
                            dweight *= w[offset[j]][j]
                    g_fx[i] += g_weight * dweight
            self.x.grad[s, p] += g_x + g_fx * self.inv_dx

    @ti.kernel
    def trial_F(self, s: ti.i32):
        """``F_trial = (I + dt C) F``; only its reverse is used (after ``svd_grad``)."""
        for p in range(self.svd_end):
            eye = ti.Matrix.identity(float, self.dim)
            self.F_trial[p] = (eye + self.dt * self.C[s, p]) @ self.F[s, p]

    @ti.kernel
    def svd_grad(self):
        for p in range(self.svd_end):
            self.F_trial.grad[p] += svd_backward(
                self.U.grad[p], self.sig.grad[p], self.V.grad[p],
                self.U[p], self.sig[p], self.V[p], self.svd_eps)

    # ------------------------------------------------------------------ checks
    @ti.kernel
    def check(self, s: ti.i32):
        """Fill ``stats`` with max |v|^2, non-finite and escaped particle counts at ``s``."""
        self.stats[0] = 0.0
        self.stats[1] = 0.0
        self.stats[2] = 0.0
        for p in range(self.n_particles):
            xv = self.x[s, p]
            vv = self.v[s, p]
            speed2 = vv.norm_sqr()
            bad = 0
            for i in ti.static(range(self.dim)):
                # ti.math.isnan, not v != v: Taichi compiles with fast math, under which
                # LLVM folds v != v to False and a NaN passed unnoticed
                if ti.math.isnan(xv[i]) or ti.math.isnan(vv[i]) or ti.abs(vv[i]) > 1e30:
                    bad = 1
            if bad:
                self.stats[1] += 1.0
            else:
                ti.atomic_max(self.stats[0], speed2)
                xp = (xv - ti.Vector(self.origin)) * self.inv_dx
                for i in ti.static(range(self.dim)):
                    if xp[i] < 1.0 or xp[i] > self.grid_shape[i] - 2.0:
                        bad = 1
                if bad:
                    self.stats[2] += 1.0

    # ------------------------------------------------------------------ transfer
    @ti.kernel
    def load_particles(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(),
                       C: ti.types.ndarray(), F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                self.x[s, p][i] = x[p, i]
                self.v[s, p][i] = v[p, i]
                for j in ti.static(range(self.dim)):
                    self.C[s, p][i, j] = C[p, i, j]
                    self.F[s, p][i, j] = F[p, i, j]
            self.Jp[s, p] = Jp[p]

    @ti.kernel
    def store_particles(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(),
                        C: ti.types.ndarray(), F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                x[p, i] = self.x[s, p][i]
                v[p, i] = self.v[s, p][i]
                for j in ti.static(range(self.dim)):
                    C[p, i, j] = self.C[s, p][i, j]
                    F[p, i, j] = self.F[s, p][i, j]
            Jp[p] = self.Jp[s, p]

    @ti.kernel
    def add_particle_grads(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(),
                           C: ti.types.ndarray(), F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                self.x.grad[s, p][i] += x[p, i]
                self.v.grad[s, p][i] += v[p, i]
                for j in ti.static(range(self.dim)):
                    self.C.grad[s, p][i, j] += C[p, i, j]
                    self.F.grad[s, p][i, j] += F[p, i, j]
            self.Jp.grad[s, p] += Jp[p]

    @ti.kernel
    def store_particle_grads(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(),
                             C: ti.types.ndarray(), F: ti.types.ndarray(),
                             Jp: ti.types.ndarray()):
        for p in range(self.n_particles):
            for i in ti.static(range(self.dim)):
                x[p, i] = self.x.grad[s, p][i]
                v[p, i] = self.v.grad[s, p][i]
                for j in ti.static(range(self.dim)):
                    C[p, i, j] = self.C.grad[s, p][i, j]
                    F[p, i, j] = self.F.grad[s, p][i, j]
            Jp[p] = self.Jp.grad[s, p]

    @ti.kernel
    def load_tools(self, n: ti.i32, pos: ti.types.ndarray(), rot: ti.types.ndarray(),
                   vel: ti.types.ndarray(), omega: ti.types.ndarray()):
        for s, k in ti.ndrange(n, self.n_tools):
            for i in ti.static(range(self.dim)):
                self.tool_pos[s, k][i] = pos[s, k, i]
                self.tool_vel[s, k][i] = vel[s, k, i]
                for j in ti.static(range(self.dim)):
                    self.tool_rot[s, k][i, j] = rot[s, k, i, j]
            for i in ti.static(range(self.rot_dim)):
                self.tool_omega[s, k][i] = omega[s, k, i]

    @ti.kernel
    def store_tool_grads(self, n: ti.i32, pos: ti.types.ndarray(), rot: ti.types.ndarray(),
                         vel: ti.types.ndarray(), omega: ti.types.ndarray()):
        for s, k in ti.ndrange(n, self.n_tools):
            for i in ti.static(range(self.dim)):
                pos[s, k, i] = self.tool_pos.grad[s, k][i]
                vel[s, k, i] = self.tool_vel.grad[s, k][i]
                for j in ti.static(range(self.dim)):
                    rot[s, k, i, j] = self.tool_rot.grad[s, k][i, j]
            for i in ti.static(range(self.rot_dim)):
                omega[s, k, i] = self.tool_omega.grad[s, k][i]

    @ti.kernel
    def zero_state_grads(self, n: ti.i32):
        """Zero the particle and tool gradients of slots ``0..n-1``."""
        for s, p in ti.ndrange(n, self.n_particles):
            self.x.grad[s, p] = ti.Vector.zero(float, self.dim)
            self.v.grad[s, p] = ti.Vector.zero(float, self.dim)
            self.C.grad[s, p] = ti.Matrix.zero(float, self.dim, self.dim)
            self.F.grad[s, p] = ti.Matrix.zero(float, self.dim, self.dim)
            self.Jp.grad[s, p] = 0.0
        for s, k in ti.ndrange(n, self.n_tools):
            self.tool_pos.grad[s, k] = ti.Vector.zero(float, self.dim)
            self.tool_rot.grad[s, k] = ti.Matrix.zero(float, self.dim, self.dim)
            self.tool_vel.grad[s, k] = ti.Vector.zero(float, self.dim)
            self.tool_omega.grad[s, k] = ti.Vector.zero(float, self.rot_dim)

    # ------------------------------------------------------------------ drivers
    def substep(self, s: int) -> None:
        """Advance substep ``s -> s + 1`` (forward)."""
        if self._grid_dirty:
            self.clear_grid()
            self._grid_dirty = False
        self.substep_forward(s)

    def backward_stages(self, s: int) -> list:
        """The reverse of substep ``s -> s + 1`` as named stages ``(name, run)``, in order."""
        stages = [("recompute_grid (forward replay)", lambda: self.recompute_grid(s)),
                  ("g2p (reverse)", lambda: self.g2p_adjoint(s)),
                  ("grid_update (reverse)", lambda: self.grid.grad(s)),
                  ("p2g scatter (reverse)", lambda: self.scatter_adjoint(s)),
                  ("stress and plasticity (reverse)", lambda: self.stress.grad(s))]
        if self.needs_svd:
            stages += [("svd (reverse)", self.svd_grad),
                       ("trial_F (reverse)", lambda: self.trial_F.grad(s))]
        return stages

    def backward_substep(self, s: int) -> None:
        """Accumulate gradients of substep ``s -> s + 1`` (recomputes its grid first)."""
        self._grid_dirty = True
        for _, run in self.backward_stages(s):
            run()

    def nonfinite_fields(self) -> dict:
        """Field name -> count of non-finite entries, over the fields the reverse pass
        writes (slow: copies every field; used only to locate a non-finite gradient)."""
        import numpy as np

        fields = {"grid_v": self.grid_v, "grid_m": self.grid_m, "grid_v_out": self.grid_v_out}
        if self.requires_grad:
            for name in ("x", "v", "C", "F", "Jp", "grid_v", "grid_m", "grid_v_out", "affine",
                         "F_trial", "U", "V", "sig", "material", "tool_pos", "tool_rot",
                         "tool_vel", "tool_omega", "tool_friction"):
                fields[name + ".grad"] = getattr(self, name).grad
        counts = {name: int((~np.isfinite(f.to_numpy())).sum()) for name, f in fields.items()}
        return {name: c for name, c in counts.items() if c}
