"""Process-wide counters of compiler activity, read by tests and `lazytorch.debug.counters()`, and
the debug log (`LAZYTORCH_DEBUG`: 1 compiles with time and cache hit/miss, 2 also every kernel
launch with its time (without the compile of a first launch) and, where it means something, its
bandwidth, 3 also the generated sources). `LAZYTORCH_DEBUG=0`, set explicitly, also hides the
first-run notice (`compiler.runtime.notice`).

`compile_seconds` adds up the time spent compiling or loading functions, so a timed launch can
leave out the compile its first call paid. `profile`, when a caller sets it to a dict (the
`python -m lazytorch explain` command does), gathers launches and time per kernel run outside a
whole-program driver: kernel name -> [launches, seconds]."""
import os
import sys
from collections import Counter
from typing import Optional

counters: Counter = Counter({"kernel_compiles": 0, "kernel_launches": 0, "graph_compiles": 0,
                             "cache_hits": 0, "disk_cache_hits": 0, "library_calls": 0})
compile_seconds = [0.0]
profile: Optional[dict] = None


def reset() -> None:
    for key in list(counters):
        counters[key] = 0


def debug_level() -> int:
    """LAZYTORCH_DEBUG as an int (read at each call, so tests and users can change it at run time)."""
    try:
        return int(os.environ.get("LAZYTORCH_DEBUG", "0") or 0)
    except ValueError:
        return 1


def notices() -> bool:
    """Whether one-line notices for users (a long first compile) are shown: unless LAZYTORCH_DEBUG
    is set to 0."""
    return os.environ.get("LAZYTORCH_DEBUG", "").strip() != "0"


def log(level: int, message: str) -> None:
    """Print `message` to stderr when LAZYTORCH_DEBUG >= level."""
    if debug_level() >= level:
        print(f"[lazytorch] {message}", file=sys.stderr, flush=True)
