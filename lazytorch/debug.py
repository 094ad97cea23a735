"""Compiler activity counters: `counters()` and `reset_counters()`."""
from __future__ import annotations

from compiler.runtime import counters as _counters


def counters() -> dict:
    """A snapshot: kernel_compiles, kernel_launches, graph_compiles, cache_hits, disk_cache_hits,
    library_calls (BLAS)."""
    return dict(_counters.counters)


def reset_counters() -> None:
    _counters.reset()
