"""Turn generated source into a callable Numba function, cached in memory and on disk.

Numba's own on-disk cache (`cache=True`) needs a real source file, so each generated function's
source is written to the cache directory as a module named by the hash of its content and imported
from there. Numba keys its cache entries by that file plus the CPU and its own version; the file
name already encodes the source (and the helper modules it inlines), and the directory the numba
and llvmlite versions, so a second process compiles nothing it has compiled before. See
`compiler.runtime.diskcache` for the layout and why a damaged entry is never trusted.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Callable

from compiler.runtime import diskcache, notice
from compiler.runtime.counters import compile_seconds, counters, debug_level, log

_functions: dict[str, Callable] = {}          # source -> dispatcher
compile_log: list[tuple[str, float, bool]] = []     # (name, seconds, disk cache hit) of each, for explain
_cache_dir: dict[Path, Path] = {}


def cache_dir() -> Path:
    """The directory generated modules are written to (created on first use)."""
    base = diskcache.root()
    path = _cache_dir.get(base)
    if path is None:
        path = base / diskcache.version_tag()
        path.mkdir(parents=True, exist_ok=True)
        _cache_dir[base] = path
    return path


def load_kernel(name: str, source: str) -> Callable:
    """The compiled function `name` defined by `source` (compiled on first call of the kernel)."""
    fn = _functions.get(source)
    if fn is not None:
        counters["cache_hits"] += 1
        return fn
    fn = getattr(load_module(name, source), name)
    diskcache.harden(fn)
    _functions[source] = fn
    return fn


def load_module(name: str, source: str):
    """Write `source` to the cache directory as the module `name` and run it."""
    path = cache_dir() / f"{name}.py"
    diskcache.write_source(path, source)
    if debug_level() >= 3:
        log(3, f"source of {name} ({path}):\n{source}")
    module_name = f"lazytorch_kernels.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def kernel_function(step):
    """The compiled kernel of a schedule's KernelStep, loaded on first use."""
    if step.function is None:
        step.function = load_kernel(step.name, step.source)
    return step.function


def compiled(fn, first_call: Callable[[], object]):
    """Run `first_call` (which compiles `fn` or loads it from Numba's disk cache), count which, log it."""
    hits_before = sum(fn._cache_hits.values())
    start = time.perf_counter()
    with notice.compiling(f"kernel {fn.__name__}") as wait:
        result = first_call()
        hit = sum(fn._cache_hits.values()) > hits_before
        wait.missed = not hit
    record_compile(fn.__name__, time.perf_counter() - start, hit)
    return result


def record_compile(name: str, seconds: float, hit: bool) -> None:
    """Count, keep and log one compile (or load from the disk cache)."""
    counters["disk_cache_hits" if hit else "kernel_compiles"] += 1
    compile_seconds[0] += seconds
    compile_log.append((name, seconds, hit))
    log(1, f"{'loaded' if hit else 'compiled'} {name} in {seconds * 1e3:.1f} ms "
           f"({'disk cache hit' if hit else 'cache miss'})")


def call(fn, args) -> None:
    """Run a kernel; before its first call, compile it (or load it from Numba's disk cache) for
    these arguments' types and count which (compiled apart from the run, so that the compile's time
    is not the launch's, nor the launch's the compile's)."""
    if not fn.signatures:
        from numba import typeof            # (imported already: `fn` is a Numba dispatcher)
        compiled(fn, lambda: fn.compile(tuple(typeof(a) for a in args)))
    fn(*args)
