"""glibc's malloc tuned for processes that handle one large job after another (no torch import:
ingest's workers use it), and numpy's huge-page advice for ingest's. No-ops without glibc's
mallopt (macOS, Windows, musl) or numpy's switch; the arithmetic, hence every result, is unchanged."""
from __future__ import annotations

import contextlib

# glibc's malloc serves blocks over its mmap threshold (at most 32 MiB) with fresh mmaps and
# returns them on free, so every large activation of a CPU forward + backward pass is faulted
# in and zeroed by the kernel again: ~96,000 page faults and a sixth of the CPU time of one
# EfficientNet-Lite0 gradient at batch 8 (benchmarks/craft_speed.py --sweep prints both).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DYNAMIC_MAX = 32 << 20   # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: glibc's steady state


def _libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _as_glibc_leaves_it(libc) -> None:
    """The thresholds glibc reaches by itself (32 MiB mmap, 64 MiB trim), and the free heap handed back."""
    libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DYNAMIC_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, 2 * _GLIBC_DYNAMIC_MAX)
    libc.malloc_trim(0)


@contextlib.contextmanager
def large_heap():
    """While crafting on CPU: large tensors stay in malloc's heap and are reused instead of being
    mapped and unmapped on every pass. Afterwards the thresholds are those glibc reaches by itself
    (32 MiB mmap, 64 MiB trim) and the free heap is handed back. A no-op without glibc's mallopt
    (macOS, Windows, musl); the arithmetic, hence every result, is unchanged."""
    libc = _libc()
    if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30):
        yield False
        return
    libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    try:
        yield True
    finally:
        _as_glibc_leaves_it(libc)


def keep_freed_memory() -> None:
    """For a process that handles one large job after another (ingest's workers, serve's):
    glibc keeps freed blocks for the next job instead of returning them to the system. Each
    12 MP photo allocates ~80 MB (decode, grey copy, warps) in large blocks, which malloc would
    otherwise map fresh every time and the kernel zero page by page (~35 ms of system CPU per
    photo; 260,000 → 29,000 page faults for 25 photos). The process then holds its peak
    (~150 MB). Permanent, unlike `large_heap`; a no-op without glibc.

    Also numpy stops asking for transparent huge pages (madvise) on its large arrays: while
    the heap grows to that peak, the kernel then compacts memory for 2 MB pages in the page
    faults (THP "madvise" mode): 16-19 ms of system CPU per photo over a fresh process's first
    24 photos, 5 ms without (the 12 MP photos of benchmarks/ingest_speed.py --photos-per-page 12);
    user CPU and a warm heap's system CPU are the same either way."""
    numpy_hugepages(False)
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 512 << 20)   # blocks up to 512 MB come from the heap
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)     # keep up to 1 GB free at the top of it


def numpy_hugepages(enabled: bool) -> bool | None:
    """Whether numpy madvises transparent huge pages for arrays of 4 MB and more (its default on
    Linux): set it, return the previous setting; None where numpy has no such switch."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return None if switch is None else bool(switch(enabled))


@contextlib.contextmanager
def freed_memory_kept():
    """`keep_freed_memory` for a while (a process that ingests photos among other work: the
    caller of ingest's pool, e.g. `physical pipeline`, which evaluates next), then the thresholds
    glibc reaches by itself and the free heap handed back, as after `large_heap`."""
    libc = _libc()
    if libc is None:
        yield
        return
    hugepages = numpy_hugepages(False)
    keep_freed_memory()
    try:
        yield
    finally:
        _as_glibc_leaves_it(libc)
        if hugepages is not None:
            numpy_hugepages(hugepages)
