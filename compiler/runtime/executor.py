"""Run a schedule: launch each kernel or library call in order over numpy buffers."""
from __future__ import annotations

import functools
import os
import time

import numpy as np

from compiler import dtypes
from compiler.codegen.numba_cpu import compute_dtype
from compiler.ir.node import Node, forget_inputs
from compiler.ir.ops import Op
from compiler.passes.fusion import KernelStep, MatmulStep, Schedule
from compiler.passes.views import View
from compiler.runtime import blas, eager
from compiler.runtime.compile import call, kernel_function
from compiler.runtime.counters import counters, debug_level, log

# Kernels with parallel loops run on Numba's OpenMP threads. By default GNU OpenMP threads spin at
# the end of a parallel loop; when other processes hold the cores, the spinning thread keeps its
# core from the thread it waits for. A small CNN training step took 71 ms that way on 2 busy cores,
# 11 ms with waiting threads asleep (and 11 ms on one thread); big kernels did not get slower
# (4M-element map 4.4 ms both ways). Read by OpenMP when Numba first loads it; the user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def strided(base: np.ndarray, view: View) -> np.ndarray:
    """A numpy view of the contiguous array `base` through `view` (no copy; the ndarray
    constructor costs 0.7 us where `as_strided` costs 4)."""
    item = base.itemsize
    return np.ndarray(view.shape, base.dtype, base, view.offset * item, tuple(s * item for s in view.strides))


@functools.lru_cache(maxsize=4096)
def _scalar_array(arg: tuple, dtype) -> np.ndarray:
    return np.array([arg[1]], compute_dtype(dtype).np_dtype)


def scalar_array(node: Node) -> np.ndarray:
    """The value of a constant read as a scalar argument: a one-element array in the compute dtype
    (cached by value: kernels never write their inputs)."""
    return _scalar_array(node.arg, node.dtype)


def step_inputs(step, order: list[Node]) -> list:
    """The arrays filling a step's input slots, as `run_step` takes them: realized buffers (a
    kernel's float16 ones as float32), and scalar arguments' values."""
    inputs = [order[i].realized for i in step.inputs]
    if isinstance(step, KernelStep):
        # only the slots that need it: a kernel may have dozens of scalar arguments, and a Python
        # call per slot per launch showed (a 1000-op chain realized 10% slower)
        groups = getattr(step, "scalar_groups", None)
        if groups is None:
            groups, half = _slot_groups(step)
        else:
            half = step.half_slots
        for position, slots in groups:          # (one value, often used in many slots)
            node = order[position]
            value = _scalar_array(node.arg, node.dtype)
            for j in slots:
                inputs[j] = value
        for j in half:
            inputs[j] = inputs[j].astype(np.float32)
    return inputs


def _slot_groups(step: KernelStep) -> tuple:
    """(the scalar argument slots grouped by constant, the float16 buffer slots) of a step, kept
    on it (`scalar_groups`, `half_slots`)."""
    kernel = step.kernel
    groups: dict[int, list[int]] = {}
    for j in kernel.scalar_slots:
        groups.setdefault(step.inputs[j], []).append(j)
    step.scalar_groups = tuple((position, tuple(slots)) for position, slots in groups.items())
    step.half_slots = tuple(j for j, d in enumerate(kernel.input_dtypes)
                            if d is dtypes.float16 and j not in kernel.scalar_slots)
    return step.scalar_groups, step.half_slots


def for_kernel(array: np.ndarray) -> np.ndarray:
    """A realized buffer as kernels read it: C-contiguous (always), float16 computed in float32."""
    return array.astype(np.float32) if array.dtype == np.float16 else array


def launch_log(name: str, seconds: float, arrays) -> None:
    """LAZYTORCH_DEBUG>=2: one line per kernel launch or library call, with its time and GB/s."""
    moved = sum(a.nbytes for a in arrays)
    log(2, f"launch {name}: {seconds * 1e6:.1f} us, {moved / max(seconds, 1e-9) / 1e9:.2f} GB/s")


def run_step(step, order: list[Node], inputs: list) -> np.ndarray:
    """One step's result from its input arrays (a kernel's in the compute dtype, see
    `step_inputs`), in the compute dtype (float16 as float32)."""
    if isinstance(step, MatmulStep):
        a, b = (strided(x, v) for x, v in zip(inputs, step.views))
        counters["library_calls"] += 1
        return blas.matmul(a, b)
    kernel = step.kernel
    result = np.empty(kernel.out_shape, compute_dtype(kernel.out_dtype).np_dtype)
    if result.size:
        run = eager.runner(step, order)
        if run is not None:
            run(result, inputs)
        else:
            call(kernel_function(step), [result.reshape(-1)] + [x.reshape(-1) for x in inputs])
        counters["kernel_launches"] += 1
    return result


def execute(schedule: Schedule, order: list[Node]) -> None:
    """Run every step; each produced node gets its value in `node.realized`."""
    timed = debug_level() >= 2
    for step in schedule.steps:
        start = time.perf_counter() if timed else 0.0
        node = order[step.output]
        inputs = step_inputs(step, order)
        result = run_step(step, order, inputs)
        if isinstance(step, KernelStep) and step.kernel.out_dtype is dtypes.float16:
            with np.errstate(over="ignore"):        # overflow gives inf, as in torch
                result = result.astype(np.float16)
        if timed:
            launch_log(getattr(step, "name", "matmul"), time.perf_counter() - start, inputs + [result])
        node.realized = result
        if node.op is Op.DETACH:
            forget_inputs(node)
