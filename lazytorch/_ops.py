"""Tensor operations: argument checking, type promotion and broadcasting, then IR building.

Each function here is also a `Tensor` method (bound at the bottom) and a `lazytorch.*` function.
Composite operations (softmax, var, logsumexp, ...) are written in terms of primitives here, in one
place, so the compiler only ever sees the primitives.
"""
from __future__ import annotations

import builtins
import math
from typing import Optional, Sequence

import numpy as np

from compiler import dtypes as dt
from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch._tensor import (Number, Tensor, _dtype_label, _expand_node, _normalize_dim, _normalize_dims,
                               broadcast_shapes, get_default_dtype, return_types, tensor)


# ---------------------------------------------------------------------------------------------
# elementwise: promotion and broadcasting

def _scalar_category(x) -> int:
    if isinstance(x, (builtins.bool, np.bool_)):
        return 0
    if isinstance(x, (builtins.int, np.integer)):
        return 1
    if isinstance(x, (builtins.float, np.floating)):
        return 2
    raise TypeError(f"unsupported operand type: '{type(x).__name__}'")


# The promotion category of the Python scalar types, looked up by exact type on the hot path
# (numpy scalars and subclasses go through `_scalar_category`).
_PYTHON_SCALAR_CATEGORY = {builtins.bool: 0, builtins.int: 1, builtins.float: 2}
_TENSOR_OR_NUMBER = (Tensor,) + Number


def _check_number_or_tensor(x, name):
    if not isinstance(x, _TENSOR_OR_NUMBER):
        raise TypeError(f"{name}(): argument 'other' (position 1) must be Tensor, not {type(x).__name__}")


def result_type(*operands) -> dt.DType:
    dim_dtypes, zero_dim_dtypes, scalars = [], [], []
    for o in operands:
        if isinstance(o, Tensor):
            (dim_dtypes if o._node.shape else zero_dim_dtypes).append(o._node.dtype)
        else:
            scalars.append(_scalar_category(o))
    first = dim_dtypes[0] if dim_dtypes else None
    if first is not None and not zero_dim_dtypes and builtins.all(d is first for d in dim_dtypes) and \
            builtins.all(c <= first.category for c in scalars):
        return first                     # the common case, on the graph-building hot path
    return dt.result_type(dim_dtypes, zero_dim_dtypes, scalars, get_default_dtype())


def _operand_nodes(operands, dtype: dt.DType, shape: tuple[int, ...], device: str) -> list[ir.Node]:
    """Each operand as a node of `dtype` and `shape`: tensors cast and expanded (only where they
    differ: the usual case is neither), Python scalars as constants."""
    nodes = []
    for o in operands:
        if isinstance(o, Tensor):
            node = o._node
            if node.dtype is not dtype:
                node = ir.cast(node, dtype)
            if node.shape != shape:
                node = _expand_node(node, shape)
            nodes.append(node)
        else:
            nodes.append(ir.const(o, dtype, shape, device))
    return nodes


def _elementwise(op: Op, name: str, *operands, floating: bool = False):
    """Promote, broadcast, build `op`. `floating`: an integral result type computes in the default
    float dtype instead (division, exp, ...)."""
    result = _plain_elementwise(op, name, operands, floating)
    if result is not None:
        return result
    tensors = [o for o in operands if isinstance(o, Tensor)]
    dtype = _shared_dtype(operands, tensors, floating)
    if dtype is None:
        for o in operands[1:]:
            if not isinstance(o, Tensor):
                _check_number_or_tensor(o, name)
        dtype = _float_type(*operands) if floating else result_type(*operands)
    shape = broadcast_shapes(*[t._node.shape for t in tensors])
    nodes = _operand_nodes(operands, dtype, shape, tensors[0]._node.device)
    node = ir.binary(op, *nodes) if len(nodes) == 2 else ir.unary(op, nodes[0])
    return tensors[0]._result(node, tensors, name)


def _plain_elementwise(op: Op, name: str, operands: tuple, floating: bool) -> Optional[Tensor]:
    """`op` on operands that need no promotion, casting or broadcasting, else None: one tensor
    (`exp(x)`), two tensors of one shape and dtype (`x * y`), or a tensor and a Python scalar of a
    category its dtype holds (`x * 0.5`, `1 - x`). Most ops a model builds are one of these, and
    this path builds them with a fraction of the general path's work."""
    a = operands[0]
    if len(operands) == 1:
        if not isinstance(a, Tensor) or floating and not a._node.dtype.is_floating_point:
            return None
        return a._result(ir.unary(op, a._node), operands, name)
    if len(operands) != 2:
        return None
    b = operands[1]
    tensor, other = (a, b) if isinstance(a, Tensor) else (b, a)
    if not isinstance(tensor, Tensor):
        return None
    x = tensor._node
    dtype = x.dtype
    if floating and not dtype.is_floating_point:
        return None
    if isinstance(other, Tensor):
        y = other._node
        if y.dtype is not dtype or y.shape != x.shape:
            return None
        parents = operands
    elif _PYTHON_SCALAR_CATEGORY.get(type(other), 3) <= dtype.category:    # (3: not a Python scalar)
        y = ir.const(other, dtype, x.shape, x.device)
        parents = (tensor,)
    else:
        return None
    node = ir.binary(op, x, y) if tensor is a else ir.binary(op, y, x)
    return tensor._result(node, parents, name)


def _shared_dtype(operands, tensors: list[Tensor], floating: bool) -> Optional[dt.DType]:
    """The tensors' dtype when they all have the same one and every other operand is a Python
    scalar of a category it holds, else None: torch's promotion then gives that dtype, with no
    need to sort the operands into its priority groups (`x + bias`, `x * scale` with a 0-d scale)."""
    if not tensors:
        return None
    dtype = tensors[0]._node.dtype
    if floating and not dtype.is_floating_point:
        return None
    for o in operands:
        if isinstance(o, Tensor):
            if o._node.dtype is not dtype:
                return None
        elif _PYTHON_SCALAR_CATEGORY.get(type(o), 3) > dtype.category:     # (3: not a Python scalar)
            return None
    return dtype


def _float_type(*operands) -> dt.DType:
    dtype = result_type(*operands)
    return dtype if dtype.is_floating_point else get_default_dtype()


def add(input, other, *, alpha=1):
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    if not isinstance(input, Tensor):
        return _elementwise(Op.ADD, "add", other, input)
    return _elementwise(Op.ADD, "add", input, other)


def _is_bool(x) -> bool:
    return x.dtype is dt.bool_ if isinstance(x, Tensor) else isinstance(x, (builtins.bool, np.bool_))


def sub(input, other, *, alpha=1):
    input_bool, other_bool = _is_bool(input), _is_bool(other)
    if input_bool and other_bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if input_bool or other_bool:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return _elementwise(Op.SUB, "sub", input, other)


def mul(input, other):
    if not isinstance(input, Tensor):
        return _elementwise(Op.MUL, "mul", other, input)
    return _elementwise(Op.MUL, "mul", input, other)


def div(input, other, *, rounding_mode: Optional[str] = None):
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        dtype = result_type(input, other)
        if dtype.is_floating_point:
            return div(input, other).trunc()
        q = div(input, other)
        return _to(q.trunc(), dtype)
    return _elementwise(Op.DIV, "div", input, other, floating=True)


true_divide = divide = div


def floor_divide(input, other):
    return _elementwise(Op.FLOORDIV, "floor_divide", input, other)


def remainder(input, other):
    return _elementwise(Op.MOD, "remainder", input, other)


def fmod(input, other):
    # C's fmod (sign of the dividend) from the exact remainder of the magnitudes; a - trunc(a/b)*b
    # would round, and give NaN for an infinite divisor
    magnitude = abs(other) if isinstance(other, Tensor) else builtins.abs(other)
    return mul(sign(input), remainder(abs(input), magnitude))


def pow(input, exponent):
    if not isinstance(input, Tensor):
        return _elementwise(Op.POW, "pow", full_like_scalar(input, exponent), exponent)
    if isinstance(exponent, Number) and not isinstance(exponent, (builtins.bool, np.bool_)) and \
            result_type(input, exponent) is input.dtype:     # the shortcuts keep the input's dtype
        if not input.dtype.is_floating_point and isinstance(exponent, (builtins.int, np.integer)) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        if exponent == 2:
            return input._result(ir.binary(Op.MUL, input._node, input._node), [input], "pow")
        if exponent == 1:
            return input._result(input._node, [input], "pow") if input.requires_grad else input.clone()
        if exponent == 0.5 and input.dtype.is_floating_point:
            return sqrt(input)
    return _elementwise(Op.POW, "pow", input, exponent)


def full_like_scalar(value, like: Tensor) -> Tensor:
    dtype = result_type(value, like)
    return Tensor._from_node(ir.const(value, dtype, (), like._node.device))


def maximum(input, other):
    return _elementwise(Op.MAXIMUM, "maximum", input, other)


def minimum(input, other):
    return _elementwise(Op.MINIMUM, "minimum", input, other)


def atan2(input, other):
    return _elementwise(Op.ATAN2, "atan2", input, other, floating=True)


def _comparison(op: Op, name: str):
    def compare(input, other):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' must be Tensor")
        return _elementwise(op, name, input, other)
    compare.__name__ = name
    return compare


lt, le, gt, ge, eq, ne = (_comparison(op, n) for op, n in
                          ((Op.LT, "lt"), (Op.LE, "le"), (Op.GT, "gt"), (Op.GE, "ge"), (Op.EQ, "eq"), (Op.NE, "ne")))
less, less_equal, greater, greater_equal, not_equal = lt, le, gt, ge, ne


def _bitwise(op: Op, name: str):
    def bitwise(input, other):
        dtype = result_type(input, other)
        if dtype.is_floating_point:
            raise NotImplementedError(f"\"{name}_cpu\" not implemented for '{_dtype_label(dtype)}'")
        return _elementwise(op, name, input, other)
    bitwise.__name__ = name
    return bitwise


bitwise_and = _bitwise(Op.AND, "bitwise_and")
bitwise_or = _bitwise(Op.OR, "bitwise_or")
bitwise_xor = _bitwise(Op.XOR, "bitwise_xor")


def bitwise_not(input):
    if input.dtype.is_floating_point:
        raise NotImplementedError(f"\"bitwise_not_cpu\" not implemented for '{_dtype_label(input.dtype)}'")
    return _elementwise(Op.NOT, "bitwise_not", input)


def logical_not(input):
    return _elementwise(Op.NOT, "logical_not", _to(input, dt.bool_))


def logical_and(input, other):
    return _elementwise(Op.AND, "logical_and", _to(input, dt.bool_), _to(as_tensor_for(other, input), dt.bool_))


def logical_or(input, other):
    return _elementwise(Op.OR, "logical_or", _to(input, dt.bool_), _to(as_tensor_for(other, input), dt.bool_))


def logical_xor(input, other):
    return _elementwise(Op.XOR, "logical_xor", _to(input, dt.bool_), _to(as_tensor_for(other, input), dt.bool_))


def as_tensor_for(value, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return Tensor._from_node(ir.const(value, result_type(value), (), like._node.device))


# ---------------------------------------------------------------------------------------------
# unary math

def _float_unary(op: Op, name: str):
    def fn(input):
        return _elementwise(op, name, input, floating=True)
    fn.__name__ = name
    return fn


exp = _float_unary(Op.EXP, "exp")
log = _float_unary(Op.LOG, "log")
sin = _float_unary(Op.SIN, "sin")
cos = _float_unary(Op.COS, "cos")
tan = _float_unary(Op.TAN, "tan")
sqrt = _float_unary(Op.SQRT, "sqrt")
tanh = _float_unary(Op.TANH, "tanh")
sigmoid = _float_unary(Op.SIGMOID, "sigmoid")
erf = _float_unary(Op.ERF, "erf")
log1p = _float_unary(Op.LOG1P, "log1p")
expm1 = _float_unary(Op.EXPM1, "expm1")


def log2(input):
    return mul(log(input), 1.0 / math.log(2.0))


def log10(input):
    return mul(log(input), 1.0 / math.log(10.0))


def exp2(input):
    return exp(mul(input, math.log(2.0)))


def rsqrt(input):
    return reciprocal(sqrt(input))


def reciprocal(input):
    return div(1.0, input) if input.dtype.is_floating_point else div(_to(input, get_default_dtype()), 1.0).__rtruediv__(1.0)


def square(input):
    return mul(input, input)


def _same_type_unary(op: Op, name: str):
    def fn(input):
        if op is Op.NEG and input.dtype is dt.bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        return _elementwise(op, name, input)
    fn.__name__ = name
    return fn


neg = negative = _same_type_unary(Op.NEG, "neg")
abs = absolute = _same_type_unary(Op.ABS, "abs")
sign = _same_type_unary(Op.SIGN, "sign")
floor = _same_type_unary(Op.FLOOR, "floor")
ceil = _same_type_unary(Op.CEIL, "ceil")
trunc = fix = _same_type_unary(Op.TRUNC, "trunc")


def round(input, decimals: int = 0):
    if decimals:
        scale = 10.0 ** decimals
        return div(_elementwise(Op.ROUND, "round", mul(input, scale)), scale)
    return _elementwise(Op.ROUND, "round", input)


def frac(input):
    return sub(input, trunc(input))


def isnan(input):
    return _elementwise(Op.ISNAN, "isnan", input)


def isinf(input):
    if not input.dtype.is_floating_point:
        return zeros_like_bool(input)
    return eq(abs(input), math.inf)


def isfinite(input):
    if not input.dtype.is_floating_point:
        return logical_not(zeros_like_bool(input))
    return lt(abs(input), math.inf)


def isposinf(input):
    return eq(input, math.inf)


def isneginf(input):
    return eq(input, -math.inf)


def zeros_like_bool(input):
    return Tensor._from_node(ir.const(False, dt.bool_, input._node.shape, input._node.device))


def relu(input):
    if input.dtype is dt.bool_:
        return input
    # the value of maximum(x, 0) (NaN and -0.0 as torch), the gradient of x where x > 0 and none
    # elsewhere (torch's threshold_backward; maximum would give half of it at x == 0)
    x = input._node
    zero = ir.const(0, input.dtype, x.shape, x.device)
    node = ir.where(ir.binary(Op.GT, x, zero), x, ir.unary(Op.DETACH, ir.binary(Op.MAXIMUM, x, zero)))
    return input._result(node, [input], "relu")


def clamp(input, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    # selects, not maximum/minimum: at x == bound the gradient goes to x, as torch's clamp_backward
    result = input
    if min is not None:
        result = where(lt(result, min), min, result)
    if max is not None:
        result = where(gt(result, max), max, result)
    return result


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def where(condition, input=None, other=None):
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor) or condition.dtype is not dt.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{_dtype_label(condition.dtype) if isinstance(condition, Tensor) else type(condition).__name__}")
    values = [t for t in (input, other) if isinstance(t, Tensor)]
    shape = broadcast_shapes(condition._node.shape, *[t._node.shape for t in values])
    dtype = _shared_dtype((input, other), values, False) or result_type(input, other)
    a, b = _operand_nodes((input, other), dtype, shape, condition._node.device)
    return condition._result(ir.where(_expand_node(condition._node, shape), a, b), [condition] + values, "where")


def lerp(input, end, weight):
    return add(input, mul(weight, sub(end, input)))


def addcmul(input, tensor1, tensor2, *, value=1):
    return add(input, mul(mul(tensor1, tensor2), value))


def addcdiv(input, tensor1, tensor2, *, value=1):
    return add(input, mul(div(tensor1, tensor2), value))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return builtins.bool(isclose(input, other, rtol, atol, equal_nan).all().item())


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    close = le(abs(sub(input, other)), add(mul(abs(other), rtol), atol))
    close = logical_or(close, eq(input, other))
    if equal_nan:
        close = logical_or(close, logical_and(isnan(input), isnan(other)))
    return close


def equal(input, other) -> bool:
    return input.shape == other.shape and builtins.bool(eq(input, other).all().item())


# ---------------------------------------------------------------------------------------------
# dtype conversion

def _to(input: Tensor, dtype: dt.DType) -> Tensor:
    if input.dtype is dtype:
        return input
    return input._result(ir.cast(input._node, dtype), [input], "to_copy")


# ---------------------------------------------------------------------------------------------
# reductions

def _reduce(op: Op, input: Tensor, dims: tuple[int, ...], keepdim: bool, name: str) -> Tensor:
    node = ir.reduce(op, input._node, dims) if dims else input._node
    if not keepdim and dims:
        node = ir.reshape(node, tuple(n for i, n in enumerate(node.shape) if i not in dims))
    return input._result(node, [input], name)


def _check_nonempty(input: Tensor, dims, name: str):
    for d in dims:
        if input.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    if not dims and input.numel() == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")


def sum(input, dim=None, keepdim: bool = False, *, dtype: Optional[dt.DType] = None):
    if dtype is not None:
        input = _to(input, dtype)
    elif not input.dtype.is_floating_point:
        input = _to(input, dt.int64)
    return _reduce(Op.SUM, input, _normalize_dims(dim, input.dim()), keepdim, "sum")


def prod(input, dim=None, keepdim: bool = False, *, dtype: Optional[dt.DType] = None):
    if dtype is not None:
        input = _to(input, dtype)
    elif not input.dtype.is_floating_point:
        input = _to(input, dt.int64)
    dims = _normalize_dims(dim, input.dim())
    return _reduce(Op.PROD, input, dims, keepdim, "prod")


def mean(input, dim=None, keepdim: bool = False, *, dtype: Optional[dt.DType] = None):
    if dtype is not None:
        input = _to(input, dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {_dtype_label(input.dtype)}")
    dims = _normalize_dims(dim, input.dim())
    count = math.prod(input.shape[d] for d in dims)
    return div(sum(input, dim, keepdim), count if count else math.nan)


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    if isinstance(dim, builtins.bool):           # var(input, unbiased)
        unbiased, dim = dim, None
    correction = (1 if unbiased is None or unbiased else 0) if correction is None else correction
    dims = _normalize_dims(dim, input.dim())
    count = math.prod(input.shape[d] for d in dims)
    centered = sub(input, mean(input, dims, keepdim=True))
    return div(sum(mul(centered, centered), dims, keepdim), builtins.max(count - correction, 0) or math.nan
               if count - correction > 0 else 0.0)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def amax(input, dim=(), keepdim: bool = False):
    dims = _normalize_dims(dim if dim != () else None, input.dim())
    _check_nonempty(input, dims, "amax")
    return _reduce(Op.MAX, input, dims, keepdim, "amax")


def amin(input, dim=(), keepdim: bool = False):
    dims = _normalize_dims(dim if dim != () else None, input.dim())
    _check_nonempty(input, dims, "amin")
    return _reduce(Op.MIN, input, dims, keepdim, "amin")


def _extremum_with_index(input: Tensor, dim, keepdim: bool, arg_op: Op, name: str):
    values_indices = getattr(return_types, name)
    d = _normalize_dim(dim, input.dim())
    _check_nonempty(input, (d,) if input.dim() else (), name)
    if input.dim() == 0:
        return values_indices(input, Tensor._from_node(ir.const(0, dt.int64, (), input._node.device)))
    index = ir.reduce(arg_op, input._node, (d,))
    values = input._result(ir.gather(input._node, index, d), [input], name)
    indices = Tensor._from_node(index)
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return values_indices(values, indices)


def max(input, dim=None, keepdim: bool = False, *, other=None):
    if isinstance(dim, Tensor):
        return maximum(input, dim)
    if dim is None:
        _check_nonempty(input, (), "max")
        return _reduce(Op.MAX, input, tuple(range(input.dim())), False, "max")
    return _extremum_with_index(input, dim, keepdim, Op.ARGMAX, "max")


def min(input, dim=None, keepdim: bool = False):
    if isinstance(dim, Tensor):
        return minimum(input, dim)
    if dim is None:
        _check_nonempty(input, (), "min")
        return _reduce(Op.MIN, input, tuple(range(input.dim())), False, "min")
    return _extremum_with_index(input, dim, keepdim, Op.ARGMIN, "min")


def _arg_extremum(op: Op, name: str):
    def fn(input, dim=None, keepdim: bool = False):
        if dim is None:
            flat = input.reshape(-1)
            if flat.numel() == 0:
                raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
            result = Tensor._from_node(ir.reshape(ir.reduce(op, flat._node, (0,)), ()))
            return result.reshape((1,) * input.dim()) if keepdim else result
        d = _normalize_dim(dim, input.dim())
        if input.dim() == 0:
            return Tensor._from_node(ir.const(0, dt.int64, (), input._node.device))
        _check_nonempty(input, (d,), name)
        result = Tensor._from_node(ir.reduce(op, input._node, (d,)))
        return result if keepdim else result.squeeze(d)
    fn.__name__ = name
    return fn


argmax = _arg_extremum(Op.ARGMAX, "argmax")
argmin = _arg_extremum(Op.ARGMIN, "argmin")


def all(input, dim=None, keepdim: bool = False):
    result = _reduce(Op.MIN, _to(input, dt.bool_), _normalize_dims(dim, input.dim()), keepdim, "all")
    return _to(result, dt.uint8) if input.dtype is dt.uint8 else result    # torch keeps uint8


def any(input, dim=None, keepdim: bool = False):
    result = _reduce(Op.MAX, _to(input, dt.bool_), _normalize_dims(dim, input.dim()), keepdim, "any")
    return _to(result, dt.uint8) if input.dtype is dt.uint8 else result


def count_nonzero(input, dim=None):
    return sum(ne(input, 0), dim)


def logsumexp(input, dim, keepdim: bool = False):
    dims = _normalize_dims(dim, input.dim())
    input = _to(input, _float_type(input))
    peak = amax(input, dims, keepdim=True).detach()
    # an infinite maximum would make x - max NaN: shift by 0 there instead
    peak = where(isinf(peak), 0.0, peak)
    result = add(log(sum(exp(sub(input, peak)), dims, keepdim=True)), peak)
    return result if keepdim else result.squeeze(dims) if dims else result


def softmax(input, dim: int, dtype: Optional[dt.DType] = None, *, _stacklevel=None):
    if dtype is not None:
        input = _to(input, dtype)
    d = _normalize_dim(dim, input.dim())
    input = _to(input, _float_type(input))
    shifted = sub(input, amax(input, d, keepdim=True).detach())
    e = exp(shifted)
    return div(e, sum(e, d, keepdim=True))


def log_softmax(input, dim: int, dtype: Optional[dt.DType] = None, *, _stacklevel=None):
    if dtype is not None:
        input = _to(input, dtype)
    d = _normalize_dim(dim, input.dim())
    input = _to(input, _float_type(input))
    shifted = sub(input, amax(input, d, keepdim=True).detach())
    return sub(shifted, log(sum(exp(shifted), d, keepdim=True)))


def cumsum(input, dim: int, *, dtype: Optional[dt.DType] = None):
    if dtype is not None:
        input = _to(input, dtype)
    elif not input.dtype.is_floating_point:
        input = _to(input, dt.int64)
    if input.dim() == 0:
        return input.clone()
    d = _normalize_dim(dim, input.dim())
    return input._result(ir.cumsum(input._node, d), [input], "cumsum")


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    if p in ("fro", 2, 2.0):
        # sqrt only where the sum is nonzero: the gradient at a zero vector is 0 (torch), not NaN
        squares = sum(mul(input, input), dim, keepdim)
        zero = eq(squares, 0)
        return where(zero, 0.0, sqrt(where(zero, 1.0, squares)))
    if p in (1, 1.0):
        return sum(abs(input), dim, keepdim)
    if p == math.inf:
        return amax(abs(input), dim if dim is not None else (), keepdim)
    return pow(sum(pow(abs(input), p), dim, keepdim), 1.0 / p)


def dist(input, other, p=2):
    return norm(sub(input, other), p)


# ---------------------------------------------------------------------------------------------
# matmul

def _mm_error(a, b):
    return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and "
                        f"{b.shape[0]}x{b.shape[1]})")


def _check_same_dtype(a, b):
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name.replace('float32', 'float').replace('float64', 'double')} "
                           f"!= {b.dtype.name.replace('float32', 'float').replace('float64', 'double')}")


def matmul(input, other):
    """torch.matmul: 1-D, 2-D and batched (broadcast) products; a BLAS call, never a loop nest."""
    a, b = input, other
    if a.dim() == 0 or b.dim() == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.dim()}D and {b.dim()}D")
    _check_same_dtype(a, b)
    if a.dim() == 1 and b.dim() == 1:
        if a.shape[0] != b.shape[0]:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to "
                               f"have the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively")
        return _matmul_nodes(a.reshape(1, -1), b.reshape(-1, 1), a, b).reshape(())
    if a.dim() == 2 and b.dim() == 1:
        if a.shape[1] != b.shape[0]:
            raise RuntimeError(f"size mismatch, got input ({a.shape[0]}), mat ({a.shape[0]}x{a.shape[1]}), vec ({b.shape[0]})")
        return _matmul_nodes(a, b.reshape(-1, 1), a, b).reshape(-1)
    if a.dim() == 1 and b.dim() == 2:
        if a.shape[0] != b.shape[0]:
            raise _mm_error(a.reshape(1, -1), b)
        return _matmul_nodes(a.reshape(1, -1), b, a, b).reshape(-1)
    if a.dim() == 2 and b.dim() == 2:
        if a.shape[1] != b.shape[0]:
            raise _mm_error(a, b)
        return _matmul_nodes(a, b, a, b)
    # batched: prepend/append a unit dim for 1-D operands, broadcast the batch dims
    a2 = a.reshape(1, -1) if a.dim() == 1 else a
    b2 = b.reshape(-1, 1) if b.dim() == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{a2.shape[0] if a2.dim() > 2 else 1}, {a2.shape[-1]}] but got: "
                           f"[{b2.shape[0] if b2.dim() > 2 else 1}, {b2.shape[-2]}].")
    batch = broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = a2.expand(*batch, *a2.shape[-2:])
    b3 = b2.expand(*batch, *b2.shape[-2:])
    result = _matmul_nodes(a3, b3, a, b)
    if a.dim() == 1:
        result = result.squeeze(-2)
    if b.dim() == 1:
        result = result.squeeze(-1)
    return result


def _matmul_nodes(a: Tensor, b: Tensor, *parents) -> Tensor:
    return a._result(ir.matmul(a._node, b._node), parents, "mm")


def mm(input, mat2):
    if input.dim() != 2:
        raise RuntimeError("self must be a matrix")
    if mat2.dim() != 2:
        raise RuntimeError("mat2 must be a matrix")
    return matmul(input, mat2)


def bmm(input, mat2):
    if input.dim() != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.dim() != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{input.shape[0]}, {input.shape[2]}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    return matmul(input, mat2)


def dot(input, other):
    if input.dim() != 1 or other.dim() != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.dim()}D and {other.dim()}D tensors")
    if input.dtype is not other.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {_dtype_label(input.dtype)} "
                           f"and {_dtype_label(other.dtype)}")
    return matmul(input, other)


vdot = inner = dot


def mv(input, vec):
    return matmul(input, vec)


def outer(input, vec2):
    return mul(input.reshape(-1, 1), vec2.reshape(1, -1))


ger = outer


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    product = mm(mat1, mat2)
    if alpha != 1:
        product = mul(product, alpha)
    return add(mul(input, beta) if beta != 1 else input, product)


def einsum(equation: str, *operands):
    """einsum for the contractions that are matmuls in disguise (via broadcasting and sum)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    inputs, output = equation.replace(" ", "").split("->")
    specs = inputs.split(",")
    letters = sorted(set("".join(specs)))
    size = {}
    for spec, t in zip(specs, operands):
        for ch, n in zip(spec, t.shape):
            size[ch] = builtins.max(size.get(ch, 1), n)
    product = None
    for spec, t in zip(specs, operands):
        order = [spec.index(ch) for ch in letters if ch in spec]
        view = t.permute(*order)
        shape = [size[ch] if ch in spec else 1 for ch in letters]
        view = view.reshape(*[t.shape[spec.index(ch)] if ch in spec else 1 for ch in letters])
        product = view if product is None else mul(product, view)
    summed = [i for i, ch in enumerate(letters) if ch not in output]
    result = sum(product, tuple(summed)) if summed else product
    remaining = [ch for ch in letters if ch in output]
    return result.permute(*[remaining.index(ch) for ch in output])


# ---------------------------------------------------------------------------------------------
# misc

def clone(input, *, memory_format=None):
    """A copy: a distinct node (copying is free in a lazy graph, so this is a no-op on values)."""
    return input._result(ir.unary(Op.DETACH, input._node) if not input.requires_grad else
                         ir.binary(Op.ADD, input._node, ir.const(0, input.dtype, input._node.shape, input._node.device)),
                         [input], "clone")


def nonzero(input, *, as_tuple: bool = False):
    """Indices of nonzero elements: the result's shape depends on the data, so this computes now."""
    idx = np.nonzero(input._value())
    if as_tuple:
        return tuple(tensor(i.astype(np.int64)) for i in idx)
    return tensor(np.stack(idx, axis=1).astype(np.int64) if idx else np.zeros((1, 0), np.int64))


def argwhere(input):
    return nonzero(input)
