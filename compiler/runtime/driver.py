"""Whole programs: a graph from input leaves to outputs, run by ONE generated Numba function.

`Program(inputs, outputs)` plans the graph like `realize` does (same cached schedule, same
kernels) and generates a *driver*: an `njit` function that takes the input arrays, allocates the
intermediates, calls each kernel (kernels are Numba dispatchers, called from the driver as globals
of its module) and each matmul (`np.dot` on contiguous or transposed 2-D blocks, looping over batch
dimensions), and returns the output arrays. A training step is then one native call.

The driver's source is written to the cache directory like a kernel's, so Numba's disk cache keeps
it; its name is the hash of its source, which names every kernel it calls (and kernel names hash
their own source), so a change anywhere below gives a new driver file.

Arrays inside the driver are flat (1-D) in the compute dtype (float16 is computed in float32);
`Program.__call__` converts at the edges. `Program.run_steps` is the same schedule run step by step
from Python: the fallback when a driver cannot be generated, and the timed path of
LAZYTORCH_DEBUG>=2.
"""
from __future__ import annotations

import ast
import hashlib
import math
import re
import time
from typing import Optional

import numpy as np

from compiler import dtypes
from compiler.codegen.numba_cpu import FASTMATH_FLAGS, HELPERS_HASH, compute_dtype, generate
from compiler.ir.kernel import KLoad, Kernel
from compiler.ir.node import Node
from compiler.passes.fusion import KernelStep, MatmulStep, Schedule
from compiler.passes.views import ShapeTracker, View
from compiler.runtime.compile import call, compiled, load_kernel
from compiler.runtime.counters import counters, log
from compiler.runtime.executor import launch_log, strided

BLAS_DTYPES = ("float32", "float64")
PARALLEL_DRIVER = False
"""Keep the kernels' `prange` loops in an inlined driver. Numba's parfor passes on one large
function cost more than the threads gain on small machines (MLP step: 12 s of compile instead of
6.7 s), so by default a driver is one thread (BLAS keeps its own threads)."""
SMALL_MATMUL = 4096
"""Matmuls of at most this many multiply-adds are loops in the driver: calling BLAS costs more."""
INLINE_KERNELS = True
"""Paste each kernel's body into the driver (one function for Numba to compile: the kernels'
fixed compile costs are paid once, and their code is not optimized twice, as it is when the driver
calls them and Numba links their code into its module) instead of calling the kernel functions."""


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
        # driver arguments: the inputs, then every other leaf as a constant
        self.args: list[Node] = list(self.inputs)
        arg_index = {id(n): k for k, n in enumerate(self.args)}
        for node in self.order + self.outputs:
            if node.realized is not None and id(node) not in arg_index:
                arg_index[id(node)] = len(self.args)
                self.args.append(node)
        self.arg_index = arg_index
        self.constants = [_to_compute(n.realized) for n in self.args[len(self.inputs):]]
        self._f16_in = [k for k, n in enumerate(self.inputs) if n.dtype is dtypes.float16]
        self._f16_out = [k for k, n in enumerate(self.outputs) if n.dtype is dtypes.float16]
        self.copy_kernels: dict[int, tuple[str, object]] = {}   # (step index, operand) -> kernel
        self.driver = None
        self.name = self.source = None
        self.first_call = True
        self.stepwise = False           # set if the driver fails to compile
        if self.schedule.steps:
            self.name, self.source = self._generate()
            self.driver = load_kernel(self.name, self.source)

    # -- running ---------------------------------------------------------------------------------
    def __call__(self, arrays: list) -> tuple:
        """Run the program on `arrays` (one per input, C-contiguous); returns the output arrays."""
        if self._f16_in:
            arrays = list(arrays)
            for k in self._f16_in:
                arrays[k] = arrays[k].astype(np.float32)
        if self.stepwise:
            return self.run_steps(arrays)
        if self.driver is None:
            outs = self._leaf_outputs(arrays)
        elif self.first_call:
            outs = self._first_call(arrays)
        else:
            outs = self.driver(*arrays, *self.constants)
        if self._f16_out:
            outs = list(outs)
            for k in self._f16_out:
                outs[k] = outs[k].astype(np.float16)
        return outs

    def _first_call(self, arrays):
        """The driver's first call compiles it (or loads it from disk): count and log that, and the
        kernels compiled with it as its callees."""
        kernels = [step.function for step in self.schedule.steps if isinstance(step, KernelStep)]
        kernels += [fn for _, fn in self.copy_kernels.values()]
        before = {id(fn): (len(fn.signatures), sum(fn._cache_hits.values())) for fn in kernels}
        try:
            if self.driver.signatures:      # compiled already, for another program of the same source
                outs = self.driver(*arrays, *self.constants)
            else:
                outs = compiled(self.driver, lambda: self.driver(*arrays, *self.constants))
        except Exception as e:              # a driver Numba cannot compile: never fail the program
            log(0, f"driver {self.name} failed to compile ({type(e).__name__}: {str(e)[:300]}); "
                   "running its kernels one by one instead")
            self.driver, self.stepwise = None, True
            self.first_call = False
            return self.run_steps(arrays)
        for fn in {id(f): f for f in kernels}.values():
            n_sigs, hits = before[id(fn)]
            if len(fn.signatures) > n_sigs:     # compiled (or loaded) as a callee of the driver
                counters["disk_cache_hits" if sum(fn._cache_hits.values()) > hits else "kernel_compiles"] += 1
        self.first_call = False
        return outs

    def _leaf_outputs(self, arrays):
        values = list(arrays) + self.constants
        return tuple(values[self.arg_index[id(n)]] for n in self.outputs)

    def run_steps(self, arrays: list, timed: bool = False) -> tuple:
        """The same computation step by step from Python (no driver); `timed` logs every launch."""
        values: dict[int, np.ndarray] = {}
        for node, array in zip(self.args, list(arrays) + self.constants):
            values[id(node)] = _to_compute(np.asarray(array))
        for step in self.schedule.steps:
            start = time.perf_counter()
            inputs = [values[id(self.order[i])] for i in step.inputs]
            node = self.order[step.output]
            if isinstance(step, MatmulStep):
                a, b = (strided(x, v) for x, v in zip(inputs, step.views))
                result = np.ascontiguousarray(np.matmul(a, b))
                counters["library_calls"] += 1
                name = "matmul"
            else:
                result = np.empty(step.kernel.out_shape, compute_dtype(step.kernel.out_dtype).np_dtype)
                if result.size:
                    call(step.function, [result.reshape(-1)] + [x.reshape(-1) for x in inputs])
                    counters["kernel_launches"] += 1
                name = step.name
            if timed:
                launch_log(name, time.perf_counter() - start, inputs + [result])
            values[id(node)] = result
        outs = tuple(values[id(n)].reshape(n.shape) for n in self.outputs)
        if self._f16_out:
            outs = tuple(o.astype(np.float16) if k in self._f16_out else o for k, o in enumerate(outs))
        return outs

    # -- code generation ---------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        lines: list[str] = []
        kernels: dict[str, None] = {}
        flat: dict[int, str] = {}           # id(node) -> name of its flat array in the driver
        helpers: dict[str, set] = {}        # inlined kernels: module -> helper names they import
        flags = {"parallel": False, "fastmath": False}

        def call(name: str, source: str, args: list[str], prefix: str):
            if not INLINE_KERNELS:
                kernels[name] = None
                lines.append(f"{name}({', '.join(args)})")
                return
            body, imports, parallel, fastmath = _inline(source, args, prefix)
            lines.append(f"# {name}")
            lines.extend(body)
            for module, names in imports.items():
                helpers.setdefault(module, set()).update(names)
            flags["parallel"] |= parallel
            flags["fastmath"] |= fastmath

        def var(node: Node) -> str:
            name = flat.get(id(node))
            if name is None:                # a leaf: flatten its argument on first use
                name = flat[id(node)] = f"x{self.arg_index[id(node)]}"
                lines.append(f"{name} = a{self.arg_index[id(node)]}.reshape(-1)")
            return name

        for index, step in enumerate(self.schedule.steps):
            node = self.order[step.output]
            out = flat[id(node)] = f"b{step.output}"
            if isinstance(step, KernelStep):
                dtype = compute_dtype(step.kernel.out_dtype).np_dtype.name
                lines.append(f"{out} = np.empty({node.numel}, np.{dtype})")
                args = [out] + [var(self.order[i]) for i in step.inputs]
                if node.numel:
                    call(step.name, step.source, args, f"k{index}_")
            else:
                operands = []
                for j, (i, view) in enumerate(zip(step.inputs, step.views)):
                    base = self.order[i]
                    if _layout(view) is None:   # not a (transposed) matrix: make it contiguous first
                        name, source = _copy_kernel(base, view)
                        self.copy_kernels[(index, j)] = (name, load_kernel(name, source))
                        copy = f"c{step.output}_{j}"
                        dtype = compute_dtype(base.dtype).np_dtype.name
                        lines.append(f"{copy} = np.empty({math.prod(view.shape)}, np.{dtype})")
                        call(name, source, [copy, var(base)], f"k{index}_{j}_")
                        operands.append((copy, View.contiguous(view.shape)))
                    else:
                        operands.append((var(base), view))
                lines.extend(_matmul_lines(out, node, operands))
        outs = []
        for node in self.outputs:
            if id(node) in self.arg_index:
                outs.append(f"a{self.arg_index[id(node)]}")
            else:
                outs.append(f"{flat[id(node)]}.reshape({tuple(node.shape)!r})")
        lines.append(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        params = ", ".join(f"a{k}" for k in range(len(self.args)))
        body = "\n".join("    " + line for line in lines)
        digest = hashlib.sha1(f"{params}\n{body}".encode()).hexdigest()[:16]
        name = f"d_program_{digest}"
        options = "cache=True"
        if INLINE_KERNELS:
            fastmath = "{" + ", ".join(repr(f) for f in sorted(FASTMATH_FLAGS)) + "}"
            options = (f"fastmath={fastmath}, " if flags["fastmath"] else "") + \
                f"parallel={flags['parallel']}, error_model='numpy', cache=True"
        source = "\n".join([
            f"# helpers: {HELPERS_HASH}",
            "# one training step (or any whole program): every kernel and matmul in order",
            "import numba",
            "import numpy as np",
            *[f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(helpers.items())],
            *(["from compiler.runtime.compile import kernel as _kernel", ""] if kernels else []),
            *[f"{k} = _kernel({k!r})" for k in kernels],
            "",
            "",
            f"@numba.njit({options})",
            f"def {name}({params}):",
            body,
            "",
        ])
        return name, source


_NAME = re.compile(r"(?<![.\w])[A-Za-z_]\w*")


def _inline(source: str, args: list[str], prefix: str):
    """The body of a generated kernel function, to paste into the driver: its parameters renamed
    to the driver's arrays, its locals prefixed (so kernels never share a variable). Returns
    (lines, {module: helper names}, parallel, fastmath)."""
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

    body = [_NAME.sub(repl, line) for line in lines[at + 1:] if line.strip() and not line.strip().startswith("#")]
    body = [line[4:] for line in body]      # the driver indents its lines itself
    parallel = "parallel=True" in decorator and PARALLEL_DRIVER
    if not parallel:
        body = [line.replace("numba.prange(", "range(") for line in body]
    return body, imports, parallel, "fastmath=" in decorator


def _to_compute(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype == np.float16 else array


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


def _block(name: str, view: View, offset: str) -> str:
    """The 2-D matrix of `view` starting at flat `offset` of the array `name`."""
    *_, r, c = view.shape
    end = f"{offset} + {r * c}" if offset != "0" else f"{r * c}"
    if _layout(view) == "C":
        return f"{name}[{offset}:{end}].reshape({r}, {c})"
    return f"{name}[{offset}:{end}].reshape({c}, {r}).T"


def _matmul_lines(out: str, node: Node, operands) -> list[str]:
    (a, va), (b, vb) = operands
    *batch, r, m = node.shape
    k = va.shape[-1]
    dtype = compute_dtype(node.dtype).np_dtype.name
    lines = [f"{out} = np.zeros({node.numel}, np.{dtype})" if k == 0 or dtype not in BLAS_DTYPES
             else f"{out} = np.empty({node.numel}, np.{dtype})"]
    if node.numel == 0 or k == 0:
        return lines
    indent = ""
    offsets = [str(va.offset), str(vb.offset)]
    out_offset = "0"
    for d, n in enumerate(batch):
        lines.append(f"{indent}for j{d} in range({n}):")
        indent += "    "
        offsets = [f"{o} + j{d} * {v.strides[d]}" if v.strides[d] else o for o, v in zip(offsets, (va, vb))]
        out_offset = f"({out_offset}) * {n} + j{d}" if d else f"j{d}"
    out_block = f"{out}[{out_offset} * {r * m}:{out_offset} * {r * m} + {r * m}].reshape({r}, {m})" if batch \
        else f"{out}.reshape({r}, {m})"
    left, right = _block(a, va, offsets[0]), _block(b, vb, offsets[1])
    if dtype in BLAS_DTYPES and r * m * k > SMALL_MATMUL:
        lines.append(f"{indent}np.dot({left}, {right}, {out_block})")
        return lines
    # integer and bool matmuls (no BLAS), and tiny float ones (a BLAS call costs more): loops,
    # floats summed in float64
    ma, mb, mo, acc = (f"{x}_{out}" for x in ("ma", "mb", "mo", "acc"))
    init = "0.0" if dtype in BLAS_DTYPES else f"{mo}[p, q]"
    lines += [f"{indent}{ma} = {left}", f"{indent}{mb} = {right}", f"{indent}{mo} = {out_block}",
              f"{indent}for p in range({r}):", f"{indent}    for q in range({m}):",
              f"{indent}        {acc} = {init}", f"{indent}        for s in range({k}):",
              f"{indent}            {acc} += {ma}[p, s] * {mb}[s, q]", f"{indent}        {mo}[p, q] = {acc}"]
    return lines


def _copy_kernel(base: Node, view: View) -> tuple[str, str]:
    """A kernel writing `view` of `base` contiguously (a matmul operand BLAS cannot read)."""
    dtype = base.dtype
    kernel = Kernel("loop", tuple(view.shape), dtype, [dtype], full_shape=tuple(view.shape), mode="map",
                    expr=KLoad(0, ShapeTracker((view,)), dtype))
    return generate(kernel)
