"""Small Taichi functions shared by the simulators, written for Taichi 1.7.4's reverse mode."""

import taichi as ti


@ti.func
def _prod2(v):
    return v[0] * v[1]


@ti.func
def _prod3(v):
    return v[0] * v[1] * v[2]


@ti.func
def vec_prod(v):
    """Product of the entries of a 2- or 3-vector, without an in-place update.

    Taichi 1.7.4's reverse mode on CUDA gets ``J *= x`` on a local wrong (NaN without
    fast math, silently missing terms with it; the CPU backend is right): a CUDA run
    of the finite-difference tests found the corotated models' ``J = prod(sig)`` term
    missing from the gradient. Differentiated code writes products as one expression.
    """
    return ti.static(_prod2 if v.n == 2 else _prod3)(v)
