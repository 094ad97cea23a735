"""Run a schedule: launch each kernel or library call in order over numpy buffers."""
from __future__ import annotations

import functools
import math
import os
import time
from typing import Optional

import numpy as np

from compiler import dtypes
from compiler.codegen.numba_cpu import compute_dtype
from compiler.ir.node import Node, forget_inputs
from compiler.ir.ops import Op
from compiler.passes.fusion import KernelStep, MatmulStep, Schedule
from compiler.passes.views import View
from compiler.runtime import blas, eager
from compiler.runtime import counters as _counters
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


BANDWIDTH_MIN_BYTES = 1 << 20
"""A launch's GB/s is printed only when it moves at least this much: below, the call's fixed cost
(a few microseconds) is most of its time, and "0.00 GB/s" says nothing about the kernel."""


def launch_log(step, seconds: float, arrays) -> None:
    """LAZYTORCH_DEBUG>=2: one line per kernel launch or library call, with its time, and for a
    kernel that moves enough memory its bandwidth (a matmul's time is arithmetic, not memory)."""
    text = f"launch {getattr(step, 'name', 'matmul')}: {seconds * 1e6:.1f} us"
    moved = sum(a.nbytes for a in arrays)
    if isinstance(step, KernelStep) and moved >= BANDWIDTH_MIN_BYTES:
        text += f", {moved / max(seconds, 1e-9) / 1e9:.2f} GB/s"
    log(2, text)


def run_timed(step, order: list[Node], inputs: list, profile: Optional[dict] = None) -> np.ndarray:
    """`run_step`, timed without the compile (or disk load) a first launch pays: that time is the
    compile's, logged with it. Logged at LAZYTORCH_DEBUG>=2, added to `profile` (`counters.profile`
    for kernels run outside a program's driver)."""
    if isinstance(step, KernelStep) and math.prod(step.kernel.out_shape) and eager.runner(step, order) is None:
        kernel_function(step)           # (a Numba dispatcher: compiled at its first call, timed apart)
    compiling = _counters.compile_seconds[0]
    start = time.perf_counter()
    result = run_step(step, order, inputs)
    seconds = max(0.0, time.perf_counter() - start - (_counters.compile_seconds[0] - compiling))
    if debug_level() >= 2:
        launch_log(step, seconds, inputs + [result])
    if profile is not None and isinstance(step, KernelStep):
        entry = profile.setdefault(step.name, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    return result


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
        # a kernel that checks indices records the first bad one here: (error code, value)
        err = np.zeros(2, np.int64) if kernel.checks else None
        run = eager.runner(step, order)
        if run is not None:
            run(result, inputs, err)
        else:
            call(kernel_function(step), [result.reshape(-1)] + [x.reshape(-1) for x in inputs] +
                 ([err, 0] if err is not None else []))
        counters["kernel_launches"] += 1
        if err is not None and err[0]:
            bounds = kernel.checks[err[0] - 1]
            error = bounds.exception(int(err[1]))
            # what failed, for the caller to stop computing what reads it: the kernel's node, and
            # the check (fused into every kernel that uses the index, so maybe others too)
            error.failed_node, error.failed_check = order[step.output], bounds
            raise error
    return result


def execute(schedule: Schedule, order: list[Node]) -> None:
    """Run every step; each produced node gets its value in `node.realized`."""
    profile = _counters.profile
    timed = debug_level() >= 2 or profile is not None
    for step in schedule.steps:
        node = order[step.output]
        inputs = step_inputs(step, order)
        result = run_timed(step, order, inputs, profile) if timed else run_step(step, order, inputs)
        if isinstance(step, KernelStep) and step.kernel.out_dtype is dtypes.float16:
            with np.errstate(over="ignore"):        # overflow gives inf, as in torch
                result = result.astype(np.float16)
        node.realized = result
        if node.op is Op.DETACH:
            forget_inputs(node)
