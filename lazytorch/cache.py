"""The persistent compile cache: generated kernels and drivers, and Numba's machine code for them.

It lives in `$LAZYTORCH_CACHE_DIR`, else `$XDG_CACHE_HOME/lazytorch` (`~/.cache/lazytorch`), in a
subdirectory per numba/llvmlite version; `LAZYTORCH_CACHE=0` keeps it private to the process.
Entries are keyed by the hash of the generated source (which includes the helper modules it
inlines), the numba and llvmlite versions, and (in Numba's index) the CPU and its features.
Writes are atomic, so several processes can fill one cache at once; a truncated or garbled entry
is detected (checksums), deleted and compiled again. The cache is capped at
`$LAZYTORCH_CACHE_MAX_MB` (default 2048): past it, the least recently written functions are
deleted when a process first adds an entry. `clear()` (or `python -m lazytorch cache clear`)
empties it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from compiler.runtime import diskcache
from compiler.runtime.compile import cache_dir

__all__ = ["directory", "root", "info", "clear", "prune"]


def root() -> Path:
    """The cache root (all numba/llvmlite versions)."""
    return diskcache.root()


def directory() -> Path:
    """This installation's cache directory (created if needed)."""
    return cache_dir()


def info() -> dict:
    """{'directory', 'entries' (cached functions), 'bytes', 'max_bytes'} of this version's cache."""
    d = directory()
    groups = diskcache.entries(d)
    return {"directory": str(d), "entries": len(groups),
            "bytes": sum(diskcache._size(paths) for paths in groups.values()),
            "max_bytes": diskcache.max_bytes()}


def prune(max_bytes: int | None = None) -> int:
    """Delete least recently written entries until the cache holds `max_bytes` (default: the cap)."""
    return diskcache.prune(directory(), diskcache.max_bytes() if max_bytes is None else max_bytes)


def clear(all_versions: bool = True) -> None:
    """Delete the cache (every numba/llvmlite version's, unless `all_versions=False`). Functions
    already loaded in running processes keep working; the next compile writes new entries."""
    target = root() if all_versions else directory()
    if target.exists():
        for child in target.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                try:
                    child.unlink()
                except OSError:
                    pass
    diskcache._pruned.clear()
    from compiler.runtime import compile as _compile
    _compile._cache_dir.clear()      # recreated on next use


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "info"
    if command == "clear":
        clear()
        print(f"cleared {root()}")
        return 0
    if command == "info":
        i = info()
        print(f"{i['directory']}: {i['entries']} cached functions, {i['bytes'] / 2**20:.1f} MB "
              f"(cap {i['max_bytes'] / 2**20:.0f} MB)")
        return 0
    print("usage: python -m lazytorch cache [info|clear]")
    return 2
