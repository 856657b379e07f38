"""``generate(spec, path, n_samples, ...)``: simulate a data set into one HDF5 file.

A data set is described by a :class:`DataSpec` value (``CEData`` for the MP-PDE
families, ``SmokeData`` for 2D Navier-Stokes smoke, ``ParticleData`` for MPM
trajectories). ``generate`` is the same for all of them: it creates the file with
the spec's settings as attributes, simulates the samples in fixed chunks (in this
process or in ``workers`` spawned processes), writes each chunk and marks it done,
so an interrupted run resumes where it stopped when called again with the same
arguments. Instance ``i`` of a data set is drawn from ``numpy.random.default_rng([seed,
i])``, so the data do not depend on chunking, resumption or the number of workers
(except for the solver's round-off when a chunk is batched differently).

File layout (``format = "diffsim.pde/1"``)::

    /attrs: format, kind, settings (JSON), seed, n_samples, chunk, created, diffsim_version,
            plus every setting flattened for reading with h5py/h5dump
    /<per-sample datasets>   (n_samples, ...)   e.g. u_200 (N, nt, 200), alpha (N,)
    /<static datasets>       e.g. t (nt,), x_200 (200,)
    /done                    (n_samples,) bool: chunk written and flushed
    /wall_time               (n_samples,) seconds spent on the sample's chunk / chunk size
"""

from __future__ import annotations

import abc
import datetime
import json
import multiprocessing
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

FORMAT = "diffsim.pde/1"


class DataSpec(abc.ABC):
    """What to simulate for a data set (abstract). Subclasses are frozen dataclasses.

    Subclasses define ``kind``, ``settings()``, ``per_sample()`` and ``simulate()``;
    ``static()`` and ``default_chunk`` are optional.
    """

    kind: ClassVar[str]
    default_chunk: ClassVar[int] = 16

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings that identify the data (written as attributes)."""

    @abc.abstractmethod
    def per_sample(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Name -> (shape of one sample, numpy dtype name) of every per-sample dataset."""

    def static(self) -> dict[str, np.ndarray]:
        """Datasets shared by all samples (grids, times)."""
        return {}

    @abc.abstractmethod
    def simulate(self, indices: list[int], seed: int) -> dict[str, np.ndarray]:
        """Simulate the instances ``indices``; arrays with a leading axis ``len(indices)``."""


def _flat_attrs(settings: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_attrs(v, key + "."))
        elif v is None:
            out[key] = "None"
        elif isinstance(v, (list, tuple)):
            out[key] = np.asarray(v) if all(isinstance(x, (int, float)) for x in v) else json.dumps(v)
        else:
            out[key] = v
    return out


def _check_existing(f, spec: DataSpec, settings_json: str, n_samples: int, seed: int, chunk: int, path) -> None:
    attrs = f.attrs
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{path} exists but is not a diffsim.pde data file (format attribute "
                         f"{attrs.get('format')!r}); pass overwrite=True or choose another path")
    mismatch = []
    if attrs.get("kind") != spec.kind:
        mismatch.append(f"kind {attrs.get('kind')!r} != {spec.kind!r}")
    if attrs.get("settings") != settings_json:
        old = json.loads(attrs.get("settings", "{}"))
        new = json.loads(settings_json)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        mismatch.append("settings differ in " + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff))
    for name, want in (("n_samples", n_samples), ("seed", seed), ("chunk", chunk)):
        if int(attrs.get(name, -1)) != want:
            mismatch.append(f"{name} {int(attrs.get(name, -1))} != {want}")
    if mismatch:
        raise ValueError(f"{path} holds a different data set ({'; '.join(mismatch)}); to resume, call "
                         "generate with the arguments it was created with, or pass overwrite=True")


def _run_chunk(args):
    spec, indices, seed, threads = args
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out = spec.simulate(list(indices), seed)
    return list(indices), out, time.perf_counter() - t0


def generate(spec, path, n_samples: int, *, seed: int = 0, chunk: int | None = None, workers: int = 1,
             progress: bool = True, overwrite: bool = False, threads: int = 1, **spec_options) -> Path:
    """Simulate ``n_samples`` instances of ``spec`` into the HDF5 file ``path`` (resumable).

    Args:
        spec: a :class:`DataSpec` (``CEData(...)``, ``SmokeData(...)``, ``ParticleData(...)``),
            or a family name ``"E1"``/``"E2"``/``"E3"``/``CEFamily`` (wrapped in ``CEData``
            with ``spec_options``).
        path: output file; created, or resumed if it holds an unfinished data set with
            the same settings.
        n_samples: number of instances (>= 1).
        seed: data-set seed; instance ``i`` uses ``default_rng([seed, i])``.
        chunk: instances simulated together (one batched solve); default the spec's, or
            when resuming, the chunk the file was created with (an explicit other chunk
            is refused: batched solves share a step size, so chunking can change data).
        workers: processes (>= 1); > 1 spawns a pool, each worker simulating whole chunks
            while this process writes the file.
        progress: show a tqdm progress bar (on stderr).
        overwrite: delete an existing file first instead of resuming it.
        threads: torch threads per worker.
        **spec_options: options for ``CEData`` when ``spec`` is a family.

    Returns:
        The path of the complete file.

    Raises:
        ValueError: bad arguments, or ``path`` holds another data set (different kind,
            settings, seed or size) and ``overwrite`` is False.
    """
    import h5py

    from .datasets import CEData  # noqa: F401  (the family shortcut)
    from .families import CEFamily

    if isinstance(spec, (str, CEFamily)):
        spec = CEData(spec, **spec_options)
    elif spec_options:
        raise TypeError(f"unexpected options {sorted(spec_options)} for a {type(spec).__name__} spec; "
                        "set them on the spec")
    if not isinstance(spec, DataSpec):
        raise TypeError(f"spec must be a DataSpec (CEData, SmokeData, ParticleData) or a family name, "
                        f"got {type(spec).__name__}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} must be an int >= 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be an int >= 1")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk={chunk!r} must be an int >= 1")
    path = Path(path)
    settings = spec.settings()
    settings_json = json.dumps(settings, sort_keys=True)
    if path.exists() and overwrite:
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)

    if path.exists():
        try:
            f = h5py.File(path, "a")
        except OSError as exc:
            raise ValueError(f"{path} exists but cannot be opened as HDF5 ({exc}); it may be corrupted: "
                             "pass overwrite=True to regenerate it") from exc
        if chunk is None:  # resume with the file's own chunking
            chunk = int(f.attrs["chunk"]) if "chunk" in f.attrs else spec.default_chunk
        try:
            _check_existing(f, spec, settings_json, n_samples, seed, chunk, path)
        except Exception:
            f.close()
            raise
    else:
        chunk = spec.default_chunk if chunk is None else chunk
        f = h5py.File(path, "w")
        f.attrs.update({"format": FORMAT, "kind": spec.kind, "settings": settings_json, "seed": seed,
                        "n_samples": n_samples, "chunk": chunk,
                        "created": datetime.datetime.now().isoformat(timespec="seconds"),
                        "diffsim_version": _version()})
        for k, v in _flat_attrs(settings, "setting.").items():
            f.attrs[k] = v
        for name, (shape, dtype) in spec.per_sample().items():
            f.create_dataset(name, (n_samples, *shape), dtype=dtype,
                             chunks=(1, *shape) if shape else None)
        for name, arr in spec.static().items():
            f.create_dataset(name, data=arr)
        f.create_dataset("done", (n_samples,), dtype=bool)
        f.create_dataset("wall_time", (n_samples,), dtype="f8")
        f.flush()

    try:
        done = f["done"][:]
        chunks = [list(range(i, min(i + chunk, n_samples))) for i in range(0, n_samples, chunk)]
        pending = [c for c in chunks if not done[c].all()]
        bar = None
        if progress and pending:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_samples, initial=int(done.sum()), desc=f"{spec.kind} -> {path.name}",
                       unit="sample")
        jobs = [(spec, c, seed, threads) for c in pending]
        for indices, arrays, seconds in _results(jobs, workers):
            sel = np.asarray(indices)
            lo, hi = sel[0], sel[-1] + 1  # chunks are contiguous ranges
            for name, arr in arrays.items():
                f[name][lo:hi] = arr
            f["wall_time"][lo:hi] = seconds / len(indices)
            f["done"][lo:hi] = True
            f.flush()
            if bar is not None:
                bar.update(len(indices))
        if bar is not None:
            bar.close()
        f.attrs["complete"] = bool(f["done"][:].all())
    finally:
        f.close()
    return path


def _results(jobs: list, workers: int) -> Iterable:
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_chunk(job)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(_run_chunk, jobs)


def _version() -> str:
    try:
        import diffsim

        return diffsim.__version__
    except Exception:  # pragma: no cover
        return "unknown"


def default_workers() -> int:
    """One worker per available CPU core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
