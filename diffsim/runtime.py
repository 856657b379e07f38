"""Taichi runtime: explicit or lazy initialisation, precision and device.

Nothing here runs at import. ``init`` is called explicitly by users, or lazily by
the first simulator that needs Taichi (``ensure_init``). The architecture comes
from the ``arch`` argument, else the ``DIFFSIM_ARCH`` environment variable, else a
GPU when one is present, else the CPU.

Simulators allocate their fields in their own ``ti.FieldsBuilder`` trees and
register here, so several coexist in one process and each frees its memory on
``close()``. Re-initialising Taichi destroys every field, so ``init`` with other
settings refuses while simulators are alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import platform
import sys
import weakref
from dataclasses import dataclass

# Taichi prints a banner on import and on ti.init; library code must not print.
os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "0")
# In Jupyter, importing Taichi logs "Graphical python shell detected, using wrapped sys.stdout"
# (it then buffers print() calls made inside kernels); diffsim's kernels never print.
os.environ.setdefault("TI_ENABLE_PYBUF", "0")

import taichi as ti  # noqa: E402
import torch  # noqa: E402

_ARCHS = ("cpu", "cuda", "gpu", "vulkan", "metal")
_PRECISIONS = {"f32": (ti.f32, torch.float32), "f64": (ti.f64, torch.float64)}


@dataclass(frozen=True)
class RuntimeConfig:
    """The settings Taichi was initialised with.

    Attributes:
        arch: the backend actually running (``"x64"``/``"arm64"`` for CPU, ``"cuda"``, ...).
        precision: ``"f32"`` or ``"f64"``: the float type of every simulator field.
        debug: Taichi debug mode (bounds checks; slow).
        deterministic: scatter kernels run serially on the CPU so that the same
            inputs give bitwise the same outputs (float atomics in parallel add in
            a varying order).
    """

    arch: str
    precision: str
    debug: bool
    deterministic: bool

    @property
    def ti_float(self):
        return _PRECISIONS[self.precision][0]

    @property
    def torch_float(self) -> torch.dtype:
        return _PRECISIONS[self.precision][1]

    @property
    def is_cpu(self) -> bool:
        return self.arch in ("x64", "arm64", "cpu")

    @property
    def torch_device(self) -> torch.device:
        """Where simulator tensors live: CUDA when Taichi runs on CUDA and torch can."""
        if self.arch == "cuda" and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")


_config: RuntimeConfig | None = None
#: autodiff stack depth ``ds.init`` sets for float32 with ``optimize="compile"``
AD_STACK_SIZE = 64
_live: weakref.WeakSet = weakref.WeakSet()


def init(arch: str | None = None, precision: str = "f32", debug: bool = False,
         deterministic: bool | None = None, optimize: str = "compile",
         **taichi_kwargs) -> RuntimeConfig:
    """Initialise Taichi for diffsim.

    Args:
        arch: ``"cpu"``, ``"cuda"``, ``"gpu"`` (any GPU backend), ``"vulkan"``,
            ``"metal"``; ``None`` reads ``DIFFSIM_ARCH`` and otherwise picks CUDA
            when a CUDA device is present (Metal on Apple silicon), else the CPU.
        precision: ``"f32"`` or ``"f64"`` for all simulator fields (use ``"f64"``
            for finite-difference gradient checks).
        debug: Taichi debug mode: out-of-bounds accesses raise (slow).
        deterministic: bitwise-reproducible results on the CPU by running the
            kernels that scatter with float atomics serially. ``None`` means on
            for the CPU, off for GPUs.
        optimize: ``"compile"`` (default) turns Taichi's advanced IR passes off:
            a 3D simulator's kernels compile about five times faster (tens of
            seconds instead of minutes for a gradient) and run 10-30% slower.
            ``"runtime"`` keeps them, for long runs that amortise the compile.
        **taichi_kwargs: passed to ``ti.init`` (e.g. ``cpu_max_num_threads``). For
            float32 with ``optimize="compile"``, ``ad_stack_size`` defaults to
            ``AD_STACK_SIZE`` (Taichi's adaptive autodiff stacks give wrong float32
            gradients without its advanced optimisation).

    Returns:
        The active :class:`RuntimeConfig`.

    Raises:
        ValueError: an argument is outside its allowed values.
        RuntimeError: Taichi already runs with other settings while simulators
            are alive (close them first).
    """
    global _config
    if arch is None:
        arch = os.environ.get("DIFFSIM_ARCH") or None
    if arch is not None and arch not in _ARCHS:
        raise ValueError(f"arch={arch!r} is not supported; allowed: {', '.join(_ARCHS)} or None")
    if precision not in _PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; allowed: 'f32', 'f64'")
    if optimize not in ("compile", "runtime"):
        raise ValueError(f"optimize={optimize!r} is not supported; allowed: 'compile', 'runtime'")
    taichi_kwargs.setdefault("advanced_optimization", optimize == "runtime")
    if precision == "f32" and not taichi_kwargs["advanced_optimization"]:
        # Taichi 1.7.4's reverse mode with adaptively sized autodiff stacks and without
        # its advanced passes is wrong in float32: vector reductions (sum, dot, norm,
        # norm_sqr, trace, max, min, normalized) get zero gradients and some kernels NaN
        # (tests/test_taichi_autodiff.py pins this). Fixed-size stacks are right.
        taichi_kwargs.setdefault("ad_stack_size", AD_STACK_SIZE)
    requested = (arch, precision, bool(debug), deterministic,
                 tuple(sorted(taichi_kwargs.items())))
    if _config is not None:
        if requested == _requested:
            return _config
        if len(_live):
            raise RuntimeError(
                f"Taichi already runs as {_config}; re-initialising would destroy the fields of "
                f"{len(_live)} live simulator(s). Close them (sim.close()) before ds.init(...)."
            )
    if arch is None:
        arch = _auto_arch()
    pool.drop()  # ti.init destroys every field: pooled kernels die with them
    ti_arch = {"cpu": ti.cpu, "cuda": ti.cuda, "gpu": ti.gpu, "vulkan": ti.vulkan,
               "metal": ti.metal}[arch]
    with contextlib.redirect_stdout(io.StringIO()):  # ti.init prints "Starting on arch=..."
        ti.init(arch=ti_arch, default_fp=_PRECISIONS[precision][0], debug=debug,
                log_level=ti.ERROR, **taichi_kwargs)
    actual = ti.lang.impl.current_cfg().arch.name
    cpu = actual in ("x64", "arm64")
    _config = RuntimeConfig(arch=actual, precision=precision, debug=bool(debug),
                            deterministic=cpu if deterministic is None else bool(deterministic))
    _set_requested(requested)
    return _config


_requested: tuple | None = None


def _set_requested(req: tuple) -> None:
    global _requested
    _requested = req


def _auto_arch() -> str:
    """CUDA when a CUDA device answers, Metal on macOS, else the CPU.

    We probe CUDA ourselves through the driver library rather than letting
    Taichi try every GPU backend: its Vulkan probe crashes on some GPU-less
    machines.
    """
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "metal"
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value:
            return "cuda"
    return "cpu"


def check_autodiff(who: str) -> None:
    """Raise if Taichi's reverse mode is known to be wrong in the active configuration.

    Float32 with adaptive autodiff stacks (``ad_stack_size=0``) and without advanced
    optimisation returns zero or NaN gradients in Taichi 1.7.4; ``ds.init`` avoids it
    unless the caller asked for exactly that.
    """
    cfg = ensure_init()
    tcfg = ti.lang.impl.current_cfg()
    if cfg.precision == "f32" and not tcfg.advanced_optimization and tcfg.ad_stack_size == 0:
        raise RuntimeError(
            f"gradients of {who} in float32 are wrong with ad_stack_size=0 and "
            "optimize='compile' (Taichi 1.7's adaptive autodiff stacks give zero or NaN "
            f"gradients): call ds.init without ad_stack_size (default {AD_STACK_SIZE}), "
            "or with optimize='runtime', or precision='f64'. The forward pass is not affected.")


def ensure_init() -> RuntimeConfig:
    """The active config, initialising Taichi with the defaults on first use."""
    return _config if _config is not None else init()


def config() -> RuntimeConfig | None:
    """The active config, or ``None`` before the first ``init``."""
    return _config


def register(obj) -> None:
    """Track a live object that owns Taichi fields (weakly)."""
    _live.add(obj)


def unregister(obj) -> None:
    _live.discard(obj)


def live_count() -> int:
    """How many field-owning objects are alive."""
    return len(_live)


_kept_trees: list = []


def free_fields(tree) -> None:
    """Free a ``ti.FieldsBuilder`` tree's memory.

    On CUDA, Taichi 1.7.4 fails an internal assertion when a tree is destroyed
    (``llvm_context.cpp: delete_snode_tree: data->struct_modules.erase(id)``),
    which leaves the runtime unusable. There the tree is kept, with a warning
    naming the memory that stays allocated until the process exits, rather than
    crashing the caller's ``close()``.
    """
    cfg = config()
    if cfg is not None and cfg.arch == "cuda":
        import warnings

        warnings.warn("diffsim: Taichi 1.7.4 cannot free fields on CUDA (an assertion in "
                      "delete_snode_tree); this object's GPU memory stays allocated until the "
                      "process exits", stacklevel=3)
        _kept_trees.append(tree)
        return
    tree.destroy()


class KernelPool:
    """Compiled kernel objects of closed simulators, kept for the next simulator with the
    same configuration.

    Taichi compiles kernels per instance of a ``@ti.data_oriented`` class and never
    frees compiled code, so building and closing the same simulator again and again
    (``gym.make``/``close`` in a loop, a parameter sweep) recompiled everything each
    time and grew the process by megabytes per cycle. ``close`` hands its kernel
    object to this pool instead of freeing it (``give``); an engine built later with
    an equal key takes it back (``take``) with its fields and compiled kernels.
    Pooled objects are freed, oldest first, beyond ``budget_mb`` of field memory.
    """

    def __init__(self, budget_mb: float = 512.0):
        self.budget_mb = budget_mb
        self._items: list = []  # (key, obj, nbytes, destroy), oldest first

    def take(self, key):
        """A pooled object with this key (removed from the pool), or ``None``."""
        for i, (k, obj, _, _) in enumerate(self._items):
            if k == key:
                del self._items[i]
                return obj
        return None

    def give(self, key, obj, nbytes: int, destroy) -> None:
        """Keep ``obj`` (``destroy()`` frees it) under ``key``; evict beyond the budget."""
        self._items.append((key, obj, int(nbytes), destroy))
        while self._items and self.nbytes > self.budget_mb * 2 ** 20:
            self._items.pop(0)[3]()

    @property
    def nbytes(self) -> int:
        return sum(item[2] for item in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Free every pooled object."""
        while self._items:
            self._items.pop(0)[3]()

    def drop(self) -> None:
        """Forget every pooled object without freeing it (Taichi is being re-initialised)."""
        self._items.clear()


#: the process-wide pool (``diffsim.runtime.pool.budget_mb = 0`` disables it)
pool = KernelPool()
