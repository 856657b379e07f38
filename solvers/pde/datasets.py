"""Data-set specs and loaders for the 1D MP-PDE families (``CEData``, ``load_ce``), the
shared HDF5 checks, and downsampling as in the MP-PDE paper."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .families import CEFamily, family
from .fielddata import FieldData
from .generate import FORMAT, DataSpec

DOWNSAMPLING = ("paper", "average")


@dataclasses.dataclass(frozen=True)
class CEData(DataSpec):
    """Trajectories of a combined-equation family at several resolutions.

    Every instance is integrated independently at each resolution in ``resolutions``
    (the finest is the ground truth; the coarser ones are the "numerical baseline"
    WENO5 solutions the MP-PDE paper compares against).

    Args:
        family: "E1", "E2", "E3" or a :class:`CEFamily`.
        resolutions: cell counts to solve at (default ``(200, 100, 50, 40)``).
        rtol, atol: tolerances of the adaptive solver (``Tsit5``).
        flux, weights: see :class:`CombinedEquation`.
        store: dtype of the stored fields ("float32" or "float64"); the solve runs in float64.
    """

    family: Any = "E1"
    resolutions: tuple = (200, 100, 50, 40)
    rtol: float = 1e-6
    atol: float = 1e-8
    flux: str = "godunov"
    weights: str = "js"
    store: str = "float32"

    kind: ClassVar[str] = "CombinedEquation"
    default_chunk: ClassVar[int] = 16

    def __post_init__(self):
        object.__setattr__(self, "family", family(self.family))
        res = tuple(int(r) for r in self.resolutions)
        if not res or any(r < 6 for r in res) or len(set(res)) != len(res):
            raise ValueError(f"resolutions={self.resolutions!r} must be distinct ints >= 6")
        object.__setattr__(self, "resolutions", tuple(sorted(res, reverse=True)))
        if self.store not in ("float32", "float64"):
            raise ValueError(f"store={self.store!r}; allowed: 'float32', 'float64'")

    def settings(self) -> dict:
        fam = dataclasses.asdict(self.family)
        return {"family": fam, "resolutions": list(self.resolutions), "solver": "Tsit5",
                "rtol": self.rtol, "atol": self.atol, "flux": self.flux, "weights": self.weights,
                "store": self.store, "cell_centres": "x_i = i L / nx"}

    def per_sample(self) -> dict:
        fam = self.family
        out = {f"u_{nx}": ((fam.nt, nx), self.store) for nx in self.resolutions}
        out.update({f"nfe_{nx}": ((), "i8") for nx in self.resolutions})
        out.update({n: ((), "f8") for n in ("alpha", "beta", "gamma")})
        out.update({n: ((fam.J,), "f8") for n in ("A", "omega", "phi")})
        out["l"] = ((fam.J,), "i8")
        return out

    def static(self) -> dict:
        out = {"t": self.family.times().numpy()}
        out.update({f"x_{nx}": self.family.grid(nx).numpy() for nx in self.resolutions})
        return out

    def simulate(self, indices: list[int], seed: int) -> dict:
        fam = self.family
        draws = [fam.sample_index(seed, i) for i in indices]
        params = {k: np.stack([d[k] for d in draws]) for k in draws[0]}
        out = {k: v for k, v in params.items()}
        for nx in self.resolutions:
            with torch.no_grad():
                u, sol = fam.solve(params, nx, rtol=self.rtol, atol=self.atol, flux=self.flux,
                                   weights=self.weights)
            out[f"u_{nx}"] = u.numpy().astype(self.store)
            out[f"nfe_{nx}"] = np.full(len(indices), sol.stats.nfe)
        return out


# ---------------------------------------------------------------------- downsampling
def downsample(u: torch.Tensor, factor: int, method: str = "paper") -> torch.Tensor:
    """Coarsen a periodic field along its last axis by an integer ``factor``.

    Grids are cell-centred at ``x_i = i dx``, so coarse cell ``j`` is centred on fine
    cell ``j * factor``.

    Args:
        u: (..., nx) with ``nx`` divisible by ``factor``.
        factor: integer ratio >= 1.
        method: "paper": the MP-PDE filter, a 5-point average (weights 0.2, periodic)
            sampled every ``factor`` cells (exactly the coarse cell average for factor 5,
            wider than it for 2 and 4); "average": the exact average over the coarse
            cell (half weights on the two fine cells it cuts for even factors).
    """
    if method not in DOWNSAMPLING:
        raise ValueError(f"method={method!r} is not supported; allowed: {', '.join(DOWNSAMPLING)}")
    nx = u.shape[-1]
    if factor < 1 or nx % factor:
        raise ValueError(f"cannot downsample nx={nx} by factor {factor}: nx must be a multiple of it")
    if factor == 1:
        return u
    if method == "paper":
        w = torch.full((5,), 0.2, dtype=u.dtype, device=u.device)
    elif factor % 2:
        w = torch.full((factor,), 1.0 / factor, dtype=u.dtype, device=u.device)
    else:
        w = torch.full((factor + 1,), 1.0 / factor, dtype=u.dtype, device=u.device)
        w[0] = w[-1] = 0.5 / factor
    half = (w.numel() - 1) // 2
    shape = u.shape
    x = u.reshape(-1, 1, nx)
    x = torch.cat((x[..., nx - half:], x, x[..., :half]), dim=-1)
    y = torch.nn.functional.conv1d(x, w.view(1, 1, -1), stride=factor)
    return y.reshape(*shape[:-1], nx // factor)


# ---------------------------------------------------------------------- file checks
def open_checked(path, kind: str | None = None):
    """Open a diffsim.pde data file for reading after checking that it is whole.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not HDF5 / truncated / corrupted, not a diffsim.pde file, another
            ``kind`` of data, or an unfinished data set (with how to resume it).
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}; create it with dss.pde.generate(...)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc}); it may be truncated or corrupted: "
                         "regenerate it with dss.pde.generate(..., overwrite=True)") from exc
    try:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a diffsim.pde data file (format attribute "
                             f"{f.attrs.get('format')!r}, expected {FORMAT!r})")
        if kind is not None and f.attrs.get("kind") != kind:
            raise ValueError(f"{path} holds {f.attrs.get('kind')!r} data, expected {kind!r}")
        if "done" not in f:
            raise ValueError(f"{path} has no 'done' dataset; the file is damaged: regenerate it")
        done = f["done"][:]
        if not done.all():
            raise ValueError(f"{path} is incomplete: {int(done.sum())} of {done.size} samples were generated; "
                             "call dss.pde.generate with the same arguments to resume it")
    except Exception:
        f.close()
        raise
    return f


def read(f, name: str, path="") -> np.ndarray:
    """Read a whole dataset, turning a missing dataset or an I/O failure into a clear error."""
    if name not in f:
        raise ValueError(f"{path or f.filename}: dataset {name!r} is missing (has: {', '.join(sorted(f.keys()))})")
    try:
        arr = f[name][()]
    except (OSError, RuntimeError, KeyError) as exc:
        raise ValueError(f"{path or f.filename}: dataset {name!r} cannot be read ({exc}); the file is "
                         "corrupted: regenerate it with overwrite=True") from exc
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1)))
        raise ValueError(f"{path or f.filename}: dataset {name!r} holds non-finite values (first at sample "
                         f"{int(bad[0][0])}); the file is corrupted or the simulation failed")
    return arr


def settings_of(f) -> dict:
    try:
        return json.loads(f.attrs["settings"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{f.filename}: the 'settings' attribute is missing or not JSON ({exc})") from exc


# ---------------------------------------------------------------------- CE loader
def load_ce(path, nx: int = 100, *, super_nx: int | None = None, downsample_method: str = "paper",
            baseline: bool = True, dtype=torch.float32, samples=None) -> FieldData:
    """Load combined-equation trajectories at resolution ``nx``.

    The targets are the finest stored resolution (``super_nx``, default the finest)
    downsampled to ``nx`` (as the MP-PDE training targets); ``baseline`` adds the
    trajectories solved directly at ``nx`` when the file has them.

    Args:
        path: file written by ``generate`` with ``CEData``.
        nx: resolution of the returned fields; ``super_nx`` must be a multiple of it.
        super_nx: resolution to downsample from (default: the finest in the file).
        downsample_method: "paper" or "average" (see :func:`downsample`).
        baseline: also load ``u_<nx>`` as ``FieldData.baseline`` when present.
        dtype: dtype of the returned tensors.
        samples: optional index array/slice of the trajectories to load.

    Raises:
        FileNotFoundError, ValueError: see :func:`open_checked`; also a resolution that the
            file does not hold or that does not divide ``super_nx``, or datasets whose
            shapes contradict the file's settings.
    """
    with open_checked(path, "CombinedEquation") as f:
        st = settings_of(f)
        res = [int(r) for r in st["resolutions"]]
        fam = CEFamily(**{k: tuple(v) if isinstance(v, list) else v for k, v in st["family"].items()})
        super_nx = max(res) if super_nx is None else int(super_nx)
        if super_nx not in res:
            raise ValueError(f"{path} has no resolution {super_nx}; it holds {res}")
        if super_nx % nx:
            raise ValueError(f"nx={nx} does not divide the stored resolution {super_nx}; "
                             f"allowed nx: {[d for d in range(6, super_nx + 1) if super_nx % d == 0]}")
        N = int(f.attrs["n_samples"])
        sel = slice(None) if samples is None else samples
        key = f"u_{super_nx}"
        u = read(f, key, path)
        if u.shape != (N, fam.nt, super_nx):
            raise ValueError(f"{path}: dataset {key!r} has shape {u.shape}, but the settings say "
                             f"({N}, {fam.nt}, {super_nx})")
        u = torch.as_tensor(u[sel], dtype=torch.float64)
        target = downsample(u, super_nx // nx, downsample_method).to(dtype)
        base = None
        if baseline and nx in res and nx != super_nx:
            b = read(f, f"u_{nx}", path)
            if b.shape != (N, fam.nt, nx):
                raise ValueError(f"{path}: dataset 'u_{nx}' has shape {b.shape}, expected ({N}, {fam.nt}, {nx})")
            base = torch.as_tensor(b[sel], dtype=dtype)[:, :, None]
        names = fam.varying
        scale = torch.tensor([getattr(fam, n)[1] for n in names], dtype=dtype)
        cols = [torch.as_tensor(read(f, n, path)[sel], dtype=dtype) for n in names]
        cond = torch.stack(cols, -1) / scale if names else torch.zeros(target.shape[0], 0, dtype=dtype)
        t = torch.as_tensor(read(f, "t", path), dtype=dtype)
        extras = {n: torch.as_tensor(read(f, n, path)[sel]) for n in ("A", "omega", "phi", "l", "alpha", "beta",
                                                                      "gamma")}
        meta = {"settings": st, "family": fam.name, "super_nx": super_nx, "downsample": downsample_method,
                "path": str(path)}
    return FieldData(u=target[:, :, None], t=t, coords=(fam.grid(nx, dtype),), lengths=(fam.L,), periodic=True,
                     cond=cond, cond_names=names, cond_scale=scale, baseline=base,
                     name=f"{fam.name} nx={nx}", extras=extras, meta=meta)
