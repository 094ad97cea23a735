"""The compiler's entry point: compute the values of IR nodes.

`realize(nodes)` looks up the schedule of the graph by its structure (ops, shapes, dtypes,
literal constants; not the data, nor the values of Python scalars), builds and compiles it the
first time, and runs it. A structurally identical graph later - the next training step, the next
batch, the next learning rate - costs one key computation and the kernel launches.
"""
from __future__ import annotations

from collections import OrderedDict

from compiler import inspect
from compiler.codegen.numba_cpu import generate
from compiler.ir.node import Node, forget_inputs, toposort
from compiler.ir.ops import Op
from compiler.passes.fusion import KernelStep, Schedule, build_schedule
from compiler.runtime.counters import counters
from compiler.runtime.executor import execute

MAX_CACHED_SCHEDULES = 2048
_CONST = Op.CONST
_schedules: "OrderedDict[tuple, Schedule]" = OrderedDict()


def structural_key(order: list[Node], targets: list[Node]) -> tuple:
    """Identifies a graph up to its data: realized nodes count only by shape and dtype, and so do
    constants read as scalar arguments (`ir.node.is_scalar_argument`); literal constants count
    with their value."""
    position: dict[Node, int] = {}          # (nodes hash by identity)
    index_of = position.__getitem__
    parts = []
    for i, node in enumerate(order):
        position[node] = i
        if node.realized is not None:
            parts.append((node.shape, node.dtype.name))
        elif node.op is _CONST and not node.arg[2]:
            parts.append((_CONST, node.shape, node.dtype.name))     # a scalar argument: data
        else:
            parts.append((node.op, node.arg, node.shape, node.dtype.name, tuple(map(index_of, node.inputs))))
    parts.append(tuple(map(index_of, targets)))
    return tuple(parts)


def plan(targets: list[Node]) -> tuple[Schedule, list[Node]]:
    """The (cached) schedule computing `targets`, and the graph order its positions refer to."""
    order = toposort(targets)
    key = structural_key(order, targets)
    schedule = _schedules.get(key)
    if schedule is not None:
        _schedules.move_to_end(key)
        counters["cache_hits"] += 1
        return schedule, order
    counters["graph_compiles"] += 1
    schedule = build_schedule(order, targets)
    for step in schedule.steps:
        if isinstance(step, KernelStep):
            step.name, step.source = generate(step.kernel)
            step.function = None        # compiled when first run alone (a driver inlines the source)
            inspect.record(step, order, schedule.reasons.get(step.output, ""))
    _schedules[key] = schedule
    if len(_schedules) > MAX_CACHED_SCHEDULES:
        _schedules.popitem(last=False)
    return schedule, order


def realize(nodes: list[Node]) -> None:
    """Compute every node in `nodes` that has no value yet (sets `node.realized`)."""
    # unrealized nodes, each once, in order (a dict of nodes keys them by identity)
    pending = list(dict.fromkeys(n for n in nodes if n.realized is None))
    if not pending:
        return
    # a DETACH whose input is computed here shares its input's array instead of copying it (arrays a
    # realization makes are never written again; leaf buffers may be memory shared with numpy, so a
    # DETACH of one still copies)
    detached = [n for n in pending if n.op is Op.DETACH and n.inputs[0].op is not Op.BUFFER]
    if detached:
        pending = list(dict.fromkeys(_undetach(n) if n.op is Op.DETACH and n.inputs[0].op is not Op.BUFFER else n
                                     for n in pending))
        pending = [n for n in pending if n.realized is None]
    if pending:
        schedule, order = plan(pending)
        execute(schedule, order)
    for n in detached:
        if n.realized is None:
            n.realized = _undetach(n).realized
            forget_inputs(n)


def _undetach(node: Node) -> Node:
    while node.op is Op.DETACH and node.inputs and node.inputs[0].op is not Op.BUFFER:
        if node.realized is not None:
            return node
        node = node.inputs[0]
    return node
