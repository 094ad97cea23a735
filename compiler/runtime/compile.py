"""Turn generated source into a callable Numba function, cached in memory and on disk.

Numba's own on-disk cache (`cache=True`) needs a real source file, so each kernel's source is
written to the cache directory as a module named by the hash of its content and imported from
there. Numba keys its cache entries by that file plus the CPU and its own version; the file name
already encodes the source, so a second process compiles nothing it has compiled before.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from compiler.runtime.counters import counters

_functions: dict[str, Callable] = {}
compile_log: list[tuple[str, float]] = []     # (kernel name, seconds) of every compile, for explain


def cache_dir() -> Path:
    base = os.environ.get("LAZYTORCH_CACHE_DIR")
    if base:
        path = Path(base)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lazytorch"
    if os.environ.get("LAZYTORCH_CACHE", "1") == "0":
        # still a real file (Numba needs one) but private to this process and thrown away
        path = Path(tempfile.gettempdir()) / f"lazytorch-nocache-{os.getpid()}"
    path = path / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_kernel(name: str, source: str) -> Callable:
    """The compiled function `name` defined by `source` (compiled on first call of the kernel)."""
    fn = _functions.get(source)
    if fn is not None:
        counters["cache_hits"] += 1
        return fn
    directory = cache_dir()
    path = directory / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        _write_atomic(path, source)
    module_name = f"lazytorch_kernels.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, name)
    _functions[source] = fn
    return fn


def call(fn, args) -> None:
    """Run a kernel; its first call compiles it (or loads it from Numba's disk cache): count which."""
    if fn.signatures:
        fn(*args)
        return
    hits_before = sum(fn._cache_hits.values())
    start = time.perf_counter()
    fn(*args)
    elapsed = time.perf_counter() - start
    if sum(fn._cache_hits.values()) > hits_before:
        counters["disk_cache_hits"] += 1
    else:
        counters["kernel_compiles"] += 1
    compile_log.append((fn.__name__, elapsed))
