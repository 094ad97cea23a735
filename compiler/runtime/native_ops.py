"""The few low-level operations a generated driver needs besides Numba's own (imported by driver
sources only, so Numba is imported only when a driver is compiled).

A driver is a C function `void driver(PyObject *arrays)`: `arrays` is a tuple of numpy arrays
(inputs, constants, outputs, scratch, BLAS table). `array_data` reads the data pointer of one of
them straight from the objects' memory, so a call passes one pointer and no per-array conversion;
`byte_offset` makes pointers into the scratch buffer; `gemm` calls a CBLAS `?gemm` through an
address taken from the BLAS table, so no address is baked into the object code and the code stays
valid in another process.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from compiler.runtime.native import ARRAY_DATA, TUPLE_ITEMS, blas

_I8P = cgutils.voidptr_t
_I64 = ir.IntType(64)


def _load_pointer(builder, address):
    return builder.load(builder.inttoptr(address, _I8P.as_pointer()))


@intrinsic
def array_data(typingctx, arrays, index):
    """The data pointer of `arrays[index]`, `arrays` being a tuple of numpy arrays."""
    def codegen(context, builder, signature, args):
        tuple_address = builder.ptrtoint(args[0], _I64)
        slot = builder.add(tuple_address, builder.add(ir.Constant(_I64, TUPLE_ITEMS),
                                                      builder.mul(args[1], ir.Constant(_I64, 8))))
        array = builder.ptrtoint(_load_pointer(builder, slot), _I64)
        return _load_pointer(builder, builder.add(array, ir.Constant(_I64, ARRAY_DATA)))
    return types.voidptr(types.voidptr, types.intp), codegen


@intrinsic
def byte_offset(typingctx, pointer, nbytes):
    """`pointer` + `nbytes`."""
    def codegen(context, builder, signature, args):
        return builder.gep(args[0], [args[1]])
    return types.voidptr(types.voidptr, types.intp), codegen


@intrinsic
def gemm(typingctx, function, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """cblas_?gemm(RowMajor, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) through
    the function address `function`; `alpha` gives the precision (float32: sgemm, float64: dgemm)."""
    scalar = alpha
    int_bits = blas().int_bits

    def codegen(context, builder, signature, args):
        blas_int = ir.IntType(int_bits)
        real = context.get_value_type(scalar)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(32)] * 3 + [blas_int] * 3 + [real, _I8P, blas_int,
                                                                                         _I8P, blas_int, real, _I8P,
                                                                                         blas_int])
        fn = builder.inttoptr(args[0], fnty.as_pointer())

        def integer(value):
            return builder.trunc(value, blas_int) if int_bits < 64 else value

        fn_args = [ir.Constant(ir.IntType(32), 101), builder.trunc(args[1], ir.IntType(32)),
                   builder.trunc(args[2], ir.IntType(32)), integer(args[3]), integer(args[4]), integer(args[5]),
                   args[6], args[7], integer(args[8]), args[9], integer(args[10]), args[11], args[12],
                   integer(args[13])]
        builder.call(fn, fn_args)
        return context.get_dummy_value()
    sig = types.none(types.uint64, types.intp, types.intp, types.intp, types.intp, types.intp, scalar, types.voidptr,
                     types.intp, types.voidptr, types.intp, scalar, types.voidptr, types.intp)
    return sig, codegen
