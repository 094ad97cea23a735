"""Process-wide counters of compiler activity, read by tests and `lazytorch.debug.counters()`, and
the debug log (`LAZYTORCH_DEBUG`: 1 compiles with time and cache hit/miss, 2 also every kernel
launch with time and GB/s, 3 also the generated sources)."""
import os
import sys
from collections import Counter

counters: Counter = Counter({"kernel_compiles": 0, "kernel_launches": 0, "graph_compiles": 0,
                             "cache_hits": 0, "disk_cache_hits": 0, "library_calls": 0})


def reset() -> None:
    for key in list(counters):
        counters[key] = 0


def debug_level() -> int:
    """LAZYTORCH_DEBUG as an int (read at each call, so tests and users can change it at run time)."""
    try:
        return int(os.environ.get("LAZYTORCH_DEBUG", "0") or 0)
    except ValueError:
        return 1


def log(level: int, message: str) -> None:
    """Print `message` to stderr when LAZYTORCH_DEBUG >= level."""
    if debug_level() >= level:
        print(f"[lazytorch] {message}", file=sys.stderr, flush=True)
