"""Shared helpers for the benchmark scripts: threads, timing, cold caches, tables.

Timing rules (every script follows them so numbers are comparable):

* all implementations run in one process, and `compare` runs them round-robin (one call of each,
  then the next round), so a burst of load from elsewhere hits them all alike: read the ratios,
  the absolute milliseconds move with the machine;
* the first call is timed on its own (it compiles: lazytorch kernels, torch.compile graphs), then
  `warmup` more calls, then `repeats` timed calls; we report the median and the minimum;
* `set_threads(n)` gives Numba (lazytorch's kernels) and PyTorch the same thread count; numpy's
  elementwise ops are single-threaded whatever it is.
"""
from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


def use_cold_cache() -> str:
    """Point lazytorch at a fresh, empty kernel cache (call before importing lazytorch), so the
    first call measures a real compile rather than a load from an earlier run's disk cache."""
    path = tempfile.mkdtemp(prefix="lazytorch-bench-")
    os.environ["LAZYTORCH_CACHE_DIR"] = path
    return path


def set_threads(n: int) -> dict:
    """Use `n` threads in Numba and PyTorch (where installed); returns what is now in effect."""
    import numba
    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    threads = {"numba": numba.get_num_threads(), "numba layer": _numba_layer()}
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(n)
        threads["torch"] = torch.get_num_threads()
    return threads


def _numba_layer() -> str:
    import numba
    import numpy as np

    @numba.njit(parallel=True)
    def touch(a):
        for i in numba.prange(a.size):
            a[i] = i

    touch(np.empty(4))            # the threading layer is chosen at the first parallel launch
    return numba.threading_layer()


def optional_torch():
    """PyTorch if installed, else None (the benchmarks then skip its columns)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


@dataclass
class Timing:
    name: str
    first: float = 0.0                    # seconds of the first call (compiles)
    times: list = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def compare(impls: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, Timing]:
    """Time each zero-argument callable: first call, `warmup` untimed calls, then `repeats` timed
    rounds in which every implementation runs once (round-robin)."""
    timings = {name: Timing(name) for name in impls}
    for name, fn in impls.items():
        start = time.perf_counter()
        fn()
        timings[name].first = time.perf_counter() - start
        for _ in range(warmup):
            fn()
    gc_was_enabled = gc.isenabled()
    gc.disable()                           # a collection inside one call is noise, not the op
    try:
        for _ in range(repeats):
            for name, fn in impls.items():
                start = time.perf_counter()
                fn()
                timings[name].times.append(time.perf_counter() - start)
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


def fmt_ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(ratio: Optional[float]) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_note() -> str:
    """CPU count and load average: the context the absolute numbers need."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{os.cpu_count()} CPUs, load average {load}"
