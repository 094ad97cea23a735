"""Kernel IR: what the fusion pass hands to codegen, independent of any backend.

A loop kernel computes one output over an iteration space:

* `full_shape` is the space the loops cover; `reduce_axes` are the axes its reductions run over.
* In `"reduce"` mode the output has the reduced (keepdim) shape: outer loops, then one inner loop
  per reduction, then the epilogue writes one value per outer index (`sum`, `mean`, `x.max(1)`).
* In `"row"` mode the output has the full shape: per outer index the reductions run first, then an
  inner loop writes every element, reading the reductions as scalars (softmax, layer norm).
* In `"map"` mode there is no reduction: one loop nest over the output.

Expressions (`KExpr`) are DAGs: a value used twice is one object, so codegen computes it once.
Inputs are numbered slots; the step that launches the kernel says which buffer fills each slot
(or, for a scalar argument, which constant: its value is passed as a one-element array).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from compiler.dtypes import DType
from compiler.ir.ops import Op
from compiler.passes.views import ShapeTracker

Shape = tuple[int, ...]


@dataclass(eq=False)
class KLoad:
    """Read input `slot` through `tracker` (maps the current iteration space to the buffer)."""
    slot: int
    tracker: ShapeTracker
    dtype: DType


@dataclass(eq=False)
class KConst:
    """A constant: a literal in the source, or, with a `slot`, a scalar argument (input `slot` is a
    one-element array holding the value, read once before the loops). Each use of a constant has
    its own slot; `position` (the constant's position in the graph) tells two uses of one value
    apart from two values."""
    value: Any
    dtype: DType
    slot: Optional[int] = None
    position: Optional[int] = None


@dataclass(eq=False)
class KOp:
    """An elementwise primitive applied to sub-expressions (all in the same iteration space)."""
    op: Op
    srcs: tuple
    dtype: DType
    arg: Any = None


@dataclass(eq=False)
class KReduce:
    """A reduction of `body` (over the full space) along the kernel's reduce axes."""
    op: Op
    body: Any
    dtype: DType


@dataclass(eq=False)
class KGather:
    """Read input `slot` (viewed through `tracker`) at the current index, except along `axis`,
    where the position is the value of `index`."""
    slot: int
    tracker: ShapeTracker
    index: Any
    axis: int
    dtype: DType


@dataclass(eq=False)
class KMasked:
    """`value` where `tracker`'s validity masks hold at the current index, else 0: a computed value
    read through padding (cat). `value` is computed only at valid indices (it reads the same padded
    views, so f(0) is never what lands in the padding)."""
    tracker: ShapeTracker
    value: Any
    dtype: DType


KExpr = Union[KLoad, KConst, KOp, KReduce, KGather, KMasked]


@dataclass(eq=False)
class Kernel:
    kind: str                      # "loop", "scatter_add" or "cumsum"
    out_shape: Shape
    out_dtype: DType
    input_dtypes: list[DType]
    full_shape: Shape = ()
    mode: str = "map"              # loop kernels: "map", "reduce" or "row" (see module docstring)
    reduce_axes: tuple[int, ...] = ()
    expr: Optional[KExpr] = None   # loop kernels: the output value
    exprs: dict = field(default_factory=dict)   # scatter_add: base/index/source; cumsum: source
    axis: int = 0                  # scatter_add and cumsum
    scalar_slots: tuple[int, ...] = ()   # input slots that are scalar arguments (KConst.slot)
    ops_count: int = 0
    checks: list = field(default_factory=list)  # Bounds of the code k at position k - 1 (codegen fills it)
