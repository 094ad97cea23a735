"""Fusion: cut the graph into kernels and library calls, recording why each cut is there.

`build_schedule(order, targets)` walks the graph from its targets. Each materialized node becomes
one step; everything between it and the materialized nodes or leaves it reads is fused into it:

* elementwise ops fuse into their consumer; a node with several consumers is recomputed in each
  (cheap) unless it holds a reduction that two kernels would both compute, then it is materialized;
* movement ops fold into the index maps (`ShapeTracker`) of the loads below them; in a map kernel
  an elementwise value read through padding (cat, the gradient of a slice) is computed inside a
  `KMasked`, only where the padded view is valid, so `cat([a.exp(), b * 2])` is one kernel (a
  reduction kernel materializes it: see `_boundary_reason`);
* a reduction fuses with the elementwise work around it: the producer of its input (its body), and
  the consumer in its output shape (epilogue), or in its input shape when its result is broadcast
  back over the reduced axes (row kernels: softmax, layer norm);
* a gather fuses into its consumer; it reads its source through the index map when the source is
  a buffer or a view of one (masks aside), else the source is materialized;
* matmul is a BLAS call reading strided views; scatter-add and cumsum are kernels of their own.

Every node that gets its own step carries the reason in `Schedule.reasons`, for `explain`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from compiler.ir.kernel import KConst, KGather, KLoad, KMasked, KOp, KReduce, Kernel
from compiler.ir.node import Node, const_value, is_scalar_argument
from compiler.ir.ops import ELEMENTWISE, Family, Op
from compiler.passes.views import ShapeTracker, View

MAX_KERNEL_OPS = 64   # like Inductor: bigger kernels compile slowly and rarely run faster


@dataclass
class KernelStep:
    kernel: Kernel
    output: int                 # position of the produced node in the graph order
    inputs: list[int]           # position of the node filling each kernel slot


@dataclass
class MatmulStep:
    output: int
    inputs: list[int]           # the two operands' base nodes
    views: list[View]           # how each operand is read from its base


@dataclass
class Schedule:
    steps: list = field(default_factory=list)
    reasons: dict = field(default_factory=dict)   # position -> why that node is materialized


class _Geometry:
    """Iteration space of the kernel being built (see compiler.ir.kernel)."""

    def __init__(self, out_shape):
        self.mode = "map"
        self.full_shape = tuple(out_shape)
        self.epilogue_shape = tuple(out_shape)
        self.reduce_axes: tuple[int, ...] = ()


def _expand_view(reduced: Node) -> View:
    """The view that broadcasts a keepdim reduction back over its input shape."""
    return View.contiguous(reduced.shape).expand(reduced.inputs[0].shape)


class _KernelBuilder:
    def __init__(self, root: Node, materialized: dict, order_pos: dict):
        self.root = root
        self.materialized = materialized           # id(node) -> reason; may grow while building
        self.order_pos = order_pos
        self.slots: list[Node] = []
        self.slot_of: dict[int, int] = {}
        self.scalar_slots: list[int] = []          # slots read as scalar arguments (KConst.slot)
        self.memo: dict = {}
        self.fused_reduces: set[int] = set()
        self.reduces: dict[int, KReduce] = {}
        self.ops_count = 0

    # -- helpers -------------------------------------------------------------------------------
    def materialize(self, node: Node, reason: str):
        if id(node) not in self.materialized:
            self.materialized[id(node)] = reason

    def slot(self, node: Node) -> int:
        if id(node) not in self.slot_of:
            self.slot_of[id(node)] = len(self.slots)
            self.slots.append(node)
        return self.slot_of[id(node)]

    @staticmethod
    def tracker(node_shape, path) -> ShapeTracker:
        tracker = ShapeTracker.contiguous(node_shape)
        for op, arg in path:
            tracker = tracker.apply(op, arg)
        return tracker

    def is_loadable(self, node: Node) -> bool:
        # (a realized constant is a buffer like any realized node, as the structural key says)
        return node.is_leaf_like and (node.op is not Op.CONST or node.realized is not None) or (
            node is not self.root and id(node) in self.materialized)

    def load(self, node: Node, path) -> KLoad:
        return KLoad(self.slot(node), self.tracker(node.shape, path), node.dtype)

    # -- geometry: find the reduction that decides the loop structure ----------------------------
    def find_geometry(self) -> _Geometry:
        geometry = _Geometry(self.root.shape)
        seen = set()
        stack = [(self.root, ())]
        while stack:
            node, path = stack.pop()
            if (id(node), path) in seen or self.is_loadable(node):
                continue
            seen.add((id(node), path))
            family = node.op.family
            if family is Family.MOVEMENT:
                stack.append((node.inputs[0], ((node.op, node.arg),) + path))
            elif family in ELEMENTWISE:
                stack.extend((i, path) for i in node.inputs)
            elif family is Family.REDUCE:
                view = self.tracker(node.shape, path).single_view
                if view is None:
                    continue
                # the output is this whole reduction, maybe reshaped (a leading slice of it is
                # contiguous too, but covers fewer elements: then the reduction is a buffer)
                if view.is_contiguous and math.prod(view.shape) == node.numel:
                    geometry.mode, geometry.epilogue_shape = "reduce", node.shape
                elif view == _expand_view(node) and self.root.shape == node.inputs[0].shape:
                    geometry.mode, geometry.epilogue_shape = "row", node.inputs[0].shape
                else:
                    continue
                geometry.full_shape, geometry.reduce_axes = node.inputs[0].shape, node.arg
                return geometry
        return geometry

    # -- the walk ------------------------------------------------------------------------------
    def build(self, allow_reduce: bool = True) -> tuple[object, _Geometry]:
        self.allow_reduce = allow_reduce
        self.geometry = self.find_geometry() if allow_reduce else _Geometry(self.root.shape)
        path = ()
        if self.geometry.epilogue_shape != self.root.shape:
            path = ((Op.RESHAPE, self.geometry.epilogue_shape),)
        return self.visit(self.root, path, in_body=False), self.geometry

    def visit(self, node: Node, path, in_body: bool, masked: bool = False):
        """The expression of `node` read through the movement ops `path`. `masked`: an enclosing
        KMasked already zeroes the indices that the pads in `path` make invalid."""
        if node.op is Op.CONST and is_scalar_argument(node):
            # a slot per use, not per node: equal values are one node (hash-consing), and the
            # kernel must not depend on which of its scalars happen to be equal this time
            return self._visit(node, path, in_body, masked)
        key = (id(node), path, in_body, masked)
        if key not in self.memo:
            self.memo[key] = self._visit(node, path, in_body, masked)
        return self.memo[key]

    def _visit(self, node: Node, path, in_body: bool, masked: bool):
        if self.is_loadable(node):
            return self.load(node, path)          # (a load through padding is masked itself)
        family = node.op.family
        has_pad = any(op is Op.PAD for op, _ in path)
        if node.op is Op.CONST or family in ELEMENTWISE and node is not self.root:
            if has_pad and not masked and (node.op is Op.CONST or self.geometry.mode == "map"):
                tracker = self.tracker(node.shape, path)
                masks = [m for view in tracker.views if view.mask is not None for m in view.mask]
                if (0, 0) in masks:       # (an empty range: the view is all padding)
                    return KConst(0, node.dtype)
                if masks:
                    # padding holds zeros, not f(0): compute the value only where the view is
                    # valid (its loads read the same padded views, so indices stay in bounds)
                    return KMasked(tracker, self.visit(node, path, in_body, True), node.dtype)
            if node.op is Op.CONST:
                if is_scalar_argument(node):
                    self.slots.append(node)
                    self.scalar_slots.append(len(self.slots) - 1)
                    return KConst(const_value(node), node.dtype, len(self.slots) - 1, self.order_pos[id(node)])
                return KConst(const_value(node), node.dtype)
        if family is Family.MOVEMENT:
            # a new pad makes new invalid indices, which the enclosing mask does not cover
            return self.visit(node.inputs[0], ((node.op, node.arg),) + path, in_body,
                              masked and node.op is not Op.PAD)
        if node is not self.root:
            reason = self._boundary_reason(node, path, has_pad)
            if reason:
                self.materialize(node, reason)
                return self.load(node, path)
        self.ops_count += 1
        if family in ELEMENTWISE:
            return KOp(node.op, tuple(self.visit(i, path, in_body, masked) for i in node.inputs),
                       node.dtype, node.arg)
        if family is Family.REDUCE:
            # one KReduce per node, however it is reached (body of another reduction or the
            # epilogue): codegen computes each KReduce object once per row
            if id(node) not in self.reduces:
                self.fused_reduces.add(id(node))
                self.reduces[id(node)] = KReduce(node.op, self.visit(node.inputs[0], (), True), node.dtype)
            return self.reduces[id(node)]
        if family is Family.INDEX:
            source, index = node.inputs
            # a view of a buffer (the reshape index_select and embedding gather through) is read
            # through its index map: materializing it copied a whole embedding table per lookup
            base, view_path = source, ()
            while not self.is_loadable(base) and base.op.family is Family.MOVEMENT:
                view_path, base = ((base.op, base.arg),) + view_path, base.inputs[0]
            tracker = self.tracker(base.shape, view_path) if self.is_loadable(base) else None
            if tracker is None or any(view.mask is not None for view in tracker.views):
                if not self.is_loadable(source):
                    self.materialize(source, "gather reads its source at data-dependent positions")
                base, tracker = source, ShapeTracker.contiguous(source.shape)
            return KGather(self.slot(base), tracker, self.visit(index, path, in_body), node.arg, node.dtype)
        raise NotImplementedError(node.op)

    def _boundary_reason(self, node: Node, path, has_pad: bool) -> Optional[str]:
        family = node.op.family
        if family is Family.CONTRACT:
            return "matmul is a BLAS call"
        if family is Family.SCATTER:
            return f"{node.op.label} runs its own loop over its source"
        if has_pad and family not in ELEMENTWISE:
            return "padding a computed value needs it materialized (zeros outside, not f(0))"
        if has_pad and self.geometry.mode != "map":
            # a masked value in a reduction's loops is a branch on the loop index: the loop no
            # longer vectorizes, and row kernels compute it once per pass (softmax of a cat: 1.5x
            # slower than materializing the cat); map kernels split their loop instead
            return "a padded value read by a reduction kernel is materialized (its loop vectorizes)"
        if self.ops_count >= MAX_KERNEL_OPS:
            return f"kernel size cap ({MAX_KERNEL_OPS} ops) reached"
        if family is Family.INDEX and path:
            return "a view of a gather result is read from a buffer"
        if family is Family.REDUCE:
            if not self.allow_reduce:
                return "reductions do not fuse into scatter/scan kernels"
            g = self.geometry
            if node.inputs[0].shape != g.full_shape or node.arg != g.reduce_axes or g.mode == "map":
                return "reduction over a different iteration space than its consumer"
            view = self.tracker(node.shape, path).single_view
            if view is None:
                return "reduction read through a reshaping view"
            if self._in_body_or_row(path, node, view):
                return None
            return "reduction read through a view other than a broadcast over its reduced axes"
        return None

    def _in_body_or_row(self, path, node: Node, view: View) -> bool:
        if self.geometry.mode == "reduce" and view.is_contiguous and view.shape == node.shape:
            return True                      # the epilogue reads the reduction at its own index
        return view == _expand_view(node)    # broadcast back over the reduced axes


def build_schedule(order: list[Node], targets: list[Node]) -> Schedule:
    pos = {id(n): i for i, n in enumerate(order)}
    materialized: dict[int, str] = {}
    for t in targets:
        if not t.is_leaf_like or t.op is Op.CONST:
            materialized.setdefault(id(t), "requested by the caller")
    while True:
        steps, users_of_reduce, changed = {}, {}, False
        work = list(materialized)
        done = set()
        while work:
            nid = work.pop()
            if nid in done:
                continue
            done.add(nid)
            node = order[pos[nid]]
            before = set(materialized)
            steps[nid] = _build_step(node, materialized, pos, users_of_reduce)
            work.extend(set(materialized) - before)
        for rid, kernels in users_of_reduce.items():
            if len(kernels) > 1 and rid not in materialized:
                materialized[rid] = "reduction needed by several kernels: computed once"
                changed = True
        if not changed:
            break
    schedule = Schedule()
    for nid in sorted(steps, key=lambda i: pos[i]):
        schedule.steps.append(steps[nid])
        schedule.reasons[pos[nid]] = materialized[nid]
    return schedule


def _build_step(node: Node, materialized: dict, pos: dict, users_of_reduce: dict):
    if node.op is Op.MATMUL:
        return _matmul_step(node, materialized, pos)
    builder = _KernelBuilder(node, materialized, pos)
    if node.op is Op.SCATTER_ADD:
        base, index, source = node.inputs
        builder.allow_reduce = False
        builder.geometry = _Geometry(index.shape)
        exprs = {"base": builder.visit(base, (), False)}
        exprs["index"] = builder.visit(index, (), False)
        exprs["source"] = builder.visit(source, (), False)
        kernel = Kernel("scatter_add", node.shape, node.dtype, [], full_shape=index.shape, exprs=exprs,
                        axis=node.arg)
    elif node.op is Op.CUMSUM:
        builder.allow_reduce = False
        builder.geometry = _Geometry(node.shape)
        kernel = Kernel("cumsum", node.shape, node.dtype, [],
                        exprs={"source": builder.visit(node.inputs[0], (), False)}, axis=node.arg)
    else:
        expr, g = builder.build()
        kernel = Kernel("loop", node.shape, node.dtype, [], full_shape=g.full_shape, mode=g.mode,
                        reduce_axes=g.reduce_axes, expr=expr)
    kernel.input_dtypes = [n.dtype for n in builder.slots]
    # (a constant computed by an earlier step, as the caller asked for it, is loaded as a buffer)
    kernel.scalar_slots = tuple(builder.scalar_slots)
    kernel.ops_count = builder.ops_count
    for rid in builder.fused_reduces:
        users_of_reduce.setdefault(rid, set()).add(id(node))
    return KernelStep(kernel, pos[id(node)], [pos[id(n)] for n in builder.slots])


def _matmul_step(node: Node, materialized: dict, pos: dict) -> MatmulStep:
    """BLAS reads strided views directly; anything else is materialized first."""
    inputs, views = [], []
    for operand in node.inputs:
        base, path = operand, ()
        while base.op.family is Family.MOVEMENT and not base.is_leaf_like and id(base) not in materialized:
            path = ((base.op, base.arg),) + path
            base = base.inputs[0]
        view = _KernelBuilder.tracker(base.shape, path).single_view
        if view is None or view.mask is not None:
            base, view = operand, View.contiguous(operand.shape)
        if not base.is_leaf_like or base.op is Op.CONST and base.realized is None:
            materialized.setdefault(id(base), "matmul operands are contiguous or strided buffers")
        inputs.append(pos[id(base)])
        views.append(view)
    return MatmulStep(pos[id(node)], inputs, views)
