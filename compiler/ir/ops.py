"""The primitive operations of the IR: one table, one row per primitive.

Every row says which family the op is in (the fusion and codegen passes dispatch on the family)
and how it computes its result dtype. Composite operations (softmax, layer norm, losses, ...)
never appear here: the front-end decomposes them into these primitives.
"""
from __future__ import annotations

from enum import Enum


class Family(Enum):
    LEAF = "leaf"            # buffer or constant: no inputs
    UNARY = "unary"          # elementwise, one input
    BINARY = "binary"        # elementwise, two inputs of the same shape
    TERNARY = "ternary"      # elementwise select
    REDUCE = "reduce"        # reduces some axes to size 1 (keepdim form)
    MOVEMENT = "movement"    # a view: changes how elements are indexed, never their values
    CONTRACT = "contract"    # matmul: a library (BLAS) call
    INDEX = "index"          # gather: data-dependent reads, fusable
    SCATTER = "scatter"      # scatter-add and scans: own loop structure, a kernel of their own


class Op(Enum):
    # leaves
    BUFFER = ("buffer", Family.LEAF)
    CONST = ("const", Family.LEAF)
    # unary math
    NEG = ("neg", Family.UNARY)
    EXP = ("exp", Family.UNARY)
    LOG = ("log", Family.UNARY)
    SIN = ("sin", Family.UNARY)
    COS = ("cos", Family.UNARY)
    TAN = ("tan", Family.UNARY)
    SQRT = ("sqrt", Family.UNARY)
    ABS = ("abs", Family.UNARY)
    SIGN = ("sign", Family.UNARY)
    FLOOR = ("floor", Family.UNARY)
    CEIL = ("ceil", Family.UNARY)
    ROUND = ("round", Family.UNARY)
    TRUNC = ("trunc", Family.UNARY)
    TANH = ("tanh", Family.UNARY)
    SIGMOID = ("sigmoid", Family.UNARY)
    ERF = ("erf", Family.UNARY)
    LOG1P = ("log1p", Family.UNARY)
    EXPM1 = ("expm1", Family.UNARY)
    NOT = ("not", Family.UNARY)          # logical not on bool, bitwise not on integers
    ISNAN = ("isnan", Family.UNARY)
    CAST = ("cast", Family.UNARY)        # arg: target dtype
    DETACH = ("detach", Family.UNARY)    # identity whose gradient is zero (Tensor.detach, no_grad)
    CHECK = ("check", Family.UNARY)      # arg: Bounds; a data index, checked (and wrapped) at run time
    # binary math
    ADD = ("add", Family.BINARY)
    SUB = ("sub", Family.BINARY)
    MUL = ("mul", Family.BINARY)
    DIV = ("div", Family.BINARY)          # true division (floating inputs)
    FLOORDIV = ("floordiv", Family.BINARY)
    MOD = ("mod", Family.BINARY)          # Python/torch.remainder sign rule: sign of the divisor
    POW = ("pow", Family.BINARY)
    MAXIMUM = ("maximum", Family.BINARY)  # NaN-propagating like torch.maximum
    MINIMUM = ("minimum", Family.BINARY)
    ATAN2 = ("atan2", Family.BINARY)
    LT = ("lt", Family.BINARY)
    LE = ("le", Family.BINARY)
    GT = ("gt", Family.BINARY)
    GE = ("ge", Family.BINARY)
    EQ = ("eq", Family.BINARY)
    NE = ("ne", Family.BINARY)
    AND = ("and", Family.BINARY)
    OR = ("or", Family.BINARY)
    XOR = ("xor", Family.BINARY)
    # the second input's value, with the first input's history: its gradient flows to the first
    # input unchanged (torch keeps a tensor's history when its memory is written through .data or
    # .detach(): the new value, the old graph)
    REPLACE = ("replace", Family.BINARY)
    # select
    WHERE = ("where", Family.TERNARY)
    # reductions: arg = tuple of reduced axes (kept as size 1)
    SUM = ("sum", Family.REDUCE)
    PROD = ("prod", Family.REDUCE)
    MAX = ("max", Family.REDUCE)
    MIN = ("min", Family.REDUCE)
    ARGMAX = ("argmax", Family.REDUCE)   # one axis; first index of the extremum, like torch
    ARGMIN = ("argmin", Family.REDUCE)
    # movement
    RESHAPE = ("reshape", Family.MOVEMENT)   # arg: new shape
    PERMUTE = ("permute", Family.MOVEMENT)   # arg: axis order
    EXPAND = ("expand", Family.MOVEMENT)     # arg: new shape (size-1 axes grow)
    PAD = ("pad", Family.MOVEMENT)           # arg: ((before, after), ...) per axis, zeros outside
    SLICE = ("slice", Family.MOVEMENT)       # arg: ((start, stop, step), ...) per axis, step > 0
    FLIP = ("flip", Family.MOVEMENT)         # arg: axes to reverse
    # library call
    MATMUL = ("matmul", Family.CONTRACT)     # (..., n, k) @ (..., k, m), batch dims equal
    # data-dependent indexing
    GATHER = ("gather", Family.INDEX)        # arg: axis; inputs (source, index); out shape = index shape
    SCATTER_ADD = ("scatter_add", Family.SCATTER)  # arg: axis; inputs (base, index, source)
    CUMSUM = ("cumsum", Family.SCATTER)      # arg: axis

    def __init__(self, label: str, family: Family):
        self.label = label
        self.family = family

    # members are singletons: identity hashing is correct and much cheaper than Enum's default,
    # which matters because every node construction hashes its op
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return self.name


COMPARISONS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE, Op.ISNAN})
"""Ops whose result is bool whatever their input dtype."""

ELEMENTWISE = frozenset({Family.UNARY, Family.BINARY, Family.TERNARY})
