"""Backend-neutral data for `lazytorch.explain`: a program's IR, fusion groups and kernels as plain
dicts and lists (no printing here; the front-end renders them).

* `graph_data(order, ...)` numbers the nodes of a planned graph (`%k` is the node's position in
  the schedule's graph order) and sorts them into sections: inputs and constants, the forward
  pass, the gradient nodes autodiff made (`compiler.autodiff.describe` says from which forward node
  and rule), and the update (nodes computed from gradients that are not gradients themselves:
  the optimizer's arithmetic).
* `step_data(schedule, order)` lists the schedule's steps: for each kernel or library call, the
  nodes fused into it, the reason its output is a kernel boundary (`Schedule.reasons`), its
  inputs and output with shapes and dtypes, and for kernels the generated source.
* `KERNELS` records every kernel planned in this process with the shapes and dtypes of its
  buffers, so `lazytorch.dump_kernels` can write runnable harnesses for all of them, and why its
  output is a kernel boundary; with `ORIGINS` filled (by whoever sets `compiler.ir.node.on_new_node`:
  `python -m lazytorch explain`), also where the user's code built that output.
"""
from __future__ import annotations

import weakref
from typing import Optional

from compiler.autodiff import describe
from compiler.ir.node import Node, const_value
from compiler.ir.ops import Family, Op
from compiler.passes.fusion import KernelStep, MatmulStep, Schedule

KERNELS: dict[str, dict] = {}
"""kernel name -> {source, inputs: [(shape, dtype name)], output: (shape, dtype name), reason,
origin: (file, line) or None, grad: gradient origin text or None, grad_of: (file, line) or None}."""

ORIGINS: "weakref.WeakKeyDictionary[Node, tuple[str, int]]" = weakref.WeakKeyDictionary()
"""node -> (file, line) of the code that built it, while a caller records them (empty otherwise)."""


def record(step: KernelStep, order: list[Node], reason: str = "") -> None:
    """Remember a planned kernel's buffers, boundary reason and origin (called by
    `compiler.realize.plan`)."""
    if step.name not in KERNELS:
        node = order[step.output]
        forward = node.origin[0] if node.origin is not None else None
        KERNELS[step.name] = {"source": step.source,
                              "inputs": [(_slot_shape(step, j, order[i]), order[i].dtype.name)
                                         for j, i in enumerate(step.inputs)],
                              "output": (node.shape, node.dtype.name), "reason": reason,
                              "origin": ORIGINS.get(node), "grad": describe(node),
                              "grad_of": None if forward is None else ORIGINS.get(forward)}


def _slot_shape(step, j: int, node: Node) -> tuple:
    """The shape of the array filling input slot `j` of a step (a scalar argument: one element)."""
    return (1,) if isinstance(step, KernelStep) and j in step.kernel.scalar_slots else node.shape


def _arg_text(node: Node) -> str:
    if node.op is Op.CONST:
        return repr(const_value(node))
    if node.realized is not None:
        values = node.realized.reshape(-1)
        return f"value={values.tolist()!r}" if values.size <= 4 else ""
    if node.arg is None or node.op.family in (Family.LEAF,):
        return ""
    if node.op is Op.CAST:
        return f"to={node.arg}"
    if node.op.family is Family.REDUCE:
        return f"axes={node.arg}"
    if node.op.family is Family.MOVEMENT:
        return f"{node.op.label}={node.arg}"
    return f"arg={node.arg!r}"


def graph_data(order: list[Node], inputs: dict[int, str], notes: dict[int, str],
               outputs: Optional[list[tuple[Node, str]]] = None) -> list[dict]:
    """One dict per node of `order`: number, op, input numbers, attribute text, type, section,
    and `note` (gradient origin) / `label` (what an input is) / `outputs` (what reads a result).

    `inputs`: id(leaf) -> label of the program's inputs; `notes`: id(node) -> gradient origin.
    """
    pos = {id(n): i for i, n in enumerate(order)}
    out_labels: dict[int, list[str]] = {}
    for node, label in outputs or ():
        out_labels.setdefault(id(node), []).append(label)
    from_grad: set[int] = set()
    rows = []
    for i, node in enumerate(order):
        note = notes.get(id(node))
        leaf = node.realized is not None or not node.inputs
        if id(node) in inputs:
            section = "input"
        elif leaf and node.op is not Op.CONST:
            section = "constant"
        elif note is not None:
            section = "backward"
            from_grad.add(id(node))
        elif any(id(x) in from_grad for x in node.inputs):
            section = "update"
            from_grad.add(id(node))
        else:
            section = "forward"
        op = "input" if section == "input" else "buffer" if section == "constant" else node.op.label
        rows.append({
            "id": i, "op": op, "inputs": [] if leaf else [pos[id(x)] for x in node.inputs],
            "arg": "" if section == "input" else _arg_text(node),
            "dtype": node.dtype.name, "shape": list(node.shape), "section": section,
            "note": note, "label": inputs.get(id(node)), "outputs": out_labels.get(id(node), []),
        })
    return rows


def fused_nodes(step, order: list[Node], materialized: set[int]) -> list[int]:
    """Positions of the nodes a step computes: its output and everything it fuses (stopping at
    leaves and at the outputs of other steps)."""
    root = order[step.output]
    pos = {id(n): i for i, n in enumerate(order)}
    seen, stack, found = set(), [root], []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node is not root and (id(node) in materialized or node.realized is not None or not node.inputs):
            continue
        found.append(pos[id(node)])
        if isinstance(step, MatmulStep) and node is root:
            continue
        stack.extend(node.inputs)
    return sorted(found)


def step_data(schedule: Schedule, order: list[Node]) -> list[dict]:
    """One dict per schedule step: kind, name, output number, fused node numbers, boundary reason,
    inputs and output (number, shape, dtype), and the generated source of kernels."""
    materialized = {id(order[s.output]) for s in schedule.steps}
    rows = []
    for index, step in enumerate(schedule.steps):
        node = order[step.output]
        row = {
            "index": index, "output": step.output, "reason": schedule.reasons.get(step.output, ""),
            "fused": fused_nodes(step, order, materialized),
            "inputs": [{"id": i, "shape": list(_slot_shape(step, j, order[i])), "dtype": order[i].dtype.name}
                       for j, i in enumerate(step.inputs)],
            "output_shape": list(node.shape), "output_dtype": node.dtype.name,
        }
        if isinstance(step, KernelStep):
            row.update(kind="kernel", name=step.name, source=step.source, ops=step.kernel.ops_count,
                       mode=step.kernel.mode, loop=step.kernel.kind,
                       # the values of its scalar arguments in this program (the source has none)
                       scalars={f"c{k}": const_value(order[step.inputs[j]])
                                for k, j in enumerate(step.kernel.scalar_slots)})
        else:
            row.update(kind="matmul", name="matmul (BLAS)", source=None, ops=1, mode="library", loop="matmul",
                       views=[{"shape": list(v.shape), "strides": list(v.strides), "offset": v.offset}
                              for v in step.views])
        rows.append(row)
    return rows
