"""Approximate self-contact of ``ds.Shell``: vertex-vertex repulsion.

Every vertex is a sphere of radius ``r`` (``Shell(self_contact=r)``): two vertices closer
than ``r`` repel with the same smooth penalty as obstacle contact (``contact.py``),
``m kappa rho(r - d)`` along the line between them (``m`` their mean mass), unless they
share a triangle. Candidate pairs within ``2 r`` are found on the host (a k-d tree)
from the positions at the start of each substep, and kept fixed during the substep.

Approximations, by design: a vertex can pass through a triangle between the vertices of
another sheet when the mesh is coarser than about ``r`` (use ``r`` near the edge length);
pairs closing more than ``r`` within one substep are missed; self-contact is
frictionless. It keeps stacked or folded sheets apart, which is what the manipulation
tasks need; it is not a robust collision-response method (no continuous collision
detection).

The pair terms are a part composed into the kernels (``kernels.pairs``): ``NoPairs`` for
solids, pads and shells without self-contact, ``VertexRepulsion`` otherwise. Both offer the
same Taichi functions, which ``DeformableKernels``, ``NodeCG`` and ``ShellKernels`` call:
``grad`` (implicit gradient into ``pc``), ``gather(i)``/``diag(i)`` (a node's share and
Hessian block), ``prepare``/``matvec`` (the Hessian's pair part), ``energy`` (into
``red[2]``), ``forces_explicit`` and ``scatter_grads`` (explicit steps), and, on the host,
``before_substep(s)`` (the candidate pairs of the substep).
"""


import numpy as np
import taichi as ti
import torch

from ..errors import SimulationError
from ..node_contact import penalty


def excluded_pairs(faces: np.ndarray) -> set:
    """Vertex pairs that share a triangle (never repel)."""
    out = set()
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (a, c)):
            out.add((min(i, j), max(i, j)))
    return out


def find_pairs(k, pairs, s: int) -> np.ndarray:
    """Candidate pairs ``(i, j)``, ``i < j``, within twice the radius at slot ``s`` of the
    kernels ``k``; sorted."""
    from scipy.spatial import cKDTree

    x = torch.empty((k.N, 3), dtype=torch.float64)
    v = torch.empty((k.N, 3), dtype=torch.float64)
    k.store_nodes(s, x, v)
    pts = x.numpy()
    cand = cKDTree(pts).query_pairs(2.0 * pairs.radius, output_type="ndarray")
    if len(cand):
        cand = np.sort(cand, axis=1)
        keep = np.fromiter(((int(i), int(j)) not in pairs.excluded for i, j in cand), dtype=bool,
                           count=len(cand))
        cand = cand[keep]
        cand = cand[np.lexsort((cand[:, 1], cand[:, 0]))]
    return np.asarray(cand, dtype=np.int32).reshape(-1, 2)


def upload_pairs(p, pairs: np.ndarray, n_nodes: int) -> None:
    """Load the candidate ``pairs`` into ``p`` (a ``VertexRepulsion``) with their per-node
    slot lists."""
    n = len(pairs)
    if n > p.pcap:
        raise SimulationError(
            f"{n} self-contact candidate pairs exceed the capacity {p.pcap}", quantity="x",
            hint="raise Shell(self_contact_capacity=...) or lower self_contact")
    buf = np.zeros((p.pcap, 2), dtype=np.int32)
    buf[:n] = pairs
    p.pair_ij.from_numpy(buf)
    p.n_pairs[0] = n
    # CSR: slot 2p belongs to pairs[p, 0], slot 2p + 1 to pairs[p, 1]
    owner = pairs.reshape(-1)
    order = np.argsort(owner, kind="stable").astype(np.int32)
    counts = np.bincount(owner, minlength=n_nodes)
    ptr = np.zeros(n_nodes + 1, dtype=np.int32)
    ptr[1:] = np.cumsum(counts)
    slots = np.zeros(2 * p.pcap, dtype=np.int32)
    slots[:len(order)] = order
    p.pair_ptr.from_numpy(ptr)
    p.pair_slots.from_numpy(slots)


@ti.data_oriented
class NoPairs:
    """No pair terms: every function adds nothing (``energy`` writes 0 into ``red[2]``).

    Args:
        kern: the simulator instance's ``DeformableKernels``.
    """

    def __init__(self, kern):
        self.kern = kern

    def before_substep(self, s: int) -> None:
        pass

    @ti.func
    def grad(self, src: ti.template()):
        pass

    @ti.func
    def gather(self, i):
        return ti.Vector.zero(float, self.kern.dim)

    @ti.func
    def diag(self, i):
        return ti.Matrix.zero(float, self.kern.dim, self.kern.dim)

    @ti.func
    def prepare(self, src: ti.template(), project: ti.template()):
        pass

    @ti.func
    def matvec(self, src: ti.template()):
        pass

    @ti.func
    def energy(self, src: ti.template()):
        self.kern.red[2] = 0.0

    @ti.func
    def forces_explicit(self, s: ti.template(), ad: ti.template()):
        pass

    @ti.func
    def scatter_grads(self):
        pass


@ti.data_oriented
class VertexRepulsion:
    """Vertex-vertex repulsion of radius ``radius`` (m) between the nodes of ``kern`` (3D).

    Pair ``p`` writes slots ``2 p`` (its first vertex) and ``2 p + 1`` (its second) of
    ``pc``; nodes gather them through ``pair_ptr``/``pair_slots``. Its fields live in the
    kernels' ``FieldsBuilder`` tree (placed with ``kern._place`` before it is finalised).

    Args:
        kern: the simulator instance's ``ShellKernels`` (masses, contact stiffness, states).
        radius: the vertices' radius r (m); the penalty's width is r / 4.
        capacity: the most candidate pairs held.
        faces: ``(T, 3)`` triangles; vertices of one triangle never repel.
    """

    def __init__(self, kern, radius: float, capacity: int, faces: np.ndarray):
        self.kern = kern
        self.radius = float(radius)
        self.width = 0.25 * self.radius
        self.pcap = max(int(capacity), 1)
        self.excluded = excluded_pairs(faces)
        self._loaded = None
        real, place = kern.real, kern._place
        self.pair_ij = ti.Vector.field(2, ti.i32)
        self.pA = ti.Matrix.field(3, 3, real)
        place((self.pcap,), self.pair_ij, self.pA, grad=False)
        self.pc = ti.Vector.field(3, real, needs_grad=True)
        place((2 * self.pcap,), self.pc, grad=True)
        self.pair_slots = ti.field(ti.i32)
        place((2 * self.pcap,), self.pair_slots, grad=False)
        self.pair_ptr = ti.field(ti.i32)
        place((kern.N + 1,), self.pair_ptr, grad=False)
        self.n_pairs = ti.field(ti.i32)
        place((1,), self.n_pairs, grad=False)

    def before_substep(self, s: int) -> None:
        """Candidates from the start of substep ``s``; rebuilt identically when the
        backward pass recomputes a segment (same positions, same pairs)."""
        pairs = find_pairs(self.kern, self, s)
        key = pairs.tobytes()
        if key != self._loaded:
            upload_pairs(self, pairs, self.kern.N)
            self._loaded = key

    @ti.func
    def _force(self, k, xi, xj):
        """Gradient on vertex i of pair ``k`` (j gets the negative), energy, and the pieces of
        the Hessian: ``(g, E, u, d, rho, drho, mbar)``."""
        kern = self.kern
        ij = self.pair_ij[k]
        mbar = 0.5 * (kern.mass[ij[0]] + kern.mass[ij[1]]) * kern.kappa
        r = xi - xj
        d = ti.sqrt(r.dot(r) + 1e-30)
        u = r / d
        pen = self.radius - d
        rho, R = penalty(pen, self.width)
        drho = 0.0
        if pen > 0:
            drho = ti.min(pen / self.width, 1.0)
        return -mbar * rho * u, mbar * R, u, d, rho, drho, mbar

    @ti.func
    def grad(self, src: ti.template()):
        for k in range(self.pcap):
            if k < self.n_pairs[0]:
                ij = self.pair_ij[k]
                g, _E, _u, _d, _r, _dr, _m = self._force(k, src[ij[0]], src[ij[1]])
                self.pc[2 * k] = g
                self.pc[2 * k + 1] = -g

    @ti.func
    def scatter_grads(self):
        for k in range(self.pcap):
            if k < self.n_pairs[0]:
                ij = self.pair_ij[k]
                self.pc.grad[2 * k] = self.kern.fel.grad[ij[0]]
                self.pc.grad[2 * k + 1] = self.kern.fel.grad[ij[1]]

    @ti.func
    def gather(self, i):
        acc = ti.Vector.zero(float, 3)
        for j in range(self.pair_ptr[i], self.pair_ptr[i + 1]):
            acc += self.pc[self.pair_slots[j]]
        return acc

    @ti.func
    def diag(self, i):
        acc = ti.Matrix.zero(float, 3, 3)
        for j in range(self.pair_ptr[i], self.pair_ptr[i + 1]):
            acc += self.pA[self.pair_slots[j] // 2]
        return acc

    @ti.func
    def prepare(self, src: ti.template(), project: ti.template()):
        for k in range(self.pcap):
            if k < self.n_pairs[0]:
                ij = self.pair_ij[k]
                _g, _E, u, d, rho, drho, mbar = self._force(k, src[ij[0]], src[ij[1]])
                uu = u.outer_product(u)
                A = mbar * drho * uu
                if ti.static(not project):
                    A -= mbar * rho / d * (ti.Matrix.identity(float, 3) - uu)
                self.pA[k] = A

    @ti.func
    def matvec(self, src: ti.template()):
        for k in range(self.pcap):
            if k < self.n_pairs[0]:
                ij = self.pair_ij[k]
                y = self.pA[k] @ (src[ij[0]] - src[ij[1]])
                self.pc[2 * k] = y
                self.pc[2 * k + 1] = -y

    @ti.func
    def energy(self, src: ti.template()):
        for _ in range(1):
            acc = 0.0
            for k in range(self.n_pairs[0]):
                ij = self.pair_ij[k]
                _g, E, _u, _d, _r, _dr, _m = self._force(k, src[ij[0]], src[ij[1]])
                acc += E
            self.kern.red[2] = acc

    @ti.func
    def forces_explicit(self, s: ti.template(), ad: ti.template()):
        kern = self.kern
        ti.loop_config(serialize=ti.static(kern._serial(ad)))
        for k in range(self.pcap):
            if k < self.n_pairs[0]:
                ij = self.pair_ij[k]
                g, _E, _u, _d, _r, _dr, _m = self._force(k, kern.x[s, ij[0]], kern.x[s, ij[1]])
                self.pc[2 * k] = -g
                self.pc[2 * k + 1] = g
