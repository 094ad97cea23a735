"""Compiled drivers as object code: kept in the disk cache, loaded and called without Numba.

A process that finds its driver in the cache should not pay Numba's start-up (importing Numba,
building its CPU target with every typing and lowering registry, importing scipy.linalg: about
0.7 s here) only to run code compiled in an earlier process. So a driver is compiled once by Numba
as a C-callable function (`@numba.cfunc`), its object code is written next to its source, and a
later process maps that object code into memory with llvmlite's MCJIT (30 ms) and calls it through
ctypes.

What the object code may refer to outside itself is checked before it is loaded: symbols of the
Python process (the C API, libm) and the three Numba runtime functions that a cfunc's error path
names, which `_RUNTIME_IR` provides (a driver allocates nothing and raises nothing, so they are
never called in practice). Object files are ELF: on other platforms every process compiles with
Numba, whose own cache then applies.

The BLAS a driver calls is the CBLAS of the OpenBLAS that numpy (or scipy) ships, found through
threadpoolctl; its function addresses are passed in at every call (`blas().table`), never baked
into the code.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from compiler.runtime import diskcache
from compiler.runtime.counters import log

TUPLE_ITEMS = tuple.__basicsize__       # offset of a tuple's first item pointer
ARRAY_DATA = object.__basicsize__       # offset of an ndarray's data pointer (after PyObject_HEAD)

_RUNTIME_IR = r"""
declare i32 @PyGILState_Ensure()
declare void @PyGILState_Release(i32)
define void @NRT_MemInfo_call_dtor(ptr %meminfo) {
  ret void
}
define void @numba_gil_ensure(ptr %state) {
  %s = call i32 @PyGILState_Ensure()
  store i32 %s, ptr %state
  ret void
}
define void @numba_gil_release(ptr %state) {
  %s = load i32, ptr %state
  call void @PyGILState_Release(i32 %s)
  ret void
}
"""
_PROVIDED = {"NRT_MemInfo_call_dtor", "numba_gil_ensure", "numba_gil_release"}
DRIVER_TYPE = ctypes.CFUNCTYPE(None, ctypes.py_object)


# ---------------------------------------------------------------------------------------------
# BLAS

@dataclass
class Blas:
    table: np.ndarray           # uint64 [sgemm address, dgemm address]
    int_bits: int               # 32 (LP64) or 64 (ILP64)
    library: str


_blas: list = []


def blas() -> Optional[Blas]:
    """The CBLAS drivers call: numpy's bundled OpenBLAS first, then any other loaded BLAS."""
    if not _blas:
        _blas.append(_find_blas())
    return _blas[0]


def _find_blas() -> Optional[Blas]:
    try:
        from threadpoolctl import ThreadpoolController
        libraries = [lib.filepath for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    except Exception:
        return None
    libraries.sort(key=lambda path: "numpy" not in path)
    for path in libraries:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("scipy_", ""), ("", "")):
            try:
                sgemm, dgemm = (getattr(lib, f"{prefix}cblas_{t}gemm{suffix}") for t in "sd")
            except AttributeError:
                continue
            bits = 64 if suffix else _openblas_int_bits(lib, prefix)
            addresses = [ctypes.cast(f, ctypes.c_void_p).value for f in (sgemm, dgemm)]
            return Blas(np.array(addresses, np.uint64), bits, path)
    return None


def _openblas_int_bits(lib, prefix: str) -> int:
    try:
        config = getattr(lib, f"{prefix}openblas_get_config")
    except AttributeError:
        return 32                       # MKL's and reference CBLAS's default interface
    config.restype = ctypes.c_char_p
    return 64 if b"USE64BITINT" in (config() or b"") else 32


# ---------------------------------------------------------------------------------------------
# object code: written once, loaded by any later process

_engine: list = []
_engine_lock = threading.Lock()


def _jit():
    """llvmlite's MCJIT with the stand-ins for Numba's runtime functions (created on first use)."""
    if not _engine:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        machine = llvm.Target.from_default_triple().create_target_machine(jit=True)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_RUNTIME_IR), machine)
        engine.finalize_object()
        _engine.append((llvm, engine))
    return _engine[0]


@functools.cache
def host_tag() -> str:
    """Names the CPU the object code was compiled for (name and features, as Numba targets);
    asked of LLVM once per process."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    text = f"{llvm.get_process_triple()} {llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def object_path(directory: Path, name: str) -> Path:
    """Where the object code of the functions in the module `name` lives: '<name>.<host>.o'."""
    return directory / f"{name}.{host_tag()}.o"


def supported() -> bool:
    """Whether generated code runs as native functions loaded from object code (ELF, and this
    interpreter's object layout as `native_ops` reads it) rather than through Numba's dispatchers."""
    return sys.platform.startswith("linux") and os.environ.get("LAZYTORCH_NATIVE", "1") != "0" and _layout_ok()


def _layout_ok() -> bool:
    """Check, once, that a tuple's items and an array's data pointer are where `native_ops` reads
    them (CPython and numpy lay them out so; another implementation may not)."""
    if not _layout:
        array = np.zeros(1)
        items = (array,)
        _layout.append(
            ctypes.c_void_p.from_address(id(items) + TUPLE_ITEMS).value == id(array)
            and ctypes.c_void_p.from_address(id(array) + ARRAY_DATA).value == array.ctypes.data)
    return _layout[0]


_layout: list = []


def save(path: Path, source: str, functions: list[tuple[str, bytes]]) -> None:
    """Write the object code of `functions` ((symbol, code) each) compiled from `source`
    atomically, with a checksum, the source's hash and the symbols each needs."""
    header = json.dumps({"source": _digest(source),
                         "functions": [{"symbol": symbol, "size": len(code),
                                        "undefined": sorted(undefined_symbols(code))}
                                       for symbol, code in functions]}).encode()
    payload = struct.pack("<I", len(header)) + header + b"".join(code for _, code in functions)
    diskcache.write_bytes(path, diskcache.seal(payload))


def load(path: Path, source: str) -> Optional[list[int]]:
    """The addresses of the functions compiled from `source` stored at `path`, or None (missing,
    damaged, from another source, or needing a symbol this process lacks: the caller compiles it
    again)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    payload = diskcache.unseal(blob)
    if payload is None:
        log(1, f"disk cache entry {path.name} is damaged; compiling again")
        return None
    (size,) = struct.unpack_from("<I", payload)
    meta = json.loads(payload[4:4 + size])
    if meta["source"] != _digest(source):       # (the name is a hash of the source: a collision)
        return None
    missing = [s for f in meta["functions"] for s in f["undefined"] if s not in _PROVIDED and not _in_process(s)]
    if missing:
        log(1, f"{path.name} needs {missing[:3]}, not in this process; compiling again")
        return None
    with _engine_lock:                      # llvmlite's engine is not safe to share across threads
        llvm, engine = _jit()
        at = 4 + size
        for function in meta["functions"]:
            engine.add_object_file(llvm.ObjectFileRef.from_data(payload[at:at + function["size"]]))
            at += function["size"]
        engine.finalize_object()
        addresses = [engine.get_function_address(f["symbol"]) for f in meta["functions"]]
    return addresses if all(addresses) else None


def emit(cfunc) -> tuple[str, bytes]:
    """(symbol, object code) of a compiled `numba.cfunc`, for `save`."""
    library = cfunc._library
    library._ensure_finalized()
    return cfunc.native_name, library._codegen._tm.emit_object(library._final_module)


def caller(address: int) -> Callable:
    """Call the driver at `address` with a tuple of arrays (releases the GIL while it runs)."""
    return DRIVER_TYPE(address)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _in_process(symbol: str) -> bool:
    try:
        getattr(ctypes.pythonapi, symbol)       # dlsym over the whole process
        return True
    except AttributeError:
        return False


def undefined_symbols(code: bytes) -> set[str]:
    """Names an ELF64 object file uses but does not define (its SHN_UNDEF symbols)."""
    if code[:4] != b"\x7fELF" or code[4] != 2:
        raise ValueError("not an ELF64 object file")
    shoff, = struct.unpack_from("<Q", code, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", code, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", code, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2:                   # SHT_SYMTAB
            continue
        strings = sections[link][4]
        for at in range(offset + entsize, offset + size, entsize):     # entry 0 is the null symbol
            name, info, _, shndx = struct.unpack_from("<IBBH", code, at)
            if shndx == 0 and name:
                end = code.index(b"\0", strings + name)
                names.add(code[strings + name:end].decode())
    return names
