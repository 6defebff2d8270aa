"""numba's disk cache for shap's compiled kernels, so each explain process loads them instead of compiling them.

shap's `@njit` kernels have no `cache=True`: every stage process compiled them again, 5-7 s of each explain run
(bench/NOTES.md). `cached_kernels()` turns numba's cache on for the kernels in `KERNELS` (numba keeps it beside
shap's own `__pycache__`, or in NUMBA_CACHE_DIR, keyed by the kernel's source, the argument types and the CPU;
loaded or compiled, the machine code is the same) and holds an exclusive lock on that directory while shap runs:
numba writes a cache index without a lock, so two explain processes filling it at once (parallel experiments
sharing a virtualenv) could pair one key with the other's code.

Not in `KERNELS`: shap's `_build_fixed_*_output`, which take the link function as an argument. Their
signature names a live dispatcher, so a saved copy never matches again and every run would only add one
more entry to the index; they still compile in each process (8-11 s here, bench/NOTES.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
from collections.abc import Iterator
from pathlib import Path

# (module, kernel): the kernels an exact explanation with an independent masker calls from Python whose arguments
# are arrays and numbers only (`_delta_masking`'s helper `_single_delta_mask` is compiled into it)
KERNELS = (
    ("shap.explainers._exact", "_compute_grey_code_row_values"),
    ("shap.maskers._tabular", "_delta_masking"),
    ("shap.links", "identity"),
)
LOCK_NAME = "shap-kernels.lock"


def enable_caching() -> list[Path]:
    """Turn numba's disk cache on for each kernel of `KERNELS` that exists and can be cached here; returns their
    cache directories. A kernel numba cannot cache (no writable directory) or shap no longer has keeps compiling."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    directories = []
    for module_name, name in KERNELS:
        kernel = getattr(importlib.import_module(module_name), name, None)
        if not isinstance(kernel, Dispatcher):
            continue
        if isinstance(kernel._cache, NullCache):
            try:
                kernel.enable_caching()
            except RuntimeError:  # numba found no writable cache directory
                continue
        directories.append(Path(kernel.stats.cache_path))
    return directories


@contextlib.contextmanager
def cached_kernels() -> Iterator[None]:
    """Run the block with shap's kernels cached on disk, holding the cache's lock (no cache, no lock)."""
    directories = enable_caching()
    if not directories:
        yield
        return
    descriptor = os.open(directories[0] / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock
