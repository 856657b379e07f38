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
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SimulationError


def excluded_pairs(faces: np.ndarray) -> set:
    """Vertex pairs that share a triangle (never repel)."""
    out = set()
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (a, c)):
            out.add((min(i, j), max(i, j)))
    return out


def find_pairs(k, s: int) -> np.ndarray:
    """Candidate pairs ``(i, j)``, ``i < j``, within twice the radius at slot ``s``; sorted."""
    from scipy.spatial import cKDTree

    x = torch.empty((k.N, 3), dtype=torch.float64)
    v = torch.empty((k.N, 3), dtype=torch.float64)
    k.store_nodes(s, x, v)
    pts = x.numpy()
    cand = cKDTree(pts).query_pairs(2.0 * k.sc_radius, output_type="ndarray")
    if len(cand):
        cand = np.sort(cand, axis=1)
        keep = np.fromiter(((int(i), int(j)) not in k._excluded for i, j in cand), dtype=bool,
                           count=len(cand))
        cand = cand[keep]
        cand = cand[np.lexsort((cand[:, 1], cand[:, 0]))]
    return np.asarray(cand, dtype=np.int32).reshape(-1, 2)


def upload_pairs(k, pairs: np.ndarray) -> None:
    n = len(pairs)
    if n > k.pcap:
        raise SimulationError(
            f"{n} self-contact candidate pairs exceed the capacity {k.pcap}", quantity="x",
            hint="raise Shell(self_contact_capacity=...) or lower self_contact")
    buf = np.zeros((k.pcap, 2), dtype=np.int32)
    buf[:n] = pairs
    k.pair_ij.from_numpy(buf)
    k.n_pairs[0] = n
    # CSR: slot 2p belongs to pairs[p, 0], slot 2p + 1 to pairs[p, 1]
    owner = pairs.reshape(-1)
    order = np.argsort(owner, kind="stable").astype(np.int32)
    counts = np.bincount(owner, minlength=k.N)
    ptr = np.zeros(k.N + 1, dtype=np.int32)
    ptr[1:] = np.cumsum(counts)
    slots = np.zeros(2 * k.pcap, dtype=np.int32)
    slots[:len(order)] = order
    k.pair_ptr.from_numpy(ptr)
    k.pair_slots.from_numpy(slots)
