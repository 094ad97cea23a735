"""Scalar helpers the generated kernels call where a primitive is not one Python operator.

Each is inlined (`njit(inline='always')` or an inline `overload`), so inside a kernel it costs
nothing over writing it out.
"""
import math

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

_inline = numba.njit(inline="always")


def _llvm_float_intrinsic(name: str):
    """A Numba intrinsic calling LLVM's `name` on two floats of the same type."""
    @intrinsic
    def call(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            ty = args[0].type
            suffix = "f32" if ty == llvm_ir.FloatType() else "f64"
            fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(ty, [ty, ty]),
                                                f"{name}.{suffix}")
            return builder.call(fn, args)
        return a(a, b), codegen
    return call


# llvm.maximum/minimum propagate NaN like torch.maximum, and LLVM vectorizes a reduction over them
# (15x faster row max than the compare-and-select below, which only vectorizes under 'nnan')
_llvm_maximum = _llvm_float_intrinsic("llvm.maximum")
_llvm_minimum = _llvm_float_intrinsic("llvm.minimum")


def _sum_add(fenced: bool):
    """An intrinsic `a + b` for two floats of one type: an LLVM `fadd reassoc nsz`, with `b` behind
    an `llvm.arithmetic.fence` if `fenced` (computed as written, whatever the add allows)."""
    @intrinsic
    def add(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            value = args[1]
            if fenced:
                kind = value.type
                name = f"llvm.arithmetic.fence.{'f32' if kind == llvm_ir.FloatType() else 'f64'}"
                fence = builder.module.globals.get(name) or \
                    llvm_ir.Function(builder.module, llvm_ir.FunctionType(kind, [kind]), name)
                value = builder.call(fence, [value])
            return builder.fadd(args[0], value, flags=("reassoc", "nsz"))
        return a(a, b), codegen
    return add


def _overload_sum_add(python_function, add) -> None:
    @overload(python_function, inline="always")
    def _(a, b):
        if isinstance(a, types.Float) and a == b:
            return lambda a, b: add(a, b)
        return lambda a, b: a + b


def fadd_reassoc(a, b):
    """a + b; on two floats of one type an LLVM `fadd reassoc nsz`: the one instruction of a sum
    reduction that may be reordered, so LLVM splits the accumulator over vector lanes. Kernels
    are compiled without 'reassoc' otherwise: it lets LLVM cancel x - x to 0 (NaN for inf/NaN x)."""
    return a + b


def fadd_fenced(a, b):
    """a + b like `fadd_reassoc`, with `b` behind an arithmetic fence: for summed values in which
    LLVM could cancel terms (x - x) through the reassociable add."""
    return a + b


_overload_sum_add(fadd_reassoc, _sum_add(fenced=False))
_overload_sum_add(fadd_fenced, _sum_add(fenced=True))


def maximum(a, b):
    # torch.maximum propagates NaN from either side; Python's max() would drop it
    return a if (a > b or a != a) else b


def minimum(a, b):
    return a if (a < b or a != a) else b


# Integers and bools have no NaN: the builtins. (A conditional expression written in an inlined
# overload makes Numba's SSA check warn, so mixed float types go through the float64 intrinsic.)
_INTEGRAL = (types.Integer, types.Boolean)


@overload(maximum, inline="always")
def _maximum(a, b):
    if isinstance(a, types.Float) and a == b:
        return lambda a, b: _llvm_maximum(a, b)
    if isinstance(a, _INTEGRAL) and isinstance(b, _INTEGRAL):
        return lambda a, b: max(a, b)
    return lambda a, b: _llvm_maximum(np.float64(a), np.float64(b))


@overload(minimum, inline="always")
def _minimum(a, b):
    if isinstance(a, types.Float) and a == b:
        return lambda a, b: _llvm_minimum(a, b)
    if isinstance(a, _INTEGRAL) and isinstance(b, _INTEGRAL):
        return lambda a, b: min(a, b)
    return lambda a, b: _llvm_minimum(np.float64(a), np.float64(b))


@_inline
def sigmoid(x):
    # split by sign so exp never overflows: the float64 path (float32 has its own fast helper)
    if x >= 0:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x)
    return e / (1.0 + e)


@_inline
def erf(x):
    return math.erf(x)


@_inline
def sign(x):
    # torch.sign(nan) is 0, which this gives too
    return (x > 0) - (x < 0)


@_inline
def floor_divide(a, b):
    # floor(a / b) for floats as torch.floor_divide; Python's // on floats matches
    return a // b
