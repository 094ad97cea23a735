"""Process-wide counters of compiler activity, read by tests and `lazytorch.debug.counters()`."""
from collections import Counter

counters: Counter = Counter({"kernel_compiles": 0, "kernel_launches": 0, "graph_compiles": 0,
                             "cache_hits": 0, "disk_cache_hits": 0, "library_calls": 0})


def reset() -> None:
    for key in list(counters):
        counters[key] = 0
