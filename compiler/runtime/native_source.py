"""Native functions from generated source: written, compiled (or loaded), callable.

A native function here is a `@numba.cfunc` taking one tuple of numpy arrays (see
`compiler.runtime.native_ops`). This module builds their source from generated kernels (`inline`
pastes a kernel's body, `header` writes the imports) and turns a source into addresses
(`obtain`): from this process, from the disk cache's object code (no Numba), or compiled by Numba
(with the compile workers) and stored. Whole-program drivers (`compiler.runtime.driver`) and
single kernels run on their own (`compiler.runtime.eager`) both go through it.
"""
from __future__ import annotations

import ast
import re
import time
from typing import Callable, Optional

import numpy as np

from compiler.codegen.numba_cpu import FASTMATH_OPTION, HELPERS_HASH
from compiler.runtime import diskcache, native, notice, workers
from compiler.runtime.compile import cache_dir, load_module, record_compile
from compiler.runtime.counters import counters, debug_level, log

ALIGN = 64
"""Byte alignment of each buffer placed in a scratch buffer (a cache line)."""
_NAME = re.compile(r"(?<![.\w])[A-Za-z_]\w*")
_TEMPORARY = re.compile(r"(\s*)(\w+) = np\.empty\((\d+), (np\.\w+)\)")
_loaded: dict[str, tuple] = {}           # name -> (addresses, what keeps the code alive)


class Scratch:
    """Places buffers one after the other in a native function's scratch buffer (the array named
    `scratch` in its source), each at a cache-line boundary; `size` is the bytes used so far."""

    def __init__(self):
        self.size = 0

    def place(self, numel: int, dtype) -> str:
        """A pointer expression for a new buffer of `numel` elements of `dtype`."""
        pointer = f"_byte_offset(scratch, {self.size})"
        self.size += -(-numel * np.dtype(dtype).itemsize // ALIGN) * ALIGN
        return pointer


def inline(source: str, args: list[str], prefix: str, scratch: "Scratch"):
    """The body of a generated kernel function, to paste into a native function: its parameters
    renamed to `args`, its locals prefixed with `prefix` (so kernels never share a variable), its
    temporary arrays (accumulator rows) placed in `scratch`: a native function allocates nothing.
    Returns
    (lines, {module: helper names}, fastmath, parallel)."""
    lines = source.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("def "))
    params = lines[at][lines[at].index("(") + 1:lines[at].rindex(")")].split(", ")
    rename = dict(zip(params, args))
    imports = {}
    for line in lines[:at]:
        if line.startswith("from compiler.codegen."):
            module, names = line[len("from "):].split(" import ")
            imports[module] = set(names.split(", "))
    decorator = lines[at - 1]
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    local = {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}

    def repl(m):
        word = m.group(0)
        if word in rename:
            return rename[word]
        return prefix + word if word in local else word

    body = []
    for line in lines[at + 1:]:
        if not line.strip() or line.strip().startswith("#"):
            continue
        # the caller indents lines itself; one thread (a driver's BLAS keeps its own threads)
        line = _NAME.sub(repl, line)[4:].replace("numba.prange(", "range(")
        temporary = _TEMPORARY.fullmatch(line)
        if temporary is None:
            body.append(line)
            continue
        indent, name, numel, dtype = temporary.groups()
        body.append(f"{indent}p_{name} = {scratch.place(int(numel), dtype[3:])}")
        body.append(f"{indent}{name} = numba.carray(p_{name}, {numel}, {dtype})")
    return body, imports, "fastmath=" in decorator, "parallel=True" in decorator


def header(comment: str, abi: str, helpers: dict[str, set]) -> str:
    """The module header of native functions: what they import."""
    return "\n".join([
        f"# helpers: {HELPERS_HASH}",
        f"# abi: {abi}",
        f"# {comment}",
        "import numba",
        "import numpy as np",
        "from numba import types",
        "from compiler.runtime.native_ops import array_data as _array_data, byte_offset as _byte_offset, "
        "gemm as _gemm",
        *[f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(helpers.items())],
    ])


def function(name: str, body_lines: list[str], fastmath: bool) -> str:
    """One native function: `def name(arrays)` with `body_lines` (unindented), compiled with the
    kernels' fast-math flags if `fastmath`."""
    options = (f"fastmath={FASTMATH_OPTION}, " if fastmath else "") + "error_model='numpy'"
    body = "\n".join("    " + line for line in body_lines)
    return f"@numba.cfunc(types.void(types.voidptr), {options})\ndef {name}(arrays):\n{body}\n"


def abi(blas_int_bits: Optional[int]) -> str:
    """What the object code assumes of this process, named in every source (so in its hash)."""
    return f"tuple items at {native.TUPLE_ITEMS}, array data at {native.ARRAY_DATA}, " \
           f"blas ints {blas_int_bits or '-'} bits"


def obtain(name: str, head: str, functions: list[tuple[str, str]], what: str = "") -> Optional[list[Callable]]:
    """Callables for the native `functions` ((name, source text) each) under `head`, in order:
    loaded in this process before, loaded from the disk cache, or compiled (then stored). None if
    Numba cannot compile them (logged). `what` names them in the first-run notice."""
    entry = _loaded.get(name)
    if entry is not None:
        counters["cache_hits"] += 1
    else:
        source = "\n\n\n".join([head, *(text for _, text in functions)])
        if debug_level() >= 3:
            log(3, f"source of {name}:\n{source}")
        entry = _from_disk(name, source)
        if entry is None:
            with notice.compiling(what or name):
                entry = _compile(name, source, head, functions)
        if entry is None:
            return None
        _loaded[name] = entry
    return [native.caller(address) for address in entry[0]]


def _from_disk(name: str, source: str) -> Optional[tuple]:
    if not native.supported():
        return None
    start = time.perf_counter()
    addresses = native.load(native.object_path(cache_dir(), name), source)
    if addresses is None:
        return None
    record_compile(name, time.perf_counter() - start, hit=True)
    return addresses, None


def _compile(name: str, source: str, head: str, functions: list[tuple[str, str]]) -> Optional[tuple]:
    """Compile with Numba (sharing the work with the compile workers), store the object code and
    load it; elsewhere than Linux, run the module and take the cfuncs' addresses."""
    start = time.perf_counter()
    try:
        if native.supported():
            diskcache.write_source(cache_dir() / f"{name}.py", source)      # for readers
            objects = workers.compile_shared(head, functions)
        else:
            module = load_module(name, source)          # a cfunc compiles when its module runs
            cfuncs = [getattr(module, function_name) for function_name, _ in functions]
    except Exception as e:                  # code Numba cannot compile: the caller runs it otherwise
        log(0, f"{name} failed to compile ({type(e).__name__}: {str(e)[:300]}); "
               "running its kernels one by one instead")
        return None
    record_compile(name, time.perf_counter() - start, hit=False)
    if not native.supported():
        return [cfunc.address for cfunc in cfuncs], cfuncs
    path = native.object_path(cache_dir(), name)
    native.save(path, source, objects)
    addresses = native.load(path, source)
    if addresses is None:
        log(0, f"{name}: its object code could not be loaded; running its kernels one by one")
        return None
    return addresses, None
