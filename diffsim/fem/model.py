"""Static models of ``ds.FEM`` and ``ds.Shell``: everything fixed once a scene is built.

The scene's bodies (``diffsim.parts.SoftBody``, ``ShellBody``) are meshed and checked when
they are added; a simulator concatenates them into one node array and one element array per
kind (tets or triangles for ``FEM``; membrane triangles and bending hinges for
``Shell``), elements of one body contiguous so that each body's constitutive model is
chosen at compile time (``ti.static``), never by a material id inside a kernel.

Nodes gather element contributions through a fixed CSR list (``node_ptr``,
``node_slots``): element ``e`` writes its local contributions to slots
``slot0 + (nodes per element) * e + a`` and each node sums its slots in a fixed order.
Assembly is thus parallel and bitwise deterministic without float atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..materials import Material
from ..parts import Ground


# ------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class ColliderSpec:
    """A static analytic obstacle: a tool that never moves (see ``mpm/contact.py`` SDFs)."""

    name: str
    kind: str
    geom: tuple
    axis: int
    center: tuple
    friction: float


@dataclass(frozen=True)
class GroupSpec:
    """A body's element range ``[start, end)`` (and, for shells, hinge range) and model."""

    name: str
    material: Material
    model: type
    start: int
    end: int
    alpha: float
    beta: float
    node_start: int
    node_end: int
    hinge_start: int = 0
    hinge_end: int = 0


@dataclass(frozen=True)
class ContactSpec:
    """Penalty contact settings (see ``contact.py``).

    Attributes:
        stiffness: kappa (1/s^2): the normal force on node i is ``m_i kappa rho(p)``.
        width: smoothing length delta (m) of the penalty onset.
        offset: the contact surface lies ``offset`` metres outside obstacles (half the
            shell thickness for shells, 0 for solids).
        friction_eps: velocity (m/s) below which friction is smoothed (implicit) /
            the regularisation of the tangential norm (explicit).
    """

    stiffness: float
    width: float
    offset: float
    friction_eps: float


@dataclass(frozen=True, eq=False)
class DeformableModel:
    """What the kernels of ``ds.FEM``/``ds.Shell`` are compiled against.

    ``elem`` (E, k) are the elements (tets/triangles for FEM, membrane triangles for
    shells) with ``Dm_inv`` (E, r, r) their inverse rest shape matrices and ``rest``
    (E,) their rest volumes/areas. Shells add ``hinges`` (H, 4), ``hinge_weight`` (H,)
    and ``hinge_yield`` (H,) (plastic yield angle, rad; 0 = elastic).
    """

    kind: str            # "solid" or "shell"
    dim: int
    dt: float
    substeps: int
    integrator: str      # "explicit" or "implicit"
    gravity: tuple
    x0: np.ndarray
    v0: np.ndarray
    mass: np.ndarray
    fixed: np.ndarray
    elem: np.ndarray
    Dm_inv: np.ndarray
    rest: np.ndarray
    groups: tuple
    tools: tuple
    colliders: tuple
    ground: Ground | None
    contact: ContactSpec
    node_ptr: np.ndarray
    node_slots: np.ndarray
    hinges: np.ndarray | None = None
    hinge_weight: np.ndarray | None = None
    hinge_yield: np.ndarray | None = None
    rest_angle0: np.ndarray | None = None
    self_contact: float = 0.0            # radius (m) of the vertex repulsion; 0 = off
    self_contact_capacity: int = 0       # most candidate pairs held

    @property
    def n_nodes(self) -> int:
        return len(self.x0)

    @property
    def n_elems(self) -> int:
        return len(self.elem)

    @property
    def n_hinges(self) -> int:
        return 0 if self.hinges is None else len(self.hinges)

    @property
    def nodes_per_elem(self) -> int:
        return self.elem.shape[1]

    @property
    def n_slots(self) -> int:
        return self.n_elems * self.nodes_per_elem + 4 * self.n_hinges

    @property
    def rot_dim(self) -> int:
        return 1 if self.dim == 2 else 3

    @property
    def action_dim(self) -> int:
        return len(self.tools) * (self.dim + self.rot_dim)

    @property
    def n_contact_bodies(self) -> int:
        """Tools, then colliders, then the ground: the order of the friction array."""
        return len(self.tools) + len(self.colliders) + (self.ground is not None)


def node_csr(n_nodes: int, slot_nodes: np.ndarray):
    """CSR of the slots each node gathers: ``node_slots[node_ptr[i]:node_ptr[i+1]]``."""
    order = np.argsort(slot_nodes, kind="stable")
    counts = np.bincount(slot_nodes, minlength=n_nodes)
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(counts)
    return ptr.astype(np.int32), order.astype(np.int32)
