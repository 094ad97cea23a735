"""IR nodes: immutable, hash-consed, typed and shaped.

`Node`s are built only through the constructor functions below, which infer the result shape and
dtype. Building the same operation on the same inputs twice returns the same object (hash-consing),
so common subexpressions are shared by construction and a node's identity is its structure.

A node can be *realized*: the runtime stores its value in `node.realized` (a C-contiguous numpy
array). Passes treat a realized node as a leaf; its inputs stay, because autodiff may still walk
through it.
"""
from __future__ import annotations

import functools
import itertools
import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from compiler import dtypes
from compiler.dtypes import DType
from compiler.ir.ops import COMPARISONS, Family, Op

Shape = tuple[int, ...]

# structure key -> weak reference to the node. A plain dict of references, each removing its own
# entry when its node dies: a WeakValueDictionary costs several Python-level calls per insertion,
# and every node construction inserts or looks up. Keys hold the input nodes themselves (compared by
# identity), so an id can never be reused while its entry exists.
_interned: "dict[tuple, _InternRef]" = {}


class _InternRef(weakref.ref):
    """A weak reference to an interned node that knows its key (one object per node, not a
    reference and a callback closure: fewer objects for the garbage collector to track)."""
    __slots__ = ("key",)


_buffer_ids = itertools.count()

on_new_node: Optional[Callable[["Node"], None]] = None
"""When set, called with every computed node `_make` creates (`python -m lazytorch explain` notes
the user's line that built it). None otherwise: graph building then pays one test per new node."""


class Node:
    __slots__ = ("op", "inputs", "shape", "dtype", "arg", "device", "realized", "origin", "__weakref__")

    def __init__(self, op: Op, inputs: tuple["Node", ...], shape: Shape, dtype: DType, arg: Any,
                 device: str):
        self.op = op
        self.inputs = inputs
        self.shape = shape
        self.dtype = dtype
        self.arg = arg
        self.device = device
        self.realized: Optional[np.ndarray] = None
        # for a gradient node, where autodiff made it (see `compiler.autodiff.describe`); kept on
        # the node rather than in a weak table, which cost more than building the node
        self.origin: Optional[tuple] = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_leaf_like(self) -> bool:
        """True for buffers, constants and realized nodes: what a kernel loads instead of computing."""
        return self.realized is not None or self.op.family is Family.LEAF

    def __repr__(self) -> str:
        arg = "" if self.arg is None else f" {self.arg}"
        return f"<{self.op.name}{arg} {self.dtype.name}{list(self.shape)}>"


def _make(op: Op, inputs: tuple[Node, ...], shape: Shape, dtype: DType, arg: Any = None,
          device: Optional[str] = None) -> Node:
    device = device or inputs[0].device
    key = (op, inputs, shape, dtype, arg, device)
    ref = _interned.get(key)
    node = ref() if ref is not None else None
    # a computed value is a snapshot: building the expression again must read its inputs as they
    # are now (a buffer shared with numpy may have been written since), so it gets a fresh node
    if node is None or (node.realized is not None and inputs):
        node = Node(op, inputs, shape, dtype, arg, device)
        ref = _InternRef(node, _drop_interned)
        ref.key = key
        _interned[key] = ref
        if on_new_node is not None:
            on_new_node(node)
    return node


def _drop_interned(ref: _InternRef, interned=_interned) -> None:
    """Called when an interned node dies (the table is bound as a default: this may run while the
    interpreter shuts down and module globals are gone)."""
    if interned.get(ref.key) is ref:
        del interned[ref.key]


# ---------------------------------------------------------------------------------------------
# leaves

def buffer(array: np.ndarray, device: str = "cpu") -> Node:
    """A leaf holding `array` (made C-contiguous); never shared with another buffer node."""
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)     # (not for 0-d arrays: it would make them 1-d)
    node = Node(Op.BUFFER, (), tuple(array.shape), dtypes.from_numpy(array.dtype), next(_buffer_ids), device)
    node.realized = array
    return node


_BOOL = dtypes.bool_


def const(value, dtype: DType, shape: Shape = (), device: str = "cpu", literal: bool = False) -> Node:
    """A constant broadcast to `shape`.

    Kernels read it as a *scalar argument* (so a new value compiles nothing), except where it is a
    `literal`: bool constants and the operands whose value selects the instruction sequence (see
    `binary`, and docs/ARCHITECTURE.md). Only a literal's value is part of a graph's structure."""
    literal = literal or dtype is _BOOL
    try:
        arg = _const_arg(value, type(value), value == 0 and math.copysign(1.0, value) < 0, dtype, literal)
    except TypeError:                    # unhashable (a 0-d array)
        arg = _const_arg.__wrapped__(value, None, None, dtype, literal)
    return _make(Op.CONST, (), tuple(shape), dtype, arg, device)


@functools.lru_cache(maxsize=4096)
def _const_arg(value, value_type, negative_zero, dtype: DType, literal: bool) -> tuple:
    """(repr, value, literal) of `value` cast to `dtype`; cached, as constants are built on the hot
    path (the key has the type and the sign of zero: 1, 1.0, True, 0.0 and -0.0 must stay apart)."""
    value = dtype.np_dtype.type(value).item()
    return (repr(value), value, literal)


def const_value(node: Node):
    """The Python value of a CONST node."""
    return node.arg[1]


def is_scalar_argument(node: Node) -> bool:
    """A CONST node that kernels read as a scalar argument (its value is data, not structure)."""
    return node.op is Op.CONST and not node.arg[2] and node.realized is None


def as_literal(node: Node) -> Node:
    """The literal twin of a CONST node (the same value, inlined into kernels); other nodes as they are."""
    if node.op is not Op.CONST or node.arg[2]:
        return node
    return _make(Op.CONST, (), node.shape, node.dtype, node.arg[:2] + (True,), node.device)


# ---------------------------------------------------------------------------------------------
# elementwise

def unary(op: Op, x: Node) -> Node:
    assert op.family is Family.UNARY and op is not Op.CAST
    dtype = dtypes.bool_ if op in COMPARISONS else x.dtype
    return _make(op, (x,), x.shape, dtype)


def cast(x: Node, dtype: DType) -> Node:
    if x.dtype is dtype:
        return x
    return _make(Op.CAST, (x,), x.shape, dtype, dtype.name)


_CONST, _POW = Op.CONST, Op.POW
_LITERAL_OPERAND = frozenset({Op.POW, Op.FLOORDIV, Op.MOD})
"""Ops whose second operand, a constant, stays a literal: POW always, the others on integers."""


def binary(op: Op, a: Node, b: Node) -> Node:
    assert op.family is Family.BINARY
    assert a.shape == b.shape, f"{op}: shapes {a.shape} and {b.shape} (broadcast first)"
    assert a.dtype is b.dtype, f"{op}: dtypes {a.dtype} and {b.dtype} (promote first)"
    if b.op is _CONST and op in _LITERAL_OPERAND and (op is _POW or not a.dtype.is_floating_point):
        # the codegen (LLVM) picks instructions by these values: x ** 3.0 becomes multiplies and
        # x ** 0.5 a sqrt, an integer division by a constant a multiply and shift
        b = as_literal(b)
    dtype = dtypes.bool_ if op in COMPARISONS else a.dtype
    return _make(op, (a, b), a.shape, dtype)


def where(cond: Node, a: Node, b: Node) -> Node:
    assert cond.shape == a.shape == b.shape and cond.dtype is dtypes.bool_ and a.dtype is b.dtype
    return _make(Op.WHERE, (cond, a, b), a.shape, a.dtype)


# ---------------------------------------------------------------------------------------------
# reductions (keepdim form: reduced axes stay with size 1)

def reduce(op: Op, x: Node, axes: tuple[int, ...]) -> Node:
    assert op.family is Family.REDUCE
    axes = tuple(sorted(set(axes)))
    shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    if op in (Op.ARGMAX, Op.ARGMIN):
        assert len(axes) == 1
        dtype = dtypes.int64
    else:
        dtype = x.dtype
    return _make(op, (x,), shape, dtype, axes)


# ---------------------------------------------------------------------------------------------
# movement

def reshape(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    assert math.prod(shape) == x.numel, (x.shape, shape)
    return _make(Op.RESHAPE, (x,), shape, x.dtype, shape)


def permute(x: Node, order: tuple[int, ...]) -> Node:
    order = tuple(order)
    if x.op is Op.PERMUTE:          # a permutation of a permutation is one permutation
        x, order = x.inputs[0], tuple(x.arg[i] for i in order)
    if order == tuple(range(len(order))):
        return x
    return _make(Op.PERMUTE, (x,), tuple(x.shape[i] for i in order), x.dtype, order)


def expand(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    assert len(shape) == len(x.shape) and all([a == b or a == 1 for a, b in zip(x.shape, shape)])
    return _make(Op.EXPAND, (x,), shape, x.dtype, shape)


def pad(x: Node, widths: tuple[tuple[int, int], ...]) -> Node:
    widths = tuple(tuple(w) for w in widths)
    if all(w == (0, 0) for w in widths):
        return x
    shape = tuple(n + a + b for n, (a, b) in zip(x.shape, widths))
    return _make(Op.PAD, (x,), shape, x.dtype, widths)


def slice_(x: Node, ranges: tuple[tuple[int, int, int], ...]) -> Node:
    """x[start:stop:step, ...] with 0 <= start <= stop <= size and step >= 1 (already normalized)."""
    ranges = tuple(tuple(r) for r in ranges)
    if all(r == (0, n, 1) for r, n in zip(ranges, x.shape)):
        return x
    shape = tuple(max(0, -(-(stop - start) // step)) for start, stop, step in ranges)
    return _make(Op.SLICE, (x,), shape, x.dtype, ranges)


def flip(x: Node, axes: tuple[int, ...]) -> Node:
    axes = tuple(sorted(a for a in set(axes) if x.shape[a] > 1))
    if not axes:
        return x
    return _make(Op.FLIP, (x,), x.shape, x.dtype, axes)


# ---------------------------------------------------------------------------------------------
# library calls and indexing

def matmul(a: Node, b: Node) -> Node:
    assert a.shape[:-2] == b.shape[:-2] and a.shape[-1] == b.shape[-2] and a.dtype is b.dtype
    return _make(Op.MATMUL, (a, b), a.shape[:-1] + b.shape[-1:], a.dtype)


def gather(source: Node, index: Node, axis: int) -> Node:
    """out[i..., j, k...] = source[i..., index[i..., j, k...], k...] along `axis` (torch.gather)."""
    assert len(index.shape) == len(source.shape) and index.dtype is dtypes.int64
    return _make(Op.GATHER, (source, index), index.shape, source.dtype, axis)


def scatter_add(base: Node, index: Node, source: Node, axis: int) -> Node:
    """base with source[i..., j, k...] added at base[i..., index[i..., j, k...], k...]."""
    assert index.shape == source.shape and base.dtype is source.dtype
    return _make(Op.SCATTER_ADD, (base, index, source), base.shape, base.dtype, axis)


@dataclass(frozen=True)
class Bounds:
    """What a CHECK node accepts, and the error its realization raises for any other value.

    Valid values are 0 <= v < size, or -size <= v < size when `wrap` (negatives count from the end
    and come out as v + size). Kernels compare each value as they compute it and record the first
    bad one; the realization that ran them then raises. The front-end words the error like PyTorch
    for the op it checks for (the compiler never imports it): `error` names a builtin exception,
    `message` is the text with `{index}` for the bad value, `low_message` (if set) the text for a
    value below the range (one_hot words the two cases differently)."""
    size: int
    wrap: bool
    error: str                          # "IndexError" or "RuntimeError"
    message: str
    low_message: Optional[str] = None

    def exception(self, value: int) -> Exception:
        low = value < (-self.size if self.wrap else 0)
        text = self.low_message if low and self.low_message is not None else self.message
        return {"IndexError": IndexError, "RuntimeError": RuntimeError}[self.error](text.format(index=value))

    def __repr__(self) -> str:
        return f"[{-self.size if self.wrap else 0}, {self.size})"


def check(index: Node, bounds: Bounds) -> Node:
    """`index` where every value is within `bounds` (wrapped if they say so); any other value makes
    the realization that computes it raise `bounds`' error (see `Bounds`)."""
    assert index.dtype is dtypes.int64
    inner = index
    while inner.op.family is Family.MOVEMENT:      # (views only rearrange values, pads add zeros)
        inner = inner.inputs[0]
    if inner.op is Op.CHECK and 0 < inner.arg.size <= bounds.size:
        return index            # already checked into [0, size): nll_loss's target, then its gather
    return _make(Op.CHECK, (index,), index.shape, index.dtype, bounds)


def cumsum(x: Node, axis: int) -> Node:
    return _make(Op.CUMSUM, (x,), x.shape, x.dtype, axis)


def forget_inputs(node: Node) -> None:
    """Make a realized node a leaf, so the graph that computed it can be freed.

    Only for nodes no gradient flows through (DETACH): autodiff never needs their inputs again.
    The node leaves the interning table first, since its key holds the inputs (which would keep
    them alive) and its structure is no longer what the key says."""
    assert node.realized is not None
    key = (node.op, node.inputs, node.shape, node.dtype, node.arg, node.device)     # as `_make` built it
    ref = _interned.get(key)
    if ref is not None and ref() is node:
        del _interned[key]
    node.inputs = ()


# ---------------------------------------------------------------------------------------------
# graph walking

def toposort(roots: list[Node], stop_at_realized: bool = True) -> list[Node]:
    """All nodes reachable from `roots`, inputs before users; realized nodes are leaves."""
    # depth first, inputs in order, each node after its inputs. It runs over the whole graph at every
    # realization: a stack of (node, iterator over its inputs) and a set of nodes (identity-hashed)
    # is the cheapest form found.
    order: list[Node] = []
    seen: set[Node] = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(() if stop_at_realized and root.realized is not None else root.inputs))]
        while stack:
            node, inputs = stack[-1]
            for i in inputs:
                if i not in seen:
                    seen.add(i)
                    stack.append((i, iter(() if stop_at_realized and i.realized is not None else i.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order
