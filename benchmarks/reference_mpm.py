"""The minimal reference MLS-MPM fluid (the classic "88-line" Taichi program).

Written here for benchmarking only: one material (a weakly compressible
fluid tracking J), no time axis, no gradients, no tools, slip walls. Its
speed is the yardstick of ``benchmarks/mpm.py``: the general simulator runs
the same problem (same particles, grid, dt and float type) in the same process.
Works in 2D and 3D (the 3D form of Taichi's ``mpm3d`` example).
"""

import numpy as np
import taichi as ti


@ti.data_oriented
class ReferenceMPM:
    """88-line MLS-MPM fluid.

    Args:
        dim: 2 or 3.
        positions: (N, dim) initial positions in the unit cube.
        n_grid: grid nodes per axis (dx = 1 / n_grid).
        dt: substep (s).
        E: bulk stiffness (Pa); density 1 as in the original program.
        ppc: particles per cell used to fill (sets the particle volume).
    """

    def __init__(self, dim, positions, n_grid, dt, E=400.0, ppc=None, gravity=9.8):
        self.dim, self.n_grid, self.dt, self.E, self.gravity = dim, n_grid, dt, E, gravity
        self.dx = 1.0 / n_grid
        self.inv_dx = float(n_grid)
        ppc = ppc or 2 ** dim
        self.p_vol = self.dx ** dim / ppc
        self.p_mass = self.p_vol * 1.0
        self.n = len(positions)
        fb = ti.FieldsBuilder()
        self.x = ti.Vector.field(dim, float)
        self.v = ti.Vector.field(dim, float)
        self.C = ti.Matrix.field(dim, dim, float)
        self.J = ti.field(float)
        fb.dense(ti.i, self.n).place(self.x, self.v, self.C, self.J)
        self.grid_v = ti.Vector.field(dim, float)
        self.grid_m = ti.field(float)
        fb.dense(ti.ij if dim == 2 else ti.ijk, (n_grid,) * dim).place(self.grid_v, self.grid_m)
        self.tree = fb.finalize()
        self.x.from_numpy(np.asarray(positions))
        self.J.fill(1.0)

    def destroy(self):
        from diffsim.runtime import free_fields

        free_fields(self.tree)

    @ti.kernel
    def substep(self):
        dim = ti.static(self.dim)
        for I in ti.grouped(self.grid_m):
            self.grid_v[I] = ti.Vector.zero(float, dim)
            self.grid_m[I] = 0.0
        for p in self.x:
            Xp = self.x[p] * self.inv_dx
            base = ti.cast(Xp - 0.5, ti.i32)
            fx = Xp - base
            w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2]
            stress = -self.dt * 4 * self.E * self.p_vol * (self.J[p] - 1) * self.inv_dx ** 2
            affine = ti.Matrix.identity(float, dim) * stress + self.p_mass * self.C[p]
            for offset in ti.static(ti.grouped(ti.ndrange(*([3] * dim)))):
                dpos = (offset - fx) * self.dx
                weight = 1.0
                for i in ti.static(range(dim)):
                    weight *= w[offset[i]][i]
                self.grid_v[base + offset] += weight * (self.p_mass * self.v[p] + affine @ dpos)
                self.grid_m[base + offset] += weight * self.p_mass
        for I in ti.grouped(self.grid_m):
            if self.grid_m[I] > 0:
                self.grid_v[I] /= self.grid_m[I]
            self.grid_v[I][1] -= self.dt * self.gravity
            cond = (I < 3) & (self.grid_v[I] < 0) | (I > self.n_grid - 3) & (self.grid_v[I] > 0)
            self.grid_v[I] = ti.select(cond, 0, self.grid_v[I])
        for p in self.x:
            Xp = self.x[p] * self.inv_dx
            base = ti.cast(Xp - 0.5, ti.i32)
            fx = Xp - base
            w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2]
            new_v = ti.Vector.zero(float, dim)
            new_C = ti.Matrix.zero(float, dim, dim)
            for offset in ti.static(ti.grouped(ti.ndrange(*([3] * dim)))):
                dpos = (offset - fx) * self.dx
                weight = 1.0
                for i in ti.static(range(dim)):
                    weight *= w[offset[i]][i]
                g_v = self.grid_v[base + offset]
                new_v += weight * g_v
                new_C += 4 * weight * g_v.outer_product(dpos) * self.inv_dx ** 2
            self.v[p] = new_v
            self.x[p] += self.dt * self.v[p]
            self.J[p] *= 1 + self.dt * new_C.trace()
            self.C[p] = new_C
