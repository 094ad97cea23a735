"""`lazytorch.explain`: what the compiler made of a function or a tensor, in readable form.

    report = lazytorch.explain(train_step, x, y)     # or train_step.explain(x, y) on a jitted one
    print(report)                                    # IR, fusion groups with reasons, kernels
    report.kernels[0].source, report.kernels[0].llvm(), report.kernels[0].asm()
    report.to_dict()                                 # the same as plain data
    report.dump("kernels/")                          # each kernel as a runnable .py with a harness
    lazytorch.explain(loss)                          # the program that would compute this tensor

The IR lists one node per line, `%12 = mul %3, %7 : float32[128, 512]`, in sections: the
program's inputs (with what they are: an argument, `model.0.weight`, optimizer state...), the
forward pass, the backward pass (each gradient node annotated with the forward node and the VJP
rule it came from) and the update. Every kernel boundary carries the reason the fusion pass
recorded for it. Explaining a function traces it (running its Python code once, as a first call
would) but computes nothing.
"""
from __future__ import annotations

import json
import linecache
import math
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from compiler import inspect as _inspect
from compiler.ir import node as _ir
from compiler.runtime import counters as _counters
from compiler.runtime.compile import load_kernel as _load_kernel
from compiler.runtime.driver import Program

__all__ = ["explain", "dump_kernels", "Report", "KernelReport"]

_ROOT = Path(__file__).resolve().parents[1]          # the directory holding `compiler/`


class KernelReport:
    """One generated kernel: its source, buffers, why it is a kernel, and its LLVM IR / assembly."""

    def __init__(self, name: str, source: str, inputs: list, output: tuple, reason: str = "",
                 fused: Optional[list] = None, ops: int = 0):
        self.name = name
        self.source = source
        self.inputs = inputs          # [(shape, dtype name)] of the flat buffers in0, in1, ...
        self.output = output          # (shape, dtype name)
        self.reason = reason
        self.fused = fused or []
        self.ops = ops
        self._inspectable = None

    def __repr__(self) -> str:
        return f"<kernel {self.name}: {self.output[1]}{list(self.output[0])}, {len(self.inputs)} inputs>"

    @property
    def function(self):
        """The Numba dispatcher of this kernel (compiled or loaded on first use)."""
        return _load_kernel(self.name, self.source)

    def _compiled(self):
        """A compiled copy made for inspection: code loaded from Numba's disk cache has no IR to
        show, so the kernel is compiled again here (uncached) for its buffers' types."""
        if self._inspectable is None:
            import numba
            fn = self.function
            options = {k: v for k, v in fn.targetoptions.items() if k != "nopython"}
            copy = numba.njit(**options)(fn.py_func)
            arrays = _harness_arrays(self.inputs, self.output, np.random.default_rng(0))
            if fn.py_func.__code__.co_argcount > len(arrays):      # a kernel that checks indices
                arrays += [np.zeros(2, np.int64), 0]
            copy.compile(tuple(numba.typeof(a) for a in arrays))
            self._inspectable = copy
        return self._inspectable

    def llvm(self) -> str:
        """The optimized LLVM IR Numba generated for this kernel."""
        return "\n".join(self._compiled().inspect_llvm().values())

    def asm(self) -> str:
        """The machine code (assembly) of this kernel."""
        return "\n".join(self._compiled().inspect_asm().values())

    def harness(self) -> str:
        """A standalone script: the kernel's source plus code that allocates inputs of the right
        shapes and dtypes, runs it and prints its time and a checksum."""
        ins = ", ".join(f"{d}{list(s)}" for s, d in self.inputs)
        lines = [
            f"# {self.name}: output {self.output[1]}{list(self.output[0])}; inputs {ins}",
            f"# why a kernel: {self.reason}" if self.reason else "# (kernel from lazytorch)",
            "# Run: python this_file.py   (needs numpy and numba; the kernel imports lazytorch's inlined",
            "# scalar helpers from compiler/codegen, found through the sys.path line below)",
            "import sys",
            f"sys.path.insert(0, {str(_ROOT)!r})",
            self.source.rstrip(),
            "",
            "",
            "def _inputs():",
            "    rng = np.random.default_rng(0)",
            f"    out = np.empty({math.prod(self.output[0])}, np.{_compute(self.output[1])})",
            "    ins = []",
        ]
        for shape, dtype in self.inputs:
            lines.append(f"    ins.append({_random_expr(shape, dtype)})")
        lines += [
            "    return out, ins",
            "",
            "",
            'if __name__ == "__main__":',
            "    import time",
            "    out, ins = _inputs()",
            "    # a kernel that checks indices also takes its error slots and the base of its codes",
            f"    takes_checks = {self.name}.py_func.__code__.co_argcount > len(ins) + 1",
            "    checks = [np.zeros(2, np.int64), 0] if takes_checks else []",
            f"    {self.name}(out, *ins, *checks)              # compiles (or loads Numba's cache)",
            "    start = time.perf_counter()",
            "    for _ in range(10):",
            f"        {self.name}(out, *ins, *checks)",
            "    seconds = (time.perf_counter() - start) / 10",
            "    moved = out.nbytes + sum(a.nbytes for a in ins)",
            f"    print(f'{self.name}: {{seconds * 1e6:.1f}} us, {{moved / seconds / 1e9:.2f}} GB/s, "
            "checksum {float(np.sum(out, dtype=np.float64)):.6g}')",
            "",
        ]
        return "\n".join(lines)

    def dump(self, directory) -> Path:
        path = Path(directory) / f"{self.name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.harness())
        return path

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "reason": self.reason, "fused": self.fused,
                "ops": self.ops, "inputs": [{"shape": list(s), "dtype": d} for s, d in self.inputs],
                "output": {"shape": list(self.output[0]), "dtype": self.output[1]}}


def _compute(dtype: str) -> str:
    return "float32" if dtype == "float16" else dtype


def _random_expr(shape, dtype: str) -> str:
    n = math.prod(shape)
    if dtype.startswith("float"):
        return f"rng.standard_normal({n}).astype(np.{_compute(dtype)})"
    if dtype == "bool":
        return f"rng.random({n}) < 0.5"
    return f"rng.integers(0, 2, {n}).astype(np.{dtype})"    # small: valid as gather indices


def _harness_arrays(inputs, output, rng) -> list:
    out = np.empty(math.prod(output[0]), _compute(output[1]))
    arrays = [out]
    for shape, dtype in inputs:
        arrays.append(eval(_random_expr(shape, dtype), {"np": np, "rng": rng}))
    return arrays


class Report:
    """What the compiler made of a program: `print(report)`, `report.to_dict()`, `report.dump(dir)`.

    Attributes: `title`, `nodes` (IR rows, see `compiler.inspect.graph_data`), `steps` (fusion
    groups and library calls with the reason of each boundary), `kernels` (`KernelReport`s),
    `driver_source` (the generated whole-program function), `timings` (trace/compile seconds).
    """

    def __init__(self, title: str, nodes: list, steps: list, kernels: list, driver_source: Optional[str] = None,
                 timings: Optional[dict] = None, inputs: Optional[list] = None):
        self.title = title
        self.nodes = nodes
        self.steps = steps
        self.kernels = kernels
        self.driver_source = driver_source
        self.timings = timings or {}
        self.inputs = inputs or []

    @classmethod
    def of_program(cls, title: str, program: Program, input_labels: list, output_labels: list,
                   notes: dict, timings: Optional[dict] = None) -> "Report":
        inputs = {id(n): label for n, label in zip(program.inputs, input_labels)}
        nodes = _inspect.graph_data(program.order, inputs, notes, list(zip(program.outputs, output_labels)))
        steps = _inspect.step_data(program.schedule, program.order)
        kernels = []
        for row in steps:
            if row["kind"] == "kernel":
                kernels.append(KernelReport(row["name"], row["source"],
                                            [(tuple(i["shape"]), i["dtype"]) for i in row["inputs"]],
                                            (tuple(row["output_shape"]), row["output_dtype"]),
                                            row["reason"], row["fused"], row["ops"]))
        return cls(title, nodes, steps, kernels, program.source, timings,
                   [{"label": l, "shape": list(n.shape), "dtype": n.dtype.name}
                    for n, l in zip(program.inputs, input_labels)])

    @classmethod
    def of_specialization(cls, spec) -> "Report":
        output_labels = [""] * len(spec.program.outputs)
        for kind, owner, k, _ in spec.installs:
            if k is not None:
                output_labels[k] = owner.label + (".grad" if kind.startswith("grad") else "")
        for j, k in enumerate(spec.results):
            output_labels[k] = f"result {j}"
        return cls.of_program(f"jitted function {spec.name}", spec.program, spec.program.input_labels,
                              output_labels, spec.notes, spec.timings)

    # -- rendering -----------------------------------------------------------------------------------
    def __str__(self) -> str:
        out = [f"== {self.title} ==", ""]
        counts = {}
        for row in self.nodes:
            counts[row["section"]] = counts.get(row["section"], 0) + 1
        out.append(f"{len(self.nodes)} nodes ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
                   f"{len(self.steps)} steps: {len(self.kernels)} kernels, "
                   f"{len(self.steps) - len(self.kernels)} library calls")
        if self.timings:
            out.append("timings: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.timings.items()))
        for section in ("input", "constant", "forward", "backward", "update"):
            rows = [row for row in self.nodes if row["section"] == section]
            if rows:
                out += ["", f"-- {_SECTIONS[section]} --"]
                out += ["  " + _ir_line(row) for row in rows]
        out += ["", "-- fusion groups (one kernel or library call each) --"]
        for row in self.steps:
            fused = ", ".join(f"%{i}" for i in row["fused"])
            out.append(f"  [{row['index']}] {row['name']} -> %{row['output']} "
                       f"{row['output_dtype']}{row['output_shape']}: computes {fused}")
            out.append(f"      boundary: {row['reason']}")
            ins = ", ".join(f"%{i['id']} {i['dtype']}{i['shape']}" for i in row["inputs"])
            out.append(f"      reads: {ins}")
        for k in self.kernels:
            out += ["", f"-- kernel {k.name} ({k.ops} ops) --", k.source.rstrip()]
        return "\n".join(out)

    __repr__ = __str__

    def to_dict(self) -> dict:
        return {"title": self.title, "nodes": self.nodes, "steps": self.steps, "inputs": self.inputs,
                "kernels": [k.to_dict() for k in self.kernels], "driver_source": self.driver_source,
                "timings": self.timings}

    def dump(self, directory) -> list[Path]:
        """Write every kernel as a standalone runnable .py, plus `report.txt`, `report.json` and the
        driver's source; returns the kernel files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [k.dump(directory) for k in self.kernels]
        (directory / "report.txt").write_text(str(self))
        (directory / "report.json").write_text(json.dumps(self.to_dict(), indent=1, default=str))
        if self.driver_source:
            (directory / "driver.py.txt").write_text(self.driver_source)
        return paths


_SECTIONS = {"input": "inputs (bound at every call)", "constant": "constants",
             "forward": "forward", "backward": "backward (gradients: forward node and VJP rule)",
             "update": "update (computed from gradients: the optimizer step)"}


def _ir_line(row: dict) -> str:
    lhs = f"%{row['id']} = {row['op']}"
    args = ", ".join(f"%{i}" for i in row["inputs"])
    text = " ".join(x for x in (lhs, args, row["arg"]) if x)
    if row["label"]:
        text += f" {row['label']!r}"
    text += f" : {row['dtype']}{row['shape']}"
    notes = []
    if row["note"]:
        notes.append(row["note"])
    if row["outputs"]:
        notes.append("-> " + ", ".join(row["outputs"]))
    return text + ("    # " + "; ".join(notes) if notes else "")


# ---------------------------------------------------------------------------------------------
# entry points

def explain(obj, *args, **kwargs) -> Report:
    """A report for a function called with `args` (jitted or not: traced, not run) or a tensor
    (the program that would compute it now)."""
    from lazytorch._jit import JitFunction, jit
    from lazytorch._tensor import Tensor
    if isinstance(obj, Tensor):
        return _explain_tensor(obj)
    if isinstance(obj, JitFunction):
        return obj.explain(*args, **kwargs)
    if callable(obj):
        return jit(obj).explain(*args, **kwargs)
    raise TypeError(f"explain() expects a function or a Tensor, got {type(obj).__name__}")


def _explain_tensor(t) -> Report:
    from compiler.autodiff import describe
    from compiler.ir.node import toposort
    node = t._node
    if node.realized is not None:
        program = Program([], [])
        title = "tensor (already computed: nothing to run)"
    else:
        program = Program([], [node])
        title = f"tensor {node.dtype.name}{list(node.shape)}"
    notes = {id(n): d for n in toposort([node]) if (d := describe(n)) is not None}
    return Report.of_program(title, program, [], ["the tensor"], notes)


def dump_kernels(directory) -> list[Path]:
    """Write every kernel compiled (planned) in this process as a standalone runnable .py."""
    paths = []
    for name, info in sorted(_inspect.KERNELS.items()):
        report = KernelReport(name, info["source"], info["inputs"], info["output"])
        paths.append(report.dump(directory))
    return paths


def _main_explain(argv: list[str]) -> int:
    """`python -m lazytorch explain script.py [args]`: run the script, then print the program of
    every jitted function it ran (wherever it was defined, and whether or not it is still alive),
    and the kernels it ran outside them, in the order they first ran. A script that calls
    `sys.exit` still gets its report, then exits with its code."""
    import runpy
    from lazytorch._jit import keep_reports
    if not argv:
        print("usage: python -m lazytorch explain SCRIPT.py [ARGS...]", file=sys.stderr)
        return 2
    script = argv[0]
    sys.argv = list(argv)
    sys.path.insert(0, str(Path(script).resolve().parent))
    reports = keep_reports()
    _counters.profile = {}
    _ir.on_new_node = _note_origin
    exited = None
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        exited = e
    finally:
        _ir.on_new_node = None
    print(f"\n##### lazytorch explain: {script} #####")
    shown: dict[str, str] = {}              # driver source -> title of the report that showed it
    for report in reports:
        print()
        key = report.driver_source or report.title
        if key in shown:
            print(f"== {report.title} ==\n(the same program as {shown[key]!r}: its compiled driver is reused)")
        else:
            shown[key] = report.title
            print(report)
    if not reports:
        print("\n(no jitted function ran)")
    print()
    print(_eager_kernels(_counters.profile))
    if exited is not None:
        sys.stdout.flush()
        raise exited
    return 0


# where the user's code built each node, noted while the CLI runs a script: the first frame outside
# lazytorch/ and compiler/ (and outside generated code, "<...>") that is building a node
_INTERNAL = tuple(str(_ROOT / package) + os.sep for package in ("lazytorch", "compiler"))


def _note_origin(node, _getframe=sys._getframe, _internal=_INTERNAL, _origins=_inspect.ORIGINS) -> None:
    frame = _getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_internal) and not name.startswith("<"):
            _origins[node] = (name, frame.f_lineno)
            return
        frame = frame.f_back


def _where(origin) -> str:
    """`file:line  source text` of an origin (the file relative to the working directory)."""
    name, line = origin
    try:
        shown = os.path.relpath(name)
        if shown.startswith(".."):
            shown = name
    except ValueError:
        shown = name
    text = linecache.getline(name, line).strip()
    return f"{shown}:{line}" + (f"  {text}" if text else "")


def _eager_kernels(profile: dict) -> str:
    """The kernels run outside jitted functions, in the order they first ran: each with where its
    output was built, why it is a kernel, its launches, their time and its compile time."""
    from compiler.runtime.compile import compile_log
    compiles: dict[str, str] = {}
    for name, seconds, hit in compile_log:
        # (a kernel run on its own is the native function n_<kernel>_<digest>)
        kernel = name[2:name.rindex("_")] if name.startswith("n_k_") else name
        compiles[kernel] = f"{'loaded from the disk cache' if hit else 'compiled'} in {seconds * 1e3:.1f} ms"
    names = [name for name in profile if name in _inspect.KERNELS]
    launches = sum(profile[name][0] for name in names)
    seconds = sum(profile[name][1] for name in names)
    out = [f"-- kernels run outside jitted functions, in the order they first ran: {len(names)} kernels, "
           f"{launches} launches, {seconds * 1e3:.1f} ms (compiles not counted) --"]
    for k, name in enumerate(names, 1):
        info = _inspect.KERNELS[name]
        count, total = profile[name]
        ins = ", ".join(f"{d}{list(s)}" for s, d in info["inputs"])
        out += ["", f"[{k}] {name}: output {info['output'][1]}{list(info['output'][0])}; inputs {ins}"]
        if info.get("origin"):
            out.append(f"    made at: {_where(info['origin'])}")
        if info.get("grad"):
            forward = f", forward op at {_where(info['grad_of'])}" if info.get("grad_of") else ""
            out.append(f"    gradient: {info['grad']}{forward}")
        if info.get("reason"):
            out.append(f"    boundary: {info['reason']}")
        launches = f"1 ({total * 1e6:.1f} us)" if count == 1 else \
            f"{count}, {total * 1e6:.1f} us in all ({total / count * 1e6:.1f} us each)"
        compiled = compiles.get(name)
        out.append(f"    launches: {launches}" + (f"; {compiled}" if compiled else ""))
        out += ["    " + line if line else "" for line in info["source"].rstrip().splitlines()]
    return "\n".join(out)
