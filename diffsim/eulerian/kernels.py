"""Taichi kernels of the 2D incompressible smoke solver on a MAC grid.

Grid: ``nx x ny`` cells of size ``dx``; smoke and pressure at cell centres, ``vx`` on
the ``(nx + 1) x ny`` vertical faces, ``vy`` on the ``nx x (ny + 1)`` horizontal faces.
Closed box: the normal velocity on the walls is zero, outside velocities are zero
(no-slip for the explicit viscosity), smoke is clamped at the walls.

One time step is three launches:

    pre_projection   advect smoke and velocity (semi-Lagrangian, RK2 backtrace,
                     bilinear sampling) -> buoyancy -> explicit viscosity -> walls
                     -> divergence (the Poisson right-hand side)
    cg_init/cg_iterate (repeated)   multigrid-preconditioned conjugate gradients for the
                     pressure; one fused kernel per CG iteration (the V-cycle inside)
    project          subtract the pressure gradient, measure max |v|

The Poisson matrix is ``A p = n_ij p_ij - sum_nb p_nb`` (``n_ij`` = cells adjacent
inside the box: homogeneous Neumann walls), singular with the constants as null
space; the right-hand side is made mean-free and CG converges to one solution.
The preconditioner is one multigrid V-cycle (red-black Gauss-Seidel smoothing, pre:
red then black, post: black then red, so that it is symmetric; restriction by sums of
four children, injection prolongation, many smoothing sweeps on the coarsest grid),
as in Taichi's MGPCG example (McAdams, Sifakis, Teran, "A parallel multigrid Poisson
solver for fluids simulation on large grids", SCA 2010).
"""

import taichi as ti

from ..runtime import ensure_init, free_fields


@ti.data_oriented
class SmokeKernels:
    """Fields and kernels of one smoke grid (per-instance ``ti.FieldsBuilder`` tree).

    Args:
        nx, ny: cells; dx: cell size (m); dt: step (s); nu: kinematic viscosity (m^2/s);
        buoyancy: (bx, by) acceleration per unit smoke density (m/s^2);
        preconditioner: "mg", "jacobi" or "none"; levels: multigrid levels (>= 1).
    """

    def __init__(self, nx, ny, dx, dt, nu, buoyancy, preconditioner, levels, bottom_sweeps=32):
        cfg = ensure_init()
        real = cfg.ti_float
        self.deterministic = cfg.deterministic and cfg.is_cpu
        self.nx, self.ny, self.dx, self.dt, self.nu = nx, ny, float(dx), float(dt), float(nu)
        self.bx, self.by = float(buoyancy[0]), float(buoyancy[1])
        self.precond = preconditioner
        self.levels = levels
        self.bottom_sweeps = bottom_sweeps
        self.visc = self.nu * self.dt / (self.dx * self.dx)
        fb = ti.FieldsBuilder()
        self.smoke, self.smoke_t = ti.field(real), ti.field(real)
        fb.dense(ti.ij, (nx, ny)).place(self.smoke, self.smoke_t)
        self.vx, self.vx_t = ti.field(real), ti.field(real)
        fb.dense(ti.ij, (nx + 1, ny)).place(self.vx, self.vx_t)
        self.vy, self.vy_t = ti.field(real), ti.field(real)
        fb.dense(ti.ij, (nx, ny + 1)).place(self.vy, self.vy_t)
        self.x, self.p, self.Ap, self.b = ti.field(real), ti.field(real), ti.field(real), ti.field(real)
        fb.dense(ti.ij, (nx, ny)).place(self.x, self.p, self.Ap, self.b)
        self.r, self.z, self.shape = [], [], []
        for level in range(levels):
            r, z = ti.field(real), ti.field(real)
            shape = (nx >> level, ny >> level)
            fb.dense(ti.ij, shape).place(r, z)
            self.r.append(r)
            self.z.append(z)
            self.shape.append(shape)
        # scalars: 0 rz, 1 pAp, 2 alpha, 3 rr, 4 bb, 5 mean, 6 rz_new, 7 vmax2, 8 div max
        self.sc = ti.field(real)
        fb.dense(ti.i, 9).place(self.sc)
        self._tree = fb.finalize()

    def destroy(self):
        if self._tree is not None:
            free_fields(self._tree)
            self._tree = None

    # ------------------------------------------------------------------ sampling
    @ti.func
    def _bilerp(self, f: ti.template(), sx, sy, mx: ti.template(), my: ti.template()):
        """Bilinear sample of ``f`` ((mx, my) values) at index-space point (sx, sy), clamped."""
        sx = ti.min(ti.max(sx, 0.0), mx - 1.0)
        sy = ti.min(ti.max(sy, 0.0), my - 1.0)
        i0 = ti.min(ti.cast(ti.floor(sx), ti.i32), mx - 2)
        j0 = ti.min(ti.cast(ti.floor(sy), ti.i32), my - 2)
        fx, fy = sx - i0, sy - j0
        a = f[i0, j0] * (1 - fx) + f[i0 + 1, j0] * fx
        c = f[i0, j0 + 1] * (1 - fx) + f[i0 + 1, j0 + 1] * fx
        return a * (1 - fy) + c * fy

    @ti.func
    def _vel(self, px, py):
        """Velocity at a physical point (m) from the staggered fields."""
        gx, gy = px / self.dx, py / self.dx
        u = self._bilerp(self.vx, gx, gy - 0.5, self.nx + 1, self.ny)
        v = self._bilerp(self.vy, gx - 0.5, gy, self.nx, self.ny + 1)
        return u, v

    @ti.func
    def _backtrace(self, px, py):
        """RK2 (midpoint) departure point of the characteristic through (px, py), clamped."""
        u, v = self._vel(px, py)
        mx = px - 0.5 * self.dt * u
        my = py - 0.5 * self.dt * v
        u2, v2 = self._vel(mx, my)
        lx, ly = self.nx * self.dx, self.ny * self.dx
        return ti.min(ti.max(px - self.dt * u2, 0.0), lx), ti.min(ti.max(py - self.dt * v2, 0.0), ly)

    # ------------------------------------------------------------------ step stages
    @ti.kernel
    def pre_projection(self):
        for i, j in self.smoke:
            qx, qy = self._backtrace((i + 0.5) * self.dx, (j + 0.5) * self.dx)
            self.smoke_t[i, j] = self._bilerp(self.smoke, qx / self.dx - 0.5, qy / self.dx - 0.5, self.nx, self.ny)
        for i, j in self.vx:
            qx, qy = self._backtrace(i * self.dx, (j + 0.5) * self.dx)
            self.vx_t[i, j] = self._bilerp(self.vx, qx / self.dx, qy / self.dx - 0.5, self.nx + 1, self.ny)
        for i, j in self.vy:
            qx, qy = self._backtrace((i + 0.5) * self.dx, j * self.dx)
            val = self._bilerp(self.vy, qx / self.dx - 0.5, qy / self.dx, self.nx, self.ny + 1)
            # buoyancy from the advected smoke, averaged onto the face
            below = self.smoke_t[i, ti.max(j - 1, 0)]
            above = self.smoke_t[i, ti.min(j, self.ny - 1)]
            self.vy_t[i, j] = val + self.dt * self.by * 0.5 * (below + above)
        if ti.static(self.bx != 0.0):
            for i, j in self.vx_t:
                left = self.smoke_t[ti.max(i - 1, 0), j]
                right = self.smoke_t[ti.min(i, self.nx - 1), j]
                self.vx_t[i, j] += self.dt * self.bx * 0.5 * (left + right)
        for i, j in self.vx:
            lap = -4.0 * self.vx_t[i, j]
            if i > 0:
                lap += self.vx_t[i - 1, j]
            if i < self.nx:
                lap += self.vx_t[i + 1, j]
            if j > 0:
                lap += self.vx_t[i, j - 1]
            if j < self.ny - 1:
                lap += self.vx_t[i, j + 1]
            val = self.vx_t[i, j] + self.visc * lap
            if i == 0 or i == self.nx:
                val = 0.0
            self.vx[i, j] = val
        for i, j in self.vy:
            lap = -4.0 * self.vy_t[i, j]
            if j > 0:
                lap += self.vy_t[i, j - 1]
            if j < self.ny:
                lap += self.vy_t[i, j + 1]
            if i > 0:
                lap += self.vy_t[i - 1, j]
            if i < self.nx - 1:
                lap += self.vy_t[i + 1, j]
            val = self.vy_t[i, j] + self.visc * lap
            if j == 0 or j == self.ny:
                val = 0.0
            self.vy[i, j] = val
        for i, j in self.smoke:
            self.smoke[i, j] = self.smoke_t[i, j]
        self._divergence_rhs()

    @ti.func
    def _divergence_rhs(self):
        # b = -div * dx^2, so that A p = b makes the corrected field divergence free
        for i, j in self.b:
            div = self.vx[i + 1, j] - self.vx[i, j] + self.vy[i, j + 1] - self.vy[i, j]
            self.b[i, j] = -div * self.dx

    @ti.kernel
    def enforce_walls_and_rhs(self):
        """Zero the wall-normal velocities and recompute the Poisson right-hand side."""
        for j in range(self.ny):
            self.vx[0, j] = 0.0
            self.vx[self.nx, j] = 0.0
        for i in range(self.nx):
            self.vy[i, 0] = 0.0
            self.vy[i, self.ny] = 0.0
        self._divergence_rhs()

    # ------------------------------------------------------------------ Poisson operator
    @ti.func
    def _n(self, i, j, mx, my):
        return ti.cast(i > 0, float) + ti.cast(i < mx - 1, float) + ti.cast(j > 0, float) + \
            ti.cast(j < my - 1, float)

    @ti.func
    def _nbsum(self, f: ti.template(), i, j, mx, my):
        s = 0.0
        if i > 0:
            s += f[i - 1, j]
        if i < mx - 1:
            s += f[i + 1, j]
        if j > 0:
            s += f[i, j - 1]
        if j < my - 1:
            s += f[i, j + 1]
        return s

    @ti.func
    def _smooth(self, level: ti.template(), phase: ti.template()):
        mx, my = ti.static(self.shape[level][0], self.shape[level][1])
        for i, j in self.r[level]:
            if (i + j) % 2 == phase:
                self.z[level][i, j] = (self.r[level][i, j] + self._nbsum(self.z[level], i, j, mx, my)) / \
                    self._n(i, j, mx, my)

    @ti.func
    def _precondition(self):
        """z[0] = M^-1 r[0]."""
        if ti.static(self.precond == "none"):
            for I in ti.grouped(self.r[0]):
                self.z[0][I] = self.r[0][I]
        elif ti.static(self.precond == "jacobi"):
            for i, j in self.r[0]:
                self.z[0][i, j] = self.r[0][i, j] / self._n(i, j, self.nx, self.ny)
        else:
            for level in ti.static(range(self.levels - 1)):
                for I in ti.grouped(self.z[level]):
                    self.z[level][I] = 0.0
                self._smooth(level, 0)
                self._smooth(level, 1)
                mx, my = ti.static(self.shape[level][0], self.shape[level][1])
                for I in ti.grouped(self.r[level + 1]):
                    self.r[level + 1][I] = 0.0
                for i, j in self.r[level]:
                    res = self.r[level][i, j] - (self._n(i, j, mx, my) * self.z[level][i, j] -
                                                 self._nbsum(self.z[level], i, j, mx, my))
                    self.r[level + 1][i // 2, j // 2] += res
            bottom = ti.static(self.levels - 1)
            for I in ti.grouped(self.z[bottom]):
                self.z[bottom][I] = 0.0
            bx, by = ti.static(self.shape[bottom][0], self.shape[bottom][1])
            ti.loop_config(serialize=True)
            for _ in range(self.bottom_sweeps):
                for phase in range(2):
                    for i in range(bx):
                        for j in range(by):
                            if (i + j) % 2 == phase:
                                self.z[bottom][i, j] = (self.r[bottom][i, j] +
                                                        self._nbsum(self.z[bottom], i, j, bx, by)) / \
                                    self._n(i, j, bx, by)
            for k in ti.static(range(self.levels - 1)):
                level = ti.static(self.levels - 2 - k)
                for i, j in self.z[level]:
                    self.z[level][i, j] += self.z[level + 1][i // 2, j // 2]
                self._smooth(level, 1)
                self._smooth(level, 0)

    @ti.func
    def _apply_A(self):
        for i, j in self.p:
            self.Ap[i, j] = self._n(i, j, self.nx, self.ny) * self.p[i, j] - \
                self._nbsum(self.p, i, j, self.nx, self.ny)

    @ti.kernel
    def cg_init(self):
        """x = 0, r = b - mean(b), z = M r, p = z, rz = r.z, bb = |r|^2."""
        self.sc[5] = 0.0
        ti.loop_config(serialize=self.deterministic)
        for I in ti.grouped(self.b):
            self.sc[5] += self.b[I]
        for I in ti.grouped(self.b):
            self.x[I] = 0.0
            self.r[0][I] = self.b[I] - self.sc[5] / (self.nx * self.ny)
        self._precondition()
        self.sc[0] = 0.0
        self.sc[4] = 0.0
        ti.loop_config(serialize=self.deterministic)
        for I in ti.grouped(self.b):
            self.p[I] = self.z[0][I]
            self.sc[0] += self.r[0][I] * self.z[0][I]
            self.sc[4] += self.r[0][I] * self.r[0][I]
        self.sc[3] = self.sc[4]

    @ti.kernel
    def cg_iterate(self):
        """One preconditioned CG iteration; leaves |r|^2 in sc[3]."""
        self._apply_A()
        self.sc[1] = 0.0
        ti.loop_config(serialize=self.deterministic)
        for I in ti.grouped(self.p):
            self.sc[1] += self.p[I] * self.Ap[I]
        self.sc[2] = self.sc[0] / ti.max(self.sc[1], 1e-300)
        self.sc[3] = 0.0
        ti.loop_config(serialize=self.deterministic)
        for I in ti.grouped(self.p):
            self.x[I] += self.sc[2] * self.p[I]
            self.r[0][I] -= self.sc[2] * self.Ap[I]
            self.sc[3] += self.r[0][I] * self.r[0][I]
        self._precondition()
        self.sc[6] = 0.0
        ti.loop_config(serialize=self.deterministic)
        for I in ti.grouped(self.p):
            self.sc[6] += self.r[0][I] * self.z[0][I]
        beta = self.sc[6] / ti.max(self.sc[0], 1e-300)
        for I in ti.grouped(self.p):
            self.p[I] = self.z[0][I] + beta * self.p[I]
        self.sc[0] = self.sc[6]

    @ti.kernel
    def project(self):
        """v -= grad p (the solution x is p * dt / dx in velocity units); max |v|^2 -> sc[7]."""
        for i, j in self.vx:
            if 0 < i < self.nx:
                self.vx[i, j] -= (self.x[i, j] - self.x[i - 1, j]) / self.dx
        for i, j in self.vy:
            if 0 < j < self.ny:
                self.vy[i, j] -= (self.x[i, j] - self.x[i, j - 1]) / self.dx
        self.sc[7] = 0.0
        for i, j in self.smoke:
            u = 0.5 * (self.vx[i, j] + self.vx[i + 1, j])
            v = 0.5 * (self.vy[i, j] + self.vy[i, j + 1])
            ti.atomic_max(self.sc[7], u * u + v * v)

    @ti.kernel
    def divergence_max(self):
        """max over cells of |div v| (1/s) -> sc[8]."""
        self.sc[8] = 0.0
        for i, j in self.smoke:
            div = (self.vx[i + 1, j] - self.vx[i, j] + self.vy[i, j + 1] - self.vy[i, j]) / self.dx
            ti.atomic_max(self.sc[8], ti.abs(div))

    @ti.kernel
    def centred(self, out: ti.types.ndarray()):
        """(3, nx, ny): smoke, vx and vy averaged to cell centres."""
        for i, j in self.smoke:
            out[0, i, j] = self.smoke[i, j]
            out[1, i, j] = 0.5 * (self.vx[i, j] + self.vx[i + 1, j])
            out[2, i, j] = 0.5 * (self.vy[i, j] + self.vy[i, j + 1])
