"""The on-disk compile cache: where it lives, atomic writes, and entries that can be trusted.

Layout: `<root>/numba-<version>-llvmlite-<version>/` holds one `.py` file per generated function
(named by the hash of its source, which includes a hash of the helper modules it inlines) and
Numba's own cache (`__pycache__/*.nbi` index, `*.nbc` object code) next to it. Numba keys its
entries by the source file's stamp, the function's bytecode, the CPU name and features; the
directory name adds the numba and llvmlite versions.

Numba trusts its files: a truncated or garbled index or data file makes it raise (or, with bad
object code, crash). `harden(dispatcher)` makes every entry carry a checksum that is verified
before Numba sees it; an entry that fails it is deleted and counts as a miss, so the function is
compiled again and the entry rewritten. Several processes may fill one cache at once: every file
is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path

from compiler.runtime.counters import counters, log

MAGIC = b"LZTC1"          # our checksummed payload: MAGIC + sha256(payload)[:16] + payload
_DIGEST = 16
_private: set[Path] = set()


def root() -> Path:
    """The cache root: $LAZYTORCH_CACHE_DIR, else $XDG_CACHE_HOME/lazytorch (~/.cache/lazytorch);
    with LAZYTORCH_CACHE=0 a directory private to this process (Numba still needs real files)."""
    if os.environ.get("LAZYTORCH_CACHE", "1") == "0":
        path = Path(tempfile.gettempdir()) / f"lazytorch-nocache-{os.getpid()}"
        if path not in _private:
            _private.add(path)
            atexit.register(shutil.rmtree, path, True)     # thrown away with the process
        return path
    base = os.environ.get("LAZYTORCH_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lazytorch"


def version_tag() -> str:
    # from the installed metadata: importing Numba costs 0.3 s, and a warm process never needs it
    from importlib.metadata import version
    return f"numba-{version('numba')}-llvmlite-{version('llvmlite')}"


def write_source(path: Path, text: str) -> None:
    """Make `path` hold `text`, atomically. An existing file with the right text is left alone (its
    stamp is what Numba's index entries refer to); a wrong one (truncated, garbled) is replaced."""
    try:
        if path.read_bytes() == text.encode():
            return
        existed = True
    except FileNotFoundError:
        existed = False
    except OSError:
        existed = True
    prune_once(path.parent)             # a new entry: keep the cache under its size cap
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if existed:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)          # first writer wins: a racing process keeps the same stamp
    except FileExistsError:
        write_source(path, text)    # someone else created it meanwhile; check their text
    except OSError:
        os.replace(tmp, path)       # no hard links on this file system
        return
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> None:
    """Make `path` hold `data`, atomically (a temporary file renamed into place); a failure is
    logged and leaves the old file as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        log(1, f"could not write {path.name}: {e}")
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------------------
# trustworthy Numba cache entries

def seal(payload: bytes) -> bytes:
    """`payload` with a checksum in front (`unseal` checks it)."""
    return MAGIC + hashlib.sha256(payload).digest()[:_DIGEST] + payload


def unseal(blob: bytes):
    """The payload of a sealed blob, or None when it is not intact."""
    head = len(MAGIC) + _DIGEST
    if len(blob) < head or not blob.startswith(MAGIC):
        return None
    payload = blob[head:]
    if hashlib.sha256(payload).digest()[:_DIGEST] != blob[len(MAGIC):head]:
        return None
    return payload


def _discard(cache_file, reason: str) -> None:
    """Delete a function's index and data files; the next compile writes them again."""
    directory = Path(cache_file._cache_path)
    stem = cache_file._index_name[:-len(".nbi")]
    for path in directory.glob(stem + ".*"):
        if path.suffix in (".nbi", ".nbc"):
            try:
                path.unlink()
            except OSError:
                pass
    counters["disk_cache_discarded"] += 1
    log(1, f"disk cache entry {stem} discarded ({reason}); compiling again")


def harden(dispatcher) -> None:
    """Checksum `dispatcher`'s Numba cache entries and turn any bad entry into a cache miss."""
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is None or getattr(cache_file, "_lazytorch_hardened", False):
        return
    dump = cache_file._dump

    def sealed_dump(obj):
        return seal(dump(obj))

    def load_index():
        try:
            with open(cache_file._index_path, "rb") as f:
                version = pickle.load(f)
                blob = f.read()
        except FileNotFoundError:
            return {}
        except Exception as e:                         # truncated before the version
            _discard(cache_file, f"unreadable index: {type(e).__name__}")
            return {}
        if version != cache_file._version:
            return {}
        payload = unseal(blob)
        if payload is None:
            _discard(cache_file, "index checksum mismatch")
            return {}
        try:
            stamp, overloads = pickle.loads(payload)
        except Exception as e:
            _discard(cache_file, f"unreadable index: {type(e).__name__}")
            return {}
        return overloads if stamp == cache_file._source_stamp else {}

    def load_data(name):
        with open(cache_file._data_path(name), "rb") as f:
            blob = f.read()
        payload = unseal(blob)
        if payload is None:
            _discard(cache_file, f"data file {name}: checksum mismatch")
            return None
        return pickle.loads(payload)

    cache_file._dump = sealed_dump
    cache_file._load_index = load_index
    cache_file._load_data = load_data
    cache_file._lazytorch_hardened = True

    load_overload, save_overload = cache.load_overload, cache.save_overload

    def safe_load(sig, target_context):
        try:
            return load_overload(sig, target_context)
        except Exception as e:                         # an intact entry Numba still cannot rebuild
            _discard(cache_file, f"{type(e).__name__}: {e}")
            return None

    def safe_save(sig, data):
        try:
            save_overload(sig, data)
        except Exception as e:                         # caching is best effort: never fail a compile
            log(1, f"could not write the disk cache for {dispatcher.__name__}: {type(e).__name__}: {e}")

    cache.load_overload = safe_load
    cache.save_overload = safe_save


# ---------------------------------------------------------------------------------------------
# size: listing, pruning, clearing

DEFAULT_MAX_MB = 2048
_pruned: set[Path] = set()


def entries(directory: Path) -> dict[str, list[Path]]:
    """Files of each cached function in `directory`: its `.py` and its Numba index and data files."""
    groups: dict[str, list[Path]] = {}
    for path in directory.glob("*.py"):
        groups.setdefault(path.stem, []).append(path)
    for path in directory.glob("*.o"):                  # drivers' object code: '<name>.<host>.o'
        groups.setdefault(path.name.split(".", 1)[0], []).append(path)
    cache = directory / "__pycache__"
    if cache.is_dir():
        for path in cache.iterdir():
            stem = path.name.split(".", 1)[0].rsplit("-", 1)[0]     # '<name>-<line>.py311.nbi'
            groups.setdefault(stem, []).append(path)
    return groups


def _size(paths) -> int:
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total


def prune(directory: Path, max_bytes: int) -> int:
    """Delete the least recently written functions until `directory` holds at most `max_bytes`;
    returns the number of bytes freed."""
    groups = entries(directory)
    sizes = {stem: _size(paths) for stem, paths in groups.items()}
    total = sum(sizes.values())
    if total <= max_bytes:
        return 0

    def newest(paths):
        times = []
        for p in paths:
            try:
                times.append(p.stat().st_mtime)
            except OSError:
                pass
        return max(times, default=0.0)

    freed = 0
    for stem in sorted(groups, key=lambda s: newest(groups[s])):
        if total - freed <= max_bytes:
            break
        for p in groups[stem]:
            try:
                p.unlink()
            except OSError:
                pass
        freed += sizes[stem]
    log(1, f"disk cache over {max_bytes >> 20} MB: freed {freed >> 20} MB in {directory}")
    return freed


def max_bytes() -> int:
    """The size cap: $LAZYTORCH_CACHE_MAX_MB megabytes (default 2048)."""
    try:
        return int(float(os.environ.get("LAZYTORCH_CACHE_MAX_MB", DEFAULT_MAX_MB)) * (1 << 20))
    except ValueError:
        return DEFAULT_MAX_MB << 20


def prune_once(directory: Path) -> None:
    """Apply the size cap once per process and directory (called before the first new entry)."""
    if directory not in _pruned:
        _pruned.add(directory)
        prune(directory, max_bytes())
