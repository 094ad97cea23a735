"""Kernels run on their own (`realize` outside a jitted function) as native functions.

A kernel's generated source is an `@numba.njit` function over flat arrays. Run through its Numba
dispatcher, every process first pays Numba's start-up (0.5-0.8 s: importing Numba, its CPU target,
scipy.linalg) even when the kernel is in the disk cache. So a kernel is run as a one-kernel native
function instead (`compiler.runtime.native_source`: the same body in a `cfunc` over a tuple of
arrays, object code cached and loaded with llvmlite), which a warm process loads in about a
millisecond.

Kernels whose loops run in parallel (`numba.prange`, large kernels) keep their dispatcher: their
object code calls Numba's threading layer, which only a process that imported Numba has.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Optional

import numpy as np

from compiler.codegen.numba_cpu import compute_dtype
from compiler.ir.node import Node
from compiler.passes.fusion import KernelStep
from compiler.runtime import native, native_source

_NOT_NATIVE = object()


def runner(step: KernelStep, order: list[Node]) -> Optional[Callable]:
    """`run(out, inputs, err)` for `step` as a native function (compiled or loaded on first use), or
    None where the kernel runs through Numba (parallel loops, no native code on this platform, or a
    kernel Numba cannot compile as a cfunc). `err`: where a kernel that checks indices records the
    first bad one (see `compiler.codegen.numba_cpu._Emitter.guard`), None for the others."""
    run = getattr(step, "native", None)
    if run is None:
        run = step.native = _build(step, order) or _NOT_NATIVE
    return None if run is _NOT_NATIVE else run


def _build(step: KernelStep, order: list[Node]) -> Optional[Callable]:
    if not native.supported():
        return None
    nodes = [order[step.output]] + [order[i] for i in step.inputs]
    names = ["out"] + [f"in{k}" for k in range(len(step.inputs))]
    checks = ["err", "0"] if step.kernel.checks else []       # (the kernel's error codes from 1)
    scratch = native_source.Scratch()
    body, imports, fastmath, parallel = native_source.inline(step.source, names + checks, "k_", scratch)
    if parallel:
        return None
    prologue = []
    for k, (name, node) in enumerate(zip(names, nodes)):
        np_dtype = compute_dtype(node.dtype).np_dtype
        numel = 1 if k - 1 in step.kernel.scalar_slots else node.numel     # (a scalar argument)
        prologue += [f"p_{name} = _array_data(arrays, {k})",
                     f"{name} = numba.carray(p_{name}, {numel}, np.{np_dtype.name})"]
    if scratch.size:
        prologue.insert(0, f"scratch = _array_data(arrays, {len(names)})")
    if checks:
        prologue.append(f"err = numba.carray(_array_data(arrays, {len(names) + bool(scratch.size)}), 2, np.int64)")
    abi = native_source.abi(None)
    digest = hashlib.sha1("\n".join([abi, *prologue, *body]).encode()).hexdigest()[:16]
    name = f"n_{step.name}_{digest}"
    head = native_source.header(f"kernel {step.name}, run on its own", abi, imports)
    functions = native_source.obtain(name, head, [(name, native_source.function(name, prologue + body, fastmath))],
                                     f"kernels for eager operations, now {step.name}")
    if functions is None:
        return None
    function = functions[0]
    size = scratch.size
    if size and checks:
        def run(out: np.ndarray, inputs: list, err: np.ndarray) -> None:
            function((out, *inputs, np.empty(size, np.uint8), err))
    elif size:
        def run(out: np.ndarray, inputs: list, err: None) -> None:
            function((out, *inputs, np.empty(size, np.uint8)))
    elif checks:
        def run(out: np.ndarray, inputs: list, err: np.ndarray) -> None:
            function((out, *inputs, err))
    else:
        def run(out: np.ndarray, inputs: list, err: None) -> None:
            function((out, *inputs))
    return run
