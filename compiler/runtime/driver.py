"""Whole programs: a graph from input leaves to outputs, run by ONE generated native function.

`Program(inputs, outputs)` plans the graph like `realize` does (same cached schedule, same
kernels) and generates a *driver*: one `@numba.cfunc` whose body is every kernel's loops (pasted
in, locals renamed) and every matmul (a CBLAS `gemm` call on row-major or transposed 2-D blocks,
looping over batch dimensions) in order. A training step is then one native call.

The driver takes one argument, a tuple of numpy arrays: the inputs, the constants (realized leaves,
and the kernels' scalar arguments as one-element arrays, so the source holds no value), the outputs
(allocated by the Python wrapper, so a result is never overwritten by a later call), one scratch
buffer for the intermediates, the BLAS function table and, if a kernel checks indices, the error
slots (error code, value). It allocates nothing and raises nothing: a bad index computed at run
time is recorded (the first one in program order), every read and write stays inside its buffer,
and the wrapper raises the error of that check after the call, before it returns any output, so a
failed step installs nothing. Its object code is stored in the cache directory next to its source
(`compiler.runtime.native`), so a later process loads it with llvmlite without importing Numba.
The driver's name is the hash of its source, which contains every kernel it inlines, so a change
anywhere below gives a new driver.

Arrays inside the driver are flat (1-D) in the compute dtype (float16 is computed in float32);
`Program.__call__` converts at the edges. `Program.run_steps` is the same schedule run step by step
from Python: the fallback when a driver cannot be generated, and the timed path of
LAZYTORCH_DEBUG>=2.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import Callable, Optional

import numpy as np

from compiler import dtypes
from compiler.codegen.numba_cpu import compute_dtype, generate
from compiler.ir.kernel import KLoad, Kernel
from compiler.ir.node import Node, is_scalar_argument
from compiler.passes.fusion import KernelStep, Schedule
from compiler.passes.views import ShapeTracker, View
from compiler.runtime import blas as blas_threads
from compiler.runtime import native, native_source
from compiler.runtime.counters import log
from compiler.runtime.executor import for_kernel, run_step, run_timed, scalar_array

BLAS_DTYPES = ("float32", "float64")
_ERR = re.compile(r"(?<![.\w])err\[")         # a line that uses the error slots
SMALL_MATMUL = 4096
"""Matmuls of at most this many multiply-adds are loops in the driver: calling BLAS costs more."""
SEGMENT_LINES = 120
"""A driver is cut into functions of about this many lines. Numba's compile time grows faster than
the size of a function (its SSA reconstruction visits every block once per reassigned variable):
the MLP step's ~400 lines took 4.5 s as one function and 3.4 s as four (60 lines: 3.7 s, 200:
3.8 s; one process, load ~2.5). Each segment is one more ctypes call (~0.3 us) per step."""


class Program:
    """`outputs` as a function of the leaves `inputs` (placeholder nodes the caller binds arrays to).

    Every other leaf the graph reads (a constant buffer, a node realized earlier) is bound once, to
    its current value. Call with one array per input; returns one array per output.
    """

    def __init__(self, inputs: list[Node], outputs: list[Node]):
        from compiler.realize import plan      # realize imports the runtime: import when used
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        targets: list[Node] = []
        for node in self.outputs:
            if node.realized is None and all(node is not t for t in targets):
                targets.append(node)
        if targets:
            self.schedule, self.order = plan(targets)
        else:
            self.schedule, self.order = Schedule(), []
        # driver arguments: the inputs, then every other leaf as a constant (a scalar argument of
        # the kernels as its one-element array: the driver's source does not depend on its value)
        self.args: list[Node] = list(self.inputs)
        arg_index = {id(n): k for k, n in enumerate(self.args)}
        for node in self.order + self.outputs:
            if node.realized is not None and id(node) not in arg_index:
                arg_index[id(node)] = len(self.args)
                self.args.append(node)
        self.arg_index = arg_index
        # (apart from arg_index: a constant the caller asked for is also a computed output)
        self.scalar_index: dict[int, int] = {}
        for node in self.order:
            if is_scalar_argument(node) and id(node) not in self.scalar_index:
                self.scalar_index[id(node)] = len(self.args)
                self.args.append(node)
        self.constants = [for_kernel(n.realized) if n.realized is not None else scalar_array(n)
                          for n in self.args[len(self.inputs):]]
        self._f16_in = [k for k, n in enumerate(self.inputs) if n.dtype is dtypes.float16]
        self._f16_out = [k for k, n in enumerate(self.outputs) if n.dtype is dtypes.float16]
        # computed outputs, each written by the driver into an array the wrapper allocates
        self.out_slots: dict[int, int] = {}
        for node in self.outputs:
            if id(node) not in arg_index and id(node) not in self.out_slots:
                self.out_slots[id(node)] = len(self.out_slots)
        self.scratch = native_source.Scratch()     # intermediates' places in the scratch buffer
        self.checks: list = []          # Bounds of the error code k at position k - 1, all kernels
        self.uses_blas = False
        self.threaded_blas = False
        self.name = self.source = None
        self.first_call = True
        self.stepwise = False           # set if the driver fails to compile
        if self.schedule.steps:
            self.name, self.source = self._generate()
            self.driver = self._load()
        else:
            self.driver = self._leaf_outputs

    # -- running ---------------------------------------------------------------------------------
    def __call__(self, arrays: list) -> tuple:
        """Run the program on `arrays` (one per input); returns the output arrays."""
        arrays = [np.ascontiguousarray(a, _compute_np(n.dtype)) for a, n in zip(arrays, self.inputs)]
        self.first_call = False
        if self.stepwise:
            return self.run_steps(arrays)
        outs = self.driver(*arrays, *self.constants)
        if self._f16_out:
            outs = list(outs)
            for k in self._f16_out:
                outs[k] = outs[k].astype(np.float16)
        return outs

    def _leaf_outputs(self, *values):
        return tuple(values[self.arg_index[id(n)]] for n in self.outputs)

    def run_steps(self, arrays: list, timed: bool = False) -> tuple:
        """The same computation step by step from Python (no driver); `timed` logs every launch."""
        values: dict[int, np.ndarray] = {}
        for node, array in zip(self.args, list(arrays) + self.constants):
            if id(node) not in self.scalar_index:
                values[id(node)] = for_kernel(np.asarray(array))
        run = run_timed if timed else run_step
        for step in self.schedule.steps:
            scalars = step.kernel.scalar_slots if isinstance(step, KernelStep) else ()
            inputs = [scalar_array(self.order[i]) if j in scalars else values[id(self.order[i])]
                      for j, i in enumerate(step.inputs)]
            values[id(self.order[step.output])] = run(step, self.order, inputs)
        outs = tuple(values[id(n)].reshape(n.shape) for n in self.outputs)
        if self._f16_out:
            outs = tuple(o.astype(np.float16) if k in self._f16_out else o for k, o in enumerate(outs))
        return outs

    # -- compiling or loading the driver -----------------------------------------------------------
    def _load(self) -> Callable:
        """The Python wrapper around the native driver: loaded from this process, from the disk
        cache (no Numba), or compiled by Numba (and its object code stored)."""
        table = native.blas()
        if self.uses_blas and table is None:
            log(0, f"no CBLAS found: running {self.name} step by step")
            self.stepwise = True
            return self.run_steps
        kernels = sum(isinstance(step, KernelStep) for step in self.schedule.steps)
        what = (f"one program of {_count(kernels, 'kernel')} and {_count(len(self.schedule.steps) - kernels, 'matmul')}"
                f" in {_count(len(self._functions), 'segment')}")
        segments = native_source.obtain(self.name, self._header, self._functions, what)
        if segments is None:
            self.stepwise = True
            return self.run_steps
        return self._wrapper(segments, table)

    def _wrapper(self, segments: list, table) -> Callable:
        """`driver(*inputs, *constants) -> outputs` as straight-line Python: allocate the outputs,
        take a scratch buffer, call the segments."""
        env = {"_empty": np.empty, "_pool": [], "_u8": np.uint8,
               "_blas": table.table if table is not None else np.zeros(2, np.uint64),
               "_threads": blas_threads.set_threads, "_nthreads": blas_threads.threads_for(self.threaded_blas)}
        params = [f"a{k}" for k in range(len(self.args))]
        lines = [f"def driver({', '.join(params)}):"]
        slots = {}
        for node in self.outputs:
            slot = self.out_slots.get(id(node))
            if slot is not None and slot not in slots:
                slots[slot] = f"o{slot}"
                env[f"_s{slot}"], env[f"_d{slot}"] = tuple(node.shape), _compute_np(node.dtype)
                lines.append(f"    o{slot} = _empty(_s{slot}, _d{slot})")
        lines.append(f"    s = _pool.pop() if _pool else _empty({max(self.scratch.size, 1)}, _u8)")
        if self.uses_blas:
            lines.append("    _threads(_nthreads)")
        err = ", _err" if self.checks else ""
        lines.append(f"    arrays = ({', '.join(params + list(slots.values()))}, s, _blas{err})")
        for k, segment in enumerate(segments):
            env[f"_native{k}"] = segment
            lines.append(f"    _native{k}(arrays)")
        lines.append("    _pool.append(s)")
        if self.checks:
            env["_err"], env["_fail"] = np.zeros(2, np.int64), self._fail
            lines.append("    if _err[0]: _fail(_err)")
        returns = [slots[self.out_slots[id(n)]] if id(n) in self.out_slots else f"a{self.arg_index[id(n)]}"
                   for n in self.outputs]
        lines.append(f"    return ({', '.join(returns)},)")
        exec("\n".join(lines), env)
        return env["driver"]

    def _fail(self, err: np.ndarray):
        """Raise the error a kernel recorded in `err` (and clear it for the next call)."""
        code, value = int(err[0]), int(err[1])
        err[:] = 0
        raise self.checks[code - 1].exception(value)

    # -- code generation ---------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        """The driver's source: the steps in order, cut into segments of about SEGMENT_LINES lines,
        each a cfunc over the same tuple of arrays (the wrapper calls them one after the other)."""
        segments: list[list[str]] = [[]]
        declared: set[str] = set()          # arrays (and their pointers) the current segment has
        buffers: dict[str, tuple] = {}      # array name -> (pointer expression, numel, numpy dtype)
        flat: dict[int, str] = {}           # id(node) -> name of its flat array in the driver
        helpers: dict[str, set] = {}        # inlined kernels: module -> helper names they import
        fastmath = [False]
        scratch = self.scratch
        first_output = len(self.args)
        scratch_index = first_output + len(self.out_slots)

        def emit(line: str):
            segments[-1].append(line)

        def declare(name: str):
            if name not in declared:
                pointer, numel, np_dtype = buffers[name]
                emit(f"p_{name} = {pointer}")
                emit(f"{name} = numba.carray(p_{name}, {numel}, np.{np_dtype.name})")
                declared.add(name)

        def allocate(name: str, numel: int, dtype, node: Optional[Node] = None):
            """A flat array `name` (and its pointer `p_name`): an output array or scratch space."""
            np_dtype = compute_dtype(dtype).np_dtype
            slot = self.out_slots.get(id(node)) if node is not None else None
            pointer = f"_array_data(arrays, {first_output + slot})" if slot is not None else \
                scratch.place(numel, np_dtype)
            buffers[name] = (pointer, numel, np_dtype)
            declare(name)

        def var(node: Node) -> str:
            name = flat.get(id(node))
            if name is None:                # a leaf: its argument
                k = self.arg_index[id(node)]
                name = flat[id(node)] = f"x{k}"
                buffers[name] = (f"_array_data(arrays, {k})", node.numel, compute_dtype(node.dtype).np_dtype)
            declare(name)
            return name

        def scalar(node: Node) -> str:
            """A kernel's scalar argument: the constant's one-element array among the arguments."""
            k = self.scalar_index[id(node)]
            name = f"x{k}"
            buffers[name] = (f"_array_data(arrays, {k})", 1, compute_dtype(node.dtype).np_dtype)
            declare(name)
            return name

        def inline(source: str, args: list[str], prefix: str):
            body, imports, uses_fastmath, _ = native_source.inline(
                source, args, prefix, scratch)
            segments[-1].extend(body)
            for module, names in imports.items():
                helpers.setdefault(module, set()).update(names)
            fastmath[0] |= uses_fastmath

        for index, step in enumerate(self.schedule.steps):
            if len(segments[-1]) >= SEGMENT_LINES:
                segments.append([])
                declared.clear()
            node = self.order[step.output]
            out = flat[id(node)] = f"b{step.output}"
            if isinstance(step, KernelStep):
                args = [scalar(self.order[i]) if j in step.kernel.scalar_slots else var(self.order[i])
                        for j, i in enumerate(step.inputs)]
                allocate(out, node.numel, step.kernel.out_dtype, node)
                if node.numel:
                    emit(f"# {step.name}")
                    if step.kernel.checks:      # its codes follow the kernels' before it
                        args += ["err", str(len(self.checks))]
                        self.checks += step.kernel.checks
                    inline(step.source, [out] + args, f"k{index}_")
                continue
            operands = []
            for j, (i, view) in enumerate(zip(step.inputs, step.views)):
                base = self.order[i]
                if _layout(view) is None:   # not a (transposed) matrix: make it contiguous first
                    name, source = _copy_kernel(base, view)
                    copy = f"c{step.output}_{j}"
                    source_array = var(base)
                    allocate(copy, math.prod(view.shape), base.dtype)
                    emit(f"# {name}")
                    inline(source, [copy, source_array], f"k{index}_{j}_")
                    operands.append((copy, View.contiguous(view.shape)))
                else:
                    operands.append((var(base), view))
            allocate(out, node.numel, node.dtype, node)
            matmul, gemm = _matmul_lines(out, node, operands)
            segments[-1].extend(matmul)
            self.uses_blas |= gemm
            if gemm and 2 * node.numel * step.views[0].shape[-1] >= blas_threads.THREADED_MIN_FLOPS:
                self.threaded_blas = True
        bodies = []
        for lines in segments:
            prologue = []
            if any("scratch" in line for line in lines):
                prologue.append(f"scratch = _array_data(arrays, {scratch_index})")
            if any("blas[" in line for line in lines):
                prologue.append(f"blas = numba.carray(_array_data(arrays, {scratch_index + 1}), 2, np.uint64)")
            if any(_ERR.search(line) for line in lines):
                prologue.append(f"err = numba.carray(_array_data(arrays, {scratch_index + 2}), 2, np.int64)")
            bodies.append(prologue + lines)
        abi = native_source.abi(native.blas().int_bits if self.uses_blas else None)
        digest = hashlib.sha1("\n".join([abi, *("\n".join(body) for body in bodies)]).encode()).hexdigest()[:16]
        name = f"d_program_{digest}"
        self.segments = [f"{name}_{i}" for i in range(len(bodies))]
        self._header = native_source.header(
            "one training step (or any whole program): every kernel and matmul in order, in "
            f"{len(bodies)} segment{'s' if len(bodies) > 1 else ''}", abi, helpers)
        self._functions = [(segment, native_source.function(segment, body, fastmath[0]))
                           for segment, body in zip(self.segments, bodies)]
        return name, "\n\n\n".join([self._header, *(text for _, text in self._functions)])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _compute_np(dtype) -> np.dtype:
    return compute_dtype(dtype).np_dtype


# ---------------------------------------------------------------------------------------------
# matmul

def _layout(view: View) -> Optional[str]:
    """'C' when each matrix of the view is a row-major block, 'T' when it is a column-major one
    (a transposed row-major block), None otherwise (masked, flipped, or gapped strides)."""
    if view.mask is not None or any(s < 0 for s in view.strides):
        return None
    *_, r, c = view.shape
    *_, sr, sc = view.strides
    if (c == 1 or sc == 1) and (r == 1 or sr == c):
        return "C"
    if (r == 1 or sr == 1) and (c == 1 or sc == r):
        return "T"
    return None


def _pointer(name: str, offset: str, itemsize: int) -> str:
    """The address of element `offset` of the driver's flat array `name`."""
    return f"p_{name}" if offset == "0" else f"_byte_offset(p_{name}, ({offset}) * {itemsize})"


def _block(name: str, view: View, offset: str, dtype: np.dtype) -> str:
    """The 2-D matrix of `view` starting at flat `offset` of the array `name` (a view: no copy,
    no check that could raise)."""
    *_, r, c = view.shape
    pointer = _pointer(name, offset, dtype.itemsize)
    if _layout(view) == "C":
        return f"numba.carray({pointer}, ({r}, {c}), np.{dtype.name})"
    return f"numba.carray({pointer}, ({c}, {r}), np.{dtype.name}).T"


def _matmul_lines(out: str, node: Node, operands) -> tuple[list[str], bool]:
    """The lines computing `out` = a @ b (batch dimensions looped), and whether they call BLAS."""
    (a, va), (b, vb) = operands
    *batch, r, m = node.shape
    k = va.shape[-1]
    np_dtype = compute_dtype(node.dtype).np_dtype
    dtype, size = np_dtype.name, np_dtype.itemsize
    if node.numel == 0:
        return [], False
    if k == 0:
        return [f"{out}[:] = 0"], False
    gemm = dtype in BLAS_DTYPES and r * m * k > SMALL_MATMUL
    lines = []
    indent = ""
    offsets = [str(va.offset), str(vb.offset)]
    out_offset = "0"
    for d, n in enumerate(batch):
        lines.append(f"{indent}for j{d} in range({n}):")
        indent += "    "
        offsets = [f"{o} + j{d} * {v.strides[d]}" if v.strides[d] else o for o, v in zip(offsets, (va, vb))]
        out_offset = f"({out_offset}) * {n} + j{d}" if d else f"j{d}"
    if gemm:
        def pointer(name, offset):
            return _pointer(name, offset, size)
        trans_a, lda = (111, k) if _layout(va) == "C" else (112, r)     # CblasNoTrans / CblasTrans
        trans_b, ldb = (111, m) if _layout(vb) == "C" else (112, k)
        c = pointer(out, f"({out_offset}) * {r * m}" if batch else "0")
        which = BLAS_DTYPES.index(dtype)
        lines.append(f"{indent}_gemm(blas[{which}], {trans_a}, {trans_b}, {r}, {m}, {k}, np.{dtype}(1.0), "
                     f"{pointer(a, offsets[0])}, {lda}, {pointer(b, offsets[1])}, {ldb}, np.{dtype}(0.0), {c}, {m})")
        return lines, True
    # integer matmuls (no BLAS), and tiny float ones (a BLAS call costs more): loops, floats summed
    # in float64
    out_block = _block(out, View.contiguous((r, m)), f"({out_offset}) * {r * m}" if batch else "0", np_dtype)
    left, right = _block(a, va, offsets[0], np_dtype), _block(b, vb, offsets[1], np_dtype)
    ma, mb, mo, acc = (f"{x}_{out}" for x in ("ma", "mb", "mo", "acc"))
    init = "0.0" if dtype in BLAS_DTYPES else "0"
    lines += [f"{indent}{ma} = {left}", f"{indent}{mb} = {right}", f"{indent}{mo} = {out_block}",
              f"{indent}for p in range({r}):", f"{indent}    for q in range({m}):",
              f"{indent}        {acc} = {init}", f"{indent}        for s in range({k}):",
              f"{indent}            {acc} += {ma}[p, s] * {mb}[s, q]", f"{indent}        {mo}[p, q] = {acc}"]
    return lines, False


def _copy_kernel(base: Node, view: View) -> tuple[str, str]:
    """A kernel writing `view` of `base` contiguously (a matmul operand BLAS cannot read)."""
    dtype = base.dtype
    kernel = Kernel("loop", tuple(view.shape), dtype, [dtype], full_shape=tuple(view.shape), mode="map",
                    expr=KLoad(0, ShapeTracker((view,)), dtype))
    return generate(kernel)
